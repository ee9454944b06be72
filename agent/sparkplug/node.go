// Package sparkplug publishes the agent as a Sparkplug B edge node, so that Ignition (MQTT
// Engine) and other Sparkplug host applications see the agent as an edge node and each of
// its cameras as a device, with their metrics as tags (docs/integrations.md, Sparkplug B).
//
// The agent tells the Node what it knows, in its own payload types: Status (version, boot,
// models, which cameras run), Stats (frame rates and counters, the broker and the spool),
// Counts (parts per tag and verdict), Decision (the last part decided) and CameraModels
// (the iterations a camera's pipeline runs); or, through Poll, the Node asks for them before
// each flush. These calls only record the values: they never wait for the network. The
// Node's goroutine publishes what changed at most once per sparkplug.data_interval.
//
// On each connection (its own MQTT client, id <mqtt.client_id>-spb, clean session, the
// NDEATH as its will with the connection's bdSeq) it subscribes to its NCMD and DCMD topics
// and sends the birth sequence: NBIRTH (seq 0) and one DBIRTH per camera. Then DDATA (and
// NDATA) carry the changed metrics by alias; a camera gone is a DDEATH, a new camera or a
// tag seen for the first time a DBIRTH, a model added or gone a new birth sequence. An NCMD
// with Node Control/Rebirth true sends the birth sequence again, with the same bdSeq. Close
// sends a DDEATH per camera and the NDEATH, then disconnects.
//
// Files: node.go (the Node, its input and its goroutine), edge.go (the Sparkplug session:
// births, data, deaths, sequence numbers, aliases), conn.go (the MQTT connection),
// command.go (NCMD and DCMD). The payload's Go code is in sparkplugpb, generated from
// sparkplug_b.proto by `make proto`.
package sparkplug

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	spb "github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
)

// The metrics of a camera (device). Parts/Tag/<tag>, Parts/Verdict/<verdict> and
// Models/<model>/Iteration are added as they appear.
const (
	mState        = "State"
	mReason       = "Reason"
	mFPS          = "FPS"
	mRead         = "Frames/Read"
	mDropped      = "Frames/Dropped"
	mPartsTotal   = "Parts/Total"
	mPartsSince   = "Parts/Since"
	mTagPrefix    = "Parts/Tag/"
	mVerdictPfx   = "Parts/Verdict/"
	mLastTag      = "Last Decision/Tag"
	mLastProb     = "Last Decision/Probability"
	mLastVerdict  = "Last Decision/Verdict"
	mLastPart     = "Last Decision/Part ID"
	mLastTime     = "Last Decision/Time"
	mModelsPrefix = "Models/"
	mIteration    = "/Iteration"
)

// Node is the agent's Sparkplug edge node. Its methods are safe for concurrent use and
// never block on the network.
type Node struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	keys     *strings.Replacer // mqtt.* to sparkplug.* in connection hints, with sparkplug.broker
	poll     atomic.Pointer[func()]

	mu         sync.Mutex
	node       map[string]metric
	cams       map[string]map[string]metric
	statusSeen bool

	edge *edge

	rebirth chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// newNode makes a Node that is not connected: Start connects it, tests drive it directly.
func newNode(group, nodeID string, interval time.Duration, log *slog.Logger) *Node {
	n := &Node{
		log: log.With("component", "sparkplug"), interval: interval, now: time.Now,
		node: map[string]metric{}, cams: map[string]map[string]metric{},
		edge:    newEdge(group, nodeID),
		rebirth: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	// every node metric but the models is in the first NBIRTH (null until known), so that
	// the first status and stats are NDATA, not a new birth sequence
	ms := n.ms()
	for name, dt := range map[string]spb.DataType{
		"Properties/Version": spb.DataType_String, "Properties/Host": spb.DataType_String, "Properties/Boot": spb.DataType_String,
		"Properties/Started": spb.DataType_DateTime, "MQTT/Connected": spb.DataType_Boolean, "MQTT/State": spb.DataType_String,
		"MQTT/Queued": spb.DataType_Int64, "Spool/Writable": spb.DataType_Boolean, "Spool/Messages": spb.DataType_Int64,
		"Spool/Bytes": spb.DataType_Int64,
	} {
		n.node[name] = metric{v: null(dt), ts: ms}
	}
	return n
}

// metricName makes a tag, verdict or model name one level of a metric name: '/' would open
// a folder, so it becomes '_'.
func metricName(s string) string {
	if s == "" {
		return "_"
	}
	return strings.ReplaceAll(s, "/", "_")
}

// set records a value; its timestamp changes only when the value does.
func set(m map[string]metric, name string, v value, ms uint64) {
	if old, ok := m[name]; ok && old.v == v {
		return
	}
	m[name] = metric{v: v, ts: ms}
}

// camera returns the metrics of a camera, made with every metric a birth declares, or nil
// for a camera the last Status did not list.
func (n *Node) camera(name string, ms uint64) map[string]metric {
	c, ok := n.cams[name]
	if ok {
		return c
	}
	if n.statusSeen || name == "" {
		return nil
	}
	return n.addCamera(name, ms)
}

func (n *Node) addCamera(name string, ms uint64) map[string]metric {
	c := map[string]metric{
		mState: {str(""), ms}, mReason: {str(""), ms}, mFPS: {f64(0), ms}, mRead: {u64(0), ms}, mDropped: {u64(0), ms},
		mPartsTotal: {u64(0), ms}, mPartsSince: {null(spb.DataType_DateTime), ms},
		mLastTag: {null(spb.DataType_String), ms}, mLastProb: {null(spb.DataType_Float), ms}, mLastVerdict: {null(spb.DataType_String), ms},
		mLastPart: {null(spb.DataType_String), ms}, mLastTime: {null(spb.DataType_DateTime), ms},
	}
	n.cams[name] = c
	return c
}

func (n *Node) ms() uint64 { return uint64(n.now().UnixMilli()) }

// Status takes the agent's status: the node's version, host, boot and models, and the
// cameras that run. A camera it no longer lists is a device gone (DDEATH); a new one is
// born (DBIRTH). A status whose state is not online (the agent's will, or its last word on
// stopping) is ignored: Close ends the Sparkplug session.
func (n *Node) Status(st payload.Status) {
	if st.State != "online" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ms := n.ms()
	set(n.node, "Properties/Version", str(st.Version), ms)
	set(n.node, "Properties/Host", str(st.Host), ms)
	set(n.node, "Properties/Boot", str(st.Boot), ms)
	started := time.Time{}
	if st.Started != nil {
		started = *st.Started
	}
	set(n.node, "Properties/Started", datetime(started), ms)
	models := map[string]bool{}
	for _, m := range st.Models {
		name := mModelsPrefix + metricName(m.Name) + mIteration
		models[name] = true
		set(n.node, name, str(m.Iteration), ms)
	}
	for name := range n.node {
		if strings.HasPrefix(name, mModelsPrefix) && !models[name] {
			delete(n.node, name)
		}
	}
	listed := map[string]bool{}
	for _, cs := range st.Cameras {
		listed[cs.Name] = true
		c, ok := n.cams[cs.Name]
		if !ok {
			c = n.addCamera(cs.Name, ms)
		}
		set(c, mState, str(cs.State), ms)
		set(c, mReason, str(cs.Reason), ms)
		set(c, mRead, u64(cs.Read), ms)
		set(c, mDropped, u64(cs.Dropped), ms)
	}
	for name := range n.cams {
		if !listed[name] {
			delete(n.cams, name)
		}
	}
	n.statusSeen = true
}

// RemoveCamera drops a camera at once (DDEATH at the next flush), as a status without it
// would.
func (n *Node) RemoveCamera(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cams, name)
}

// Stats takes the agent's periodic stats: each camera's state, frame rate and frame
// counters, and the health of the agent's own broker connection and spool.
func (n *Node) Stats(st payload.Stats) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ms := n.ms()
	set(n.node, "MQTT/Connected", boolean(st.MQTT.Connected), ms)
	set(n.node, "MQTT/State", str(st.MQTT.State), ms)
	set(n.node, "MQTT/Queued", i64(int64(st.MQTT.Queued)), ms)
	set(n.node, "Spool/Writable", boolean(st.Spool.Writable), ms)
	set(n.node, "Spool/Messages", i64(int64(st.Spool.Messages)), ms)
	set(n.node, "Spool/Bytes", i64(st.Spool.Bytes), ms)
	for _, cs := range st.Cameras {
		c := n.camera(cs.Name, ms)
		if c == nil {
			continue
		}
		set(c, mState, str(cs.State), ms)
		set(c, mFPS, f64(cs.FPS), ms)
		set(c, mRead, u64(cs.Read), ms)
		set(c, mDropped, u64(cs.Dropped), ms)
	}
}

// Counts takes a camera's part counts. A tag or verdict counted for the first time is a
// new metric: the camera is born again (DBIRTH) at the next flush. Tags and verdicts that a
// reset left out go back to 0.
func (n *Node) Counts(c payload.Counts) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ms := n.ms()
	cam := n.camera(c.Camera, ms)
	if cam == nil {
		return
	}
	set(cam, mPartsTotal, u64(c.Parts), ms)
	set(cam, mPartsSince, datetime(c.Since), ms)
	seen := map[string]bool{}
	for tag, v := range c.Tags {
		name := mTagPrefix + metricName(tag)
		seen[name] = true
		set(cam, name, u64(v), ms)
	}
	for verdict, v := range c.Verdicts {
		name := mVerdictPfx + metricName(verdict)
		seen[name] = true
		set(cam, name, u64(v), ms)
	}
	for name := range cam {
		if (strings.HasPrefix(name, mTagPrefix) || strings.HasPrefix(name, mVerdictPfx)) && !seen[name] {
			set(cam, name, u64(0), ms)
		}
	}
}

// Decision takes a part's decision: the camera's Last Decision metrics.
func (n *Node) Decision(d payload.Decision) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ms := n.ms()
	cam := n.camera(d.Camera, ms)
	if cam == nil {
		return
	}
	set(cam, mLastTag, str(d.TagName), ms)
	set(cam, mLastProb, f32(d.Probability), ms)
	set(cam, mLastVerdict, str(d.Verdict), ms)
	set(cam, mLastPart, str(d.PartID), ms)
	set(cam, mLastTime, datetime(d.Created), ms)
}

// CameraModels takes the models a camera's pipeline runs (as a prediction's models list
// names them): its Models/<name>/Iteration metrics. A model added or gone makes the camera
// born again.
func (n *Node) CameraModels(camera string, models []payload.ModelRef) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ms := n.ms()
	cam := n.camera(camera, ms)
	if cam == nil {
		return
	}
	keep := map[string]bool{}
	for _, m := range models {
		name := mModelsPrefix + metricName(m.Name) + mIteration
		keep[name] = true
		set(cam, name, str(m.Iteration), ms)
	}
	for name := range cam {
		if strings.HasPrefix(name, mModelsPrefix) && !keep[name] {
			delete(cam, name)
		}
	}
}

// Poll sets a function the Node calls before each birth and flush, on its own goroutine, to
// read values it is not told of as they change (for example each camera's counts and last
// decision). It must be quick and must not call Close.
func (n *Node) Poll(f func()) {
	if f == nil {
		n.poll.Store(nil)
		return
	}
	n.poll.Store(&f)
}

// snapshot copies the current values for a flush, after the Poll function ran.
func (n *Node) snapshot() snapshot {
	if f := n.poll.Load(); f != nil {
		(*f)()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s := snapshot{node: make(map[string]metric, len(n.node)), devices: make(map[string]map[string]metric, len(n.cams))}
	for k, v := range n.node {
		s.node[k] = v
	}
	for name, c := range n.cams {
		cp := make(map[string]metric, len(c))
		for k, v := range c {
			cp[k] = v
		}
		s.devices[name] = cp
	}
	return s
}

// requestRebirth asks the goroutine for the birth sequence again (NCMD Node
// Control/Rebirth); requests that come while one waits are one.
func (n *Node) requestRebirth() {
	select {
	case n.rebirth <- struct{}{}:
	default:
	}
}

// Close ends the session cleanly (a DDEATH per camera, the NDEATH, then MQTT DISCONNECT) and
// stops the goroutine; ctx bounds the wait. Calling it again does nothing.
func (n *Node) Close(ctx context.Context) error {
	n.once.Do(func() { close(n.stop) })
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
