// Package plant is the operator station of a whole plant, `cvedge review`: it follows over
// MQTT what many agents publish (their retained status, their stats, the part counts and
// decisions of each camera, and the samples of likely misclassifications) and gives the
// station (agent/station) its View of every agent, feeds the samples into the review queue,
// and sends an operator's correction back to the agent that made the prediction (Feedback).
//
// It owns its MQTT connection and what it remembers of each agent. It knows nothing of HTTP
// (the station serves the page), and runs no camera and no model. It is pure Go.
//
// Every message is outside input: it is parsed defensively, and a message that is too
// large, is not the JSON of its kind, or comes on a topic of the wrong shape is counted and
// logged (a warning at most once per LogEvery for each kind of problem, debug otherwise),
// never fatal. What it remembers is bounded: Options.MaxAgents agents, MaxCameras cameras
// each, MaxBytes of messages in all; beyond, the messages of new agents and cameras are
// dropped and counted (OverLimit) while those already known go on being followed.
package plant

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/station"
)

// The bounds of what a Plant remembers, by default.
const (
	DefaultMaxAgents  = 1000
	DefaultMaxCameras = 64
	DefaultMaxBytes   = 256 << 20
	// RecentDecisions is how many decisions are kept per camera, newest first (as the
	// agent's own station keeps).
	RecentDecisions = 20
	// LogEvery is how often a kind of refused message is logged as a warning; the others
	// are logged at debug level and counted.
	LogEvery = 10 * time.Second
	// StateUnknown is the state shown for an agent whose status has not been seen (its
	// samples, counts or decisions came, its retained status did not).
	StateUnknown = "unknown"
)

// maxSize bounds a message by kind: more than any agent sends, little enough that
// MaxAgents agents stay in memory. A sample carries its images (payload.ParseSample has the
// same bound).
var maxSize = map[Kind]int{Status: 256 << 10, Stats: 1 << 20, Counts: 64 << 10, Decisions: 16 << 10, Samples: 32 << 20}

// agentRE is what an agent id may be (agent.id, as configs checks it).
var agentRE = nameRE

// Queue takes the samples: review.Queue.
type Queue interface {
	Add(s payload.Sample) (bool, error)
}

// Options configure a Plant.
type Options struct {
	// Queue takes the samples; nil: samples are counted and dropped.
	Queue Queue
	// MaxAgents, MaxCameras (per agent) and MaxBytes (the messages kept, by their JSON
	// size) bound what is remembered; 0 takes the Default.
	MaxAgents, MaxCameras int
	MaxBytes              int64
	// Publish sends a message (QoS 1, not retained) and waits for the broker to take it;
	// Start sets it to its MQTT connection. Tests give their own.
	Publish func(topic string, body []byte) error
	Log     *slog.Logger
	// Now is the clock of the log's rate limit; nil: time.Now.
	Now func() time.Time
}

// Counters are what a Plant did with the messages it got since it was made.
type Counters struct {
	// Taken counts the status, stats, counts and decisions messages kept; Queued the samples
	// the review queue took, Duplicates those it had already (or that carried an operator's
	// correction: answered already), NotQueued those it refused (no image, a full disk).
	Taken, Queued, Duplicates, NotQueued uint64
	// Bad counts messages refused: too large, not the JSON of their kind, a topic of the
	// wrong shape, an agent or camera name that is not one.
	Bad uint64
	// OverLimit counts messages dropped because they would make the Plant remember more
	// than its bounds (a new agent, a new camera, or more bytes).
	OverLimit uint64
	// Ignored counts messages on topics of other kinds (a filter wider than needed).
	Ignored uint64
	// Forgotten counts agents forgotten because their retained status was cleared.
	Forgotten uint64
}

// Plant is what the station knows of every agent. It is safe for concurrent use.
type Plant struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	agents map[string]*agentState
	bytes  int64
	n      Counters
	warned map[string]time.Time // problem -> last warning
	hidden map[string]int       // problem -> warnings suppressed since
	pub    func(topic string, body []byte) error

	conn *conn // Start's MQTT connection
}

type agentState struct {
	id, prefix string
	status     *payload.Status
	stats      *payload.Stats
	statusSize int
	statsSize  int
	cameras    map[string]*cameraState
}

type cameraState struct {
	counts     *payload.Counts
	countsSize int
	decisions  []payload.Decision // newest first, at most RecentDecisions
	decSizes   []int
}

func (a *agentState) size() int64 {
	n := int64(a.statusSize + a.statsSize)
	for _, c := range a.cameras {
		n += c.size()
	}
	return n
}

func (c *cameraState) size() int64 {
	n := int64(c.countsSize)
	for _, s := range c.decSizes {
		n += int64(s)
	}
	return n
}

// New returns an empty Plant.
func New(o Options) *Plant {
	if o.MaxAgents <= 0 {
		o.MaxAgents = DefaultMaxAgents
	}
	if o.MaxCameras <= 0 {
		o.MaxCameras = DefaultMaxCameras
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Plant{o: o, log: o.Log.With("component", "plant"), agents: map[string]*agentState{},
		warned: map[string]time.Time{}, hidden: map[string]int{}, pub: o.Publish}
}

// Counters returns the counters.
func (p *Plant) Counters() Counters {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Agents returns how many agents the Plant remembers.
func (p *Plant) Agents() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.agents)
}

// Handle takes one message, as received on topic. Nothing in it can make Handle fail or
// panic: what is wrong is counted and logged.
func (p *Plant) Handle(topic string, raw []byte) {
	t, err := ParseTopic(topic)
	if errors.Is(err, ErrOtherTopic) {
		p.mu.Lock()
		p.n.Ignored++
		p.mu.Unlock()
		return
	}
	if err != nil {
		p.refuse("topic", topic, err)
		return
	}
	if len(raw) > maxSize[t.Kind] {
		p.refuse(string(t.Kind), topic, fmt.Errorf("message of %d bytes is larger than the %d a %s message may be", len(raw), maxSize[t.Kind], t.Kind))
		return
	}
	if len(raw) == 0 && (t.Kind == Status || t.Kind == Counts) { // a retained message cleared
		p.cleared(t)
		return
	}
	if t.Kind == Samples {
		p.sample(t, topic, raw)
		return
	}
	if err := p.take(t, raw); err != nil {
		p.refuse(string(t.Kind), topic, err)
	}
}

// take parses a status, stats, counts or decisions message and keeps it.
func (p *Plant) take(t Topic, raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("not UTF-8 JSON")
	}
	var agent, camera string
	// grow is the bytes the message adds to what is kept; keep keeps it
	var grow func(a *agentState, c *cameraState) int
	var keep func(a *agentState, c *cameraState)
	switch t.Kind {
	case Status:
		var s payload.Status
		if err := parse(raw, &s, &s.Schema); err != nil {
			return err
		}
		if s.State != "online" && s.State != "offline" {
			return fmt.Errorf(`"state" %q is not online or offline`, clip(s.State))
		}
		agent = s.Agent
		grow = func(a *agentState, _ *cameraState) int { return len(raw) - a.statusSize }
		keep = func(a *agentState, _ *cameraState) { a.status, a.statusSize = &s, len(raw) }
	case Stats:
		var s payload.Stats
		if err := parse(raw, &s, &s.Schema); err != nil {
			return err
		}
		agent = s.Agent
		grow = func(a *agentState, _ *cameraState) int { return len(raw) - a.statsSize }
		keep = func(a *agentState, _ *cameraState) { a.stats, a.statsSize = &s, len(raw) }
	case Counts:
		var c payload.Counts
		if err := parse(raw, &c, &c.Schema); err != nil {
			return err
		}
		agent, camera = c.Agent, c.Camera
		grow = func(_ *agentState, cs *cameraState) int { return len(raw) - cs.countsSize }
		keep = func(_ *agentState, cs *cameraState) { cs.counts, cs.countsSize = &c, len(raw) }
	case Decisions:
		var d payload.Decision
		if err := parse(raw, &d, &d.Schema); err != nil {
			return err
		}
		agent, camera = d.Agent, d.Camera
		grow = func(_ *agentState, cs *cameraState) int {
			if len(cs.decSizes) < RecentDecisions {
				return len(raw)
			}
			return len(raw) - cs.decSizes[len(cs.decSizes)-1] // the oldest goes
		}
		keep = func(_ *agentState, cs *cameraState) {
			n := min(len(cs.decisions), RecentDecisions-1)
			// a new slice each time: a View handed out earlier keeps the old one unchanged
			cs.decisions = append([]payload.Decision{d}, cs.decisions[:n]...)
			cs.decSizes = append([]int{len(raw)}, cs.decSizes[:n]...)
		}
	}
	if !agentRE.MatchString(agent) {
		return fmt.Errorf(`"agent" %q must be an agent id: 1-64 letters, digits, '-' or '_'`, clip(agent))
	}
	if camera != t.Camera {
		return fmt.Errorf(`"camera" %q is not the camera of the topic (%s)`, clip(camera), t.Camera)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a, c, err := p.place(agent, t.Prefix, camera, t.Kind)
	if errors.Is(err, errOverLimit) {
		return nil // counted
	}
	if err != nil {
		return err
	}
	g := int64(grow(a, c))
	if p.bytes+g > p.o.MaxBytes {
		p.overLimit("bytes", fmt.Errorf("agent %s: keeping this %s message would pass the %d bytes the station keeps", agent, t.Kind, p.o.MaxBytes))
		return nil
	}
	keep(a, c)
	p.bytes += g
	p.n.Taken++
	return nil
}

// parse decodes one JSON object of schema payload.Schema. Fields it does not know are
// ignored, as docs/mqtt.md asks of consumers.
func parse(raw []byte, v any, schema *int) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("not a JSON message of its kind: %v", err)
	}
	if *schema != payload.Schema {
		return fmt.Errorf(`"schema" %d: this station reads schema %d (a newer agent? update cvedge review)`, *schema, payload.Schema)
	}
	return nil
}

// place finds (making when new, within the bounds) the agent and, when camera is not "",
// its camera, for a message of kind that came under prefix. p.mu is held.
//
// An agent's prefix is where its feedback goes. It is the prefix of its latest status (an
// agent given a new mqtt.topic_prefix sends its status there first); until a status has
// come, that of its latest message. Another message naming the agent under another prefix
// than its status's is refused: whoever sent it (an agent given the same agent.id by
// mistake, or a client posing as it) does not get its feedback. errOverLimit: over a bound,
// counted.
func (p *Plant) place(id, prefix, camera string, kind Kind) (*agentState, *cameraState, error) {
	a := p.agents[id]
	if a == nil {
		if len(p.agents) >= p.o.MaxAgents {
			p.overLimit("agents", fmt.Errorf("agent %s not followed: the station follows at most %d agents", id, p.o.MaxAgents))
			return nil, nil, errOverLimit
		}
		a = &agentState{id: id, prefix: prefix, cameras: map[string]*cameraState{}}
		p.agents[id] = a
		p.log.Info("agent seen", "agent", id, "prefix", prefix)
	}
	if a.prefix != prefix && kind != Status && a.status != nil {
		return nil, nil, fmt.Errorf("agent %s publishes its status under %s, not here: two agents with the same agent.id? (each needs its own)", id, a.prefix)
	}
	var c *cameraState
	if camera != "" {
		if c = a.cameras[camera]; c == nil {
			if len(a.cameras) >= p.o.MaxCameras {
				p.overLimit("cameras", fmt.Errorf("agent %s: camera %s not followed: the station follows at most %d cameras an agent", id, camera, p.o.MaxCameras))
				return nil, nil, errOverLimit
			}
			c = &cameraState{}
			a.cameras[camera] = c
		}
	}
	if a.prefix != prefix {
		p.warnLocked("prefix", "agent now publishes under another topic prefix; its feedback goes there", "agent", id, "was", a.prefix, "now", prefix, "kind", kind)
		a.prefix = prefix
	}
	return a, c, nil
}

// errOverLimit is place's answer over a bound: counted already.
var errOverLimit = errors.New("over the station's bounds")

// sample hands a sample to the review queue, and remembers its agent for the feedback.
func (p *Plant) sample(t Topic, topic string, raw []byte) {
	s, err := payload.ParseSample(raw)
	switch {
	case err != nil:
		p.refuse("sample", topic, err)
		return
	case !agentRE.MatchString(s.Agent):
		p.refuse("sample", topic, fmt.Errorf(`sample %s: "agent" %q must be an agent id: 1-64 letters, digits, '-' or '_'`, s.ID, clip(s.Agent)))
		return
	case s.Camera != t.Camera:
		p.refuse("sample", topic, fmt.Errorf(`sample %s: "camera" %q is not the camera of the topic (%s)`, s.ID, clip(s.Camera), t.Camera))
		return
	}
	p.mu.Lock()
	_, _, err = p.place(s.Agent, t.Prefix, "", Samples)
	p.mu.Unlock()
	if errors.Is(err, errOverLimit) {
		return // counted
	}
	if err != nil {
		p.refuse("sample", topic, fmt.Errorf("sample %s: %w", s.ID, err))
		return
	}
	if p.o.Queue == nil {
		p.mu.Lock()
		p.n.NotQueued++
		p.mu.Unlock()
		return
	}
	added, err := p.o.Queue.Add(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.n.NotQueued++
		p.warnLocked("queue", "sample not queued for review", "sample", s.ID, "agent", s.Agent, "camera", s.Camera, "err", err)
	case added:
		p.n.Queued++
		p.log.Debug("sample queued for review", "sample", s.ID, "agent", s.Agent, "camera", s.Camera, "reason", s.Reason)
	default:
		p.n.Duplicates++
	}
}

// cleared forgets what a cleared retained message said: the whole agent for its status (an
// agent taken out of service: `mosquitto_pub -r -n -t <prefix>/status`), a camera's counts.
func (p *Plant) cleared(t Topic) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, a := range p.agents {
		if a.prefix != t.Prefix {
			continue
		}
		if t.Kind == Status {
			p.bytes -= a.size()
			delete(p.agents, id)
			p.n.Forgotten++
			p.log.Info("agent forgotten: its retained status was cleared", "agent", id, "prefix", t.Prefix)
			continue
		}
		if c := a.cameras[t.Camera]; c != nil {
			p.bytes -= int64(c.countsSize)
			c.counts, c.countsSize = nil, 0
		}
	}
}

// View is what the station shows: every agent, sorted by id, with its status, stats, and
// each camera's counts and last decisions (newest first). An agent whose status has not
// been seen shows the state StateUnknown.
func (p *Plant) View() station.View {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := slices.Sorted(maps.Keys(p.agents))
	v := station.View{Agents: make([]station.AgentView, 0, len(ids))}
	for _, id := range ids {
		a := p.agents[id]
		av := station.AgentView{Status: payload.Status{Schema: payload.Schema, Agent: id, State: StateUnknown}, Stats: a.stats}
		if a.status != nil {
			av.Status = *a.status // the messages kept are replaced, never changed: sharing is safe
		}
		for name, c := range a.cameras {
			if c.counts != nil {
				if av.Counts == nil {
					av.Counts = map[string]payload.Counts{}
				}
				av.Counts[name] = *c.counts
			}
			if len(c.decisions) > 0 {
				if av.Decisions == nil {
					av.Decisions = map[string][]payload.Decision{}
				}
				av.Decisions[name] = c.decisions
			}
		}
		v.Agents = append(v.Agents, av)
	}
	return v
}

// Prefix returns the topic prefix agent publishes under, and whether it was seen.
func (p *Plant) Prefix(agent string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.agents[agent]
	if a == nil {
		return "", false
	}
	return a.prefix, true
}

// Feedback sends an operator's correction to agent, as JSON on <its prefix>/feedback (QoS
// 1), the prefix its messages came under. An agent never seen, a correction the agent would
// refuse, and a broker that does not take it are errors saying so.
func (p *Plant) Feedback(agent string, fb payload.Feedback) error {
	raw, err := json.Marshal(fb)
	if err != nil {
		return fmt.Errorf("feedback for agent %s: %w", agent, err)
	}
	if _, err := payload.ParseFeedback(raw); err != nil {
		return fmt.Errorf("feedback for agent %s would be refused by it: %w", agent, err)
	}
	p.mu.Lock()
	a, pub := p.agents[agent], p.pub
	var prefix string
	if a != nil {
		prefix = a.prefix
	}
	p.mu.Unlock()
	switch {
	case a == nil:
		return fmt.Errorf("feedback for agent %q: no message of that agent has come (status, stats, counts, decisions or samples), so where its feedback goes is not known: is it under the prefixes followed (--prefix)?", clip(agent))
	case pub == nil:
		return fmt.Errorf("feedback for agent %s: not connected to the broker", agent)
	}
	topic := prefix + "/feedback"
	if err := pub(topic, raw); err != nil {
		return fmt.Errorf("feedback for agent %s on %s: %w", agent, topic, err)
	}
	p.log.Info("feedback sent", "agent", agent, "topic", topic, "feedback", fb.ID, "tag", fb.Tag)
	return nil
}

// refuse counts and logs a message refused.
func (p *Plant) refuse(what, topic string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n.Bad++
	p.warnLocked("refused "+what, "message refused", "kind", what, "topic", clip(topic), "err", err)
}

// overLimit counts and logs a message dropped over a bound. p.mu is held.
func (p *Plant) overLimit(bound string, err error) {
	p.n.OverLimit++
	p.warnLocked("bound "+bound, "message dropped: over the station's bounds", "err", err)
}

// warnLocked logs msg as a warning when problem was not warned about in the last LogEvery
// (saying how many were suppressed since), at debug level otherwise. p.mu is held.
func (p *Plant) warnLocked(problem, msg string, args ...any) {
	now := p.o.Now()
	if last, ok := p.warned[problem]; ok && now.Sub(last) < LogEvery {
		p.hidden[problem]++
		p.log.Debug(msg, args...)
		return
	}
	if n := p.hidden[problem]; n > 0 {
		args = append(args, "suppressed", n)
	}
	p.warned[problem], p.hidden[problem] = now, 0
	p.log.Warn(msg, args...)
}
