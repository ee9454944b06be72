package plant

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func status(agent, state string) payload.Status {
	return payload.Status{Schema: 1, Agent: agent, State: state, Host: agent + "-box", Updated: t0,
		Cameras: []payload.CameraStatus{{Name: "cam1", Kind: "usb", State: "online"}}}
}

func stats(agent string, uptime float64) payload.Stats {
	return payload.Stats{Schema: 1, Agent: agent, Time: t0, UptimeS: uptime, Cameras: []payload.CameraStats{{Name: "cam1", State: "online", FPS: 9.5}}}
}

func counts(agent, camera string, parts uint64) payload.Counts {
	return payload.Counts{Schema: 1, Agent: agent, Camera: camera, Since: t0, Updated: t0, Parts: parts, Tags: map[string]uint64{"red": parts}}
}

func decision(agent, camera string, n int) payload.Decision {
	return payload.Decision{Schema: 1, Agent: agent, Camera: camera, PartID: fmt.Sprintf("part-%d", n), TrackID: uint64(n), TagName: "red",
		Probability: 0.9, By: "line", Created: t0.Add(time.Duration(n) * time.Second)}
}

// jpegB64 is a small JPEG, base64, whose pixels depend on n.
func jpegB64(t testing.TB, n int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 12))
	for y := range 12 {
		for x := range 16 {
			img.Set(x, y, color.RGBA{uint8(n * 37), uint8(x * 9), uint8(y * 13), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func sample(t testing.TB, agent, camera string, n int) payload.Sample {
	det := 0
	return payload.Sample{Schema: 1, ID: fmt.Sprintf("s-%d", n), Agent: agent, Camera: camera, Reason: "low_confidence", Detail: "0.41 < 0.5",
		PredictionID: fmt.Sprintf("p-%d", n), FrameID: uint64(n), Captured: t0, Created: t0, Detection: &det,
		Prediction: &payload.Tag{TagName: "part", Probability: 0.9, BoundingBox: &payload.Box{Left: 0.1, Top: 0.1, Width: 0.3, Height: 0.3},
			Classification: &payload.Classification{Model: "colour", Predictions: []payload.Tag{{TagName: "red", Probability: 0.41}, {TagName: "blue", Probability: 0.38}}}},
		Models: []payload.ModelRef{{Stage: "detector", Name: "parts"}, {Stage: "classifier", Name: "colour"}},
		Crop:   &payload.Image{JPEG: jpegB64(t, n), Width: 16, Height: 12, Box: &payload.Box{Left: 0.1, Top: 0.1, Width: 0.3, Height: 0.3}}}
}

func openQueue(t testing.TB) *review.Queue {
	t.Helper()
	dir := t.TempDir()
	ds, err := dataset.Open(filepath.Join(dir, "dataset"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	q, err := review.Open(filepath.Join(dir, "review"), 64<<20, 24*time.Hour, ds)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// recorder is a Publish that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs []message
}

func (r *recorder) publish(topic string, body []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, message{topic, append([]byte(nil), body...)})
	return nil
}

// twoAgents feeds the messages of agent line3 (the default prefix) and cell2 (an ISA-95
// prefix) as the broker would deliver them.
func twoAgents(t *testing.T, p *Plant) {
	p.Handle("cvedge/line3/status", mustJSON(t, status("line3", "online")))
	p.Handle("cvedge/line3/stats", mustJSON(t, stats("line3", 10)))
	p.Handle("cvedge/line3/stats", mustJSON(t, stats("line3", 20))) // the latest wins
	p.Handle("cvedge/line3/cameras/cam1/counts", mustJSON(t, counts("line3", "cam1", 4)))
	p.Handle("cvedge/line3/cameras/cam1/counts", mustJSON(t, counts("line3", "cam1", 5)))
	p.Handle("cvedge/line3/cameras/cam2/counts", mustJSON(t, counts("line3", "cam2", 7)))
	for n := 1; n <= 25; n++ {
		p.Handle("cvedge/line3/cameras/cam1/decisions", mustJSON(t, decision("line3", "cam1", n)))
	}
	p.Handle("acme/plant1/cell2/status", mustJSON(t, status("cell2", "offline")))
	p.Handle("acme/plant1/cell2/cameras/top/decisions", mustJSON(t, decision("cell2", "top", 1)))
}

// TestViewOfTwoAgents: the status, latest stats, counts per camera and last 20 decisions
// (newest first) of two agents end up in the View, sorted by agent id.
func TestViewOfTwoAgents(t *testing.T) {
	p := New(Options{Log: quiet})
	twoAgents(t, p)
	v := p.View()
	if len(v.Agents) != 2 || v.Agents[0].Status.Agent != "cell2" || v.Agents[1].Status.Agent != "line3" {
		t.Fatalf("agents: %+v", v.Agents)
	}
	cell2, line3 := v.Agents[0], v.Agents[1]
	if cell2.Status.State != "offline" || cell2.Stats != nil || cell2.Counts != nil || len(cell2.Decisions["top"]) != 1 {
		t.Errorf("cell2: %+v", cell2)
	}
	if line3.Status.State != "online" || line3.Status.Host != "line3-box" || line3.Stats == nil || line3.Stats.UptimeS != 20 {
		t.Errorf("line3 status/stats: %+v %+v", line3.Status, line3.Stats)
	}
	if line3.Counts["cam1"].Parts != 5 || line3.Counts["cam2"].Parts != 7 || len(line3.Counts) != 2 {
		t.Errorf("line3 counts: %+v", line3.Counts)
	}
	d := line3.Decisions["cam1"]
	if len(d) != RecentDecisions || d[0].PartID != "part-25" || d[RecentDecisions-1].PartID != "part-6" {
		t.Errorf("line3 decisions: %d, first %+v", len(d), d)
	}
	if c := p.Counters(); c.Taken != 33 || c.Bad != 0 {
		t.Errorf("counters %+v", c)
	}
	// a View handed out is not changed by later messages
	p.Handle("cvedge/line3/cameras/cam1/decisions", mustJSON(t, decision("line3", "cam1", 26)))
	if d[0].PartID != "part-25" || p.View().Agents[1].Decisions["cam1"][0].PartID != "part-26" {
		t.Errorf("an earlier View changed, or the new decision is not first")
	}
	// the JSON the page polls
	var back struct {
		Agents []struct {
			Status struct{ Agent, State string }
		}
	}
	if err := json.Unmarshal(mustJSON(t, v), &back); err != nil || len(back.Agents) != 2 || back.Agents[1].Status.State != "online" {
		t.Errorf("view JSON: %v %+v", err, back)
	}
}

// TestAgentWithoutStatus: an agent whose status never came (not retained, or not yet) is
// shown as unknown, with what did come.
func TestAgentWithoutStatus(t *testing.T) {
	p := New(Options{Log: quiet})
	p.Handle("cvedge/press/cameras/c/counts", mustJSON(t, counts("press", "c", 3)))
	v := p.View()
	if len(v.Agents) != 1 || v.Agents[0].Status.Agent != "press" || v.Agents[0].Status.State != StateUnknown || v.Agents[0].Counts["c"].Parts != 3 {
		t.Fatalf("%+v", v)
	}
}

// TestSampleQueued: a sample lands in the review queue, once; one that carries an
// operator's correction does not (it is answered already); a sample's agent is known for
// its feedback even with no other message.
func TestSampleQueued(t *testing.T) {
	q := openQueue(t)
	p := New(Options{Queue: q, Log: quiet})
	s := sample(t, "line3", "cam1", 1)
	p.Handle("cvedge/line3/cameras/cam1/samples", mustJSON(t, s))
	p.Handle("cvedge/line3/cameras/cam1/samples", mustJSON(t, s)) // the broker sent it again
	corrected := sample(t, "line3", "cam1", 2)
	corrected.Reason, corrected.CorrectTag, corrected.Operator = "operator", "blue", "anna"
	p.Handle("cvedge/line3/cameras/cam1/samples", mustJSON(t, corrected))
	items := q.List(review.Filter{})
	if len(items) != 1 || items[0].ID != "s-1" || items[0].Agent != "line3" || items[0].Camera != "cam1" || items[0].Tag != "red" {
		t.Fatalf("queue: %+v", items)
	}
	if c := p.Counters(); c.Queued != 1 || c.Duplicates != 2 || c.Bad != 0 || c.NotQueued != 0 {
		t.Errorf("counters %+v", c)
	}
	if prefix, ok := p.Prefix("line3"); !ok || prefix != "cvedge/line3" {
		t.Errorf("prefix %q %v", prefix, ok)
	}
	// a sample the queue refuses (its image left out by the agent's size cap) is counted
	omitted := sample(t, "line3", "cam1", 3)
	omitted.Crop, omitted.ImageOmitted = nil, true
	p.Handle("cvedge/line3/cameras/cam1/samples", mustJSON(t, omitted))
	if c := p.Counters(); c.NotQueued != 1 || len(q.List(review.Filter{})) != 1 {
		t.Errorf("a sample without image: %+v", c)
	}
}

// TestFeedbackGoesToTheAgentsPrefix: a correction goes, as its JSON, to <prefix>/feedback
// of the agent named, the prefix its messages came under; an unknown agent and a correction
// the agent would refuse are errors, and nothing is sent.
func TestFeedbackGoesToTheAgentsPrefix(t *testing.T) {
	rec := &recorder{}
	p := New(Options{Log: quiet, Publish: rec.publish})
	twoAgents(t, p)
	det := 0
	fb := payload.Feedback{ID: "fb-1", PredictionID: "p-1", Tag: "blue", Detection: &det, Operator: "anna", Note: "looked blue"}
	if err := p.Feedback("cell2", fb); err != nil {
		t.Fatal(err)
	}
	if err := p.Feedback("line3", payload.Feedback{ID: "fb-2", PartID: "part-3", Tag: "red"}); err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 2 || rec.msgs[0].topic != "acme/plant1/cell2/feedback" || rec.msgs[1].topic != "cvedge/line3/feedback" {
		t.Fatalf("published %+v", rec.msgs)
	}
	got, err := payload.ParseFeedback(rec.msgs[0].raw)
	if err != nil || got.ID != "fb-1" || got.Tag != "blue" || got.PredictionID != "p-1" || got.Detection == nil || *got.Detection != 0 || got.Operator != "anna" {
		t.Errorf("feedback sent %s: %+v %v", rec.msgs[0].raw, got, err)
	}
	err = p.Feedback("press", fb)
	if err == nil || !strings.Contains(err.Error(), `agent "press"`) || !strings.Contains(err.Error(), "not known") {
		t.Errorf("an unknown agent: %v", err)
	}
	if err := p.Feedback("line3", payload.Feedback{ID: "fb-3", Tag: "red"}); err == nil || !strings.Contains(err.Error(), "predictionId") {
		t.Errorf("feedback naming no prediction: %v", err)
	}
	if len(rec.msgs) != 2 {
		t.Errorf("published after an error: %+v", rec.msgs)
	}
	// not connected: no publisher
	if err := New(Options{Log: quiet}).Feedback("x", fb); err == nil {
		t.Error("feedback without a broker or agent")
	}
}

// TestHostileMessages: messages that are not JSON, too large, of another schema, with names
// that are not names, or on topics of the wrong shape are counted and change nothing; the
// station goes on taking good messages.
func TestHostileMessages(t *testing.T) {
	q := openQueue(t)
	p := New(Options{Queue: q, Log: quiet})
	twoAgents(t, p)
	before, _ := json.Marshal(p.View())
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	badSample := sample(t, "line3", "cam1", 9)
	badSample.Crop.JPEG = base64.StdEncoding.EncodeToString([]byte("not a jpeg at all"))
	otherCam := sample(t, "line3", "cam2", 10)
	slashAgent := status("line3", "online")
	slashAgent.Agent = "../../etc"
	schema2 := status("line3", "offline")
	schema2.Schema = 2
	bad := []struct{ topic, body string }{
		{"cvedge/line3/status", "not json"},
		{"cvedge/line3/status", "null"},
		{"cvedge/line3/status", "[1,2,3]"},
		{"cvedge/line3/status", `{"schema":1,"agent":"line3","state":"exploded"}`},
		{"cvedge/line3/status", string(mustJSON(t, slashAgent))},
		{"cvedge/line3/status", string(mustJSON(t, schema2))},
		{"cvedge/line3/status", "\xff\xfe{}"},
		{"cvedge/line3/stats", deep},
		{"cvedge/line3/stats", `{"schema":1,"agent":"line3","uptimeS":"long"}`},
		{"cvedge/line3/stats", `{"schema":1,"agent":""}`},
		{"cvedge/line3/cameras/cam1/counts", `{"schema":1,"agent":"line3","camera":"cam9","parts":1}`},
		{"cvedge/line3/cameras/cam1/counts", `{"schema":1,"agent":"line3","camera":"cam1","parts":-1}`},
		{"cvedge/line3/cameras/cam1/counts", `{"schema":1,"agent":"line3","camera":"cam1","tags":` + strings.Repeat(" ", 70<<10) + `{}}`},
		{"cvedge/line3/cameras/cam1/decisions", `{"schema":1,"agent":"line3","camera":"cam1","note":"` + strings.Repeat("x", 20<<10) + `"}`},
		{"cvedge/line3/cameras/cam1/decisions", `{}`},
		{"cvedge/line3/cameras/cam1/decisions", ""},
		{"cvedge/line3/cameras/cam1/samples", "{"},
		{"cvedge/line3/cameras/cam1/samples", string(mustJSON(t, badSample))},
		{"cvedge/line3/cameras/cam1/samples", string(mustJSON(t, otherCam))},
		{"cvedge/line3/cameras/cam1/samples", strings.Repeat("x", 33<<20)},
		{"status", string(mustJSON(t, status("line3", "offline")))},
		{"/status", string(mustJSON(t, status("line3", "offline")))},
		{"cvedge/line3/cam1/counts", string(mustJSON(t, counts("line3", "cam1", 99)))},
		{"cvedge/line3/cameras/../counts", string(mustJSON(t, counts("line3", "..", 99)))},
		{"cvedge/line3/cameras//decisions", string(mustJSON(t, decision("line3", "", 99)))},
		{"cvedge/+/status", string(mustJSON(t, status("line3", "offline")))},
		{"cvedge/line3/\x00/status", string(mustJSON(t, status("line3", "offline")))},
		{"cvedge/" + strings.Repeat("x", 2000) + "/status", string(mustJSON(t, status("line3", "offline")))},
	}
	for _, m := range bad {
		p.Handle(m.topic, []byte(m.body))
	}
	after, _ := json.Marshal(p.View())
	if !bytes.Equal(before, after) {
		t.Errorf("hostile messages changed the view:\n%s\n%s", before, after)
	}
	if c := p.Counters(); c.Bad != uint64(len(bad)) || c.Queued != 0 {
		t.Errorf("counters %+v: want %d bad", c, len(bad))
	}
	if n := len(q.List(review.Filter{})); n != 0 {
		t.Errorf("%d samples queued", n)
	}
	// other kinds on a wider filter are ignored, not refused
	p.Handle("cvedge/line3/cameras/cam1/predictions", []byte("{}"))
	p.Handle("cvedge/line3/feedback", []byte("{}"))
	if c := p.Counters(); c.Ignored != 2 || c.Bad != uint64(len(bad)) {
		t.Errorf("counters %+v", c)
	}
	// and good messages still come through
	p.Handle("cvedge/line3/status", mustJSON(t, status("line3", "offline")))
	if v := p.View(); v.Agents[1].Status.State != "offline" {
		t.Errorf("a good status after the bad ones: %+v", v.Agents[1].Status)
	}
}

// TestBounds: beyond MaxAgents agents, MaxCameras cameras an agent or MaxBytes in all, the
// messages of new agents and cameras are dropped and counted; those known go on.
func TestBounds(t *testing.T) {
	p := New(Options{Log: quiet, MaxAgents: 2, MaxCameras: 1})
	p.Handle("cvedge/a/status", mustJSON(t, status("a", "online")))
	p.Handle("cvedge/b/status", mustJSON(t, status("b", "online")))
	p.Handle("cvedge/c/status", mustJSON(t, status("c", "online")))
	p.Handle("cvedge/a/cameras/cam1/counts", mustJSON(t, counts("a", "cam1", 1)))
	p.Handle("cvedge/a/cameras/cam2/counts", mustJSON(t, counts("a", "cam2", 1)))
	p.Handle("cvedge/a/cameras/cam1/counts", mustJSON(t, counts("a", "cam1", 2)))
	v := p.View()
	if len(v.Agents) != 2 || len(v.Agents[0].Counts) != 1 || v.Agents[0].Counts["cam1"].Parts != 2 {
		t.Fatalf("%+v", v)
	}
	if c := p.Counters(); c.OverLimit != 2 || c.Taken != 4 {
		t.Errorf("counters %+v", c)
	}
	if err := p.Feedback("c", payload.Feedback{ID: "f", PredictionID: "p", Tag: "x"}); err == nil {
		t.Error("feedback to an agent over the bound")
	}

	one := int64(len(mustJSON(t, status("a", "online"))))
	p = New(Options{Log: quiet, MaxBytes: 2*one + 10})
	p.Handle("cvedge/a/status", mustJSON(t, status("a", "online")))
	p.Handle("cvedge/b/status", mustJSON(t, status("b", "online")))
	p.Handle("cvedge/b/status", mustJSON(t, status("b", "offline"))) // a replacement of the same size fits
	p.Handle("cvedge/a/cameras/c/decisions", mustJSON(t, decision("a", "c", 1)))
	if c := p.Counters(); c.OverLimit != 1 || c.Taken != 3 {
		t.Errorf("bytes bound: counters %+v", c)
	}
	// a cleared retained status forgets the agent and frees its bytes
	p.Handle("cvedge/b/status", nil)
	p.Handle("cvedge/a/cameras/c/decisions", mustJSON(t, decision("a", "c", 1)))
	if c := p.Counters(); c.Forgotten != 1 || c.Taken != 4 || p.Agents() != 1 {
		t.Errorf("after clearing b: counters %+v, %d agents", c, p.Agents())
	}
}

// TestClearedCounts: clearing a camera's retained counts removes them from the view.
func TestClearedCounts(t *testing.T) {
	p := New(Options{Log: quiet})
	twoAgents(t, p)
	p.Handle("cvedge/line3/cameras/cam2/counts", []byte{})
	if c := p.View().Agents[1].Counts; len(c) != 1 || c["cam1"].Parts != 5 {
		t.Errorf("counts %+v", c)
	}
}

// TestRefusalsLogRateLimited: a flood of bad messages makes one warning per LogEvery, which
// says how many were suppressed, and debug lines for the rest.
func TestRefusalsLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	now := t0
	p := New(Options{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), Now: func() time.Time { return now }})
	for range 100 {
		p.Handle("cvedge/x/status", []byte("garbage"))
	}
	if n := strings.Count(buf.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for 100 bad messages:\n%s", n, buf.String())
	}
	now = now.Add(LogEvery + time.Second)
	p.Handle("cvedge/x/status", []byte("garbage"))
	if n := strings.Count(buf.String(), "level=WARN"); n != 2 || !strings.Contains(buf.String(), "suppressed=99") {
		t.Fatalf("after LogEvery:\n%s", buf.String())
	}
	if c := p.Counters(); c.Bad != 101 {
		t.Errorf("counters %+v", c)
	}
}

// TestFilters: a prefix pattern gives the five filters of the messages followed; patterns
// that would follow everything, or are not patterns, are refused.
func TestFilters(t *testing.T) {
	f, err := Filters([]string{DefaultPrefix, "acme/+/+"})
	want := []string{"cvedge/+/status", "cvedge/+/stats", "cvedge/+/cameras/+/samples", "cvedge/+/cameras/+/counts", "cvedge/+/cameras/+/decisions",
		"acme/+/+/status", "acme/+/+/stats", "acme/+/+/cameras/+/samples", "acme/+/+/cameras/+/counts", "acme/+/+/cameras/+/decisions"}
	if err != nil || strings.Join(f, " ") != strings.Join(want, " ") {
		t.Fatalf("%v %v", f, err)
	}
	for _, bad := range []string{"", "cvedge/#", "#", "/cvedge/+", "cvedge/+/", "cvedge/a+", "a\x00b"} {
		if _, err := Filters([]string{bad}); err == nil {
			t.Errorf("pattern %q taken", bad)
		}
	}
	if _, err := Filters(nil); err == nil {
		t.Error("no pattern taken")
	}
}

// TestParseTopic: the shapes of the topics followed, the prefix kept whole.
func TestParseTopic(t *testing.T) {
	cases := map[string]Topic{
		"cvedge/line3/status":                       {Prefix: "cvedge/line3", Kind: Status},
		"acme/plant1/line3/cell2/stats":             {Prefix: "acme/plant1/line3/cell2", Kind: Stats},
		"cvedge/line3/cameras/cam-1/samples":        {Prefix: "cvedge/line3", Kind: Samples, Camera: "cam-1"},
		"a/cameras/b/counts":                        {Prefix: "a", Kind: Counts, Camera: "b"},
		"x/y/cameras/cameras/cameras/decisions":     {Prefix: "x/y/cameras", Kind: Decisions, Camera: "cameras"},
		"cvedge/cameras/status":                     {Prefix: "cvedge/cameras", Kind: Status},
		"plant/cameras/top/counts/cameras/c/counts": {Prefix: "plant/cameras/top/counts", Kind: Counts, Camera: "c"},
	}
	for topic, want := range cases {
		got, err := ParseTopic(topic)
		if err != nil || got != want || got.String() != topic {
			t.Errorf("%q: %+v %v", topic, got, err)
		}
	}
	for _, other := range []string{"cvedge/line3/cameras/cam1/predictions", "cvedge/line3/feedback", "cvedge/line3/cameras/c/parts/image"} {
		if _, err := ParseTopic(other); err != ErrOtherTopic {
			t.Errorf("%q: %v", other, err)
		}
	}
	for _, bad := range []string{"", "status", "/stats", "cameras/c/counts", "x/c/counts", "x/cameras/c d/samples", "x/+/status", "x/#"} {
		if _, err := ParseTopic(bad); err == nil || err == ErrOtherTopic {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestPrefixFollowsTheStatus: an agent's feedback goes to the prefix of its status; messages
// naming it under another prefix (a second agent given the same agent.id, or a client posing
// as it) are refused and do not take its feedback; an agent moved to a new prefix sends its
// status there, and its feedback follows.
func TestPrefixFollowsTheStatus(t *testing.T) {
	rec := &recorder{}
	q := openQueue(t)
	p := New(Options{Queue: q, Log: quiet, Publish: rec.publish})
	twoAgents(t, p)
	fb := payload.Feedback{ID: "fb-1", PredictionID: "p-1", Tag: "blue"}
	p.Handle("cvedge/cell2/cameras/top/samples", mustJSON(t, sample(t, "cell2", "top", 1)))
	p.Handle("cvedge/cell2/cameras/top/decisions", mustJSON(t, decision("cell2", "top", 7)))
	p.Handle("cvedge/cell2/stats", mustJSON(t, stats("cell2", 1)))
	if c := p.Counters(); c.Bad != 3 || c.Queued != 0 {
		t.Errorf("messages under another prefix than the status's: %+v", c)
	}
	if err := p.Feedback("cell2", fb); err != nil || rec.msgs[0].topic != "acme/plant1/cell2/feedback" {
		t.Fatalf("feedback went to %+v: %v", rec.msgs, err)
	}
	p.Handle("acme/plant2/cell2/status", mustJSON(t, status("cell2", "online")))
	p.Handle("acme/plant2/cell2/cameras/top/decisions", mustJSON(t, decision("cell2", "top", 8)))
	if err := p.Feedback("cell2", fb); err != nil || len(rec.msgs) != 2 || rec.msgs[1].topic != "acme/plant2/cell2/feedback" {
		t.Fatalf("feedback after the move went to %+v: %v", rec.msgs, err)
	}
	if d := p.View().Agents[0].Decisions["top"]; len(d) != 2 || d[0].PartID != "part-8" {
		t.Errorf("decisions %+v", d)
	}
	// an agent with no status yet goes where its latest message came from
	p.Handle("cvedge/press/cameras/c/counts", mustJSON(t, counts("press", "c", 1)))
	p.Handle("plant/press/cameras/c/counts", mustJSON(t, counts("press", "c", 2)))
	if prefix, _ := p.Prefix("press"); prefix != "plant/press" {
		t.Errorf("press: %q", prefix)
	}
}
