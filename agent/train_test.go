package agent_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/iterations"
	"github.com/cvedge/cvedge/agent/tools/train"
	"github.com/cvedge/cvedge/models/store"
)

// TestTrainedCandidateShadows: train -> export -> download of a real export (a fake Training
// API on loopback) puts the iteration in the store as the colour model's shadow candidate,
// not active; an agent whose config names no shadow then runs it beside the active
// classifier on the demo video, and its stats show the comparison.
func TestTrainedCandidateShadows(t *testing.T) {
	const candidate = "1dd807c3-97bc-57c6-b821-d8500c86bc5b" // testdata/models/classifier-rgb01: answers as the demo classifier
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	api := testenv.StartFakeTraining(t, "p1", candidate)
	api.TrainingPolls, api.ExportPolls = 2, 3
	api.Download = testenv.ExportZip(t, testenv.Path("testdata", "models", "classifier-rgb01"))
	st, err := store.Open(cfg.Store.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(api.Certificate())
	sh := &train.Shipper{T: &collect.Training{Endpoint: api.URL, Key: testenv.FakeTrainingKey, Project: "p1", Client: store.Client(pool, 5*time.Second)},
		M: &iterations.Manager{Store: st, Settings: cfg.Models}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := sh.Ship(ctx, train.Options{Model: "colour", Poll: time.Millisecond, Client: store.Client(pool, 5*time.Second)}); err != nil {
		t.Fatal(err)
	}
	if state, _ := st.State("colour"); state.Active != "" || state.Shadow != candidate {
		t.Fatalf("store state %+v: want the candidate as shadow, nothing active", state)
	}
	m := cfg.Models["colour"]
	m.Shadow.MaxPerSecond = 1000 // no iteration or path: the store's candidate runs
	m.Shadow.SummaryAfter = 50
	cfg.Models["colour"] = m
	_, col := runDemo(t, broker, cfg)
	s, _ := lastStats(col, "cvedge/e2e/stats")
	var stats, summary *payload.ShadowStats
	for _, ms := range s.Models {
		if ms.Name == "colour" {
			stats, summary = ms.Shadow, ms.ShadowSummary
			if ms.Iteration == candidate {
				t.Fatalf("the candidate serves: %+v", ms)
			}
		}
	}
	if stats == nil || stats.Iteration != candidate || stats.Compared < 100 || stats.Agreement != 1 {
		t.Fatalf("shadow stats %+v", stats)
	}
	// the summary: the counters at exactly summary_after comparisons, in the stats and the store
	if summary == nil || summary.Compared != 50 || summary.Iteration != candidate || summary.Agreement != 1 {
		t.Fatalf("shadow summary in the stats %+v", summary)
	}
	raw, err := st.ShadowSummary("colour")
	if err != nil {
		t.Fatal(err)
	}
	var kept agent.ShadowSummary
	if err := json.Unmarshal(raw, &kept); err != nil || kept.Compared != 50 || kept.After != 50 || kept.Iteration != candidate || kept.Active == "" || len(kept.ByTag) == 0 {
		t.Fatalf("shadow summary in the store %s (%v)", raw, err)
	}
	col.ValidateAll(t)
}

// TestStoreShadowOnReload: a candidate put into the store while the agent runs is taken on
// the next reload, without a change to the config; clearing it ends the shadow run on the
// reload after; activating it ends the shadow run at once, and the store's candidate.
func TestStoreShadowOnReload(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.MQTT.StatsInterval = 100 * time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/stats")
	a := startAgent(t, cfg, nil)
	shadowOf := func() (*payload.ShadowStats, bool) {
		s, ok := lastStats(col, "cvedge/e2e/stats")
		for _, ms := range s.Models {
			if ms.Name == "colour" {
				return ms.Shadow, ok
			}
		}
		return nil, false
	}
	testenv.WaitFor(t, "stats", 30*time.Second, func() bool { _, ok := shadowOf(); return ok })
	if sh, _ := shadowOf(); sh != nil {
		t.Fatalf("a shadow before any candidate: %+v", sh)
	}
	st, err := store.Open(cfg.Store.Dir)
	if err != nil {
		t.Fatal(err)
	}
	const candidate = "1dd807c3-97bc-57c6-b821-d8500c86bc5b"
	m := &iterations.Manager{Store: st, Settings: cfg.Models}
	if _, err := m.AddCandidate("colour", testenv.Path("testdata", "models", "classifier-rgb01"), "test", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the store's candidate in the stats", 30*time.Second, func() bool { sh, _ := shadowOf(); return sh != nil && sh.Iteration == candidate })
	if _, err := st.SetShadow("colour", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "no shadow after clearing it", 30*time.Second, func() bool { sh, ok := shadowOf(); return ok && sh == nil })

	if _, err := st.SetShadow("colour", candidate); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the candidate again", 30*time.Second, func() bool { sh, _ := shadowOf(); return sh != nil && sh.Iteration == candidate })
	if _, err := a.Activate("colour", candidate, false); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the candidate active, without a shadow", 30*time.Second, func() bool {
		s, _ := lastStats(col, "cvedge/e2e/stats")
		for _, ms := range s.Models {
			if ms.Name == "colour" {
				return ms.Iteration == candidate && ms.Shadow == nil
			}
		}
		return false
	})
	if state, _ := st.State("colour"); state.Active != candidate || state.Shadow != "" {
		t.Fatalf("store after activating the candidate: %+v", state)
	}
}
