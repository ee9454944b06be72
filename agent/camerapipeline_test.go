package agent_test

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models/store"
)

// TestOpenCameraPipeline: the pipeline of a camera of the config, built for a desk tool, runs
// the model store's active iteration of a model, not models.<name>.path, as the agent does; it
// leaves the shadow candidate out (a missing one would fail the load); and it refuses a camera
// the config does not have, naming those it has, and a model given the wrong job, freeing
// what it loaded.
func TestOpenCameraPipeline(t *testing.T) {
	cfg := demoConfig(t, "tcp://127.0.0.1:1883", "")
	v2 := addToStore(t, cfg.Store.Dir, "colour", testenv.Path("testdata", "models", "classifier-v2"))
	s, err := store.Open(cfg.Store.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate("colour", v2.ID); err != nil {
		t.Fatal(err)
	}
	m := cfg.Models["colour"]
	m.Shadow.Path = "/nonexistent/candidate.zip"
	cfg.Models["colour"] = m
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	if _, err := agent.OpenCameraPipeline(cfg, "line9", log); err == nil || !strings.Contains(err.Error(), `camera "line9" is not in the config (cameras: conveyor)`) {
		t.Errorf("unknown camera: %v", err)
	}
	wrong := *cfg // the colour model's job given to the detector: refused after the runtime is up
	wrong.Models = map[string]configs.Model{"parts": cfg.Models["colour"], "colour": cfg.Models["colour"]}
	if _, err := agent.OpenCameraPipeline(&wrong, "conveyor", log); err == nil || !strings.Contains(err.Error(), `cameras[0].pipeline.detector: model "parts" is a classifier, not a detector`) {
		t.Errorf("wrong job: %v", err)
	}
	cp, err := agent.OpenCameraPipeline(cfg, "conveyor", log)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if len(cp.Roles) != 2 || cp.Roles[0].Role != "detector" || cp.Roles[0].Info.Name != "parts" || cp.Roles[1].Role != "classifier" ||
		!slices.Contains(cp.Roles[1].Info.Labels, "green_v2") {
		t.Fatalf("roles %+v", cp.Roles)
	}
	f, err := camera.ReadImage(testenv.Path("testdata", "demo", "stills", "frame_040.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := cp.Process(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Predictions) == 0 {
		t.Fatal("no part found on frame 40")
	}
	for _, p := range msg.Predictions {
		if p.Classification == nil || !strings.HasSuffix(p.Classification.Predictions[0].TagName, "_v2") {
			t.Errorf("a part classified %+v, not by the store's active iteration", p.Classification)
		}
	}
}

// TestOpenCameraPipelineDeskOnly: a route to a model of type llm gives the LLM's own tags as
// that route's role (nothing is loaded for it, and nothing panics), and the model store's
// shadow candidate is not loaded beside the pipeline.
func TestOpenCameraPipelineDeskOnly(t *testing.T) {
	cfg := demoConfig(t, "tcp://127.0.0.1:1883", "")
	addToStore(t, cfg.Store.Dir, "colour", testenv.Path("testdata", "demo", "classifier"))
	v2 := addToStore(t, cfg.Store.Dir, "colour", testenv.Path("testdata", "models", "classifier-v2"))
	s, err := store.Open(cfg.Store.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetShadow("colour", v2.ID); err != nil {
		t.Fatal(err)
	}
	cfg.Models["rare"] = configs.Model{Type: "llm", Tags: []string{"odd_part", "other"}, Prompt: "which part is it?"}
	cfg.LLM.Enabled = true
	cfg.Cameras[0].Pipeline.Routes = map[string]string{"red": "rare"}
	var logs strings.Builder
	cp, err := agent.OpenCameraPipeline(cfg, "conveyor", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if len(cp.Roles) != 3 || cp.Roles[2].Role != "routes.red" || cp.Roles[2].Info.Name != "rare" || !slices.Equal(cp.Roles[2].Info.Labels, []string{"odd_part", "other"}) {
		t.Errorf("roles %+v", cp.Roles)
	}
	if strings.Contains(strings.ToLower(logs.String()), "shadow") {
		t.Errorf("the store's candidate was loaded beside a desk tool's pipeline:\n%s", logs.String())
	}
}
