package models

import (
	"cmp"
	"math"
	"slices"
)

// Box is a region in normalized coordinates (0..1 of the image width and height), as in the
// Custom Vision Prediction API.
type Box struct {
	Left   float32 `json:"left"`
	Top    float32 `json:"top"`
	Width  float32 `json:"width"`
	Height float32 `json:"height"`
}

// IoU is the intersection over union of two boxes.
func (b Box) IoU(o Box) float32 {
	x1 := max(b.Left, o.Left)
	y1 := max(b.Top, o.Top)
	x2 := min(b.Left+b.Width, o.Left+o.Width)
	y2 := min(b.Top+b.Height, o.Top+o.Height)
	inter := max(0, x2-x1) * max(0, y2-y1)
	union := b.Width*b.Height + o.Width*o.Height - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Prediction is one tag with its probability, and for detectors the box where it was found.
type Prediction struct {
	Tag         int
	TagName     string
	Probability float32
	// Box is set by detectors only. From PredictInto or RunInto it points into the
	// Results, and is valid until the Results' next use.
	Box *Box
}

// yoloAnchors are the anchor sizes (in grid cells) of Custom Vision's YOLO exports.
var yoloAnchors = [5][2]float32{{0.573, 0.677}, {1.87, 2.06}, {3.34, 5.47}, {7.88, 3.53}, {9.77, 9.17}}

// YOLO decodes model_outputs0 as the export's bundled code does: sigmoid offsets per cell,
// anchor-scaled sizes, class softmax times objectness, then greedy NMS that zeroes only the
// chosen class of overlapping boxes. A YOLO keeps scratch buffers: use one per goroutine.
type YOLO struct {
	Threshold     float32 // keep boxes whose best class probability is above this (0.10)
	IoU           float32 // suppress overlaps above this (0.45)
	MaxDetections int     // at most this many boxes (20)

	boxes []Box
	probs []float32 // [box*classes + class]
	best  []int32   // class with the highest remaining probability, per box
	order []int32   // boxes above threshold
}

// Decode reads one image's output, laid out [anchors*(5+classes), gh, gw] (channel-major),
// and appends the detections to dst, their boxes stored in boxes (nil: allocated).
func (y *YOLO) Decode(dst []Prediction, boxes *Boxes, out []float32, classes, gh, gw int, labels []string) []Prediction {
	na := len(yoloAnchors)
	stride := 5 + classes
	if classes <= 0 || gh <= 0 || gw <= 0 || len(out) < na*stride*gh*gw {
		return dst
	}
	cells := gh * gw
	n := cells * na
	y.boxes = grow(y.boxes, n)
	y.probs = grow(y.probs, n*classes)
	y.best = grow(y.best, n)
	y.order = y.order[:0]
	plane := func(a, k int) []float32 {
		off := (a*stride + k) * cells
		return out[off : off+cells]
	}
	for a := 0; a < na; a++ {
		tx, ty, tw, th, to := plane(a, 0), plane(a, 1), plane(a, 2), plane(a, 3), plane(a, 4)
		for r := 0; r < gh; r++ {
			for c := 0; c < gw; c++ {
				cell := r*gw + c
				i := cell*na + a // box index in (row, col, anchor) order, as the bundled code
				w := float32(math.Exp(float64(tw[cell]))) * yoloAnchors[a][0] / float32(gw)
				h := float32(math.Exp(float64(th[cell]))) * yoloAnchors[a][1] / float32(gh)
				x := (sigmoid(tx[cell]) + float32(c)) / float32(gw)
				yy := (sigmoid(ty[cell]) + float32(r)) / float32(gh)
				y.boxes[i] = Box{Left: x - w/2, Top: yy - h/2, Width: w, Height: h}
				obj := sigmoid(to[cell])
				p := y.probs[i*classes : (i+1)*classes]
				maxLogit := float32(math.Inf(-1))
				for k := 0; k < classes; k++ {
					p[k] = plane(a, 5+k)[cell]
					maxLogit = max(maxLogit, p[k])
				}
				var sum float32
				for k := range p {
					p[k] = float32(math.Exp(float64(p[k] - maxLogit)))
					sum += p[k]
				}
				bestK, bestP := 0, float32(-1)
				for k := range p {
					p[k] = p[k] / sum * obj
					if p[k] > bestP {
						bestK, bestP = k, p[k]
					}
				}
				y.best[i] = int32(bestK)
				if bestP > y.Threshold {
					y.order = append(y.order, int32(i))
				}
			}
		}
	}
	return y.suppress(dst, boxes, classes, labels)
}

// suppress runs the bundled code's NMS over the boxes in y.order.
func (y *YOLO) suppress(dst []Prediction, boxes *Boxes, classes int, labels []string) []Prediction {
	bestOf := func(i int32) float32 { return y.probs[int(i)*classes+int(y.best[i])] }
	for found := 0; found < y.MaxDetections && len(y.order) > 0; found++ {
		top := 0
		for j := 1; j < len(y.order); j++ {
			if bestOf(y.order[j]) > bestOf(y.order[top]) {
				top = j
			}
		}
		i := y.order[top]
		p := bestOf(i)
		if p < y.Threshold {
			break
		}
		k := y.best[i]
		dst = append(dst, Prediction{Tag: int(k), TagName: label(labels, int(k)), Probability: p, Box: boxes.New(y.boxes[i])})
		// zero the chosen class of the chosen box and of every box overlapping it
		keep := y.order[:0]
		for _, j := range y.order {
			if j == i || y.boxes[i].IoU(y.boxes[j]) > y.IoU {
				y.probs[int(j)*classes+int(k)] = 0
				y.best[j] = argmax(y.probs[int(j)*classes : int(j+1)*classes])
			}
			if bestOf(j) >= y.Threshold {
				keep = append(keep, j)
			}
		}
		y.order = keep
	}
	return dst
}

// DecodeSSD reads the S1 (SSD) outputs: boxes [N,4] as x1,y1,x2,y2 normalized, scores [N],
// classes [N]. NMS already ran inside the graph; only the threshold applies. The boxes of
// the detections appended to dst are stored in store (nil: allocated).
func DecodeSSD(dst []Prediction, store *Boxes, boxes, scores []float32, classes []int64, threshold float32, maxDet int, labels []string) []Prediction {
	start := len(dst)
	n := min(len(scores), len(classes), len(boxes)/4)
	for i := 0; i < n; i++ {
		if scores[i] <= threshold || classes[i] < 0 || int(classes[i]) >= len(labels) {
			continue
		}
		b := boxes[i*4 : i*4+4]
		dst = append(dst, Prediction{
			Tag: int(classes[i]), TagName: labels[classes[i]], Probability: scores[i],
			Box: store.New(Box{Left: b[0], Top: b[1], Width: b[2] - b[0], Height: b[3] - b[1]}),
		})
	}
	found := dst[start:]
	byProbability(found)
	if len(found) > maxDet {
		dst = dst[:start+maxDet]
	}
	return dst
}

// Classes turns one row of class probabilities into predictions sorted by probability,
// leaving out those under threshold.
func Classes(dst []Prediction, probs []float32, threshold float32, labels []string) []Prediction {
	start := len(dst)
	for k, p := range probs {
		if p >= threshold {
			dst = append(dst, Prediction{Tag: k, TagName: label(labels, k), Probability: p})
		}
	}
	byProbability(dst[start:])
	return dst
}

// byProbability sorts predictions, most probable first, keeping the order of ties.
func byProbability(p []Prediction) {
	slices.SortStableFunc(p, func(a, b Prediction) int { return cmp.Compare(b.Probability, a.Probability) })
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func argmax(p []float32) int32 {
	best := 0
	for k := range p {
		if p[k] > p[best] {
			best = k
		}
	}
	return int32(best)
}

func label(labels []string, k int) string {
	if k >= 0 && k < len(labels) {
		return labels[k]
	}
	return ""
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
