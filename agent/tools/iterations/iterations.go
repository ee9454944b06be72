// Package iterations is the engine of `cvedge models add|activate|rollback`, a desk tool: it
// changes the model store while no agent holds it open, with the checks the agent makes over
// MQTT (models.LoadReplacement: the export loads and runs, does the same job, and keeps the
// tags unless a change is allowed). What serves now is the store's active iteration, else the
// config's models.<name>.path.
//
// It owns those checks around the store; the store itself (models/store) keeps the files
// and the state. It must not touch a running agent: a running agent takes the change on its
// next start, or through the activate and rollback commands.
package iterations

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// Manager changes one model store, with the models' settings from the config (nil: the
// defaults) and onnxruntime from Library (empty: search).
type Manager struct {
	Store    *store.Store
	Settings map[string]configs.Model
	Library  string
}

// Add checks the export (it must load and run) and keeps it in the store as an iteration of
// model name. The store's first iteration of a model must be able to replace the config's
// models.<name>.path. With activate it is made active, when it may replace what serves now.
// The iteration is returned also when only the activation was refused.
func (m *Manager) Add(name, export string, activate, allowTagChange bool) (store.Iteration, error) {
	if err := store.CheckModel(name); err != nil {
		return store.Iteration{}, err
	}
	rt, mc, cur, err := m.servingNow(name)
	if err != nil {
		return store.Iteration{}, err
	}
	defer rt.Close()
	state, err := m.Store.State(name)
	if err != nil {
		return store.Iteration{}, err
	}
	var first *models.Info // the store's first iteration takes over from models.<name>.path
	if state.Active == "" {
		first = cur
	}
	var added models.Info
	src, _ := filepath.Abs(export)
	it, err := m.Store.Add(name, export, src, addCheck(rt, name, mc, export, first, allowTagChange, &added))
	if err != nil || !activate {
		return it, err
	}
	return it, m.activateAdded(name, it, cur, added, allowTagChange)
}

// AddCandidate checks the export as Add does, and keeps it in the store as an iteration of
// model name that is not active, as the model's shadow candidate (store.State.Shadow), for
// the agent to run beside what serves now from its next start or reload. It must be able to
// replace what serves now (the same job; the same tags unless allowTagChange), so that a
// person can activate it later. source says where it came from (for `cvedge models list`).
func (m *Manager) AddCandidate(name, export, source string, allowTagChange bool) (store.Iteration, error) {
	if err := store.CheckModel(name); err != nil {
		return store.Iteration{}, err
	}
	rt, mc, cur, err := m.servingNow(name)
	if err != nil {
		return store.Iteration{}, err
	}
	defer rt.Close()
	return m.Store.AddCandidate(name, export, source, func(path string) (store.Described, error) {
		c, err := models.LoadReplacement(rt, name, mc, path, cur, allowTagChange)
		var refusal *models.ReplaceError
		if errors.As(err, &refusal) {
			return store.Described{}, fmt.Errorf("%s refused as a candidate of %s: it could not replace what serves now (%s): %w", export, name, cur.Source, err)
		}
		if err != nil {
			return store.Described{}, err
		}
		defer c.Close()
		if cur != nil && c.Info.Iteration != "" && c.Info.Iteration == cur.Iteration {
			return store.Described{}, fmt.Errorf("%s is iteration %s, which serves %s now: a candidate must be another iteration", export, c.Info.Iteration, name)
		}
		return store.Described{IterationID: c.Info.Iteration, SHA256: c.Info.SHA256}, nil
	})
}

// activateAdded activates it, just added, when added may replace cur (what serves now).
func (m *Manager) activateAdded(name string, it store.Iteration, cur *models.Info, added models.Info, allowTagChange bool) error {
	if cur != nil {
		if err := models.CheckReplace(*cur, added, allowTagChange); err != nil {
			return fmt.Errorf("%s: iteration %s is in the store but not active: %w", name, it.ID, err)
		}
	}
	_, err := m.Store.Activate(name, it.ID)
	return err
}

// addCheck is the store's check of export, added as an iteration of model name: it must
// load and run with the model's settings mc and, when first is not nil (the config's path
// the store's first iteration takes over from), be able to replace it. What it loaded is
// described into added.
func addCheck(rt *models.Runtime, name string, mc configs.Model, export string, first *models.Info, allowTagChange bool, added *models.Info) func(string) (store.Described, error) {
	return func(path string) (store.Described, error) {
		m, err := models.LoadReplacement(rt, name, mc, path, first, allowTagChange)
		var refusal *models.ReplaceError
		if errors.As(err, &refusal) {
			return store.Described{}, fmt.Errorf("%s refused: it would replace %s (models.%s.path): %w", export, first.Source, name, err)
		}
		if err != nil {
			return store.Described{}, err
		}
		defer m.Close()
		*added = m.Info
		return store.Described{IterationID: m.Info.Iteration, SHA256: m.Info.SHA256}, nil
	}
}

// Activate makes iteration id of model active, once it passed the checks of the activate
// command.
func (m *Manager) Activate(model, id string, allowTagChange bool) error {
	if err := m.check(model, id, allowTagChange); err != nil {
		return err
	}
	_, err := m.Store.Activate(model, id)
	return err
}

// Rollback makes the previously active iteration of model active again, with the checks of
// the rollback command (the same job; the tags may change back), and returns it.
func (m *Manager) Rollback(model string) (string, error) {
	target, err := m.Store.RollbackTarget(model)
	if err != nil {
		return "", err
	}
	if err := m.check(model, target, true); err != nil {
		return "", err
	}
	state, err := m.Store.Rollback(model)
	return state.Active, err
}

// check refuses to make iteration id of model active when it does not load or run, or when
// it may not replace what serves now.
func (m *Manager) check(model, id string, allowTagChange bool) error {
	if err := store.CheckModel(model); err != nil {
		return err
	}
	path, err := m.Store.ExportPath(model, id)
	if err != nil {
		return err
	}
	rt, mc, cur, err := m.servingNow(model)
	if err != nil {
		return err
	}
	defer rt.Close()
	loaded, err := models.LoadReplacement(rt, model, mc, path, cur, allowTagChange)
	if err != nil {
		return fmt.Errorf("iteration %s refused: %w", id, err)
	}
	loaded.Close()
	return nil
}

// servingNow starts onnxruntime and describes what serves model name now (see serving),
// with the model's settings from the config. The caller closes the runtime.
func (m *Manager) servingNow(name string) (*models.Runtime, configs.Model, *models.Info, error) {
	mc, ok := m.Settings[name]
	if !ok {
		mc = configs.DefaultModel()
	}
	rt, err := models.NewRuntime(models.Options{Library: m.Library})
	if err != nil {
		return nil, mc, nil, err
	}
	cur, err := serving(rt, m.Store, name, mc)
	if err != nil {
		rt.Close()
		return nil, mc, nil, err
	}
	return rt, mc, cur, nil
}

// serving describes what serves model name now, for models.CheckReplace: the store's
// active iteration, else the config's models.<name>.path; nil when neither is there.
func serving(rt *models.Runtime, st *store.Store, name string, mc configs.Model) (*models.Info, error) {
	state, err := st.State(name)
	if err != nil {
		return nil, err
	}
	path, what := mc.Path, "models."+name+".path"
	if state.Active != "" {
		if path, err = st.ExportPath(name, state.Active); err != nil {
			return nil, err
		}
		what = "the active iteration " + state.Active
	}
	if path == "" {
		return nil, nil
	}
	mc.Path = path
	m, err := models.Load(rt, name, mc)
	if err != nil && state.Active == "" {
		return nil, nil // a config path that does not load serves nothing to compare with
	}
	if err != nil {
		return nil, fmt.Errorf("%s of %s does not load, so the new one cannot be checked against it: %w", what, name, err)
	}
	defer m.Close()
	info := m.Info
	return &info, nil
}
