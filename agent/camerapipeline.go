package agent

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// CameraPipeline is the pipeline one camera of a config runs, built as the agent builds it
// (loadCamera, pipelineOptions): the same models (the model store's active iteration when
// the store has one, else models.<name>.path), routes, crop padding, per-tag thresholds,
// masks and quality gate. It is for desk tools that score the camera's models as they run
// (`cvedge eval --config`): no camera is opened, no shadow candidate is loaded and no step
// runs after the models. Close frees it.
type CameraPipeline struct {
	*pipeline.Pipeline
	// Camera is the camera's config.
	Camera configs.Camera
	// Roles names the model of each job the camera gives: "detector", "classifier" and
	// "routes.<tag>", in that order.
	Roles []ModelRole

	rt     *models.Runtime
	stages map[string]*pipeline.ModelStage
}

// ModelRole is a model a camera uses, the job it has there, and what it is.
type ModelRole struct {
	Role string
	Info models.Info
}

// OpenCameraPipeline loads the models camera name of cfg uses and returns its pipeline. It
// reads the model store (store.dir) when the folder exists, and creates nothing.
func OpenCameraPipeline(cfg *configs.Config, name string, log *slog.Logger) (_ *CameraPipeline, err error) {
	i := slices.IndexFunc(cfg.Cameras, func(c configs.Camera) bool { return c.Name == name })
	if i < 0 {
		var names []string
		for _, c := range cfg.Cameras {
			names = append(names, c.Name)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("camera %q: the config has no cameras; add one under cameras", name)
		}
		return nil, fmt.Errorf("camera %q is not in the config (cameras: %s): give one of those", name, strings.Join(names, ", "))
	}
	// no shadow candidates: they run beside the pipeline, never in it
	one := *cfg
	one.Models = maps.Clone(cfg.Models)
	for n, m := range one.Models {
		m.Shadow = configs.Shadow{}
		one.Models[n] = m
	}
	a := &Agent{log: log, noShadows: true}
	cp := &CameraPipeline{Camera: cfg.Cameras[i], stages: map[string]*pipeline.ModelStage{}}
	defer func() {
		if err != nil {
			cp.Close()
		}
	}()
	if cp.rt, err = models.NewRuntime(models.RuntimeOptions(cfg.ONNXRuntime, log)); err != nil {
		return nil, fmt.Errorf("onnxruntime.library: %w", err)
	}
	a.rt = cp.rt
	if _, serr := os.Stat(cfg.Store.Dir); serr == nil { // no store folder: no active iterations
		if a.store, err = store.Open(cfg.Store.Dir); err != nil {
			return nil, fmt.Errorf("store.dir: %w", err)
		}
	}
	if err = a.loadCamera(&one, i, cp.stages, map[string]string{}, &reuse{}, map[string]bool{}); err != nil {
		return nil, err
	}
	p := cp.Camera.Pipeline
	add := func(role, model string) {
		switch {
		case model == "":
		case one.Models[model].IsLLM(): // nothing loaded: its tags are the config's
			cp.Roles = append(cp.Roles, ModelRole{Role: role, Info: models.Info{Name: model, Format: "llm", Labels: one.Models[model].Tags}})
		default:
			cp.Roles = append(cp.Roles, ModelRole{Role: role, Info: cp.stages[model].Model().Info})
		}
	}
	add("detector", p.Detector)
	add("classifier", p.Classifier)
	for _, tag := range slices.Sorted(maps.Keys(p.Routes)) {
		add("routes."+tag, p.Routes[tag])
	}
	o := pipelineOptions(&one, cp.Camera, cp.stages)
	o.Agent, o.Camera = cfg.Agent.ID, cp.Camera.Name
	cp.Pipeline = pipeline.New(o)
	return cp, nil
}

// Close frees the pipeline, its models and onnxruntime.
func (cp *CameraPipeline) Close() {
	if cp.Pipeline != nil {
		cp.Pipeline.Close()
	}
	for _, st := range cp.stages {
		st.Close()
	}
	if cp.rt != nil {
		cp.rt.Close()
	}
}
