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
