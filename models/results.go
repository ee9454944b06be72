package models

// Results holds the predictions of one PredictInto or RunInto call: one list per image. Its
// owner reuses it from call to call, so that a steady stream of calls allocates nothing once
// it has grown to the largest call; the lists and their boxes stay valid until the next call
// that fills it. The zero Results is ready. A Results is not safe for concurrent use: give
// each goroutine its own.
type Results struct {
	preds []Prediction
	ends  []int // ends[i]: where image i's predictions end in preds
	lists [][]Prediction
	boxes Boxes
}

// Lists returns one prediction list per image of the last call that filled r.
func (r *Results) Lists() [][]Prediction { return r.lists }

// reset empties r for a new call.
func (r *Results) reset() {
	r.preds, r.ends, r.lists = r.preds[:0], r.ends[:0], r.lists[:0]
	r.boxes.Reset()
}

// endImage closes the list of the next image: the predictions appended since the last one.
func (r *Results) endImage() { r.ends = append(r.ends, len(r.preds)) }

// finish cuts the lists out of preds, once no more are appended (appending may move preds).
// Each list's capacity is its length, so appending to one never writes over the next.
func (r *Results) finish() {
	start := 0
	for _, end := range r.ends {
		r.lists = append(r.lists, r.preds[start:end:end])
		start = end
	}
}

// Boxes hands out the boxes of detections from a block it reuses. A box stays where it was
// put until Reset, which makes the block's space available again: its owner resets only once
// no box handed out is needed any more. A nil *Boxes allocates each box.
type Boxes struct {
	block []Box
}

// New stores v and returns where.
func (b *Boxes) New(v Box) *Box {
	if b == nil {
		p := new(Box) // not &v, which would put every v on the heap
		*p = v
		return p
	}
	if len(b.block) == cap(b.block) {
		// a new block: the boxes already handed out stay in the old one
		b.block = make([]Box, 0, max(2*cap(b.block), 32))
	}
	b.block = append(b.block, v)
	return &b.block[len(b.block)-1]
}

// Reset makes the space of every box handed out available again.
func (b *Boxes) Reset() { b.block = b.block[:0] }
