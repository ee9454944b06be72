package pipeline

import (
	"errors"
	"image"
	"sort"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

var errShadowDetector = errors.New("shadow runs compare classifiers; a detector cannot run as a shadow")

// shadowRun is a candidate iteration run beside a classifier's active one, on the same
// regions, at most so often. It counts how often the two agree, per tag of the active one,
// and how often the candidate was right where an operator corrected the active one.
type shadowRun struct {
	l     *loaded
	every time.Duration

	mu             sync.Mutex
	last           time.Time
	compared       uint64
	agreed         uint64
	byTag          map[string]*[2]uint64 // active tag -> compared, agreed
	reviewed       uint64                // operator corrections of regions the candidate also saw
	candidateRight uint64                // ... where the candidate said the corrected tag
	summaryAfter   uint64                // the comparisons after which to summarize; 0: never
	summary        *payload.ShadowStats  // the counters at summaryAfter comparisons
	summaryTaken   bool                  // TakeShadowSummary returned it
}

func newShadow(m *models.Model, resize string, maxPerSecond float64) (*shadowRun, error) {
	l, err := newLoaded(m, resize)
	if err != nil {
		return nil, err
	}
	return &shadowRun{l: l, every: time.Duration(float64(time.Second) / maxPerSecond), byTag: map[string]*[2]uint64{}}, nil
}

// allow reports whether the candidate may run now (its rate limit).
func (s *shadowRun) allow(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.last) < s.every {
		return false
	}
	s.last = now
	return true
}

// record counts one comparison.
func (s *shadowRun) record(activeTag string, agrees bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compared++
	c := s.byTag[activeTag]
	if c == nil {
		c = &[2]uint64{}
		s.byTag[activeTag] = c
	}
	c[0]++
	if agrees {
		s.agreed++
		c[1]++
	}
	if s.compared == s.summaryAfter {
		s.summary = s.statsLocked()
	}
}

// review counts an operator's correction of a region the candidate answered.
func (s *shadowRun) review(candidateTag, correctTag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reviewed++
	if candidateTag == correctTag {
		s.candidateRight++
	}
}

// stats returns the counters for the stats message.
func (s *shadowRun) stats() *payload.ShadowStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *shadowRun) statsLocked() *payload.ShadowStats {
	st := &payload.ShadowStats{Iteration: s.l.ref.Iteration, Compared: s.compared, Agreed: s.agreed,
		Reviewed: s.reviewed, CandidateRight: s.candidateRight, ByTag: map[string]payload.TagAgreement{}}
	if s.compared > 0 {
		st.Agreement = payload.Round(float64(s.agreed)/float64(s.compared), 4)
	}
	tags := make([]string, 0, len(s.byTag))
	for t := range s.byTag {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	for _, t := range tags {
		c := s.byTag[t]
		st.ByTag[t] = payload.TagAgreement{Compared: c[0], Agreed: c[1]}
	}
	return st
}

func (s *shadowRun) close() { s.l.close() }

// ShadowInfer runs the stage's candidate iteration on the regions if it has one and its rate
// limit allows, with the predictions put in into as Infer does. record, nil when it did not
// run, counts each region's comparison.
func (s *ModelStage) ShadowInfer(f *camera.Frame, regions []image.Rectangle, into *models.Results) (inf Inference, record func(activeTag string, agrees bool), err error) {
	s.mu.RLock()
	defer s.mu.RUnlock() // SetShadow waits, so the candidate is not freed while it runs
	sh := s.shadow
	if sh == nil || !sh.allow(time.Now()) {
		return Inference{}, nil, nil
	}
	inf, err = sh.l.infer(f, regions, into)
	if err != nil {
		return inf, nil, err
	}
	return inf, sh.record, nil
}

// SetShadow runs m as the candidate beside the active iteration, at most maxPerSecond
// times a second; nil stops the shadow run.
func (s *ModelStage) SetShadow(m *models.Model, maxPerSecond float64) error {
	var sh *shadowRun
	if m != nil {
		if m.Info.Format.IsDetector() {
			return errShadowDetector
		}
		var err error
		if sh, err = newShadow(m, s.resize, maxPerSecond); err != nil {
			return err
		}
	}
	s.mu.Lock()
	old := s.shadow
	s.shadow = sh
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return nil
}

// ShadowStats returns the stage's shadow counters, or nil when it runs no candidate.
func (s *ModelStage) ShadowStats() *payload.ShadowStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shadow == nil {
		return nil
	}
	return s.shadow.stats()
}

// ShadowReview counts an operator's correction against the candidate's answer.
func (s *ModelStage) ShadowReview(candidateTag, correctTag string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shadow != nil {
		s.shadow.review(candidateTag, correctTag)
	}
}

// SetShadowSummary makes the stage's candidate keep a summary of its counters once it was
// compared n times (0: never); see ShadowSummary.
func (s *ModelStage) SetShadowSummary(n uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shadow != nil {
		s.shadow.mu.Lock()
		s.shadow.summaryAfter = n
		s.shadow.mu.Unlock()
	}
}

// ShadowSummary returns the candidate's counters as they were at its summary's number of
// comparisons, nil before (or without a summary or a candidate); first is true the first
// time it is returned, for a caller that logs and keeps it once.
func (s *ModelStage) ShadowSummary() (sum *payload.ShadowStats, first bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shadow == nil {
		return nil, false
	}
	s.shadow.mu.Lock()
	defer s.shadow.mu.Unlock()
	if s.shadow.summary == nil {
		return nil, false
	}
	first = !s.shadow.summaryTaken
	s.shadow.summaryTaken = true
	return s.shadow.summary, first
}
