package steps_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
)

// chat is a chat-completions server on loopback: every request gets reply, once release is
// closed (nil: at once); it keeps the system prompt of each request.
type chat struct {
	reply   string
	release chan struct{}
	mu      sync.Mutex
	prompts []string
}

func (c *chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []struct {
			Content any `json:"content"`
		} `json:"messages"`
	}
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &req)
	c.mu.Lock()
	if len(req.Messages) > 0 {
		s, _ := req.Messages[0].Content.(string)
		c.prompts = append(c.prompts, s)
	}
	c.mu.Unlock()
	if c.release != nil {
		<-c.release
	}
	json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"content": c.reply}}}})
}

func (c *chat) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.prompts...)
}

// llmCamera is the llm and parts steps of camera cam, with the LLM at srv (no budget cap),
// asked about colour's and size's answers under 0.7.
type llmCamera struct {
	fb           *steps.Fallback
	llm, parts   pipeline.Step
	rec          *publish.Recorder
	ended        *steps.EndedParts
	frame        *pipeline.Frame
	cc           configs.Camera
	closeSamples func()
}

func newLLMCamera(t *testing.T, srv *httptest.Server) *llmCamera {
	t.Helper()
	rec := &publish.Recorder{}
	e := env(rec)
	cfg := configs.Default().LLM
	cfg.Enabled, cfg.Endpoint, cfg.Timeout, cfg.PerMinute, cfg.PerHour = true, srv.URL+"/v1/chat/completions", 10*time.Second, 0, 0
	fb := steps.NewFallback(e, cfg)
	fb.Start()
	models := map[string]configs.Model{
		"colour": {LLM: configs.ModelLLM{Prompt: "Name the paint colour.", Below: 0.7, Tags: []string{"red", "blue"}}},
		"size":   {LLM: configs.ModelLLM{Prompt: "Is the part large or small?", Below: 0.7, Tags: []string{"large", "small"}}},
	}
	samples := steps.NewSamples(e, "cam", 0.1, configs.Default().Samples, false, 1)
	q := steps.NewPartQuestions(fb)
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector, cc.Tracking.MaxMissed = "cam", "det", 2
	ended := steps.NewEndedParts(time.Minute)
	f := frame(t, 64, 48)
	t.Cleanup(f.Close)
	return &llmCamera{fb: fb, rec: rec, ended: ended, cc: cc, frame: &pipeline.Frame{Frame: f}, closeSamples: samples.Close,
		llm:   steps.NewLLM(fb, samples, "cam", models, q),
		parts: steps.PartsWith(steps.NewParts(e, cc, nil, nil, nil), q, ended)}
}

// handle runs one frame through the llm and parts steps, as the camera's goroutine does.
func (c *llmCamera) handle(msg *payload.Prediction) {
	c.llm.Handle(context.Background(), c.frame, msg)
	c.parts.Handle(context.Background(), c.frame, msg)
}

// ends returns the end events published.
func (c *llmCamera) ends(t *testing.T) []payload.Part {
	t.Helper()
	evs, err := publish.Decode[payload.Part](c.rec, "/cameras/cam/parts")
	if err != nil {
		t.Fatal(err)
	}
	var out []payload.Part
	for _, ev := range evs {
		if ev.Event == "end" {
			out = append(out, ev)
		}
	}
	return out
}

// at is detection classified() of part track at x, 0 touching the frame's left edge.
func at(track uint64, x float32, tag string, p float32) payload.Tag {
	return classified(track, x, tag, p, false, "")
}

// TestLLMAsksOncePerPart: a part uncertain on every frame is asked about once, on its first
// frame wholly in view (the two frames before show a sliver at the edge), while its frames
// go on; the answer reaches the part's decision from the fallback's goroutine, and decides a
// part whose frames split between two tags (red slightly ahead) for the LLM's blue.
func TestLLMAsksOncePerPart(t *testing.T) {
	srv := &chat{reply: `{"tag":"blue","reason":"blue paint"}`, release: make(chan struct{})}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newLLMCamera(t, hs)
	defer c.closeSamples()
	tags := []string{"red", "blue"}
	probs := []float32{0.62, 0.6}
	id := uint64(0)
	next := func(x float32) {
		id++
		i := int(id) % 2
		c.handle(prediction(fmt.Sprintf("p%d", id), id, at(7, x, tags[i], probs[i])))
	}
	next(0) // at the edge: passed over
	next(0)
	for range 6 {
		next(0.3)
	}
	close(srv.release)
	// frames go on while the answer comes back on the fallback's goroutine
	for c.fb.Stats().Answered == 0 {
		next(0.3)
		if id > 100000 {
			t.Fatal("no answer")
		}
	}
	next(0.3)
	if id%2 == 1 { // as many red frames as blue ones
		next(0.3)
	}
	for range c.cc.Tracking.MaxMissed + 1 {
		id++
		c.handle(prediction("empty", id))
	}
	c.fb.Stop()
	if calls := srv.calls(); len(calls) != 1 || !strings.Contains(calls[0], "Allowed tags: red, blue.") {
		t.Fatalf("%d calls about one part uncertain on %d frames, want 1 with the colour tags: %.200q", len(calls), id, calls)
	}
	ends := c.ends(t)
	if len(ends) != 1 {
		t.Fatalf("%d end events", len(ends))
	}
	ev := ends[0]
	if ev.Votes["red"] <= ev.Votes["blue"] {
		t.Fatalf("the frames should favour red: %v", ev.Votes)
	}
	l := ev.LLM
	if l == nil || l.State != steps.LLMAnswered || l.Tag != "blue" || l.Reason != "blue paint" || l.FrameID != 3 || l.PredictionID != "p3" || l.Model != "colour" {
		t.Fatalf("the end event's llm: %+v", l)
	}
	if want := 0.5 * float32(ev.Frames); l.Weight < want-0.001 || l.Weight > want+0.001 {
		t.Errorf("the answer weighs %v, want llm.part_weight 0.5 times the part's %d frames", l.Weight, ev.Frames)
	}
	if ev.TagName != "blue" || len(ev.Path) != 2 || ev.Path[1] != "blue" {
		t.Errorf("the part is decided %s (path %v), want the LLM's blue over the split frames: %+v", ev.TagName, ev.Path, ev)
	}
	if fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups"); len(fu) != 1 || fu[0].FrameID != 3 {
		t.Errorf("follow-ups %+v, want one, about frame 3", fu)
	}
}

// TestLLMPartEndsBeforeTheAnswer: a part that ends while its question is still out is decided
// without the answer, and says so; the answer that comes afterwards changes nothing.
func TestLLMPartEndsBeforeTheAnswer(t *testing.T) {
	srv := &chat{reply: `{"tag":"blue","reason":"blue paint"}`, release: make(chan struct{})}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newLLMCamera(t, hs)
	defer c.closeSamples()
	for i := range uint64(3) {
		c.handle(prediction("p", i+1, at(4, 0.3, "red", 0.6)))
	}
	for i := range uint64(c.cc.Tracking.MaxMissed + 1) {
		c.handle(prediction("empty", i+4))
	}
	ends := c.ends(t)
	close(srv.release) // the answer comes after the part ended
	// new parts come and go, and are asked about, while the answer comes back on the
	// fallback's goroutine (-race watches)
	track := uint64(10)
	for c.fb.Stats().Answered == 0 {
		track++
		c.handle(prediction("q", track, at(track, 0.3, "red", 0.6)))
		if track > 100000 {
			t.Fatal("no answer")
		}
	}
	c.fb.Stop()
	if len(ends) != 1 {
		t.Fatalf("%d end events before the answer", len(ends))
	}
	ev := ends[0]
	if ev.TagName != "red" || ev.LLM == nil || ev.LLM.State != steps.LLMPending || ev.LLM.Tag != "" || ev.LLM.Weight != 0 || ev.LLM.FrameID != 1 {
		t.Fatalf("a part ended before the answer: %+v, llm %+v", ev, ev.LLM)
	}
	if n := len(srv.calls()); n < 2 {
		t.Fatalf("%d calls, want one for each part", n)
	}
}

// TestLLMAsksTheSecondLevel: a detection whose first level is sure but whose routed second
// level is not is asked about with the second level's tags, on a camera that tracks (the
// part's decision follows the answer down its path) and on one that does not; so is the
// frame of a classifier alone.
func TestLLMAsksTheSecondLevel(t *testing.T) {
	srv := &chat{reply: `{"tag":"small","reason":"short"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newLLMCamera(t, hs)
	defer c.closeSamples()
	sure := func(track uint64) payload.Tag {
		d := classified(track, 0.3, "red", 0.95, false, "large")
		d.Classification.Next.Predictions[0].Probability = 0.4
		return d
	}
	c.handle(prediction("p1", 1, sure(0))) // not tracked
	for i := range uint64(4) {
		c.handle(prediction("p", i+2, sure(9)))
	}
	// a classifier alone, sure of red, routed to size, which is not sure
	alone := &payload.Prediction{ID: "alone", FrameID: 6, Models: []payload.ModelRef{{Name: "colour", Stage: "classifier"}, {Name: "size", Stage: "route"}},
		Predictions: []payload.Tag{{TagName: "red", Probability: 0.95}, {TagName: "blue", Probability: 0.05}},
		Route:       &payload.Classification{Model: "size", Predictions: []payload.Tag{{TagName: "large", Probability: 0.4}, {TagName: "small", Probability: 0.3}}}}
	c.llm.Handle(context.Background(), c.frame, alone)
	// and one not sure of red (over its threshold, so routed): asked about with colour's tags
	unsure := *alone
	unsure.ID, unsure.FrameID = "unsure", 7
	unsure.Predictions = []payload.Tag{{TagName: "red", Probability: 0.6}, {TagName: "blue", Probability: 0.4}}
	unsure.Route = &payload.Classification{Model: "size", Predictions: []payload.Tag{{TagName: "large", Probability: 0.9}}}
	c.llm.Handle(context.Background(), c.frame, &unsure)
	c.fb.Stop() // every answer in
	for i := range uint64(c.cc.Tracking.MaxMissed + 1) {
		c.handle(prediction("empty", i+8))
	}
	calls := srv.calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls, want one about the untracked detection, one about the part and two about the classifier alone's frames", len(calls))
	}
	if !strings.Contains(calls[3], "Name the paint colour.") || !strings.Contains(calls[3], "Allowed tags: red, blue.") {
		t.Errorf("a classifier alone unsure at the first level: asked %q, want the classifier's prompt and tags", calls[3])
	}
	for _, p := range calls[:3] {
		if !strings.Contains(p, "Is the part large or small?") || !strings.Contains(p, "Allowed tags: large, small.") {
			t.Errorf("asked %q, want the second level's prompt and tags", p)
		}
	}
	fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups")
	if len(fu) != 3 || // the fourth answer, small, is not a colour: refused
		fu[0].ModelTag != "large" || fu[0].ModelProbability != 0.4 || fu[2].PredictionID != "alone" || fu[2].ModelTag != "large" {
		t.Errorf("follow-ups %+v, want the second level's answer as the model's", fu)
	}
	ends := c.ends(t)
	if len(ends) != 1 || ends[0].LLM == nil || ends[0].LLM.Model != "size" || ends[0].TagName != "small" || strings.Join(ends[0].Path, "/") != "part/red/small" {
		t.Fatalf("the part asked about at the second level: %+v", ends)
	}
}

// TestEndedPartsForFeedback: a part that ends is remembered with the prediction of its best
// frame, for a correction by partId; the memory is bounded in count and age.
func TestEndedPartsForFeedback(t *testing.T) {
	srv := &chat{reply: `{"tag":"blue","reason":"x"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newLLMCamera(t, hs)
	defer c.closeSamples()
	defer c.fb.Stop()
	c.handle(prediction("p1", 1, at(3, 0.3, "red", 0.8), at(4, 0.6, "blue", 0.9)))
	c.handle(prediction("p2", 2, at(4, 0.62, "blue", 0.95), at(3, 0.31, "red", 0.9)))
	c.handle(prediction("p3", 3, at(3, 0.32, "red", 0.85)))
	for i := range uint64(c.cc.Tracking.MaxMissed + 1) {
		c.handle(prediction("empty", i+4))
	}
	ends := c.ends(t)
	if len(ends) != 2 {
		t.Fatalf("%d end events", len(ends))
	}
	for _, ev := range ends {
		p, ok := c.ended.Find(ev.PartID)
		if !ok || p.PredictionID != "p2" || p.FrameID != 2 || p.TrackID != ev.TrackID || ev.BestFrameID != 2 {
			t.Errorf("part %s (track %d, best frame %d): remembered %+v %v, want prediction p2", ev.PartID, ev.TrackID, ev.BestFrameID, p, ok)
		}
		msg := prediction("p2", 2, at(4, 0.62, "blue", 0.95), at(3, 0.31, "red", 0.9))
		if det := steps.DetectionOfTrack(msg, ev.TrackID); det < 0 || msg.Predictions[det].TrackID != ev.TrackID {
			t.Errorf("track %d: detection %d", ev.TrackID, det)
		}
	}
	if _, ok := c.ended.Find("no-such-part"); ok {
		t.Error("an unknown part was found")
	}
	m := steps.NewEndedParts(time.Hour)
	for i := range steps.MaxEndedParts + 1 {
		m.Add(steps.EndedPart{PartID: string(rune('A'+i%26)) + string(rune('0'+i/26)), PredictionID: "p", Ended: time.Now()})
	}
	if _, ok := m.Find("A0"); ok {
		t.Errorf("the first of %d parts is still remembered, beyond %d", steps.MaxEndedParts+1, steps.MaxEndedParts)
	}
	if _, ok := m.Find("B0"); !ok {
		t.Error("the second part is forgotten")
	}
	old := steps.NewEndedParts(-1) // every part is too old
	old.Add(steps.EndedPart{PartID: "x", Ended: time.Now()})
	if _, ok := old.Find("x"); ok {
		t.Error("a part older than the memory's age was found")
	}
}
