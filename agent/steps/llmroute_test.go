package steps_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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

// openAI is an OpenAI-compatible chat-completions endpoint on loopback that checks each
// request (model, an image_url data: URI, a strict json_schema response_format whose tag is
// an enum of the rare line's tags) and answers reply with usage, once release is closed (nil:
// at once).
type openAI struct {
	t       *testing.T
	reply   string
	release chan struct{}
	mu      sync.Mutex
	calls   int
	keys    []string
}

func (o *openAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		ResponseFormat struct {
			Type       string `json:"type"`
			JSONSchema struct {
				Strict bool `json:"strict"`
				Schema struct {
					Properties struct {
						Tag struct {
							Enum []string `json:"enum"`
						} `json:"tag"`
					} `json:"properties"`
				} `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		o.t.Errorf("request: %v", err)
	}
	o.mu.Lock()
	o.calls++
	o.keys = append(o.keys, r.Header.Get("Authorization"))
	o.mu.Unlock()
	rf := req.ResponseFormat
	if req.Model != "gpt-4o" || len(req.Messages) != 2 || !bytes.Contains(req.Messages[1].Content, []byte(`"url":"data:image/jpeg;base64,/9j/`)) ||
		rf.Type != "json_schema" || !rf.JSONSchema.Strict || strings.Join(rf.JSONSchema.Schema.Properties.Tag.Enum, ",") != "gizmo-7,gizmo-9" {
		o.t.Errorf("request: model %q, %d messages, response_format %+v", req.Model, len(req.Messages), rf)
	}
	if o.release != nil {
		<-o.release
	}
	json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"content": o.reply}}},
		"usage": map[string]int{"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020}})
}

func (o *openAI) n() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls
}

// routeCamera is the llm and parts steps of camera cam, whose classifier routes rare_line to
// the model rare_llm (type: llm), with the LLM at url and budget cfg.
type routeCamera struct {
	fb         *steps.Fallback
	llm, parts pipeline.Step
	rec        *publish.Recorder
	frame      *pipeline.Frame
	cc         configs.Camera
	logs       *bytes.Buffer
	samples    *steps.Samples
}

func newRouteCamera(t *testing.T, url string, budget func(*configs.LLM)) *routeCamera {
	return newRouteCameraWith(t, url, budget, configs.DefaultModel())
}

// newRouteCameraWith is newRouteCamera with colour, the classifier's settings.
func newRouteCameraWith(t *testing.T, url string, budget func(*configs.LLM), colour configs.Model) *routeCamera {
	t.Helper()
	rec := &publish.Recorder{}
	e := env(rec)
	logs := &bytes.Buffer{}
	e.Log = slog.New(slog.NewTextHandler(logs, nil))
	cfg := configs.Default().LLM
	cfg.Enabled, cfg.Endpoint, cfg.Model, cfg.Timeout, cfg.PerMinute, cfg.PerHour = true, url, "gpt-4o", 10*time.Second, 0, 0
	cfg.PromptPrice, cfg.CompletionPrice = 0.0025, 0.01
	if budget != nil {
		budget(&cfg)
	}
	fb := steps.NewFallback(e, cfg)
	fb.Start()
	rare := configs.DefaultModel()
	rare.Type, rare.Prompt, rare.Tags = "llm", "Tell the gizmos apart by their holes.", []string{"gizmo-7", "gizmo-9"}
	models := map[string]configs.Model{"colour": colour, "rare_llm": rare}
	samples := steps.NewSamples(e, "cam", 0.1, configs.Default().Samples, false, 1)
	q := steps.NewPartQuestions(fb)
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector, cc.Tracking.MaxMissed = "cam", "det", 2
	f := frame(t, 64, 48)
	t.Cleanup(f.Close)
	t.Cleanup(samples.Close)
	return &routeCamera{fb: fb, rec: rec, cc: cc, frame: &pipeline.Frame{Frame: f}, logs: logs, samples: samples,
		llm:   steps.NewLLM(fb, samples, "cam", models, q),
		parts: steps.PartsWith(steps.NewParts(e, cc, nil, nil, nil), q, nil)}
}

func (c *routeCamera) handle(msg *payload.Prediction) {
	c.llm.Handle(context.Background(), c.frame, msg)
	c.parts.Handle(context.Background(), c.frame, msg)
}

// rare is detection track at x, which the classifier (sure) says is of the rare line, routed
// to rare_llm: a level with no predictions (track 0: not tracked).
func rare(track uint64, x float32) payload.Tag {
	d := classified(track, x, "rare_line", 0.95, false, "")
	d.Classification.Next = &payload.Classification{Model: "rare_llm", Iteration: "gpt-4o", Predictions: []payload.Tag{}}
	return d
}

// TestLLMRouteDecidesThePart: a part that the classifier routes to the model of type: llm is
// asked about once however many frames see it, while its frames go on; its track ends
// before the answer, so its decision waits; the answer comes, and the part's decision and
// end event carry the LLM's tag with source llm. The usage is counted and priced.
func TestLLMRouteDecidesThePart(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-9","reason":"nine holes"}`, release: make(chan struct{})}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newRouteCamera(t, hs.URL+"/v1/chat/completions", nil)
	id := uint64(0)
	for range 5 {
		id++
		c.handle(prediction("p", id, rare(3, 0.3)))
	}
	for range c.cc.Tracking.MaxMissed + 3 { // the track ends: the decision waits for the LLM
		id++
		c.handle(prediction("empty", id))
	}
	if d, _ := publish.Decode[payload.Decision](c.rec, "/decisions"); len(d) != 0 {
		t.Fatalf("decided before the LLM answered, within llm.timeout: %+v", d)
	}
	close(srv.release)
	for c.fb.Stats().Answered == 0 {
		id++
		c.handle(prediction("empty", id))
		if id > 1_000_000 {
			t.Fatal("no answer")
		}
	}
	id++
	c.handle(prediction("empty", id))
	c.fb.Stop()
	if n := srv.n(); n != 1 {
		t.Fatalf("%d calls about one part seen on 5 frames, want 1", n)
	}
	d, _ := publish.Decode[payload.Decision](c.rec, "/decisions")
	if len(d) != 1 || d[0].TagName != "gizmo-9" || d[0].Source != "llm" || d[0].By != "end" {
		t.Fatalf("decisions %+v, want one: gizmo-9 from the llm", d)
	}
	var ends []payload.Part
	evs, _ := publish.Decode[payload.Part](c.rec, "/cameras/cam/parts")
	for _, ev := range evs {
		if ev.Event == "end" {
			ends = append(ends, ev)
		}
	}
	if len(ends) != 1 {
		t.Fatalf("%d end events", len(ends))
	}
	ev := ends[0]
	if ev.TagName != "gizmo-9" || ev.Source != "llm" || strings.Join(ev.Path, "/") != "part/rare_line/gizmo-9" ||
		ev.LLM == nil || !ev.LLM.Route || ev.LLM.State != steps.LLMAnswered || ev.LLM.Model != "rare_llm" || ev.LLM.Weight != 0 {
		t.Fatalf("end event %+v, llm %+v", ev, ev.LLM)
	}
	st := c.fb.Stats()
	if st.PromptTokens != 1000 || st.CompletionTokens != 20 || st.Cost != 0.0027 { // 1000*0.0025/1000 + 20*0.01/1000
		t.Fatalf("stats %+v", st)
	}
	if fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups"); len(fu) != 0 {
		t.Errorf("a part's answer goes with its decision, not as follow-ups: %+v", fu)
	}
}

// TestLLMRouteRegion: on a camera that does not track, each region routed to the LLM is
// asked about once and completed by a follow-up naming the route.
func TestLLMRouteRegion(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-7","reason":"seven holes"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newRouteCamera(t, hs.URL, nil)
	c.handle(prediction("p1", 1, rare(0, 0.3), classified(0, 0.6, "red", 0.9, false, "")))
	c.fb.Stop()
	fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups")
	if len(fu) != 1 || fu[0].Route != "rare_llm" || fu[0].Tag != "gizmo-7" || fu[0].ModelTag != "rare_line" || fu[0].PredictionID != "p1" ||
		fu[0].Detection == nil || *fu[0].Detection != 0 || fu[0].Agrees {
		t.Fatalf("follow-ups %+v", fu)
	}
}

// TestLLMRouteUnavailable: with the endpoint down, or refusing the key (and echoing it, as
// some proxies do), a routed region gets unknown with reason llm_unavailable, and its crop
// goes out as a sample; the key planted in the environment appears in no log line and no
// message.
func TestLLMRouteUnavailable(t *testing.T) {
	const key = "sk-planted-0c4f7e9a2b"
	t.Setenv("CVEDGE_LLM_KEY", key)
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close() // down: connections refused
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid key: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
	}))
	defer echo.Close()
	for _, endpoint := range []string{url, echo.URL} {
		testUnavailable(t, endpoint, key)
	}
}

func testUnavailable(t *testing.T, endpoint, key string) {
	t.Helper()
	c := newRouteCamera(t, endpoint, nil)
	c.handle(prediction("p1", 1, rare(0, 0.3)))
	c.fb.Stop()
	fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups")
	if len(fu) != 1 || fu[0].Tag != steps.Unknown || fu[0].Reason != steps.ReasonUnavailable || fu[0].Route != "rare_llm" {
		t.Fatalf("follow-ups %+v", fu)
	}
	smp, _ := publish.Decode[payload.Sample](c.rec, "/samples")
	if len(smp) != 1 || smp[0].Reason != "llm" || smp[0].Crop == nil || smp[0].Crop.JPEG == "" || !strings.Contains(smp[0].Detail, steps.ReasonUnavailable) {
		t.Fatalf("samples %+v", smp)
	}
	if st := c.fb.Stats(); st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(c.logs.String(), "no usable answer") {
		t.Fatalf("the failure was not logged: %s", c.logs)
	}
	for _, m := range c.rec.Messages("") {
		if bytes.Contains(m.Payload, []byte(key)) {
			t.Fatalf("the key is in a message on %s", m.Topic)
		}
	}
	if strings.Contains(c.logs.String(), key) {
		t.Fatalf("the key is in the log: %s", c.logs)
	}
}

// TestLLMRouteBudget: with llm.per_day 1 (no cap per minute or hour), the second part routed
// to the LLM is not asked: it is decided unknown, over budget, and its crop kept as a sample;
// so is the second region of a camera that does not track.
func TestLLMRouteBudget(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-7","reason":"seven holes"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newRouteCamera(t, hs.URL, func(l *configs.LLM) { l.PerDay = 1 })
	c.handle(prediction("p1", 1, rare(1, 0.2)))
	c.handle(prediction("p2", 2, rare(1, 0.2), rare(2, 0.6)))
	c.handle(prediction("p3", 3, rare(0, 0.4)))
	c.parts.(interface{ Close() }).Close()
	c.fb.Stop()
	if n := srv.n(); n != 1 {
		t.Fatalf("%d calls, want 1 (per_day 1)", n)
	}
	if st := c.fb.Stats(); st.OverBudget != 2 {
		t.Fatalf("stats %+v, want 2 over budget", st)
	}
	evs, _ := publish.Decode[payload.Part](c.rec, "/cameras/cam/parts")
	var two *payload.Part
	for i, ev := range evs {
		if ev.Event == "end" && ev.TrackID == 2 {
			two = &evs[i]
		}
	}
	if two == nil || two.TagName != steps.Unknown || two.Source != "" || two.LLM == nil || two.LLM.State != steps.LLMOverBudget || two.LLM.Reason != steps.ReasonOverBudget {
		t.Fatalf("the part over budget: %+v", two)
	}
	fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups")
	if len(fu) != 1 || fu[0].PredictionID != "p3" || fu[0].Tag != steps.Unknown || fu[0].Reason != steps.ReasonOverBudget {
		t.Fatalf("follow-ups %+v", fu)
	}
	if smp, _ := publish.Decode[payload.Sample](c.rec, "/samples"); len(smp) != 2 {
		t.Fatalf("%d samples, want the crops of the part and the region over budget", len(smp))
	}
}

// TestLLMRouteNoAnswerInTime: a part whose answer does not come within llm.timeout is not
// held for ever: it is decided unknown, and its llm says why (the wait ran out, or the call
// timed out, whichever came first).
func TestLLMRouteNoAnswerInTime(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-7","reason":"late"}`, release: make(chan struct{})}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer close(srv.release)
	c := newRouteCamera(t, hs.URL, func(l *configs.LLM) { l.Timeout = 200 * time.Millisecond })
	id := uint64(0)
	for range 3 {
		id++
		c.handle(prediction("p", id, rare(5, 0.3)))
	}
	var d []payload.Decision
	for len(d) == 0 {
		if id > 2000 {
			t.Fatal("the decision waits beyond llm.timeout")
		}
		id++
		c.handle(prediction("empty", id))
		time.Sleep(5 * time.Millisecond)
		d, _ = publish.Decode[payload.Decision](c.rec, "/decisions")
	}
	evs, _ := publish.Decode[payload.Part](c.rec, "/cameras/cam/parts")
	ev := evs[len(evs)-1]
	if d[0].TagName != steps.Unknown || d[0].Source != "" || ev.Event != "end" || ev.TagName != steps.Unknown || ev.LLM == nil ||
		(ev.LLM.Reason != steps.ReasonTimeout && ev.LLM.Reason != steps.ReasonUnavailable) {
		t.Fatalf("decision %+v, end %+v, llm %+v", d[0], ev, ev.LLM)
	}
	c.fb.Stop()
}

// TestLLMRouteAfterTheFallback: a part first asked about by the fallback (its classification
// uncertain, so not routed) and then routed to the LLM is asked again, as the route, and the
// route's answer decides it.
func TestLLMRouteAfterTheFallback(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-9","reason":"nine holes"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	colour := configs.DefaultModel()
	colour.LLM = configs.ModelLLM{Prompt: "Which gizmo?", Below: 0.6, Tags: []string{"gizmo-7", "gizmo-9"}}
	c := newRouteCameraWith(t, hs.URL, nil, colour)
	c.handle(prediction("p1", 1, classified(8, 0.3, "rare_line", 0.4, true, "")))
	answered := func(n uint64) { // bounded, not timed: the test fails rather than hangs
		for i := 0; c.fb.Stats().Answered < n; i++ {
			if i > 10000 {
				t.Fatalf("%d answers, want %d", c.fb.Stats().Answered, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	answered(1) // the fallback's answer comes before the route's question
	id := uint64(1)
	for range 4 {
		id++
		c.handle(prediction("p", id, rare(8, 0.3)))
	}
	answered(2)
	for range c.cc.Tracking.MaxMissed + 2 {
		id++
		c.handle(prediction("empty", id))
	}
	c.fb.Stop()
	if n := srv.n(); n != 2 {
		t.Fatalf("%d calls, want the fallback's and the route's", n)
	}
	d, _ := publish.Decode[payload.Decision](c.rec, "/decisions")
	if len(d) != 1 || d[0].TagName != "gizmo-9" || d[0].Source != "llm" {
		t.Fatalf("decisions %+v, want the route's answer", d)
	}
}

// TestLLMRouteRegionsOverBudgetEachGetTheirOutcome: on a camera without tracking, once the
// day's budget is spent every routed region still gets its follow-up (unknown,
// llm_over_budget), while the samples of their crops stop at 6 a minute even when the budget
// has no per-minute or per-hour cap (per_day alone).
func TestLLMRouteRegionsOverBudgetEachGetTheirOutcome(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-7","reason":"seven holes"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newRouteCamera(t, hs.URL, func(l *configs.LLM) { l.PerDay = 1 })
	for i := range 10 {
		c.handle(prediction(fmt.Sprintf("p%d", i), uint64(i+1), rare(0, 0.4)))
	}
	c.fb.Stop()
	if n := srv.n(); n != 1 {
		t.Fatalf("%d calls, want 1 (per_day 1)", n)
	}
	fu, _ := publish.Decode[payload.FollowUp](c.rec, "/followups")
	over := 0
	for _, f := range fu {
		if f.Tag == steps.Unknown && f.Reason == steps.ReasonOverBudget {
			over++
		}
	}
	if len(fu) != 10 || over != 9 {
		t.Fatalf("%d follow-ups, %d over budget; want 10, of which 9 over budget", len(fu), over)
	}
	if smp, _ := publish.Decode[payload.Sample](c.rec, "/samples"); len(smp) != 6 {
		t.Fatalf("%d samples of unanswered regions, want 6 (a minute's cap)", len(smp))
	}
}

// TestLLMRouteNeverAskedIsNotTheRoutingTag: a routed part seen only at the frame's edge (where
// the question waits for a whole view) and then gone is never asked; its decision waits
// llm.timeout for the question, then is unknown (llm_timeout), never the routing tag, which
// names no product.
func TestLLMRouteNeverAskedIsNotTheRoutingTag(t *testing.T) {
	srv := &openAI{t: t, reply: `{"tag":"gizmo-7","reason":"seven holes"}`}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := newRouteCamera(t, hs.URL, func(l *configs.LLM) { l.Timeout = 100 * time.Millisecond })
	c.handle(prediction("p1", 1, rare(1, 0)))
	c.handle(prediction("p2", 2, rare(1, 0)))
	var end *payload.Part
	for i := 3; end == nil && i < 300; i++ {
		c.handle(prediction(fmt.Sprintf("p%d", i), uint64(i)))
		evs, _ := publish.Decode[payload.Part](c.rec, "/cameras/cam/parts")
		for k := range evs {
			if evs[k].Event == "end" && evs[k].TrackID == 1 {
				end = &evs[k]
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.fb.Stop()
	if n := srv.n(); n != 0 {
		t.Fatalf("%d calls for a part only ever at the edge, want 0", n)
	}
	if end == nil || end.TagName != steps.Unknown || end.LLM == nil || end.LLM.Reason != steps.ReasonTimeout || !end.LLM.Route {
		t.Fatalf("the routed part never asked: %+v", end)
	}
}
