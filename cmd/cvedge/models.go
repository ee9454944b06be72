package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/tools/iterations"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models/store"
)

// storeFlags find the model store: --store, or store.dir of --config.
type storeFlags struct {
	config, dir string
	loaded      *configs.Config // the config open read, nil with --store
}

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
		dir, m.Settings, s.loaded = cfg.Store.Dir, cfg.Models, cfg
	}
	var err error
	m.Store, err = store.Open(dir)
	return m, err
}

const runningHint = "a running agent takes this on its next start; to switch it now, send the activate or rollback command over MQTT (docs/pipelines.md)"

func modelsCmd(stdout io.Writer) *cobra.Command {
	sf := &storeFlags{}
	cmd := &cobra.Command{
		Use:   "models",
		Short: "Manage the iterations of models in the model store",
		Long: "List, add, activate and roll back the iterations of the models in the model store, and set their shadow\n" +
			"candidate, offline, with the checks the agent makes for the same commands over MQTT. The store is the folder\n" +
			"--store, or store.dir of the config --config (default /etc/cvedge/cvedge.yaml, whose store.dir defaults to /var/lib/cvedge/models). " + runningHint + ".",
		Example: "  cvedge models list\n  cvedge models --store ./models add --model colour --activate colour-v2.zip",
	}
	sf.register(cmd)
	cmd.AddCommand(modelsListCmd(stdout, sf), modelsAddCmd(stdout, sf), modelsActivateCmd(stdout, sf), modelsRollbackCmd(stdout, sf),
		modelsShadowCmd(stdout, sf), modelsShadowSummaryCmd(stdout, sf))
	return cmd
}

func modelsListCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [MODEL]",
		Short: "List models and their iterations; * marks the active one, shadow the candidate",
		Long: "List the iterations of MODEL, or of every model in the store: id, whether it is active, SHA-256, when it was\n" +
			"added and where from. Reads the store (--store, or store.dir of --config); writes nothing. --json prints the\n" +
			"iterations as a JSON array (docs/cli.md).",
		Example: "  cvedge models list\n  cvedge models --store ./models list colour --json",
		Args:    cobra.MaximumNArgs(1),
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
			if asJSON {
				return printIterationsJSON(stdout, st, names)
			}
			return printIterations(stdout, st, names)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the iterations as a JSON array (docs/cli.md)")
	return cmd
}

// iterationJSON is one line of `models list --json`.
type iterationJSON struct {
	Model     string    `json:"model"`
	Iteration string    `json:"iteration"`
	Active    bool      `json:"active"`
	Shadow    bool      `json:"shadow"`
	SHA256    string    `json:"sha256"`
	Added     time.Time `json:"added"`
	Source    string    `json:"source"`
}

// printIterationsJSON prints the iterations of the models names as a JSON array, in the
// table's order.
func printIterationsJSON(stdout io.Writer, st *store.Store, names []string) error {
	list := []iterationJSON{}
	for _, n := range names {
		state, err := st.State(n)
		if err != nil {
			return err
		}
		for _, it := range state.Iterations {
			list = append(list, iterationJSON{Model: n, Iteration: it.ID, Active: it.ID == state.Active, Shadow: it.ID == state.Shadow, SHA256: it.SHA256, Added: it.Added, Source: it.Source})
		}
	}
	return writeJSON(stdout, list)
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
			switch it.ID {
			case state.Active:
				mark = "*"
			case state.Shadow:
				mark = "shadow"
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
		Long: "Load the export at PATH (a ZIP, a folder, or an .onnx with labels.txt) with onnxruntime, run it once, and copy it\n" +
			"into the store (--store, or store.dir of --config) as an iteration of the model NAME. With --activate it becomes\n" +
			"the active iteration, if it does the same job as the active one and has the same tags (--allow-tag-change to\n" +
			"accept other tags). Reads the export and the config; writes into the store only.",
		Example: "  cvedge models add --model colour colour-v2.zip\n" +
			"  cvedge models --store /var/lib/cvedge/models add --model colour --activate colour-v2.zip",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := store.CheckModel(name); err != nil {
				return usageError{fmt.Errorf("--model: %w", err)}
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
		Long: "Make ITERATION (an id from cvedge models list) the active iteration of MODEL, after loading it with\n" +
			"onnxruntime: it must do the same job as the active one (a detector for a detector) and, unless\n" +
			"--allow-tag-change, have the same tags. Reads the store and the config; writes the store's state only.",
		Example: "  cvedge models activate colour ad92cb91-12e0-5f2a-9680-3961651a2636",
		Args:    cobra.ExactArgs(2),
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
		Long: "Make the iteration of MODEL that was active before the current one active again, with the checks of\n" +
			"activate. Reads the store and the config; writes the store's state only.",
		Example: "  cvedge models rollback colour",
		Args:    cobra.ExactArgs(1),
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

func modelsShadowCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	var drop bool
	cmd := &cobra.Command{
		Use:   "shadow MODEL [ITERATION]",
		Short: "Show, set or clear the store's shadow candidate of a model",
		Long: "Without ITERATION, print the shadow candidate of MODEL in the store (what cvedge train set). With ITERATION (an\n" +
			"id from cvedge models list, not the active one), make it the candidate; --clear removes the candidate. A running\n" +
			"agent runs the candidate beside the active iteration from its next start or reload (SIGHUP), unless the config\n" +
			"names a shadow (models.<name>.shadow), which goes first. Writes the store's state only.",
		Example: "  cvedge models shadow colour\n  cvedge models shadow colour 71fba664-7191-5667-b5c3-0f61936e8c87\n  cvedge models shadow colour --clear",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			if drop && len(args) == 2 {
				return usageErrorf("give ITERATION or --clear, not both")
			}
			m, err := sf.open("")
			if err != nil {
				return err
			}
			var state store.State
			switch {
			case drop:
				state, err = m.Store.SetShadow(args[0], "")
			case len(args) == 2:
				state, err = m.Store.SetShadow(args[0], args[1])
			default:
				state, err = m.Store.State(args[0])
			}
			if err != nil {
				return err
			}
			if state.Shadow == "" {
				fmt.Fprintf(stdout, "%s: no shadow candidate in the store\n", args[0])
				return nil
			}
			fmt.Fprintf(stdout, "%s: shadow candidate %s (active %s)\n", args[0], state.Shadow, cmp.Or(state.Active, "none: models."+args[0]+".path serves"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&drop, "clear", false, "remove the model's shadow candidate")
	return cmd
}

func modelsShadowSummaryCmd(stdout io.Writer, sf *storeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "shadow-summary MODEL",
		Short: "Print the summary of a shadow run the agent kept after models.<name>.shadow.summary_after parts",
		Long: "Print the summary of the shadow run of MODEL that the agent kept in the store once the candidate had been\n" +
			"compared models.<name>.shadow.summary_after times: the agreement with the active iteration, per tag, and how\n" +
			"often the candidate was right where an operator corrected the active one. Exits 1 when there is none yet, so\n" +
			"a script can wait for it. It decides nothing: activate the candidate yourself (cvedge models activate).",
		Example: "  cvedge models shadow-summary colour\n  until cvedge models shadow-summary colour --json > summary.json; do sleep 60; done",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			m, err := sf.open("")
			if err != nil {
				return err
			}
			raw, err := m.Store.ShadowSummary(args[0])
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: no shadow summary yet: set models.%s.shadow.summary_after in the agent's config, and let it compare that many parts", args[0], args[0])
			}
			if err != nil {
				return err
			}
			sum, err := parseShadowSummary(args[0], raw)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(stdout, sum)
			}
			state, err := m.Store.State(args[0])
			if err != nil {
				return err
			}
			printShadowSummary(stdout, args[0], sum)
			if state.Shadow != "" && state.Shadow != sum.Iteration {
				fmt.Fprintf(stdout, "note: the store's shadow candidate is now %s; this summary is of an earlier one\n", state.Shadow)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON (docs/cli.md)")
	return cmd
}

func parseShadowSummary(model string, raw []byte) (agent.ShadowSummary, error) {
	var sum agent.ShadowSummary
	if err := json.Unmarshal(raw, &sum); err != nil {
		return sum, fmt.Errorf("%s: the shadow summary in the store is damaged (%v): it is written again after the next summary_after parts", model, err)
	}
	return sum, nil
}

// printShadowSummary prints a shadow summary for a person.
func printShadowSummary(stdout io.Writer, model string, sum agent.ShadowSummary) {
	fmt.Fprintf(stdout, "%s: candidate %s against %s, after %d compared parts (agent %s, %s)\n", model, sum.Iteration, sum.Active,
		sum.Compared, sum.Agent, sum.Time.Format("2006-01-02 15:04"))
	fmt.Fprintf(stdout, "agreement %.4f (%d of %d)\n", sum.Agreement, sum.Agreed, sum.Compared)
	for _, tag := range slices.Sorted(maps.Keys(sum.ByTag)) {
		c := sum.ByTag[tag]
		fmt.Fprintf(stdout, "  %s: %d of %d agreed\n", tag, c.Agreed, c.Compared)
	}
	fmt.Fprintf(stdout, "reviewed %d, candidate right %d\n", sum.Reviewed, sum.CandidateRight)
}
