package agent

import (
	"cmp"
	"fmt"
	"reflect"
	"time"

	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// reuse is what a reload may take over from the running config: a camera whose capture
// settings did not change keeps running, its recent frames stay answerable, and a model whose
// settings and export did not change keeps its loaded session.
type reuse struct {
	runs   map[string]*cameraRun // by camera name
	stages map[string]*pipeline.ModelStage
	paths  map[string]string        // the export each stage was loaded from (+ storeShadowMark and the store's candidate it runs)
	models map[string]configs.Model // the running config's models
	ring   configs.Ring             // the running config's ring
}

// storeShadowMark joins, in a stage's entry of reuse.paths, the export to the model store's
// shadow candidate the stage runs.
const storeShadowMark = "\x00shadow="

// sameCapture reports whether a camera configured as b reads exactly what one configured as
// a does: everything but what happens to the frames afterwards is the same.
func sameCapture(a, b configs.Camera) bool {
	for _, c := range []*configs.Camera{&a, &b} {
		c.Trigger, c.Interval, c.MaxFPS, c.Sampling = "", 0, 0, false
		c.QualityGate, c.Collect, c.Pipeline, c.Tracking = configs.QualityGate{}, configs.Collect{}, configs.Pipeline{}, configs.Tracking{}
		c.Parts = configs.Parts{}
	}
	return reflect.DeepEqual(a, b)
}

// build makes the cameras, loads the models of cfg, and gives each camera its pipeline and
// steps: the part of the agent a reload replaces. It takes over from prev (nil at start) the
// running cameras, their recent frames and the loaded models that cfg leaves as they are. It
// returns the export each model was loaded from. On error it frees what it made, and nothing
// of prev.
func (a *Agent) build(cfg *configs.Config, prev *reuse) (runs []*cameraRun, stages map[string]*pipeline.ModelStage, paths map[string]string, err error) {
	stages, paths = map[string]*pipeline.ModelStage{}, map[string]string{}
	if prev == nil {
		prev = &reuse{}
	}
	defer func() {
		if err != nil {
			for _, r := range runs {
				r.close()
			}
			for name, st := range stages {
				if prev.stages[name] != st {
					st.Close()
				}
			}
			runs, stages, paths = nil, nil, nil
		}
	}()
	for i := range cfg.Cameras {
		r, err := a.newRun(cfg, i, prev)
		if err != nil {
			return runs, stages, paths, err
		}
		runs = append(runs, r)
	}
	if err := a.loadStages(cfg, stages, paths, prev); err != nil {
		return runs, stages, paths, err
	}
	for i, r := range runs {
		if err := a.assemble(cfg, i, r, stages); err != nil {
			return runs, stages, paths, err
		}
	}
	return runs, stages, paths, nil
}

// newRun makes the run of camera i of cfg: its camera (the running one when prev has it with
// the same capture settings), and what it owns across its steps.
func (a *Agent) newRun(cfg *configs.Config, i int, prev *reuse) (*cameraRun, error) {
	cc := cfg.Cameras[i]
	r := &cameraRun{cfg: cc, triggers: make(chan pipeline.Trigger, 16)}
	if old, ok := prev.runs[cc.Name]; ok && sameCapture(old.cfg, cc) {
		r.cam, r.camStarted = old.cam, true // it keeps running: no frame lost, no reopening
	} else {
		cam, err := camera.New(cc, a.log)
		if err != nil {
			return nil, fmt.Errorf("cameras[%d].source: %w", i, err)
		}
		cam.Key = fmt.Sprintf("cameras[%d]", i)
		r.cam = cam
	}
	if old, ok := prev.runs[cc.Name]; ok && reflect.DeepEqual(prev.ring, cfg.Ring) {
		r.ring, r.ringFrom = old.ring, old // its recent frames stay answerable to feedback
		r.ended = old.ended                // and so do its parts
	} else {
		r.ring = steps.NewRing(cfg.Ring)
		r.ended = steps.NewEndedParts(cfg.Ring.MaxAge)
	}
	return r, nil
}

// loadStages loads every model a camera of cfg uses, checking that each does the job its
// cameras give it.
func (a *Agent) loadStages(cfg *configs.Config, stages map[string]*pipeline.ModelStage, paths map[string]string, prev *reuse) error {
	used := map[string]bool{}
	for i := range cfg.Cameras {
		if err := a.loadCamera(cfg, i, stages, paths, prev, used); err != nil {
			return err
		}
	}
	for name := range cfg.Models {
		if !used[name] {
			a.log.Warn("model configured but used by no camera; not loaded", "model", name)
		}
	}
	return nil
}

// loadCamera loads the models camera i of cfg uses into stages, noting them in used, and
// checks that each does the job the camera gives it.
func (a *Agent) loadCamera(cfg *configs.Config, i int, stages map[string]*pipeline.ModelStage, paths map[string]string, prev *reuse, used map[string]bool) error {
	cc := cfg.Cameras[i]
	type role struct {
		key, name string
		detector  bool
	}
	roles := []role{{"detector", cc.Pipeline.Detector, true}, {"classifier", cc.Pipeline.Classifier, false}}
	for tag, name := range cc.Pipeline.Routes {
		roles = append(roles, role{"routes." + tag, name, false})
	}
	for _, r := range roles {
		if r.name == "" {
			continue
		}
		used[r.name] = true
		if cfg.Models[r.name].IsLLM() { // the LLM: nothing to load
			continue
		}
		st, err := a.loadStage(cfg, stages, paths, prev, r.name)
		if err != nil {
			return err
		}
		if st.Detector() != r.detector {
			want := "a classifier"
			if r.detector {
				want = "a detector"
			}
			return fmt.Errorf("cameras[%d].pipeline.%s: model %q is a %s, not %s", i, r.key, r.name, st.Model().Info.Format, want)
		}
	}
	return nil
}

// loadStage loads a model once into stages, however many cameras use it: the model store's
// active iteration when it has one, else the configured path. A configured shadow starts
// with it. A model of prev with the same settings and export is taken over as it is.
func (a *Agent) loadStage(cfg *configs.Config, stages map[string]*pipeline.ModelStage, paths map[string]string, prev *reuse, name string) (*pipeline.ModelStage, error) {
	if st, ok := stages[name]; ok {
		return st, nil
	}
	mc := cfg.Models[name]
	var st store.State // no store (a desk tool away from one): no active iteration
	var err error
	if a.store != nil {
		if st, err = a.store.State(name); err != nil {
			return nil, err
		}
	}
	if st.Active != "" {
		if mc.Path, err = a.store.ExportPath(name, st.Active); err != nil {
			return nil, err
		}
	} else if mc.Path == "" {
		return nil, fmt.Errorf("models.%s.path: empty, and the model store (%s) has no active iteration of %q: give the export's path, or add one with `cvedge models add`", name, cfg.Store.Dir, name)
	}
	loaded := mc.Path
	fromStore := mc.Shadow.Iteration == "" && mc.Shadow.Path == "" && st.Shadow != "" && st.Shadow != st.Active && !a.noShadows
	if fromStore { // the store's candidate (cvedge train), when the config names none
		mc.Shadow.Iteration = st.Shadow
		loaded += storeShadowMark + st.Shadow // a new candidate in the store reloads the stage
	}
	if old, ok := prev.stages[name]; ok && prev.paths[name] == loaded && reflect.DeepEqual(prev.models[name], cfg.Models[name]) {
		stages[name], paths[name] = old, loaded
		return old, nil
	}
	stage, err := pipeline.LoadStage(a.rt, name, mc)
	if err != nil {
		return nil, fmt.Errorf("models.%s: %w", name, err)
	}
	m := stage.Model()
	stages[name], paths[name] = stage, loaded
	if sh := mc.Shadow; sh.Iteration != "" || sh.Path != "" {
		err := a.startShadow(name, stage, mc)
		switch {
		case err != nil && fromStore: // a candidate must not stop what serves
			a.log.Warn("the model store's shadow candidate does not run; the model serves without it (set another with `cvedge train`, or clear it with `cvedge models shadow --clear`)",
				"model", name, "candidate", st.Shadow, "err", err)
		case err != nil:
			return nil, err
		case fromStore:
			a.log.Info("shadow candidate from the model store", "model", name, "candidate", st.Shadow)
		}
	}
	a.log.Info("model loaded", "model", name, "format", m.Info.Format, "iteration", m.Info.Iteration,
		"input", fmt.Sprintf("%dx%d %s", m.Info.Input.Width, m.Info.Input.Height, m.Info.Input.Pixels.Order), "labels", len(m.Info.Labels))
	return stage, nil
}

// startShadow loads the candidate iteration of a model and runs it beside the active one.
func (a *Agent) startShadow(name string, stage *pipeline.ModelStage, mc configs.Model) error {
	sc := mc
	sc.Path = mc.Shadow.Path
	if mc.Shadow.Iteration != "" {
		p, err := a.store.ExportPath(name, mc.Shadow.Iteration)
		if err != nil {
			return fmt.Errorf("models.%s.shadow.iteration: %w", name, err)
		}
		sc.Path = p
	}
	m, err := models.Load(a.rt, name, sc)
	if err != nil {
		return fmt.Errorf("models.%s.shadow: %w", name, err)
	}
	if err := stage.SetShadow(m, mc.Shadow.MaxPerSecond); err != nil {
		m.Close()
		return fmt.Errorf("models.%s.shadow: %w", name, err)
	}
	stage.SetShadowSummary(uint64(mc.Shadow.SummaryAfter))
	a.log.Info("shadow run", "model", name, "active", stage.Ref().Iteration, "candidate", m.Info.Iteration, "max_per_second", mc.Shadow.MaxPerSecond)
	return nil
}

// assemble gives run r (camera i of cfg) its pipeline, on stages, and its steps. Its frames
// are numbered on from the last frame id of its camera in this boot.
func (a *Agent) assemble(cfg *configs.Config, i int, r *cameraRun, stages map[string]*pipeline.ModelStage) error {
	o := pipelineOptions(cfg, r.cfg, stages)
	o.Agent, o.Boot, o.Camera, o.Frames = cfg.Agent.ID, a.boot, r.cam.Name(), a.counter("frames", r.cam.Name())
	list, err := a.stepsFor(cfg, i, r, stages)
	if err != nil {
		return err
	}
	r.pl, r.steps = pipeline.New(o), list
	return nil
}

// pipelineOptions are what the pipeline of camera cc of cfg runs on its frames, on stages
// (loaded by loadCamera): its models, routes, crop padding, quality gate, thresholds and
// masks. Where its messages come from (agent, boot, camera, frame numbers) is the caller's.
func pipelineOptions(cfg *configs.Config, cc configs.Camera, stages map[string]*pipeline.ModelStage) pipeline.Options {
	p := cc.Pipeline
	o := pipeline.Options{Padding: float32(p.CropPadding), Gate: cc.QualityGate, Thresholds: p.Thresholds, Masks: cc.Masks}
	o.Motion = cc.Motion
	o.Motion.Hold = cc.MotionHold()
	if p.Detector != "" {
		o.Detector = stages[p.Detector]
	}
	if p.Classifier != "" {
		o.Classifier = stages[p.Classifier]
	}
	if first := cmp.Or(p.Detector, p.Classifier); first != "" {
		o.Project = cfg.Models[first].Project // as "iteration", the first stage's
	}
	if len(p.Routes) > 0 {
		o.Routes = map[string]pipeline.Stage{}
		for tag, name := range p.Routes {
			if mc := cfg.Models[name]; mc.IsLLM() {
				o.Routes[tag] = pipeline.NewLLMRoute(name, cfg.LLM.Model, mc)
				continue
			}
			o.Routes[tag] = stages[name]
		}
	}
	return o
}

// stepsFor lists what follows the models on each frame of run r (camera i of cfg), in the
// order it runs. A feature that is off for the camera is left out. A new per-frame feature
// is one file in agent/steps and one line here.
func (a *Agent) stepsFor(cfg *configs.Config, i int, r *cameraRun, stages map[string]*pipeline.ModelStage) (pipeline.Steps, error) {
	cc, name := r.cfg, r.cam.Name()
	r.snaps = steps.NewSnapshots(a.env, name)
	r.samples = steps.NewSamples(a.env, name, float32(cc.Pipeline.CropPadding), cfg.Samples, cc.Sampling && cfg.Samples.Enabled, uint64(i)+uint64(time.Now().UnixNano()))
	var shadow steps.Shadower // the classifier, when it runs a candidate beside it (configured, or the store's)
	if st, ok := stages[cc.Pipeline.Classifier]; ok && st.ShadowStats() != nil {
		shadow = st
	}
	collect, err := steps.NewCollect(cc.Collect, cfg.Agent.ID, name, r.samples, a.log)
	if err != nil {
		r.samples.Close() // not in a list of steps yet: close frees nothing of it
		return nil, fmt.Errorf("cameras[%d].collect.dir: %w", i, err)
	}
	questions := steps.NewPartQuestions(a.llm) // the LLM's answers about parts, for their decisions
	return pipeline.NewSteps(
		steps.NewTrack(cc.Tracking, cc.Pipeline.Detector != "", a.counter("tracks", name)),
		steps.NewVote(cc.Pipeline.Vote, cc.Pipeline.Detector != ""),
		steps.NewShadow(shadow, name, a.log),
		r.snaps,
		r.samples,
		steps.NewLLM(a.llm, r.samples, name, cfg.Models, questions),
		collect,
		r.ring,
		steps.NewCount(name, a.log),
		steps.NewPublish(a.env, name, byte(cfg.MQTT.QoS)),
		steps.NewLive(a.liveSink(), name, cfg.UI, a.env),
		steps.PartsWith(steps.NewParts(a.env, cc, a.metrics, a.countsOf(cc, cfg), steps.NewPartFrames(a.env, cc, r.samples)), questions, r.ended),
		steps.NewMetrics(a.metrics, name),
		steps.NewTriggerResult(a.env, cc.Trigger),
		steps.NewLog(cfg.Agent.LogPredictions, name, a.log),
	), nil
}
