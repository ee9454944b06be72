// Package sampling decides which predictions are likely misclassified and worth a human's
// look: low confidence or a small margin between the top two tags (at every classifier
// level: the first classifier and the second-level ones routed after it), disagreement
// between the detector and the classifier, a failed quality gate, a tracked part decided
// unknown, or a random audit. Each rule has per-minute and per-hour limits, and
// near-identical images (by 64-bit difference hash) are sent once.
//
// It is pure Go: it reads prediction payloads and image hashes, and knows nothing of pixels
// or MQTT.
package sampling

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

// Reasons a sample is sent.
const (
	LowConfidence = "low_confidence"
	SmallMargin   = "small_margin"
	Disagreement  = "disagreement"
	QualityGate   = "quality_gate"
	Audit         = "audit"
	Unknown       = "unknown"  // a tracked part whose frames decided nothing (cameras with tracking)
	Operator      = "operator" // an operator's correction (feedback)
	Shadow        = "shadow"   // the candidate iteration disagrees with the active one
)

// Candidate is one sample a rule asks for, before limits and de-duplication.
type Candidate struct {
	// Detection is the index in the prediction's list; -1 for the whole frame.
	Detection int
	Reason    string
	Detail    string
	// Certainty is the top probability of the answer the rule flagged: the lower, the less
	// sure the models were.
	Certainty float32
}

// Sampler applies the rules for one camera. It is safe for concurrent use.
type Sampler struct {
	cfg   configs.Samples
	mu    sync.Mutex
	rules map[string]*Limiter
	seen  []seen
	rnd   *rand.Rand
}

type seen struct {
	hash uint64
	at   time.Time
}

// New returns a Sampler for cfg; seed makes the audit draws repeatable in tests.
func New(cfg configs.Samples, seed uint64) *Sampler {
	s := &Sampler{cfg: cfg, rules: map[string]*Limiter{}, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for name, r := range s.ruleSet() {
		s.rules[name] = NewLimiter(r.PerMinute, r.PerHour)
	}
	return s
}

func (s *Sampler) ruleSet() map[string]configs.Rule {
	return map[string]configs.Rule{LowConfidence: s.cfg.LowConfidence, SmallMargin: s.cfg.SmallMargin,
		Disagreement: s.cfg.Disagreement, QualityGate: s.cfg.QualityGate, Audit: s.cfg.Audit, Shadow: s.cfg.Shadow, Unknown: s.cfg.Unknown}
}

// threshold is the rule's bound for the predictions of model.
func threshold(r configs.Rule, model string) float64 {
	if v, ok := r.PerModel[model]; ok {
		return v
	}
	return r.Threshold
}

// Check returns what the rules ask for in msg: at most one candidate per detection (the
// first reason that holds, in the order disagreement, low confidence, small margin, audit;
// each classifier level in turn, the first one first), and one for the whole frame when it
// failed the quality gate.
func (s *Sampler) Check(msg *payload.Prediction) []Candidate { return s.check(msg, false) }

// CheckUntracked is Check without the detections that carry a trackId: a camera that samples
// its tracked parts once per part (CheckPart, Draw) asks this of each frame.
func (s *Sampler) CheckUntracked(msg *payload.Prediction) []Candidate { return s.check(msg, true) }

func (s *Sampler) check(msg *payload.Prediction, untracked bool) []Candidate {
	if !s.cfg.Enabled {
		return nil
	}
	var out []Candidate
	if s.cfg.QualityGate.Enabled && msg.Quality.Gate == "fail" {
		out = append(out, Candidate{Detection: -1, Reason: QualityGate, Detail: fmt.Sprintf("failed %v", msg.Quality.Failed)})
	}
	classifierOnly := len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox == nil
	if classifierOnly {
		first := &payload.Classification{Model: firstModel(msg, "classifier"), Predictions: msg.Predictions, Shadow: msg.Shadow, Next: msg.Route}
		if c, ok := s.checkLevels(first, nil); ok {
			c.Detection = -1
			out = append(out, c)
		} else if c, ok := s.audit(msg.Predictions); ok {
			c.Detection = -1
			out = append(out, c)
		}
		return out
	}
	for i := range msg.Predictions {
		if untracked && msg.Predictions[i].TrackID != 0 {
			continue
		}
		c, ok := s.checkDetection(msg, i)
		if !ok {
			c, ok = s.audit([]payload.Tag{msg.Predictions[i]})
		}
		if ok {
			c.Detection = i
			out = append(out, c)
		}
	}
	return out
}

// CheckPart applies the rules, but the audit and the quality gate, to detection det of msg:
// the frame of a tracked part, which is sampled once per part (the caller keeps its least
// certain flagged frame).
func (s *Sampler) CheckPart(msg *payload.Prediction, det int) (Candidate, bool) {
	if !s.cfg.Enabled || det < 0 || det >= len(msg.Predictions) {
		return Candidate{}, false
	}
	c, ok := s.checkDetection(msg, det)
	c.Detection = det
	return c, ok
}

// Draw reports whether the audit picks one more part (a tracked part is audited once, with
// the audit rule's rate).
func (s *Sampler) Draw() bool {
	r := s.cfg.Audit
	if !s.cfg.Enabled || !r.Enabled || r.Rate <= 0 {
		return false
	}
	s.mu.Lock()
	draw := s.rnd.Float64()
	s.mu.Unlock()
	return draw < r.Rate
}

// checkDetection applies the rules but the audit to detection i of msg: its classifier levels,
// or the detection alone when no classifier saw it.
func (s *Sampler) checkDetection(msg *payload.Prediction, i int) (Candidate, bool) {
	d := msg.Predictions[i]
	if d.Classification != nil {
		return s.checkLevels(d.Classification, &d)
	}
	return s.checkTags([]payload.Tag{d}, firstModel(msg, "detector"), 1, nil)
}

// checkLevels applies the rules to each classifier level of an answer in turn (c, then the
// second level routed after it, ...) and returns the first that a rule flags. det, when set,
// is the detection the first level classifies.
func (s *Sampler) checkLevels(c *payload.Classification, det *payload.Tag) (Candidate, bool) {
	for level := 1; c != nil; c, level = c.Next, level+1 {
		if cand, ok := s.checkShadow(c.Shadow, c.Predictions, c.Model, level); ok {
			return cand, true
		}
		if level > 1 {
			det = nil // the detector's tag is compared with the first level only
		}
		if cand, ok := s.checkTags(c.Predictions, c.Model, level, det); ok {
			return cand, true
		}
	}
	return Candidate{}, false
}

// where names the model of an answer, and its level when beyond the first: "size, level 2".
func where(model string, level int) string {
	if level > 1 {
		return fmt.Sprintf("%s, level %d", model, level)
	}
	return model
}

// checkShadow asks for a sample when the candidate iteration disagreed with the active one.
func (s *Sampler) checkShadow(sh *payload.ShadowAnswer, tags []payload.Tag, model string, level int) (Candidate, bool) {
	if !s.cfg.Shadow.Enabled || sh == nil || sh.Agrees || len(tags) == 0 {
		return Candidate{}, false
	}
	detail := fmt.Sprintf("active %s %.3f, candidate %s %s %.3f", tags[0].TagName, tags[0].Probability, sh.Iteration, sh.TagName, sh.Probability)
	if level > 1 {
		detail += " (" + where(model, level) + ")"
	}
	return Candidate{Reason: Shadow, Detail: detail, Certainty: tags[0].Probability}, true
}

// audit draws whether the audit samples an answer whose top tag is tags[0].
func (s *Sampler) audit(tags []payload.Tag) (Candidate, bool) {
	if len(tags) == 0 || !s.Draw() {
		return Candidate{}, false
	}
	return Candidate{Reason: Audit, Detail: fmt.Sprintf("random audit, rate %g", s.cfg.Audit.Rate), Certainty: tags[0].Probability}, true
}

// checkTags applies the per-answer rules to tags sorted strongest first, the answer of model
// at classifier level (1: the first classifier, or a detector alone). det, when set, is the
// detection the tags classify.
func (s *Sampler) checkTags(tags []payload.Tag, model string, level int, det *payload.Tag) (Candidate, bool) {
	if len(tags) == 0 {
		return Candidate{}, false
	}
	top := tags[0]
	if r := s.cfg.Disagreement; r.Enabled && det != nil && det.TagName != top.TagName {
		for _, t := range tags {
			if t.TagName == det.TagName { // the classifier knows the detector's tag, and says otherwise
				return Candidate{Reason: Disagreement, Detail: fmt.Sprintf("detector %s %.3f, classifier %s %.3f", det.TagName, det.Probability, top.TagName, top.Probability), Certainty: top.Probability}, true
			}
		}
	}
	if r := s.cfg.LowConfidence; r.Enabled && float64(top.Probability) < threshold(r, model) {
		return Candidate{Reason: LowConfidence, Detail: fmt.Sprintf("%s %.3f under %.3g (%s)", top.TagName, top.Probability, threshold(r, model), where(model, level)), Certainty: top.Probability}, true
	}
	if r := s.cfg.SmallMargin; r.Enabled && len(tags) > 1 && float64(top.Probability-tags[1].Probability) < threshold(r, model) {
		return Candidate{Reason: SmallMargin, Detail: fmt.Sprintf("%s %.3f vs %s %.3f, margin under %.3g (%s)", top.TagName, top.Probability, tags[1].TagName, tags[1].Probability, threshold(r, model), where(model, level)), Certainty: top.Probability}, true
	}
	return Candidate{}, false
}

func firstModel(msg *payload.Prediction, stage string) string {
	for _, m := range msg.Models {
		if m.Stage == stage {
			return m.Name
		}
	}
	return ""
}

// Admit reports whether a candidate with image hash may be sent now: its rule is under its
// limits, and no image within DedupDistance bits was sent in the last DedupWindow. An
// admitted sample is counted.
func (s *Sampler) Admit(reason string, hash uint64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.DedupDistance > 0 {
		keep := s.seen[:0]
		for _, x := range s.seen {
			if now.Sub(x.at) <= s.cfg.DedupWindow {
				keep = append(keep, x)
			}
		}
		s.seen = keep
		for _, x := range s.seen {
			if bits.OnesCount64(x.hash^hash) <= s.cfg.DedupDistance {
				return false
			}
		}
	}
	l, ok := s.rules[reason]
	if ok && !l.Allow(now) {
		return false
	}
	if s.cfg.DedupDistance > 0 {
		s.seen = append(s.seen, seen{hash: hash, at: now})
		if len(s.seen) > 4096 {
			s.seen = s.seen[len(s.seen)-4096:]
		}
	}
	return true
}

// Limiter caps events per minute, per hour and per day. It is not safe for concurrent use.
type Limiter struct {
	perMinute, perHour, perDay int
	sent                       []time.Time
}

// NewLimiter returns a Limiter of events per minute and per hour; 0 means no cap.
func NewLimiter(perMinute, perHour int) *Limiter {
	return &Limiter{perMinute: perMinute, perHour: perHour}
}

// NewDailyLimiter returns a Limiter of events in any 24 hours; 0 means no cap.
func NewDailyLimiter(perDay int) *Limiter {
	return &Limiter{perDay: perDay}
}

// Allow reports whether one more event fits under the caps now, and counts it if so.
func (l *Limiter) Allow(now time.Time) bool {
	window := time.Hour // the longest window with a cap (or the hour: memory stays bounded)
	if l.perDay > 0 {
		window = 24 * time.Hour
	}
	keep := l.sent[:0]
	for _, t := range l.sent {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	l.sent = keep
	for _, c := range [...]struct {
		limit int
		d     time.Duration
	}{{l.perDay, 24 * time.Hour}, {l.perHour, time.Hour}, {l.perMinute, time.Minute}} {
		if c.limit > 0 && l.within(now, c.d) >= c.limit {
			return false
		}
	}
	l.sent = append(l.sent, now)
	if len(l.sent) > 100000 { // no hourly cap: keep the memory bounded anyway
		l.sent = l.sent[len(l.sent)-100000:]
	}
	return true
}

// within counts the events of the last d before now.
func (l *Limiter) within(now time.Time, d time.Duration) int {
	n := 0
	for _, t := range l.sent {
		if now.Sub(t) < d {
			n++
		}
	}
	return n
}

// Undo takes back the event Allow counted at now, when it is the last one (it did not
// happen after all).
func (l *Limiter) Undo(now time.Time) {
	if n := len(l.sent); n > 0 && l.sent[n-1].Equal(now) {
		l.sent = l.sent[:n-1]
	}
}
