package sparkplug

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cvedge/cvedge/agent/payload"
	spb "github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
)

// sent is one message the recorder took, decoded with the generated code.
type sent struct {
	topic string
	qos   byte
	p     *spb.Payload
}

// recorder is a publisher that keeps what is published, decoded.
type recorder struct {
	t    *testing.T
	msgs []sent
}

func (r *recorder) publish(topic string, qos byte, body []byte) error {
	var p spb.Payload
	if err := proto.Unmarshal(body, &p); err != nil {
		r.t.Fatalf("%s: not a Sparkplug B payload: %v", topic, err)
	}
	r.msgs = append(r.msgs, sent{topic, qos, &p})
	return nil
}

// take returns what was published since the last take.
func (r *recorder) take() []sent {
	out := r.msgs
	r.msgs = nil
	return out
}

func topics(ms []sent) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.topic)
	}
	return out
}

func metricNamed(p *spb.Payload, name string) *spb.Payload_Metric {
	for _, m := range p.Metrics {
		if m.GetName() == name {
			return m
		}
	}
	return nil
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// fixture is a node with two cameras that tracks time by hand.
func fixture(t *testing.T) (*Node, *recorder) {
	t.Helper()
	n := newNode("plant1", "cell1", time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	clock := t0
	n.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	n.Status(status("conveyor", "gate"))
	return n, &recorder{t: t}
}

func status(cams ...string) payload.Status {
	started := t0.Add(-time.Hour)
	st := payload.Status{State: "online", Agent: "cell1", Version: "1.2.3", Host: "box", Boot: "b00t", Started: &started,
		Models: []payload.ModelStatus{{Name: "parts", Iteration: "Iteration3"}, {Name: "colours", Iteration: "Iteration7"}}}
	for _, c := range cams {
		st.Cameras = append(st.Cameras, payload.CameraStatus{Name: c, State: "running", Read: 10})
	}
	return st
}

// aliasesOf maps each metric name of a birth to its alias.
func aliasesOf(p *spb.Payload) map[string]uint64 {
	out := map[string]uint64{}
	for _, m := range p.Metrics {
		out[m.GetName()] = m.GetAlias()
	}
	return out
}

// TestBirthSequence: NBIRTH has seq 0, the bdSeq (Int64) and Node Control/Rebirth (Boolean
// false) without aliases, and every node metric with name, alias, datatype and timestamp;
// then one DBIRTH per camera, seq 1 and 2; all QoS 0; aliases unique across the node.
func TestBirthSequence(t *testing.T) {
	n, rec := fixture(t)
	n.edge.bdSeq = 7
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms := rec.take()
	want := []string{"spBv1.0/plant1/NBIRTH/cell1", "spBv1.0/plant1/DBIRTH/cell1/conveyor", "spBv1.0/plant1/DBIRTH/cell1/gate"}
	if !slices.Equal(topics(ms), want) {
		t.Fatalf("topics %v, want %v", topics(ms), want)
	}
	seen := map[uint64]string{}
	for i, m := range ms {
		if m.qos != 0 || m.p.GetSeq() != uint64(i) || m.p.Seq == nil || m.p.GetTimestamp() == 0 {
			t.Errorf("%s: qos %d seq %v timestamp %d; want qos 0, seq %d, a timestamp", m.topic, m.qos, m.p.Seq, m.p.GetTimestamp(), i)
		}
		for _, mt := range m.p.Metrics {
			if mt.Name == nil || mt.Datatype == nil || mt.Timestamp == nil {
				t.Errorf("%s: metric %v lacks a name, datatype or timestamp", m.topic, mt)
			}
			if mt.GetName() == metricBdSeq || mt.GetName() == metricRebirth {
				if mt.Alias != nil {
					t.Errorf("%s has alias %d; Sparkplug says it has none", mt.GetName(), mt.GetAlias())
				}
				continue
			}
			if mt.GetAlias() == 0 {
				t.Errorf("%s %s: no alias", m.topic, mt.GetName())
			}
			if other, dup := seen[mt.GetAlias()]; dup {
				t.Errorf("alias %d of %s is also %s's", mt.GetAlias(), mt.GetName(), other)
			}
			seen[mt.GetAlias()] = m.topic + " " + mt.GetName()
		}
	}
	nb := ms[0].p
	if bd := metricNamed(nb, "bdSeq"); bd == nil || bd.GetDatatype() != uint32(spb.DataType_Int64) || bd.GetLongValue() != 7 {
		t.Errorf("NBIRTH bdSeq = %v, want Int64 7", bd)
	}
	if rb := metricNamed(nb, "Node Control/Rebirth"); rb == nil || rb.GetDatatype() != uint32(spb.DataType_Boolean) || rb.GetBooleanValue() || rb.GetValue() == nil {
		t.Errorf("NBIRTH Node Control/Rebirth = %v, want Boolean false", rb)
	}
	if it := metricNamed(nb, "Models/parts/Iteration"); it.GetStringValue() != "Iteration3" {
		t.Errorf("Models/parts/Iteration = %v", it)
	}
	db := ms[1].p
	for _, name := range []string{"State", "FPS", "Frames/Read", "Frames/Dropped", "Parts/Total", "Last Decision/Tag", "Last Decision/Time"} {
		if metricNamed(db, name) == nil {
			t.Errorf("DBIRTH lacks %s", name)
		}
	}
	if lt := metricNamed(db, "Last Decision/Tag"); !lt.GetIsNull() || lt.GetDatatype() != uint32(spb.DataType_String) {
		t.Errorf("Last Decision/Tag before any decision = %v, want a null String", lt)
	}
}

// TestDataCarriesOnlyChanges: after the births, a decision on one camera is one DDATA on
// that camera holding the decision's metrics alone, by the aliases of its DBIRTH, without
// names or datatypes; a flush with nothing changed sends nothing.
func TestDataCarriesOnlyChanges(t *testing.T) {
	n, rec := fixture(t)
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	aliases := aliasesOf(rec.take()[1].p)
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	if ms := rec.take(); len(ms) != 0 {
		t.Fatalf("nothing changed, yet sent %v", topics(ms))
	}
	n.Decision(payload.Decision{Camera: "conveyor", PartID: "p-1", TagName: "red", Probability: 0.9, Verdict: "pass", Created: t0})
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms := rec.take()
	if !slices.Equal(topics(ms), []string{"spBv1.0/plant1/DDATA/cell1/conveyor"}) {
		t.Fatalf("sent %v, want one DDATA on conveyor", topics(ms))
	}
	byAlias := map[uint64]*spb.Payload_Metric{}
	for _, m := range ms[0].p.Metrics {
		if m.Name != nil || m.Datatype != nil || m.Timestamp == nil {
			t.Errorf("DDATA metric %v: want alias and timestamp only, no name or datatype", m)
		}
		byAlias[m.GetAlias()] = m
	}
	want := map[string]func(*spb.Payload_Metric) bool{
		"Last Decision/Tag":         func(m *spb.Payload_Metric) bool { return m.GetStringValue() == "red" },
		"Last Decision/Probability": func(m *spb.Payload_Metric) bool { return m.GetFloatValue() == 0.9 },
		"Last Decision/Verdict":     func(m *spb.Payload_Metric) bool { return m.GetStringValue() == "pass" },
		"Last Decision/Part ID":     func(m *spb.Payload_Metric) bool { return m.GetStringValue() == "p-1" },
		"Last Decision/Time":        func(m *spb.Payload_Metric) bool { return m.GetLongValue() == uint64(t0.UnixMilli()) },
	}
	if len(byAlias) != len(want) {
		t.Errorf("DDATA has %d metrics, want the %d of the decision", len(byAlias), len(want))
	}
	for name, ok := range want {
		m := byAlias[aliases[name]]
		if m == nil || !ok(m) {
			t.Errorf("%s (alias %d) = %v", name, aliases[name], m)
		}
	}
	// the same decision again changes nothing
	n.Decision(payload.Decision{Camera: "conveyor", PartID: "p-1", TagName: "red", Probability: 0.9, Verdict: "pass", Created: t0})
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	if ms := rec.take(); len(ms) != 0 {
		t.Fatalf("the same values again sent %v", topics(ms))
	}
}

// TestSeqWrapsAcrossTheNode: after NBIRTH (0), every message of the node, whatever its
// camera or kind, takes the next seq, and 255 is followed by 0.
func TestSeqWrapsAcrossTheNode(t *testing.T) {
	n, rec := fixture(t)
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		cam := []string{"conveyor", "gate"}[i%2]
		n.Stats(payload.Stats{Cameras: []payload.CameraStats{{Name: cam, State: "running", FPS: float64(i), Read: uint64(i)}}})
		if i%50 == 0 {
			n.Stats(payload.Stats{MQTT: payload.MQTTStats{Connected: i%100 == 0, State: "connected"}})
		}
		if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
			t.Fatal(err)
		}
	}
	ms := rec.take()
	if len(ms) < 300 {
		t.Fatalf("only %d messages", len(ms))
	}
	wrapped := false
	for i, m := range ms {
		if m.p.Seq == nil || m.p.GetSeq() != uint64(i%256) {
			t.Fatalf("message %d (%s) has seq %v, want %d", i, m.topic, m.p.Seq, i%256)
		}
		wrapped = wrapped || (i > 0 && m.p.GetSeq() == 0)
	}
	if !wrapped || !slices.ContainsFunc(ms, func(m sent) bool { return strings.Contains(m.topic, "/NDATA/") }) {
		t.Errorf("the run did not wrap or had no NDATA: %d messages", len(ms))
	}
}

// TestNewTagRebirthsTheCamera: a tag counted for the first time after the DBIRTH cannot go
// in DDATA (no alias for it): the camera is born again with it, its other aliases kept and
// the new one unique; the next change of its count is DDATA by the new alias.
func TestNewTagRebirthsTheCamera(t *testing.T) {
	n, rec := fixture(t)
	n.Counts(payload.Counts{Camera: "conveyor", Parts: 1, Tags: map[string]uint64{"red": 1}, Verdicts: map[string]uint64{"pass": 1}})
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	first := rec.take()
	before := aliasesOf(first[1].p)
	all := map[uint64]bool{}
	for _, m := range first {
		for _, mt := range m.p.Metrics {
			all[mt.GetAlias()] = true
		}
	}
	n.Counts(payload.Counts{Camera: "conveyor", Parts: 2, Tags: map[string]uint64{"red": 1, "blue/dark": 1}, Verdicts: map[string]uint64{"pass": 2}})
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms := rec.take()
	if !slices.Equal(topics(ms), []string{"spBv1.0/plant1/DBIRTH/cell1/conveyor"}) {
		t.Fatalf("sent %v, want the conveyor's DBIRTH again", topics(ms))
	}
	after := aliasesOf(ms[0].p)
	for name, a := range before {
		if after[name] != a {
			t.Errorf("%s changed alias from %d to %d", name, a, after[name])
		}
	}
	newAlias := after["Parts/Tag/blue_dark"]
	if newAlias == 0 || all[newAlias] {
		t.Fatalf("the new tag's alias %d is missing or already used (aliases: %v)", newAlias, after)
	}
	if v := metricNamed(ms[0].p, "Parts/Tag/blue_dark"); v.GetLongValue() != 1 || v.GetDatatype() != uint32(spb.DataType_UInt64) {
		t.Errorf("Parts/Tag/blue_dark = %v, want UInt64 1", v)
	}
	n.Counts(payload.Counts{Camera: "conveyor", Parts: 3, Tags: map[string]uint64{"red": 1, "blue/dark": 2}, Verdicts: map[string]uint64{"pass": 3}})
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms = rec.take()
	if !slices.Equal(topics(ms), []string{"spBv1.0/plant1/DDATA/cell1/conveyor"}) {
		t.Fatalf("sent %v, want one DDATA", topics(ms))
	}
	got := map[uint64]uint64{}
	for _, m := range ms[0].p.Metrics {
		got[m.GetAlias()] = m.GetLongValue()
	}
	wantData := map[uint64]uint64{newAlias: 2, after["Parts/Total"]: 3, after["Parts/Verdict/pass"]: 3}
	if len(got) != len(wantData) {
		t.Errorf("DDATA %v, want %v", got, wantData)
	}
	for a, v := range wantData {
		if got[a] != v {
			t.Errorf("alias %d = %d, want %d (DDATA %v)", a, got[a], v, got)
		}
	}
}

// TestCamerasComeAndGo: a camera a status no longer lists is a DDEATH (with its seq); a new
// one a DBIRTH; a model added to the node a whole new birth sequence (NBIRTH seq 0).
func TestCamerasComeAndGo(t *testing.T) {
	n, rec := fixture(t)
	n.edge.bdSeq = 3
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	rec.take()
	n.Status(status("conveyor", "press"))
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms := rec.take()
	want := []string{"spBv1.0/plant1/DDEATH/cell1/gate", "spBv1.0/plant1/DBIRTH/cell1/press"}
	if !slices.Equal(topics(ms), want) {
		t.Fatalf("sent %v, want %v", topics(ms), want)
	}
	if ms[0].p.GetSeq() != 3 || ms[1].p.GetSeq() != 4 || len(ms[0].p.Metrics) != 0 || ms[0].p.GetTimestamp() == 0 {
		t.Errorf("DDEATH seq %d (metrics %d, timestamp %d), DBIRTH seq %d; want 3 (none, set) and 4", ms[0].p.GetSeq(), len(ms[0].p.Metrics), ms[0].p.GetTimestamp(), ms[1].p.GetSeq())
	}
	st := status("conveyor", "press")
	st.Models = append(st.Models, payload.ModelStatus{Name: "shapes", Iteration: "Iteration1"})
	n.Status(st)
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms = rec.take()
	want = []string{"spBv1.0/plant1/NBIRTH/cell1", "spBv1.0/plant1/DBIRTH/cell1/conveyor", "spBv1.0/plant1/DBIRTH/cell1/press"}
	if !slices.Equal(topics(ms), want) {
		t.Fatalf("after a new model sent %v, want %v", topics(ms), want)
	}
	if ms[0].p.GetSeq() != 0 || metricNamed(ms[0].p, "bdSeq").GetLongValue() != 3 || metricNamed(ms[0].p, "Models/shapes/Iteration") == nil {
		t.Errorf("NBIRTH seq %d bdSeq %v: want seq 0, bdSeq 3 and the new model", ms[0].p.GetSeq(), metricNamed(ms[0].p, "bdSeq"))
	}
}

// TestRebirthCommand: an NCMD with Node Control/Rebirth true is a rebirth request; the
// birth sequence it gets starts at seq 0 again with the same bdSeq and the same aliases.
func TestRebirthCommand(t *testing.T) {
	n, rec := fixture(t)
	n.edge.bdSeq = 9
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	before := rec.take()
	n.Decision(payload.Decision{Camera: "gate", TagName: "blue", Created: t0})
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	rec.take()
	body, _ := proto.Marshal(&spb.Payload{Timestamp: proto.Uint64(1), Metrics: []*spb.Payload_Metric{
		{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(spb.DataType_Boolean)), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}},
	}})
	cmd, err := parseCommand(body)
	if err != nil || !cmd.Rebirth {
		t.Fatalf("rebirth request read as %+v, %v", cmd, err)
	}
	n.requestRebirth()
	n.requestRebirth() // two requests before the goroutine looks are one
	if len(n.rebirth) != 1 {
		t.Fatalf("%d rebirth requests queued, want 1", len(n.rebirth))
	}
	<-n.rebirth
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	after := rec.take()
	if !slices.Equal(topics(after), topics(before)) {
		t.Fatalf("rebirth sent %v, want %v", topics(after), topics(before))
	}
	if after[0].p.GetSeq() != 0 || after[1].p.GetSeq() != 1 || metricNamed(after[0].p, "bdSeq").GetLongValue() != 9 {
		t.Errorf("rebirth NBIRTH seq %d, DBIRTH seq %d, bdSeq %d: want 0, 1, 9", after[0].p.GetSeq(), after[1].p.GetSeq(), metricNamed(after[0].p, "bdSeq").GetLongValue())
	}
	for i := range before {
		if !maps2Equal(aliasesOf(before[i].p), aliasesOf(after[i].p)) {
			t.Errorf("%s: aliases changed on rebirth", after[i].topic)
		}
	}
	if v := metricNamed(after[2].p, "Last Decision/Tag"); v.GetStringValue() != "blue" {
		t.Errorf("the gate's DBIRTH carries Last Decision/Tag %v, want the current blue", v)
	}
	// a false value, another metric, or garbage is no rebirth request
	for _, b := range [][]byte{
		mustMarshal(&spb.Payload{Metrics: []*spb.Payload_Metric{{Name: proto.String("Node Control/Rebirth"), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: false}}}}),
		mustMarshal(&spb.Payload{Metrics: []*spb.Payload_Metric{{Name: proto.String("Node Control/Reboot"), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}}}}),
		mustMarshal(&spb.Payload{Metrics: []*spb.Payload_Metric{{Name: proto.String("Node Control/Rebirth"), Value: &spb.Payload_Metric_StringValue{StringValue: "true"}}}}),
	} {
		if cmd, err := parseCommand(b); err != nil || cmd.Rebirth {
			t.Errorf("%x read as %+v, %v; want no rebirth", b, cmd, err)
		}
	}
	if _, err := parseCommand([]byte("{\"rebirth\":true}")); err == nil || !strings.Contains(err.Error(), "not a Sparkplug B payload") {
		t.Errorf("JSON read as a command: %v", err)
	}
}

func maps2Equal(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func mustMarshal(p *spb.Payload) []byte {
	b, err := proto.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCleanDeaths: a clean stop sends a DDEATH per camera (continuing seq), then the NDEATH
// at QoS 1 with the bdSeq alone and no seq, as the will carries it.
func TestCleanDeaths(t *testing.T) {
	n, rec := fixture(t)
	n.edge.bdSeq = 255
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	rec.take()
	if err := n.edge.deaths(rec, n.now()); err != nil {
		t.Fatal(err)
	}
	ms := rec.take()
	want := []string{"spBv1.0/plant1/DDEATH/cell1/conveyor", "spBv1.0/plant1/DDEATH/cell1/gate", "spBv1.0/plant1/NDEATH/cell1"}
	if !slices.Equal(topics(ms), want) {
		t.Fatalf("sent %v, want %v", topics(ms), want)
	}
	if ms[0].p.GetSeq() != 3 || ms[1].p.GetSeq() != 4 || ms[0].qos != 0 {
		t.Errorf("DDEATH seqs %d, %d (qos %d); want 3, 4 (qos 0)", ms[0].p.GetSeq(), ms[1].p.GetSeq(), ms[0].qos)
	}
	nd := ms[2]
	if nd.qos != 1 || nd.p.Seq != nil || len(nd.p.Metrics) != 1 || nd.p.Metrics[0].GetName() != "bdSeq" || nd.p.Metrics[0].GetLongValue() != 255 ||
		nd.p.Metrics[0].GetDatatype() != uint32(spb.DataType_Int64) {
		t.Errorf("NDEATH qos %d: %v; want qos 1, no seq, bdSeq Int64 255 alone", nd.qos, nd.p)
	}
	// the will is the same payload
	var will spb.Payload
	if err := proto.Unmarshal(deathPayload(255, t0), &will); err != nil || will.Seq != nil || metricNamed(&will, "bdSeq").GetLongValue() != 255 {
		t.Errorf("will: %v, %v", &will, err)
	}
}

// TestCamerasNotListedAreNotDevices: after a status, data for a camera it does not list (a
// camera a reload removed, finishing its last frame) makes no device.
func TestCamerasNotListedAreNotDevices(t *testing.T) {
	n, _ := fixture(t)
	n.Counts(payload.Counts{Camera: "gone", Parts: 1})
	n.Decision(payload.Decision{Camera: "gone", TagName: "x"})
	n.Stats(payload.Stats{Cameras: []payload.CameraStats{{Name: "gone"}}})
	n.CameraModels("gone", []payload.ModelRef{{Name: "parts", Iteration: "Iteration1"}})
	if s := n.snapshot(); len(s.devices) != 2 {
		t.Errorf("devices %v, want conveyor and gate", sortedNames(s.devices))
	}
	n.RemoveCamera("gate")
	if s := n.snapshot(); !slices.Equal(sortedNames(s.devices), []string{"conveyor"}) {
		t.Errorf("after RemoveCamera: devices %v", sortedNames(s.devices))
	}
}

// TestPollBeforeEachFlush: the function set with Poll runs before each birth and flush, so
// values the agent reads on demand (counts, the last decision) are current in what is sent.
func TestPollBeforeEachFlush(t *testing.T) {
	n, rec := fixture(t)
	parts := uint64(0)
	n.Poll(func() {
		parts++
		n.Counts(payload.Counts{Camera: "gate", Parts: parts})
	})
	if err := n.edge.births(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	if v := metricNamed(rec.take()[2].p, "Parts/Total"); v.GetLongValue() != 1 {
		t.Fatalf("the gate's DBIRTH has Parts/Total %v, want the polled 1", v)
	}
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil {
		t.Fatal(err)
	}
	ms := rec.take()
	if len(ms) != 1 || ms[0].topic != "spBv1.0/plant1/DDATA/cell1/gate" || ms[0].p.Metrics[0].GetLongValue() != 2 {
		t.Fatalf("after a poll: %v", topics(ms))
	}
	n.Poll(nil)
	if err := n.edge.flush(rec, n.snapshot(), n.now()); err != nil || len(rec.take()) != 0 {
		t.Fatalf("Poll(nil) still polls: %v", err)
	}
}
