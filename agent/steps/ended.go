package steps

import (
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
)

// MaxEndedParts is how many ended parts each camera remembers for feedback by partId.
const MaxEndedParts = 1000

// EndedPart is what a correction by partId needs of a part that ended: the prediction of its
// best frame (the end event's bestFrameId) and its trackId, which names its detection there.
type EndedPart struct {
	PartID       string
	TrackID      uint64
	PredictionID string
	FrameID      uint64
	Ended        time.Time
}

// EndedParts remembers a camera's last MaxEndedParts ended parts, each for at most maxAge
// (ring.max_age: the frame it needs is gone by then anyway), so that an operator's
// correction can name a part instead of a prediction. It is safe for concurrent use: the
// parts step adds, the feedback handler finds. Like the ring, it outlives the steps of one
// config.
type EndedParts struct {
	maxAge time.Duration
	mu     sync.Mutex
	byID   map[string]int // partId -> index in ring
	ring   []EndedPart    // MaxEndedParts slots, next is the oldest
	next   int
}

// NewEndedParts returns an empty memory whose parts are forgotten after maxAge.
func NewEndedParts(maxAge time.Duration) *EndedParts {
	return &EndedParts{maxAge: maxAge, byID: map[string]int{}, ring: make([]EndedPart, 0, MaxEndedParts)}
}

// Add remembers part p, forgetting the oldest beyond MaxEndedParts.
func (e *EndedParts) Add(p EndedPart) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.ring) < MaxEndedParts {
		e.byID[p.PartID] = len(e.ring)
		e.ring = append(e.ring, p)
		return
	}
	delete(e.byID, e.ring[e.next].PartID)
	e.ring[e.next] = p
	e.byID[p.PartID] = e.next
	e.next = (e.next + 1) % MaxEndedParts
}

// Find returns the ended part partID, unless it is unknown or older than maxAge.
func (e *EndedParts) Find(partID string) (EndedPart, bool) {
	if e == nil {
		return EndedPart{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.byID[partID]
	if !ok || time.Since(e.ring[i].Ended) > e.maxAge {
		return EndedPart{}, false
	}
	return e.ring[i], true
}

// remember keeps the part that ev ended, with the prediction id of its best frame.
func (s *parts) remember(ev payload.Part, bestID string) {
	s.ended.Add(EndedPart{PartID: ev.PartID, TrackID: ev.TrackID, PredictionID: bestID, FrameID: ev.BestFrameID, Ended: time.Now()})
}

// DetectionOfTrack is the index of the detection of msg that shows part track, or -1.
func DetectionOfTrack(msg *payload.Prediction, track uint64) int {
	for i := range msg.Predictions {
		if msg.Predictions[i].TrackID == track {
			return i
		}
	}
	return -1
}
