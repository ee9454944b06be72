package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/tools/iterations"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models/store"
)

// storeFlags find the model store: --store, or store.dir of --config.
type storeFlags struct{ config, dir string }

func (s *storeFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&s.config, "config", "c", "/etc/cvedge/cvedge.yaml", "config file whose store.dir and models to use")
	cmd.PersistentFlags().StringVar(&s.dir, "store", "", "model store folder (instead of the config's store.dir)")
}

// open returns the store and, when a config was read, its model settings, with onnxruntime
// from library.
func (s *storeFlags) open(library string) (*iterations.Manager, error) {
	m := &iterations.Manager{Settings: map[string]configs.Model{}, Library: library}
	dir := s.dir
	if dir == "" {
		cfg, err := configs.Load(s.config)
		if err != nil {
			return nil, fmt.Errorf("%w\n(give --store DIR to work on a store without a config)", err)
		}
		dir, m.Settings = cfg.Store.Dir, cfg.Models
	}
	var err error
	m.Store, err = store.Open(dir)
	return m, err
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
			m, err := sf.open("")
			if err != nil {
				return err
			}
			st := m.Store
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
			m, err := sf.open(library)
			if err != nil {
				return err
			}
			it, err := m.Add(name, args[0], activate, allowTagChange)
			if it.ID != "" {
				fmt.Fprintf(stdout, "%s: iteration %s added (SHA-256 %s)\n", name, it.ID, it.SHA256[:12])
			}
			if err != nil || !activate {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s is active; %s\n", name, it.ID, runningHint)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "model", "", "model name (as under models: in the config)")
	cmd.Flags().BoolVar(&activate, "activate", false, "make it the active iteration")
	cmd.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	cmd.Flags().BoolVar(&allowTagChange, "allow-tag-change", false, "activate it even though its tags differ from the active iteration's")
	return cmd
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
			m, err := sf.open(library)
			if err != nil {
				return err
			}
			if err := m.Activate(args[0], args[1], allowTagChange); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s is active; %s\n", args[0], args[1], runningHint)
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
			m, err := sf.open(library)
			if err != nil {
				return err
			}
			active, err := m.Rollback(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s is active again; %s\n", args[0], active, runningHint)
			return nil
		},
	}
	cmd.Flags().StringVar(&library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	return cmd
}
