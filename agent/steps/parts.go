package steps

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/configs"
)

// Unknown is the tag of a part whose evidence decides nothing.
const Unknown = "unknown"

// parts follows the tracked parts of one camera (the track step's trackIds) and publishes on
// <prefix>/cameras/<camera>/parts a start event when a part appears and an end event, with
// one decision from all its frames, when its track ends (unseen for more than max_missed
// frames).
type parts struct {
	env        *Env
	verdicts   configs.Verdicts
	metrics    *ops.Metrics // nil: none
	camera     string
	topic      string
	maxMissed  int
	thresholds map[string]float64
	open       map[uint64]*partState // by trackId
	questions  *PartQuestions        // the LLM's answers about parts (nil: none)
	ended      *EndedParts           // the parts ended, for feedback by partId (nil: none)
}

type partState struct {
	ev     payload.Part
	missed int
	tags   map[string]*evidence // by final tag
}

// evidence is what the frames of a part said for one final tag.
type evidence struct {
	sum    float32  // its confidence, summed over the frames
	path   []string // the tags on its way, as last seen
	best   float32  // its highest confidence, in frame bestAt (prediction bestID), where the part was at box
	bestAt uint64
	bestID string
	box    payload.Box
}

// NewParts returns the step that decides each tracked part of camera cc, or nil when the
// camera does not track. Each part decided is counted in m (nil: not counted).
func NewParts(env *Env, cc configs.Camera, m *ops.Metrics) pipeline.Step {
	if !cc.Tracking.Enabled || cc.Pipeline.Detector == "" {
		return nil
	}
	return &parts{env: env, camera: cc.Name, topic: env.Topic("cameras/" + cc.Name + "/parts"), maxMissed: cc.Tracking.MaxMissed,
		thresholds: cc.Pipeline.Thresholds, verdicts: cc.Verdicts, metrics: m, open: map[uint64]*partState{}}
}

func (s *parts) Name() string { return "parts" }

// Handle adds a processed frame's detections to their parts and ends the parts it did not
// see for too long.
func (s *parts) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	seen := make(map[uint64]bool, len(msg.Predictions))
	for _, d := range msg.Predictions {
		if d.TrackID == 0 || d.BoundingBox == nil {
			continue
		}
		seen[d.TrackID] = true
		p, ok := s.open[d.TrackID]
		if !ok {
			p = s.start(d, msg)
		}
		p.add(d, msg)
	}
	for id, p := range s.open {
		if seen[id] {
			continue
		}
		if p.missed++; p.missed > s.maxMissed {
			s.end(p)
			delete(s.open, id)
		}
	}
}

// start opens the part of detection d and publishes its start event.
func (s *parts) start(d payload.Tag, msg *payload.Prediction) *partState {
	box := *d.BoundingBox
	p := &partState{ev: payload.Part{Schema: payload.Schema, PartID: payload.NewID(), TrackID: d.TrackID, Agent: s.env.Agent, Camera: s.camera,
		Boot: s.env.Boot, FirstFrameID: msg.FrameID, FirstSeen: msg.Captured}, tags: map[string]*evidence{}}
	s.open[d.TrackID] = p
	ev := p.ev
	ev.Event, ev.Created, ev.BoundingBox = "start", time.Now().UTC(), &box
	s.send(ev)
	return p
}

// add counts one frame of the part: the final tag of its detection, with its confidence.
func (p *partState) add(d payload.Tag, msg *payload.Prediction) {
	p.missed = 0
	p.ev.Frames++
	p.ev.LastFrameID = msg.FrameID
	at := msg.Captured
	p.ev.LastSeen = &at
	tag, prob, path := final(d)
	e, ok := p.tags[tag]
	if !ok {
		e = &evidence{}
		p.tags[tag] = e
	}
	e.sum += prob
	e.path = path
	if !ok || prob > e.best {
		e.best, e.bestAt, e.bestID, e.box = prob, msg.FrameID, msg.ID, *d.BoundingBox
	}
}

// final is the deepest certain answer about a detection: its tag, confidence and the tags
// on the way. An uncertain level (under its threshold) is not followed.
func final(d payload.Tag) (tag string, prob float32, path []string) {
	tag, prob, path = d.TagName, d.Probability, []string{d.TagName}
	for c := d.Classification; c != nil && len(c.Predictions) > 0; c = c.Next {
		if c.Uncertain {
			return Unknown, c.Predictions[0].Probability, append(path, Unknown)
		}
		tag, prob = c.Predictions[0].TagName, c.Predictions[0].Probability
		path = append(path, tag)
	}
	return tag, prob, path
}

// end decides the part from all its frames and publishes its end event.
func (s *parts) end(p *partState) {
	ev := p.ev
	llmTag, llmWeight := s.llmVote(p, &ev)
	score := func(tag string) float32 { // the frames' evidence, and the LLM's answer
		if tag == llmTag {
			return p.tags[tag].sum + llmWeight
		}
		return p.tags[tag].sum
	}
	ev.Votes = make(map[string]float32, len(p.tags))
	total := llmWeight
	best := ""
	for tag, e := range p.tags {
		if e.sum > 0 || tag != llmTag { // not the LLM's tag that no frame said
			ev.Votes[tag] = e.sum
		}
		total += e.sum
		if best == "" || score(tag) > score(best) || score(tag) == score(best) && tag < best {
			best = tag
		}
	}
	b := p.tags[best]
	ev.Event, ev.Created = "end", time.Now().UTC()
	ev.TagName, ev.Probability, ev.Path = best, b.sum/float32(max(ev.Frames, 1)), b.path
	ev.BoundingBox, ev.BestFrameID = &b.box, b.bestAt
	// a tag the LLM named is not held to the threshold: it was asked because the model's
	// confidence was low
	if best != Unknown && (score(best) < total/2 || best != llmTag && float64(ev.Probability) < s.threshold(best)) {
		ev.TagName = Unknown
	}
	ev.Probability = float32(payload.Round(float64(ev.Probability), 4))
	ev.Verdict = s.verdicts.Of(ev.TagName)
	s.send(ev)
	s.questions.forget(ev.TrackID)
	s.remember(ev, b.bestID)
	if s.metrics != nil {
		verdict := ev.Verdict
		if verdict == "" {
			verdict = "none"
		}
		s.metrics.Parts.WithLabelValues(s.camera, ev.TagName, verdict).Inc()
	}
}

// threshold is the per-tag minimum probability of tag (0 when none is set).
func (s *parts) threshold(tag string) float64 {
	t, _ := configs.TagKey(s.thresholds, tag)
	return s.thresholds[t]
}

func (s *parts) send(ev payload.Part) {
	body, err := json.Marshal(ev)
	if err != nil {
		s.env.Log.Error("part event not encoded", "camera", s.camera, "err", err)
		return
	}
	s.env.Pub.Send(publish.Message{Topic: s.topic, QoS: 1, Payload: body, Class: spool.Predictions})
}
