package main

import (
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
	var sf storeFlags
	cmd := &cobra.Command{Use: "models", Short: "Manage the iterations of models in the model store"}
	sf.register(cmd)

	list := &cobra.Command{
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
		},
	}

	var (
		name           string
		activate       bool
		library        string
		allowTagChange bool
	)
	add := &cobra.Command{
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
			var added models.Info
			check := func(path string) (store.Described, error) {
				m, err := loadAt(rt, name, mc, path)
				if err != nil {
					return store.Described{}, err
				}
				defer m.Close()
				added = m.Info
				if state.Active == "" && cur != nil { // the store's first iteration takes over from path
					if err := models.CheckReplace(*cur, m.Info, allowTagChange); err != nil {
						return store.Described{}, fmt.Errorf("%s refused: it would replace %s (models.%s.path): %w", args[0], cur.Source, name, err)
					}
				}
				return store.Described{IterationID: m.Info.Iteration, SHA256: m.Info.SHA256}, nil
			}
			src, _ := filepath.Abs(args[0])
			it, err := st.Add(name, args[0], src, check)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: iteration %s added (SHA-256 %s)\n", name, it.ID, it.SHA256[:12])
			if activate {
				if cur != nil {
					if err := models.CheckReplace(*cur, added, allowTagChange); err != nil {
						return fmt.Errorf("%s: iteration %s is in the store but not active: %w", name, it.ID, err)
					}
				}
				if _, err := st.Activate(name, it.ID); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s: %s is active; %s\n", name, it.ID, runningHint)
			}
			return nil
		},
	}
	add.Flags().StringVar(&name, "model", "", "model name (as under models: in the config)")
	add.Flags().BoolVar(&activate, "activate", false, "make it the active iteration")
	add.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	add.Flags().BoolVar(&allowTagChange, "allow-tag-change", false, "activate it even though its tags differ from the active iteration's")

	act := &cobra.Command{
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
	act.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	act.Flags().BoolVar(&allowTagChange, "allow-tag-change", false, "activate it even though its tags differ from the active iteration's")
	rb := &cobra.Command{
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
	rb.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	cmd.AddCommand(list, add, act, rb)
	return cmd
}

// checkActivation refuses to make iteration id of model active when it does not load or
// run, or when models.CheckReplace refuses it in place of what serves now: the checks of
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
	m, err := loadAt(rt, model, mc, path)
	if err != nil {
		return fmt.Errorf("iteration %s refused: %w", id, err)
	}
	m.Close()
	if cur != nil {
		if err := models.CheckReplace(*cur, m.Info, allowTagChange); err != nil {
			return fmt.Errorf("iteration %s refused: %w", id, err)
		}
	}
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

// loadAt loads the export at path with the settings of model name (a check that it runs).
func loadAt(rt *models.Runtime, name string, mc configs.Model, path string) (*models.Model, error) {
	mc.Path = path
	return models.Load(rt, name, mc)
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
	m, err := loadAt(rt, name, mc, path)
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
