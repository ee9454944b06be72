package steps

import (
	"strings"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
)

// The states of a question about a part (payload.PartLLM.State).
const (
	LLMAnswered = "answered" // the LLM named a tag; it weighs in the decision
	LLMPending  = "pending"  // the part ended before the answer came: decided without it
	LLMFailed   = "failed"   // no usable answer (the stats count why)
)

const (
	// edgeMargin is how near the frame's edge, as a fraction of the frame, a box touches it
	// when the frame's size is not known (see touchesEdge).
	edgeMargin = 0.005
	// edgePatience is how many uncertain frames of a part that touches the frame's edge are
	// passed over, waiting for it to be wholly in view, before the LLM is asked about one
	// anyway (a part too large for the frame, or one moving along its edge).
	edgePatience = 5
	// maxQuestions bounds the parts remembered per camera; the parts step forgets each when
	// its part ends, so it is only reached when nothing ends them.
	maxQuestions = 4096
)

// PartQuestions joins the llm step and the parts step of a camera that tracks parts: the llm
// step asks the LLM at most once per part (trackId), on a frame where the part is uncertain
// and, when it can be, wholly inside the frame; the answer comes back on the fallback's
// goroutine and waits here until the parts step decides the part (asked), which forgets the
// part when it ends (forget). It is safe for both goroutines, and neither ever waits on the
// other beyond a map access.
type PartQuestions struct {
	weight float64       // llm.part_weight
	wait   time.Duration // llm.timeout: how long a decision waits for a route's answer
	mu     sync.Mutex
	parts  map[uint64]*partQuestion // by trackId: the uncertain parts in view
	seq    uint64                   // counts the parts added, to forget the oldest first
}

// partQuestion is what is known of the LLM and one part.
type partQuestion struct {
	added  uint64
	edge   int              // uncertain frames passed over at the edge
	asked  *payload.PartLLM // nil: not asked (yet)
	path   []string         // the answer's way: the tags above the level asked, then its tag
	box    payload.Box      // where the part was in the frame asked about
	bestID string           // that frame's prediction id
	done   bool             // the part is decided: an answer would come too late
	routed string           // the tag that routed the part to a model of type: llm ("": a fallback question)
	at     time.Time        // when it was asked
	// route is the tag that routed the part to a model of type: llm in some frame, and seen
	// when first, whether or not the route's question could be asked then (at the edge, the
	// queue full): its decision waits for that question too.
	route string
	seen  time.Time
}

// NewPartQuestions returns the meeting point of a camera's llm and parts steps, or nil when f
// is nil (the LLM fallback is off).
func NewPartQuestions(f *Fallback) *PartQuestions {
	if f == nil {
		return nil
	}
	return &PartQuestions{weight: f.cfg.PartWeight, wait: f.cfg.Timeout, parts: map[uint64]*partQuestion{}}
}

// wants reports whether the LLM should be asked now about part track, uncertain in this
// frame, or routed to a model of type: llm by tag routed (seen at now): not when it was asked
// already (a route's question may follow a fallback's, whose answer then is dropped: the route
// decides), nor while it touches the frame's edge (at most edgePatience times).
func (q *PartQuestions) wants(track uint64, edge bool, routed string, now time.Time) bool {
	route := routed != ""
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.parts[track]
	if pq == nil {
		if len(q.parts) >= maxQuestions {
			q.forgetOldest()
		}
		q.seq++
		pq = &partQuestion{added: q.seq}
		q.parts[track] = pq
	}
	if route && pq.route == "" {
		pq.route, pq.seen = routed, now
	}
	if pq.asked != nil && !(route && pq.routed == "") || pq.done {
		return false
	}
	if edge && pq.edge < edgePatience {
		pq.edge++
		return false
	}
	return true
}

// forgetOldest drops the part added first. The caller holds q.mu.
func (q *PartQuestions) forgetOldest() {
	var oldest uint64
	first := true
	for id, pq := range q.parts {
		if first || pq.added < q.parts[oldest].added {
			oldest, first = id, false
		}
	}
	delete(q.parts, oldest)
}

// asking records that the LLM is being asked about part track, on the frame and at the level
// rec names; above are the tags above that level, box where the part is, routed the tag that
// routed it to a model of type: llm ("": a fallback question), at when.
func (q *PartQuestions) asking(track uint64, rec payload.PartLLM, above []string, box payload.Box, routed string, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if pq := q.parts[track]; pq != nil {
		pq.asked, pq.path, pq.box, pq.bestID, pq.routed, pq.at = &rec, above, box, rec.PredictionID, routed, at
	}
}

// unask takes back asking, when the question could not be queued: a later frame may ask.
func (q *PartQuestions) unask(track uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if pq := q.parts[track]; pq != nil {
		pq.asked = nil
	}
}

// answer records, from the fallback's goroutine, what the LLM said about part track (ok:
// tag and reason; else it failed), asked as a fallback (route "") or about a route. A part
// that ended meanwhile was decided without it.
func (q *PartQuestions) answer(track uint64, route string, ok bool, tag, reason string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.parts[track]
	if pq == nil || pq.asked == nil || (pq.routed != "") != (route != "") { // a fallback's answer after the route's question
		return
	}
	if !ok {
		pq.asked.State = LLMFailed
		if pq.routed != "" {
			pq.asked.Reason = reason // why: llm_unavailable or llm_invalid
		}
		return
	}
	pq.asked.State, pq.asked.Tag, pq.asked.Reason = LLMAnswered, tag, reason
	pq.path = append(pq.path[:len(pq.path):len(pq.path)], tag)
}

// decided says that part track is decided (at its deadline): it is not asked about any more.
func (q *PartQuestions) decided(track uint64) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if pq := q.parts[track]; pq != nil {
		pq.done = true
	} else {
		q.seq++
		q.parts[track] = &partQuestion{added: q.seq, done: true}
	}
}

// forget drops part track, which ended: an answer about it that comes later is dropped.
func (q *PartQuestions) forget(track uint64) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.parts, track)
}

// asked returns a copy of what the LLM was asked and has said so far about part track (nil
// when it was not asked). The part stays asked about until forget.
func (q *PartQuestions) asked(track uint64) *partQuestion {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.parts[track]
	if pq == nil || pq.asked == nil {
		return nil
	}
	c := *pq
	rec := *pq.asked
	c.asked = &rec
	return &c
}

// touchesEdge reports whether box b (relative) comes within a pixel of the edge of a w x h
// frame, or within edgeMargin when the size is not known: the part may be cut off. The LLM's
// question and the part's sample both prefer a frame where it does not.
func touchesEdge(w, h int, b payload.Box) bool {
	mx, my := float32(edgeMargin), float32(edgeMargin)
	if w > 0 && h > 0 {
		mx, my = 1/float32(w), 1/float32(h)
	}
	return b.Left < mx || b.Top < my || b.Left+b.Width > 1-mx || b.Top+b.Height > 1-my
}

// waits reports whether part p's decision waits for the LLM: a route sent it to a model of
// type: llm, which has not answered yet, and was asked less than llm.timeout ago.
func (s *parts) waits(p *partState, now time.Time) bool {
	pq := s.questions.asked(p.ev.TrackID)
	if pq != nil && pq.routed != "" && pq.asked.State == LLMPending && now.Sub(pq.at) < s.questions.wait {
		return true
	}
	_, waiting := s.questions.unaskedRoute(p.ev.TrackID, now)
	return waiting
}

// unaskedRoute is the tag that routed part track to a model of type: llm when the route's
// question has not been asked (yet): at the frame's edge, or with the queue full; waiting is
// true until llm.timeout after the route was first seen. "" when the part was asked as a
// route, or never routed.
func (q *PartQuestions) unaskedRoute(track uint64, now time.Time) (route string, waiting bool) {
	if q == nil {
		return "", false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.parts[track]
	if pq == nil || pq.route == "" || pq.asked != nil && pq.routed != "" {
		return "", false
	}
	return pq.route, now.Sub(pq.seen) < q.wait
}

// llmVote puts what the LLM has said about part p on its event ev and returns the final tag
// it named with the weight of its answer: llm.part_weight times the part's frames, as if that
// many more frames had said the tag with full confidence ("", 0 when it did not answer, or
// answered as a route's classifier: see routeAnswer). A tag no frame said gets its evidence,
// empty but for the frame asked about, so that the decision has a path and a box.
func (s *parts) llmVote(p *partState, ev *payload.Part, pq *partQuestion) (string, float32) {
	if pq == nil {
		return "", 0
	}
	ev.LLM = pq.asked
	if pq.asked.State != LLMAnswered || pq.routed != "" {
		return "", 0
	}
	w := float32(payload.Round(s.questions.weight*float64(max(ev.Frames, 1)), 4))
	ev.LLM.Weight = w
	tag := pq.asked.Tag
	for t := range p.tags {
		if strings.EqualFold(t, tag) {
			return t, w
		}
	}
	p.tags[tag] = &evidence{path: pq.path, bestAt: pq.asked.FrameID, bestID: pq.bestID, box: pq.box}
	return tag, w
}

// routeAnswer completes decision ev when the frames decided the tag that routed the part to
// a model of type: llm: the tag is the LLM's answer (source llm), or unknown when it gave
// none (its llm state and reason say why; a pending one is llm_timeout).
func routeAnswer(ev *payload.Part, pq *partQuestion) {
	if pq == nil || pq.routed == "" || !strings.EqualFold(ev.TagName, pq.routed) {
		return
	}
	switch pq.asked.State {
	case LLMAnswered:
		ev.TagName, ev.Path, ev.Source = pq.asked.Tag, pq.path, "llm"
	case LLMPending:
		ev.TagName, ev.LLM.Reason = Unknown, ReasonTimeout
	default:
		ev.TagName = Unknown
	}
}

// PartsWith gives the parts step st (from NewParts; nil: none) the camera's questions to the
// LLM (nil: none) and the memory of its ended parts, for feedback (nil: none), and returns it.
func PartsWith(st pipeline.Step, q *PartQuestions, ended *EndedParts) pipeline.Step {
	if p, ok := st.(*parts); ok {
		p.questions, p.ended = q, ended
	}
	return st
}
