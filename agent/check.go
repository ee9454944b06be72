package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// CheckConfig checks what configs.Load cannot: that every model loads through onnxruntime
// (the model store's active iteration when the store has one, else models.<name>.path),
// with its shadow if it has one, and does the job its cameras give it, and that every camera source parses, its file or
// folder existing. Unless offline, it also opens every camera once and reads a frame. It
// loads and closes everything it opens, and returns one error per problem, each naming its
// key. It is `cvedge config check`; `cvedge run` makes the same checks, but a camera that
// cannot be opened yet does not keep the agent from starting (it is retried).
func CheckConfig(cfg *configs.Config, offline bool, log *slog.Logger) error {
	c := &checker{cfg: cfg, log: log, detector: map[string]bool{}}
	if _, err := os.Stat(cfg.Store.Dir); err == nil { // no store folder: no active iterations
		if c.store, err = store.Open(cfg.Store.Dir); err != nil {
			c.add("store.dir", err)
		}
	}
	rt, err := models.NewRuntime(models.RuntimeOptions(cfg.ONNXRuntime, log))
	if err != nil {
		c.add("onnxruntime.library", err)
	} else {
		c.rt = rt
		defer rt.Close()
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Models)) {
		c.model(name)
	}
	for i, cc := range cfg.Cameras {
		c.camera(i, cc, offline)
	}
	return errors.Join(c.problems...)
}

// checker gathers the problems CheckConfig finds, each naming its key.
type checker struct {
	cfg      *configs.Config
	log      *slog.Logger
	store    *store.Store    // nil: no store folder
	rt       *models.Runtime // nil: the library did not load
	detector map[string]bool // by model name, for the models that loaded
	problems []error
}

func (c *checker) add(key string, err error) {
	c.problems = append(c.problems, fmt.Errorf("%s: %w", key, err))
}

// model checks that model name loads (the store's active iteration, else its path), and its
// shadow candidate if it has one.
func (c *checker) model(name string) {
	mc := c.cfg.Models[name]
	if mc.IsLLM() { // nothing to load: the llm: section's endpoint answers it
		c.detector[name] = false
		if l := c.cfg.LLM; l.Enabled && os.Getenv(l.KeyEnv) == "" {
			c.log.Warn("model of type llm, and no key in the environment: the endpoint must take calls without one", "model", name, "key_env", l.KeyEnv)
		}
		return
	}
	key := "models." + name + ".path"
	if c.store != nil {
		state, err := c.store.State(name)
		if err != nil {
			c.add("models."+name, err)
			return
		}
		if state.Active != "" {
			if mc.Path, err = c.store.ExportPath(name, state.Active); err != nil {
				c.add("models."+name, err)
				return
			}
			key = fmt.Sprintf("models.%s (the model store's active iteration %s)", name, state.Active)
		}
	}
	if mc.Path == "" {
		c.add(key, fmt.Errorf("empty, and the model store (%s) has no active iteration of %q: give the export's path, or add one with `cvedge models add`", c.cfg.Store.Dir, name))
		return
	}
	if _, err := os.Stat(mc.Path); err != nil {
		c.add(key, fmt.Errorf("%w: give the Custom Vision export (its ZIP, its folder, or model.onnx with labels.txt beside it)", err))
		return
	}
	if c.rt == nil {
		return // the library did not load: said above
	}
	m, err := models.Load(c.rt, name, mc)
	if err != nil {
		c.add(key, err)
		return
	}
	c.detector[name] = m.Info.Format.IsDetector()
	m.Close()
	if sh := mc.Shadow; sh.Path != "" || sh.Iteration != "" {
		c.shadow(name, mc)
	}
}

// shadow checks that the shadow candidate of model name loads.
func (c *checker) shadow(name string, mc configs.Model) {
	sc, key := mc, "models."+name+".shadow.path"
	sc.Path = mc.Shadow.Path
	if it := mc.Shadow.Iteration; it != "" {
		key = "models." + name + ".shadow.iteration"
		if c.store == nil {
			c.add(key, fmt.Errorf("%q: the model store (%s) does not exist: add it with `cvedge models add`", it, c.cfg.Store.Dir))
			return
		}
		var err error
		if sc.Path, err = c.store.ExportPath(name, it); err != nil {
			c.add(key, err)
			return
		}
	}
	if m, err := models.Load(c.rt, name, sc); err != nil {
		c.add(key, err)
	} else {
		m.Close()
	}
}

// camera checks that camera i's models do the jobs it gives them, that its source parses,
// and, unless offline, that it opens and delivers a frame.
func (c *checker) camera(i int, cc configs.Camera, offline bool) {
	key := fmt.Sprintf("cameras[%d]", i)
	for stage, name := range map[string]string{"detector": cc.Pipeline.Detector, "classifier": cc.Pipeline.Classifier} {
		if isDet, ok := c.detector[name]; ok && isDet != (stage == "detector") {
			c.add(key+".pipeline."+stage, fmt.Errorf("model %q does not do this job: a detector finds boxes, a classifier names a crop", name))
		}
	}
	cam, err := camera.New(cc, c.log)
	if err != nil {
		c.add(key+".source", err)
		return
	}
	cam.Key = key
	if offline {
		return
	}
	if err := cam.Probe(ProbeTimeout); err != nil {
		c.add(key+".source", fmt.Errorf("%w (check the camera and its cable or URL; --offline checks the config without opening cameras)", err))
	}
}
