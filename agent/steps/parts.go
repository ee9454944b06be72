package steps

import (
	"context"
	"encoding/json"
	"strings"
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
// <prefix>/cameras/<camera>/parts a start event when a part appears (in a zone, when the
// camera has zones) and an end event when its track ends (unseen for more than max_missed
// frames). Each part is decided once from its frames, at its deadline (cameras[].decision:
// crossing the decision line, or a time after it appeared) or else when its track ends; the
// decision goes out at once on <prefix>/cameras/<camera>/decisions and is counted. Parts
// crossing the counting lines are counted by line and way.
type parts struct {
	env        *Env
	verdicts   configs.Verdicts
	metrics    *ops.Metrics // nil: none
	counts     *PartCounts  // nil: not counted
	camera     string
	topic      string // parts
	decisions  string // decisions
	maxMissed  int
	thresholds map[string]float64
	zones      []configs.Area
	lines      []configs.Line
	deadline   configs.Decision
	open       map[uint64]*partState // by trackId
	seen       map[uint64]bool       // scratch: the tracks of the current frame
	questions  *PartQuestions        // the LLM's answers about parts (nil: none)
	ended      *EndedParts           // the parts ended, for feedback by partId (nil: none)
	watch      PartWatcher           // nil: none
}

// PartWatcher follows the frames of the parts (PartFrames: each part's sample and best
// frame): the parts step tells it each frame that adds to a part's decision and each part
// that ended. The parts step closes it.
type PartWatcher interface {
	// Seen says that part (its event as it stands) is detection det of msg in frame f. f's
	// pixels are valid only during the call (f.Frame is nil when there are none).
	Seen(part *payload.Part, f *pipeline.Frame, msg *payload.Prediction, det int)
	// Ended says that the part's end event ev was sent.
	Ended(ev *payload.Part)
	Close()
}

type partState struct {
	ev       payload.Part // the start event's fields; the decision's once decided
	reported bool         // it was in a zone: it has events
	decided  bool
	bestID   string    // the prediction id of the decision's best frame (for feedback by partId)
	last     time.Time // LastSeen's
	scratch  []string  // the path of the frame being added
	missed   int
	waiting  string               // the decision's "by", while it waits for the LLM (a route's answer)
	ending   string               // the end's "why", while its decision waits
	off      []configs.Point      // by line: its centre when last seen off that line
	crossed  map[string]string    // the lines it crossed, with the way
	tags     map[string]*evidence // by final tag
}

// evidence is what the frames of a part said for one final tag.
type evidence struct {
	sum    float32  // its confidence, summed over the frames
	frames int      // the frames that said it
	path   []string // the tags on its way, as last seen
	best   float32  // its highest confidence, in frame bestAt (prediction bestID), where the part was at box
	bestAt uint64
	bestID string
	box    payload.Box
}

// NewParts returns the step that decides each tracked part of camera cc, or nil when the
// camera does not track. Each part decided is counted in m (nil: not counted) and in counts
// (nil: not counted); w (nil: none) is told each part's frames and end.
func NewParts(env *Env, cc configs.Camera, m *ops.Metrics, counts *PartCounts, w PartWatcher) pipeline.Step {
	if !cc.Tracks() {
		return nil
	}
	return &parts{env: env, camera: cc.Name, topic: env.Topic("cameras/" + cc.Name + "/parts"), decisions: env.Topic("cameras/" + cc.Name + "/decisions"),
		maxMissed: cc.Tracking.MaxMissed, thresholds: cc.Pipeline.Thresholds, verdicts: cc.Verdicts, metrics: m, counts: counts,
		zones: cc.Zones, lines: cc.Lines, deadline: cc.Decision, open: map[uint64]*partState{}, seen: map[uint64]bool{}, watch: w}
}

func (s *parts) Name() string { return "parts" }

// Handle adds a processed frame's detections to their parts, counts the lines they cross,
// decides the parts whose deadline came, and ends the parts it did not see for too long.
func (s *parts) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	now := time.Now()
	clear(s.seen)
	for i, d := range msg.Predictions {
		if d.TrackID == 0 || d.BoundingBox == nil {
			continue
		}
		s.seen[d.TrackID] = true
		b := d.BoundingBox
		x, y := float64(b.Left+b.Width/2), float64(b.Top+b.Height/2)
		p, ok := s.open[d.TrackID]
		if !ok {
			p = &partState{off: make([]configs.Point, len(s.lines)), tags: map[string]*evidence{}}
			p.ev.TrackID = d.TrackID // start fills the rest, once the part is in a zone
			for i := range p.off {
				p.off[i] = configs.Point{x, y}
			}
			s.open[d.TrackID] = p
		}
		p.missed = 0
		if _, in := configs.AreaAt(s.zones, x, y); in || len(s.zones) == 0 {
			if !p.reported {
				s.start(p, d, msg)
			}
			if !p.decided {
				p.add(d, msg)
				if s.watch != nil {
					s.watch.Seen(&p.ev, f, msg, i)
				}
			}
		}
		if p.reported {
			p.seen(msg)
		}
		s.cross(p, x, y, now)
	}
	for id, p := range s.open {
		if p.ending != "" { // ended, its decision waiting for the LLM
			if s.end(p, p.ending, now) {
				delete(s.open, id)
			}
			continue
		}
		if p.waiting != "" && !p.decided {
			s.decide(p, p.waiting, now)
		}
		if !s.seen[id] {
			if p.missed++; p.missed > s.maxMissed {
				if s.end(p, "unseen", now) {
					delete(s.open, id)
				}
				continue
			}
		}
		if after := s.deadline.After; after > 0 && p.reported && !p.decided && msg.Captured.Sub(p.ev.FirstSeen) >= after {
			s.decide(p, "time", now)
		}
	}
	if s.counts != nil {
		s.counts.Tick(now)
	}
}

// Close ends the parts in view (the agent stops, or a reload replaces the step): each is
// decided from the frames it had, and gets its end event.
func (s *parts) Close() {
	now := time.Now()
	for id, p := range s.open {
		s.end(p, "stop", now)
		delete(s.open, id)
	}
	if s.counts != nil { // what changed within the last second goes out and to disk now
		s.counts.Tick(now)
	}
	if s.watch != nil { // after the end events: frees what it kept of the parts
		s.watch.Close()
	}
}

// start reports part p, first seen in a zone in detection d, with its start event.
func (s *parts) start(p *partState, d payload.Tag, msg *payload.Prediction) {
	box := *d.BoundingBox
	p.reported = true
	p.ev = payload.Part{Schema: payload.Schema, PartID: payload.NewID(), TrackID: d.TrackID, Agent: s.env.Agent, Camera: s.camera,
		Boot: s.env.Boot, FirstFrameID: msg.FrameID, FirstSeen: msg.Captured}
	ev := p.ev
	ev.Event, ev.Created, ev.BoundingBox = "start", time.Now().UTC(), &box
	s.send(s.topic, ev)
}

// seen notes a frame that saw the part.
func (p *partState) seen(msg *payload.Prediction) {
	p.ev.Frames++
	p.ev.LastFrameID = msg.FrameID
	p.last = msg.Captured
	p.ev.LastSeen = &p.last // the part's own: no allocation per frame
}

// cross counts the lines that part p crossed on its way to (x, y), once per line, and
// decides it when one is the decision line.
func (s *parts) cross(p *partState, x, y float64, now time.Time) {
	for i, l := range s.lines {
		from := p.off[i]
		if !l.On(x, y) {
			p.off[i] = configs.Point{x, y}
		}
		if _, done := p.crossed[l.Name]; done {
			continue
		}
		way := l.Crossed(from[0], from[1], x, y)
		if way == configs.NotCrossed {
			continue
		}
		if p.crossed == nil {
			p.crossed = map[string]string{}
		}
		p.crossed[l.Name] = way.String()
		if s.counts != nil {
			s.counts.Line(l.Name, way, now)
		}
		if l.Name == s.deadline.Line && p.reported && !p.decided {
			s.decide(p, "line", now)
		}
	}
}

// add counts one frame of the part: the final tag of its detection, with its confidence.
func (p *partState) add(d payload.Tag, msg *payload.Prediction) {
	tag, prob, path := finalPath(d, p.scratch[:0])
	e, ok := p.tags[tag]
	if !ok {
		e = &evidence{}
		p.tags[tag] = e
	}
	p.scratch = path
	e.sum += prob
	e.frames++
	e.path = append(e.path[:0], path...) // the part's frames reuse their arrays
	if !ok || prob > e.best {
		e.best, e.bestAt, e.bestID, e.box = prob, msg.FrameID, msg.ID, *d.BoundingBox
	}
}

// finalPath is the deepest certain answer about a detection: its tag, confidence and the
// tags on the way, appended to dst (to reuse its array). An uncertain level (under its
// threshold) is not followed.
func finalPath(d payload.Tag, dst []string) (tag string, prob float32, path []string) {
	tag, prob, path = d.TagName, d.Probability, append(dst, d.TagName)
	for c := d.Classification; c != nil && len(c.Predictions) > 0; c = c.Next {
		if c.Uncertain {
			return Unknown, c.Predictions[0].Probability, append(path, Unknown)
		}
		tag, prob = c.Predictions[0].TagName, c.Predictions[0].Probability
		path = append(path, tag)
	}
	return tag, prob, path
}

// decide makes part p's decision from the frames it had until now and the LLM's answer, if
// it came, by (line, time, end or stop), and sends it on the decisions topic at once; it is
// counted now, once. A part that a route sent to a model of type: llm waits for its answer
// (up to llm.timeout after it was asked; not on stop): decide then only notes by, and the
// next frames try again.
func (s *parts) decide(p *partState, by string, now time.Time) {
	if by != "stop" && s.waits(p, now) {
		p.waiting = by
		return
	}
	ev := &p.ev
	pq := s.questions.asked(ev.TrackID)
	llmTag, llmWeight := s.llmVote(p, ev, pq)
	s.questions.decided(ev.TrackID)
	score := func(tag string) float32 { // the frames' evidence, and the LLM's answer
		if tag == llmTag {
			return p.tags[tag].sum + llmWeight
		}
		return p.tags[tag].sum
	}
	ev.Votes = make(map[string]float32, len(p.tags))
	total := llmWeight
	var frames int
	best := ""
	for tag, e := range p.tags {
		if e.sum > 0 || tag != llmTag { // not the LLM's tag that no frame said
			ev.Votes[tag] = e.sum
		}
		total += e.sum
		frames += e.frames
		if best == "" || score(tag) > score(best) || score(tag) == score(best) && tag < best {
			best = tag
		}
	}
	b := p.tags[best]
	ev.TagName, ev.Probability, ev.Path = best, b.sum/float32(max(frames, 1)), b.path
	ev.BoundingBox, ev.BestFrameID = &b.box, b.bestAt
	// a tag the LLM named is not held to the threshold: it was asked because the model's
	// confidence was low
	if best != Unknown && (score(best) < total/2 || best != llmTag && float64(ev.Probability) < s.threshold(best)) {
		ev.TagName = Unknown
	}
	routeAnswer(ev, pq)
	if r, _ := s.questions.unaskedRoute(ev.TrackID, now); r != "" && strings.EqualFold(ev.TagName, r) {
		// routed to the LLM, never asked in time: not the routing tag, which is no product
		ev.TagName, ev.Source = Unknown, ""
		ev.LLM = &payload.PartLLM{State: LLMPending, Reason: ReasonTimeout, Route: true}
	}
	ev.Probability = float32(payload.Round(float64(ev.Probability), 4))
	ev.Verdict = s.verdicts.Of(ev.TagName)
	decided := now.UTC()
	ev.DecidedBy, ev.Decided = by, &decided
	p.decided, p.bestID = true, b.bestID
	d := payload.Decision{Schema: payload.Schema, Agent: s.env.Agent, Camera: s.camera, PartID: ev.PartID, TrackID: ev.TrackID,
		TagName: ev.TagName, Probability: ev.Probability, Verdict: ev.Verdict, By: by, FrameID: ev.LastFrameID, Created: decided, Source: ev.Source}
	if ev.LastSeen != nil {
		d.Captured = *ev.LastSeen
	}
	s.send(s.decisions, d)
	if s.metrics != nil {
		verdict := ev.Verdict
		if verdict == "" {
			verdict = "none"
		}
		s.metrics.Parts.WithLabelValues(s.camera, ev.TagName, verdict).Inc()
		s.metrics.DecisionLatency.WithLabelValues(s.camera, by).Observe(now.Sub(d.Captured).Seconds())
	}
	if s.counts != nil {
		s.counts.Part(ev.TagName, ev.Verdict, now)
		s.counts.Remember(d)
	}
}

// end publishes part p's end event, deciding it first when its deadline has not come; why
// is unseen or stop. It reports false when the decision waits for the LLM (see decide): the
// part stays open, ending, and the next frames end it.
func (s *parts) end(p *partState, why string, now time.Time) bool {
	if !p.reported {
		s.questions.forget(p.ev.TrackID)
		return true
	}
	if !p.decided {
		by := "end"
		if p.waiting != "" {
			by = p.waiting
		}
		if why == "stop" {
			by = why
		}
		s.decide(p, by, now)
		if !p.decided {
			p.ending = why
			return false
		}
	}
	defer s.questions.forget(p.ev.TrackID) // an answer that comes later is dropped
	ev := p.ev
	ev.Event, ev.Created, ev.Ended, ev.Lines = "end", now.UTC(), why, p.crossed
	s.send(s.topic, ev)
	s.remember(ev, p.bestID)
	if s.watch != nil {
		s.watch.Ended(&ev)
	}
	return true
}

// threshold is the per-tag minimum probability of tag (0 when none is set).
func (s *parts) threshold(tag string) float64 {
	t, _ := configs.TagKey(s.thresholds, tag)
	return s.thresholds[t]
}

// send publishes a part event (QoS 1, spooled) or a decision (QoS 1, only worth sending now).
func (s *parts) send(topic string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.env.Log.Error("part event not encoded", "camera", s.camera, "topic", topic, "err", err)
		return
	}
	m := publish.Message{Topic: topic, QoS: 1, Payload: body}
	if topic == s.topic {
		m.Class = spool.Predictions
	}
	s.env.Pub.Send(m)
}
