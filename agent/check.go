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
	var problems []error
	add := func(key string, err error) { problems = append(problems, fmt.Errorf("%s: %w", key, err)) }
	var st *store.Store
	if _, err := os.Stat(cfg.Store.Dir); err == nil { // no store folder: no active iterations
		if st, err = store.Open(cfg.Store.Dir); err != nil {
			add("store.dir", err)
		}
	}
	rt, err := models.NewRuntime(models.RuntimeOptions(cfg.ONNXRuntime, log))
	if err != nil {
		add("onnxruntime.library", err)
	} else {
		defer rt.Close()
	}
	detector := map[string]bool{} // by model name, for the models that loaded
	for _, name := range slices.Sorted(maps.Keys(cfg.Models)) {
		mc := cfg.Models[name]
		key := "models." + name + ".path"
		if st != nil {
			state, err := st.State(name)
			if err != nil {
				add("models."+name, err)
				continue
			}
			if state.Active != "" {
				if mc.Path, err = st.ExportPath(name, state.Active); err != nil {
					add("models."+name, err)
					continue
				}
				key = fmt.Sprintf("models.%s (the model store's active iteration %s)", name, state.Active)
			}
		}
		if mc.Path == "" {
			add(key, fmt.Errorf("empty, and the model store (%s) has no active iteration of %q: give the export's path, or add one with `cvedge models add`", cfg.Store.Dir, name))
			continue
		}
		if _, err := os.Stat(mc.Path); err != nil {
			add(key, fmt.Errorf("%w: give the Custom Vision export (its ZIP, its folder, or model.onnx with labels.txt beside it)", err))
			continue
		}
		if rt == nil {
			continue // the library did not load: said above
		}
		m, err := models.Load(rt, name, mc)
		if err != nil {
			add(key, err)
			continue
		}
		detector[name] = m.Info.Format.IsDetector()
		m.Close()
		if sh := mc.Shadow; sh.Path != "" || sh.Iteration != "" {
			sc, key := mc, "models."+name+".shadow.path"
			sc.Path = sh.Path
			if sh.Iteration != "" {
				key = "models." + name + ".shadow.iteration"
				if st == nil {
					add(key, fmt.Errorf("%q: the model store (%s) does not exist: add it with `cvedge models add`", sh.Iteration, cfg.Store.Dir))
					continue
				}
				if sc.Path, err = st.ExportPath(name, sh.Iteration); err != nil {
					add(key, err)
					continue
				}
			}
			if m, err := models.Load(rt, name, sc); err != nil {
				add(key, err)
			} else {
				m.Close()
			}
		}
	}
	for i, cc := range cfg.Cameras {
		key := fmt.Sprintf("cameras[%d]", i)
		for stage, name := range map[string]string{"detector": cc.Pipeline.Detector, "classifier": cc.Pipeline.Classifier} {
			if isDet, ok := detector[name]; ok && isDet != (stage == "detector") {
				add(key+".pipeline."+stage, fmt.Errorf("model %q does not do this job: a detector finds boxes, a classifier names a crop", name))
			}
		}
		cam, err := camera.New(cc, log)
		if err != nil {
			add(key+".source", err)
			continue
		}
		if offline {
			continue
		}
		if err := cam.Probe(ProbeTimeout); err != nil {
			add(key+".source", fmt.Errorf("%w (check the camera and its cable or URL; --offline checks the config without opening cameras)", err))
		}
	}
	return errors.Join(problems...)
}
