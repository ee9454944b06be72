package agent_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// chatServer speaks the chat-completions API: it answers each request with the next reply
// (a content string, or "" to hang past the timeout), and counts the requests.
type chatServer struct {
	mu      sync.Mutex
	replies []string
	calls   int
}

func (c *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	i := c.calls
	c.calls++
	reply := c.replies[i%len(c.replies)]
	c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer test-key" {
		http.Error(w, "no key", http.StatusUnauthorized)
		return
	}
	if reply == "" {
		time.Sleep(time.Second)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"content": reply}}}})
}

// TestLLMFallback: low-confidence crops go to a local chat-completions server. Good answers
// become follow-ups (and a sample when they disagree); invalid JSON, a tag outside the list
// and a timeout are counted, never published; the hourly budget caps the calls. The camera
// does not track, so every uncertain crop of every frame is a question.
func TestLLMFallback(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	chat := &chatServer{replies: []string{
		`{"tag":"red","reason":"red paint"}`,
		`not json`,
		`{"tag":"purple","reason":"?"}`,
		"",
		`{"tag":"blue","reason":"blue anodised"}`,
	}}
	srv := httptest.NewServer(chat)
	defer srv.Close()
	t.Setenv("CVEDGE_LLM_KEY", "test-key")
	cfg := demoConfig(t, broker.URL, "")
	cfg.Cameras[0].Tracking.Enabled = false
	cfg.LLM.Enabled, cfg.LLM.Endpoint, cfg.LLM.Model = true, srv.URL+"/v1/chat/completions", "local-vision"
	cfg.LLM.Timeout, cfg.LLM.PerMinute, cfg.LLM.PerHour = 300*time.Millisecond, 0, 5
	m := cfg.Models["colour"]
	m.LLM.Prompt, m.LLM.Below = "Parts are painted blue, green, red or yellow. Name the paint colour.", 0.9999
	cfg.Models["colour"] = m
	cfg.MQTT.StatsInterval = 200 * time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	testenv.WaitFor(t, "the LLM calls", 30*time.Second, func() bool {
		s, ok := lastStats(col, "cvedge/e2e/stats")
		return ok && s.LLM != nil && s.LLM.Answered+s.LLM.Invalid+s.LLM.OutsideTags+s.LLM.Failed >= 5
	})
	stop()
	preds := predictions(t, col, "conveyor")
	chat.mu.Lock()
	calls := chat.calls
	chat.mu.Unlock()
	if calls != 5 {
		t.Fatalf("%d calls; the budget is 5 an hour", calls)
	}
	byID := map[string]payload.Prediction{}
	for _, p := range preds {
		byID[p.ID] = p
	}
	var follow []payload.FollowUp
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/followups") {
		var f payload.FollowUp
		json.Unmarshal(raw, &f)
		follow = append(follow, f)
	}
	if len(follow) != 2 {
		t.Fatalf("%d follow-ups, want 2 (the valid answers)", len(follow))
	}
	disagreements := 0
	for _, f := range follow {
		p, ok := byID[f.PredictionID]
		if !ok || f.Source != "llm" || f.Model != "local-vision" || f.Detection == nil {
			t.Fatalf("follow-up %+v", f)
		}
		said := p.Predictions[*f.Detection].Classification.Predictions[0].TagName
		if f.ModelTag != said || f.Agrees != (f.Tag == said) {
			t.Fatalf("follow-up %+v, the model said %s", f, said)
		}
		if !f.Agrees {
			disagreements++
		}
	}
	var llmSamples int
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/samples") {
		var s payload.Sample
		json.Unmarshal(raw, &s)
		if s.Reason == "llm" {
			llmSamples++
			if !strings.Contains(s.Detail, "the LLM says") || s.Crop == nil {
				t.Fatalf("llm sample %+v", s)
			}
		}
	}
	if llmSamples != disagreements {
		t.Fatalf("%d llm samples for %d disagreements", llmSamples, disagreements)
	}
	s, _ := lastStats(col, "cvedge/e2e/stats")
	if l := s.LLM; l.Asked != 5 || l.Answered != 2 || l.Invalid != 1 || l.OutsideTags != 1 || l.Failed != 1 || l.OverBudget == 0 {
		t.Fatalf("llm stats %+v", l)
	}
	col.ValidateAll(t)
}

// TestLLMOncePerPartOnTheDemo: with every crop uncertain and no budget cap, the agent asks
// the LLM once per part of the demo video, not once per frame that sees it; every part's end
// event says what the LLM was asked and answered.
func TestLLMOncePerPartOnTheDemo(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	chat := &chatServer{replies: []string{`{"tag":"red","reason":"red paint"}`}}
	srv := httptest.NewServer(chat)
	defer srv.Close()
	t.Setenv("CVEDGE_LLM_KEY", "test-key")
	cfg := demoConfig(t, broker.URL, "")
	cfg.LLM.Enabled, cfg.LLM.Endpoint, cfg.LLM.Model = true, srv.URL+"/v1/chat/completions", "local-vision"
	cfg.LLM.Timeout, cfg.LLM.PerMinute, cfg.LLM.PerHour, cfg.LLM.Queue = 5*time.Second, 0, 0, 1000
	m := cfg.Models["colour"]
	m.LLM.Prompt, m.LLM.Below = "Parts are painted blue, green, red or yellow. Name the paint colour.", 0.9999
	cfg.Models["colour"] = m
	preds, col := runDemo(t, broker, cfg)
	tracks, detections := map[uint64]bool{}, 0
	trackOf := map[string][]uint64{} // prediction id -> its detections' trackIds
	for _, p := range preds {
		for _, d := range p.Predictions {
			tracks[d.TrackID] = true
			trackOf[p.ID] = append(trackOf[p.ID], d.TrackID)
			detections++
		}
	}
	chat.mu.Lock()
	calls := chat.calls
	chat.mu.Unlock()
	if calls == 0 || calls > len(tracks) {
		t.Fatalf("%d calls for %d parts (%d detections, each uncertain): want at most one per part", calls, len(tracks), detections)
	}
	asked := map[uint64]bool{}
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/followups") {
		var f payload.FollowUp
		json.Unmarshal(raw, &f)
		track := trackOf[f.PredictionID][*f.Detection]
		if asked[track] {
			t.Errorf("part %d asked about twice", track)
		}
		asked[track] = true
	}
	ends, answered := 0, 0
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
		var ev payload.Part
		json.Unmarshal(raw, &ev)
		if ev.Event != "end" {
			continue
		}
		ends++
		if ev.LLM == nil || ev.LLM.State == "failed" || (ev.LLM.State == "answered") != (ev.LLM.Tag == "red") {
			t.Errorf("part %d, uncertain in every frame, ended with llm %+v", ev.TrackID, ev.LLM)
		} else if ev.LLM.State == "answered" {
			answered++
		}
	}
	if ends == 0 || answered == 0 {
		t.Fatalf("%d parts ended, %d with the LLM's answer", ends, answered)
	}
	t.Logf("%d calls for %d parts seen on %d detections; %d of %d parts decided with the answer", calls, len(tracks), detections, answered, ends)
	col.ValidateAll(t)
}

// TestLLMRouteOnTheDemo: the demo's red parts are routed to a model of type: llm, which the
// agent loads nothing for; each red part is asked about once, and its decision is the LLM's
// tag, with source llm, while the other parts are decided by their frames.
func TestLLMRouteOnTheDemo(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	chat := &chatServer{replies: []string{`{"tag":"scarlet","reason":"a deep red"}`}}
	srv := httptest.NewServer(chat)
	defer srv.Close()
	t.Setenv("CVEDGE_LLM_KEY", "test-key")
	cfg := demoConfig(t, broker.URL, "")
	cfg.LLM.Enabled, cfg.LLM.Endpoint, cfg.LLM.Model = true, srv.URL+"/v1/chat/completions", "local-vision"
	cfg.LLM.Timeout, cfg.LLM.PerMinute, cfg.LLM.PerHour, cfg.LLM.Queue = 5*time.Second, 0, 0, 1000
	rare := configs.DefaultModel()
	rare.Type, rare.Tags, rare.Prompt = "llm", []string{"scarlet", "crimson"}, "Name the shade of red."
	cfg.Models["shades"] = rare
	cfg.Cameras[0].Pipeline.Routes = map[string]string{"red": "shades"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	preds, col := runDemo(t, broker, cfg)
	routed := map[uint64]bool{}
	for _, p := range preds {
		for _, d := range p.Predictions {
			if c := d.Classification; c != nil && c.Next != nil {
				if c.Next.Model != "shades" || len(c.Next.Predictions) != 0 || !strings.EqualFold(c.Predictions[0].TagName, "red") {
					t.Fatalf("a routed level: %+v", c.Next)
				}
				routed[d.TrackID] = true
			}
		}
	}
	chat.mu.Lock()
	calls := chat.calls
	chat.mu.Unlock()
	if len(routed) == 0 || calls == 0 || calls > len(routed) {
		t.Fatalf("%d calls for %d parts routed to the LLM: want one per part", calls, len(routed))
	}
	fromLLM := 0
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
		var ev payload.Part
		json.Unmarshal(raw, &ev)
		if ev.Event != "end" {
			continue
		}
		switch {
		case ev.Source == "llm":
			if ev.TagName != "scarlet" || !routed[ev.TrackID] || ev.LLM == nil || !ev.LLM.Route {
				t.Errorf("part %d decided by the LLM: %+v", ev.TrackID, ev)
			}
			fromLLM++
		case ev.TagName == "scarlet":
			t.Errorf("part %d: the LLM's tag without source llm", ev.TrackID)
		}
	}
	if fromLLM == 0 {
		t.Fatal("no part decided by the LLM")
	}
	t.Logf("%d calls for %d routed parts; %d decided by the LLM", calls, len(routed), fromLLM)
	col.ValidateAll(t)
}

// TestConfigCheckTakesAnLLMModel: `cvedge config check` accepts a route to a model of type:
// llm, loads nothing for it, and warns when the key's environment variable is empty.
func TestConfigCheckTakesAnLLMModel(t *testing.T) {
	cfg := demoConfig(t, "tcp://127.0.0.1:1", "")
	cfg.LLM.Enabled, cfg.LLM.Endpoint = true, "http://127.0.0.1:1/v1/chat/completions"
	rare := configs.DefaultModel()
	rare.Type, rare.Tags, rare.Prompt = "llm", []string{"scarlet", "crimson"}, "Name the shade of red."
	cfg.Models["shades"] = rare
	cfg.Cameras[0].Pipeline.Routes = map[string]string{"red": "shades"}
	t.Setenv("CVEDGE_LLM_KEY", "")
	var logs bytes.Buffer
	if err := agent.CheckConfig(cfg, true, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "model=shades") || !strings.Contains(logs.String(), "key_env=CVEDGE_LLM_KEY") {
		t.Fatalf("no warning about the empty key: %s", logs.String())
	}
}
