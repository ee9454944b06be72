package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// storeFlags find the model store: --store, or store.dir of --config.
type storeFlags struct{ config, dir string }

func (s *storeFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&s.config, "config", "c", "/etc/cvedge/cvedge.yaml", "config file whose store.dir and models to use")
	cmd.PersistentFlags().StringVar(&s.dir, "store", "", "model store folder (instead of the config's store.dir)")
}

// open returns the store and, when a config was read, its model settings.
func (s *storeFlags) open() (*store.Store, map[string]configs.Model, error) {
	settings := map[string]configs.Model{}
	dir := s.dir
	if dir == "" {
		cfg, err := configs.Load(s.config)
		if err != nil {
			return nil, nil, fmt.Errorf("%w\n(give --store DIR to work on a store without a config)", err)
		}
		dir, settings = cfg.Store.Dir, cfg.Models
	}
	st, err := store.Open(dir)
	return st, settings, err
}

const runningHint = "a running agent takes this on its next start; to switch it now, send the activate or rollback command over MQTT (docs/pipelines.md)"

func modelsCmd(stdout io.Writer) *cobra.Command {
	sf := &storeFlags{}
	cmd := &cobra.Command{Use: "models", Short: "Manage the iterations of models in the model store"}
	sf.register(cmd)
	cmd.AddCommand(modelsListCmd(stdout, sf), modelsAddCmd(stdout, sf), modelsActivateCmd(stdout, sf), modelsRollbackCmd(stdout, sf))
	return cmd
}

func modelsListCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list [MODEL]",
		Short: "List models and their iterations; * marks the active one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			st, _, err := sf.open()
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				if names, err = st.Models(); err != nil {
					return err
				}
			}
			return printIterations(stdout, st, names)
		},
	}
}

// printIterations prints a table of the iterations of the models names.
func printIterations(stdout io.Writer, st *store.Store, names []string) error {
	w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MODEL\tITERATION\tACTIVE\tSHA-256\tADDED\tSOURCE")
	for _, n := range names {
		state, err := st.State(n)
		if err != nil {
			return err
		}
		for _, it := range state.Iterations {
			mark := ""
			if it.ID == state.Active {
				mark = "*"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n, it.ID, mark, it.SHA256[:12], it.Added.Format("2006-01-02 15:04"), it.Source)
		}
	}
	return w.Flush()
}

func modelsAddCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	var (
		name, library            string
		activate, allowTagChange bool
	)
	cmd := &cobra.Command{
		Use:   "add --model NAME PATH",
		Short: "Check an export (it must load and run) and keep it in the store as an iteration of NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := store.CheckModel(name); err != nil {
				return fmt.Errorf("--model: %w", err)
			}
			st, settings, err := sf.open()
			if err != nil {
				return err
			}
			rt, mc, cur, err := servingNow(st, settings, library, name)
			if err != nil {
				return err
			}
			defer rt.Close()
			state, err := st.State(name)
			if err != nil {
				return err
			}
			var first *models.Info // the store's first iteration takes over from models.<name>.path
			if state.Active == "" {
				first = cur
			}
			var added models.Info
			src, _ := filepath.Abs(args[0])
			it, err := st.Add(name, args[0], src, addCheck(rt, name, mc, args[0], first, allowTagChange, &added))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: iteration %s added (SHA-256 %s)\n", name, it.ID, it.SHA256[:12])
			if !activate {
				return nil
			}
			return activateAdded(stdout, st, name, it.ID, cur, added, allowTagChange)
		},
	}
	cmd.Flags().StringVar(&name, "model", "", "model name (as under models: in the config)")
	cmd.Flags().BoolVar(&activate, "activate", false, "make it the active iteration")
	cmd.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	cmd.Flags().BoolVar(&allowTagChange, "allow-tag-change", false, "activate it even though its tags differ from the active iteration's")
	return cmd
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

// activateAdded makes iteration id of model name, just added and described by added,
// active when it may replace cur, what served before it (nil for nothing).
func activateAdded(stdout io.Writer, st *store.Store, name, id string, cur *models.Info, added models.Info, allowTagChange bool) error {
	if cur != nil {
		if err := models.CheckReplace(*cur, added, allowTagChange); err != nil {
			return fmt.Errorf("%s: iteration %s is in the store but not active: %w", name, id, err)
		}
	}
	if _, err := st.Activate(name, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s is active; %s\n", name, id, runningHint)
	return nil
}

func modelsActivateCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	var (
		library        string
		allowTagChange bool
	)
	cmd := &cobra.Command{
		Use:   "activate MODEL ITERATION",
		Short: "Make an iteration in the store the active one (same job; same tags unless --allow-tag-change)",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			model, id := args[0], args[1]
			st, settings, err := sf.open()
			if err != nil {
				return err
			}
			if err := checkActivation(st, settings, library, model, id, allowTagChange); err != nil {
				return err
			}
			if _, err := st.Activate(model, id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s is active; %s\n", model, id, runningHint)
			return nil
		},
	}
	cmd.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	cmd.Flags().BoolVar(&allowTagChange, "allow-tag-change", false, "activate it even though its tags differ from the active iteration's")
	return cmd
}

func modelsRollbackCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	var library string
	cmd := &cobra.Command{
		Use:   "rollback MODEL",
		Short: "Make the previously active iteration active again",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			st, settings, err := sf.open()
			if err != nil {
				return err
			}
			target, err := st.RollbackTarget(args[0])
			if err != nil {
				return err
			}
			// as the rollback command: the same job, and the tags may change back
			if err := checkActivation(st, settings, library, args[0], target, true); err != nil {
				return err
			}
			state, err := st.Rollback(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s is active again; %s\n", args[0], state.Active, runningHint)
			return nil
		},
	}
	cmd.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	return cmd
}

// checkActivation refuses to make iteration id of model active when it does not load or
// run, or when it may not replace what serves now (models.LoadReplacement): the checks of
// the activate and rollback commands over MQTT.
func checkActivation(st *store.Store, settings map[string]configs.Model, library, model, id string, allowTagChange bool) error {
	if err := store.CheckModel(model); err != nil {
		return err
	}
	path, err := st.ExportPath(model, id)
	if err != nil {
		return err
	}
	rt, mc, cur, err := servingNow(st, settings, library, model)
	if err != nil {
		return err
	}
	defer rt.Close()
	m, err := models.LoadReplacement(rt, model, mc, path, cur, allowTagChange)
	if err != nil {
		return fmt.Errorf("iteration %s refused: %w", id, err)
	}
	m.Close()
	return nil
}

// servingNow starts onnxruntime and describes what serves model name now (see serving),
// with the model's settings from the config. The caller closes the runtime.
func servingNow(st *store.Store, settings map[string]configs.Model, library, name string) (*models.Runtime, configs.Model, *models.Info, error) {
	mc, ok := settings[name]
	if !ok {
		mc = configs.DefaultModel()
	}
	rt, err := models.NewRuntime(models.Options{Library: library})
	if err != nil {
		return nil, mc, nil, err
	}
	cur, err := serving(rt, st, name, mc)
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
