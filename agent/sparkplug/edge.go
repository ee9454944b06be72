package sparkplug

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	spb "github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
)

// Namespace is the first level of every Sparkplug B topic.
const Namespace = "spBv1.0"

// The metrics of the edge node that Sparkplug itself defines; they carry no alias.
const (
	metricBdSeq   = "bdSeq"
	metricRebirth = "Node Control/Rebirth"
)

// value is one metric's value with its Sparkplug datatype; comparable, so that a change is
// value != last.
type value struct {
	dt   spb.DataType
	null bool
	s    string
	u    uint64 // UInt64, Int64 (two's complement), DateTime (ms)
	f    float64
	b    bool
}

// metric is a value and when it took it (ms since the epoch).
type metric struct {
	v  value
	ts uint64
}

func str(s string) value         { return value{dt: spb.DataType_String, s: s} }
func u64(u uint64) value         { return value{dt: spb.DataType_UInt64, u: u} }
func i64(i int64) value          { return value{dt: spb.DataType_Int64, u: uint64(i)} }
func f64(f float64) value        { return value{dt: spb.DataType_Double, f: f} }
func f32(f float32) value        { return value{dt: spb.DataType_Float, f: float64(f)} }
func boolean(b bool) value       { return value{dt: spb.DataType_Boolean, b: b} }
func null(dt spb.DataType) value { return value{dt: dt, null: true} }
func datetime(t time.Time) value {
	if t.IsZero() {
		return null(spb.DataType_DateTime)
	}
	return value{dt: spb.DataType_DateTime, u: uint64(t.UnixMilli())}
}

// pb is the metric as sent: in a birth with its name, alias and datatype; in data with
// its alias alone (metrics without an alias, bdSeq and Node Control/Rebirth, with their name).
func (m metric) pb(name string, alias uint64, birth bool) *spb.Payload_Metric {
	out := &spb.Payload_Metric{Timestamp: proto.Uint64(m.ts)}
	if birth || alias == 0 {
		out.Name = proto.String(name)
	}
	if alias != 0 {
		out.Alias = proto.Uint64(alias)
	}
	if birth {
		out.Datatype = proto.Uint32(uint32(m.v.dt))
	}
	if m.v.null {
		out.IsNull = proto.Bool(true)
		return out
	}
	switch m.v.dt {
	case spb.DataType_String, spb.DataType_Text:
		out.Value = &spb.Payload_Metric_StringValue{StringValue: m.v.s}
	case spb.DataType_UInt64, spb.DataType_Int64, spb.DataType_DateTime:
		out.Value = &spb.Payload_Metric_LongValue{LongValue: m.v.u}
	case spb.DataType_Double:
		out.Value = &spb.Payload_Metric_DoubleValue{DoubleValue: m.v.f}
	case spb.DataType_Float:
		out.Value = &spb.Payload_Metric_FloatValue{FloatValue: float32(m.v.f)}
	case spb.DataType_Boolean:
		out.Value = &spb.Payload_Metric_BooleanValue{BooleanValue: m.v.b}
	}
	return out
}

// publisher sends one message: the MQTT connection, or a recorder in tests. Births, data and
// DDEATH go with QoS 0, an explicit NDEATH with QoS 1; nothing is retained.
type publisher interface {
	publish(topic string, qos byte, body []byte) error
}

// snapshot is what the node and its cameras report at one moment.
type snapshot struct {
	node    map[string]metric
	devices map[string]map[string]metric
}

// edge is the Sparkplug state of one session of the edge node: its bdSeq, the sequence
// number, the aliases, and the values last sent, by which a flush finds what changed. Only
// the node's run goroutine (or a test) uses it.
type edge struct {
	group, node string
	bdSeq       int64
	seq         uint64 // of the last message sent
	aliases     map[string]uint64
	nextAlias   uint64
	// nodeSent is what the last NBIRTH and NDATA sent, nil before the session's NBIRTH;
	// devSent the same for each camera born in this session.
	nodeSent map[string]value
	devSent  map[string]map[string]value
}

func newEdge(group, node string) *edge {
	return &edge{group: group, node: node, aliases: map[string]uint64{}}
}

// topic is spBv1.0/<group>/<kind>/<node>[/<device>].
func (e *edge) topic(kind, device string) string {
	t := Namespace + "/" + e.group + "/" + kind + "/" + e.node
	if device != "" {
		t += "/" + device
	}
	return t
}

// alias is the metric's alias, unique across the edge node (its own metrics and all its
// devices'), the same for the agent's life; 0 for the metrics that must not have one.
func (e *edge) alias(device, name string) uint64 {
	if device == "" && (name == metricBdSeq || name == metricRebirth) {
		return 0
	}
	key := device + "\x00" + name
	a, ok := e.aliases[key]
	if !ok {
		e.nextAlias++
		a = e.nextAlias
		e.aliases[key] = a
	}
	return a
}

// forget drops a removed camera's aliases.
func (e *edge) forget(device string) {
	for key := range e.aliases {
		if len(key) > len(device) && key[:len(device)+1] == device+"\x00" {
			delete(e.aliases, key)
		}
	}
}

// nextSeq is the sequence number of the next message after NBIRTH: 0-255, wrapping.
func (e *edge) nextSeq() uint64 {
	e.seq = (e.seq + 1) % 256
	return e.seq
}

// deathPayload is the NDEATH: the bdSeq alone, no sequence number.
func deathPayload(bdSeq int64, now time.Time) []byte {
	p := &spb.Payload{Timestamp: proto.Uint64(uint64(now.UnixMilli())), Metrics: []*spb.Payload_Metric{
		metric{v: i64(bdSeq), ts: uint64(now.UnixMilli())}.pb(metricBdSeq, 0, true),
	}}
	b, _ := proto.Marshal(p)
	return b
}

func (e *edge) send(pub publisher, kind, device string, qos byte, p *spb.Payload) error {
	body, err := proto.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", kind, err)
	}
	if err := pub.publish(e.topic(kind, device), qos, body); err != nil {
		return fmt.Errorf("publishing %s %s: %w", kind, e.topic(kind, device), err)
	}
	return nil
}

// sortedNames lists a metric set's names in order, so that births read the same each time.
func sortedNames[V any](m map[string]V) []string {
	names := slices.Collect(maps.Keys(m))
	sort.Strings(names)
	return names
}

// births sends the whole birth sequence: NBIRTH (seq 0, the session's bdSeq, Node
// Control/Rebirth false, every node metric) then a DBIRTH for each camera. It starts the
// sequence numbers again; bdSeq stays.
func (e *edge) births(pub publisher, s snapshot, now time.Time) error {
	ms := uint64(now.UnixMilli())
	e.seq = 0
	e.nodeSent = map[string]value{}
	e.devSent = map[string]map[string]value{}
	p := &spb.Payload{Timestamp: proto.Uint64(ms), Seq: proto.Uint64(0)}
	p.Metrics = append(p.Metrics,
		metric{v: i64(e.bdSeq), ts: ms}.pb(metricBdSeq, 0, true),
		metric{v: boolean(false), ts: ms}.pb(metricRebirth, 0, true))
	for _, name := range sortedNames(s.node) {
		m := s.node[name]
		p.Metrics = append(p.Metrics, m.pb(name, e.alias("", name), true))
		e.nodeSent[name] = m.v
	}
	if err := e.send(pub, "NBIRTH", "", 0, p); err != nil {
		e.nodeSent = nil
		return err
	}
	for _, dev := range sortedNames(s.devices) {
		if err := e.deviceBirth(pub, dev, s.devices[dev], now); err != nil {
			return err
		}
	}
	return nil
}

// deviceBirth sends one camera's DBIRTH with all its metrics.
func (e *edge) deviceBirth(pub publisher, dev string, metrics map[string]metric, now time.Time) error {
	p := &spb.Payload{Timestamp: proto.Uint64(uint64(now.UnixMilli())), Seq: proto.Uint64(e.nextSeq())}
	sent := make(map[string]value, len(metrics))
	for _, name := range sortedNames(metrics) {
		m := metrics[name]
		p.Metrics = append(p.Metrics, m.pb(name, e.alias(dev, name), true))
		sent[name] = m.v
	}
	e.devSent[dev] = sent
	return e.send(pub, "DBIRTH", dev, 0, p)
}

// sameNames reports whether a birth declared exactly the metrics of now.
func sameNames(sent map[string]value, now map[string]metric) bool {
	if len(sent) != len(now) {
		return false
	}
	for name := range now {
		if _, ok := sent[name]; !ok {
			return false
		}
	}
	return true
}

// changes lists the metrics of now whose value differs from sent, by alias, and records them
// as sent.
func (e *edge) changes(dev string, sent map[string]value, now map[string]metric) []*spb.Payload_Metric {
	var out []*spb.Payload_Metric
	for _, name := range sortedNames(now) {
		m := now[name]
		if sent[name] == m.v {
			continue
		}
		out = append(out, m.pb(name, e.alias(dev, name), false))
		sent[name] = m.v
	}
	return out
}

// flush sends what changed since the births and the last flush: NDATA with the node's
// changed metrics, DDEATH for each camera gone, DBIRTH for each new camera and for each
// camera with a metric its birth did not declare (a new tag: aliases cannot be added in
// DDATA), and DDATA with each camera's changed metrics, by alias. A node metric added or
// gone (a model) needs a new NBIRTH: the whole birth sequence is sent again.
func (e *edge) flush(pub publisher, s snapshot, now time.Time) error {
	if e.nodeSent == nil || !sameNames(e.nodeSent, s.node) {
		return e.births(pub, s, now)
	}
	ms := uint64(now.UnixMilli())
	if ch := e.changes("", e.nodeSent, s.node); len(ch) > 0 {
		if err := e.send(pub, "NDATA", "", 0, &spb.Payload{Timestamp: proto.Uint64(ms), Seq: proto.Uint64(e.nextSeq()), Metrics: ch}); err != nil {
			return err
		}
	}
	for _, dev := range sortedNames(e.devSent) {
		if _, ok := s.devices[dev]; !ok {
			delete(e.devSent, dev)
			if err := e.send(pub, "DDEATH", dev, 0, &spb.Payload{Timestamp: proto.Uint64(ms), Seq: proto.Uint64(e.nextSeq())}); err != nil {
				return err
			}
			e.forget(dev)
		}
	}
	for _, dev := range sortedNames(s.devices) {
		metrics := s.devices[dev]
		sent, born := e.devSent[dev]
		if !born || !sameNames(sent, metrics) {
			if err := e.deviceBirth(pub, dev, metrics, now); err != nil {
				return err
			}
			continue
		}
		if ch := e.changes(dev, sent, metrics); len(ch) > 0 {
			if err := e.send(pub, "DDATA", dev, 0, &spb.Payload{Timestamp: proto.Uint64(ms), Seq: proto.Uint64(e.nextSeq()), Metrics: ch}); err != nil {
				return err
			}
		}
	}
	return nil
}

// deaths ends the session cleanly: a DDEATH for each camera born, then the NDEATH with the
// session's bdSeq (QoS 1, as the will), before the client disconnects and the broker drops
// the will.
func (e *edge) deaths(pub publisher, now time.Time) error {
	ms := uint64(now.UnixMilli())
	var first error
	if e.nodeSent != nil {
		for _, dev := range sortedNames(e.devSent) {
			if err := e.send(pub, "DDEATH", dev, 0, &spb.Payload{Timestamp: proto.Uint64(ms), Seq: proto.Uint64(e.nextSeq())}); err != nil && first == nil {
				first = err
			}
		}
	}
	body := deathPayload(e.bdSeq, now)
	if err := pub.publish(e.topic("NDEATH", ""), 1, body); err != nil && first == nil {
		first = fmt.Errorf("publishing NDEATH: %w", err)
	}
	e.nodeSent, e.devSent = nil, nil
	return first
}
