package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/train"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models/store"
)

// trainFlags are the settings of cvedge train.
type trainFlags struct {
	sf                storeFlags
	opts              train.Options
	endpoint, project string
	library, caFile   string
	trainingType      string
	asJSON            bool
	waitSummary       bool
	summaryTimeout    time.Duration
}

func trainCmd(stdout, stderr io.Writer) *cobra.Command {
	tf := &trainFlags{}
	cmd := &cobra.Command{
		Use:   "train --model NAME",
		Short: "Train a new iteration in Custom Vision, export it as ONNX and add it to the store as the shadow candidate",
		Long: "Train a new iteration of the Custom Vision project (Training API v3.3), wait for it, export it as ONNX, download\n" +
			"the export within the store's bounds (store.max_download_mb, store.max_unpacked_mb, store.download_timeout), check\n" +
			"that it loads, runs, does the same job and keeps the tags of what serves now (--allow-tag-change to accept other\n" +
			"tags), and keep it in the model store (--store, or store.dir of --config) as an iteration of NAME that is NOT\n" +
			"active: it becomes NAME's shadow candidate, which a running agent runs beside the active iteration from its next\n" +
			"start or reload (SIGHUP). Promote it yourself with cvedge models activate. --iteration ID skips the training and\n" +
			"ships an existing iteration. The endpoint is --training-endpoint or " + collect.EnvEndpoint + ", the project\n" +
			"--project or " + collect.EnvProject + ", the key " + collect.EnvKey + " (environment only).",
		Example: "  export " + collect.EnvEndpoint + "=https://myresource.cognitiveservices.azure.com/\n" +
			"  export " + collect.EnvKey + "=... " + collect.EnvProject + "=...\n" +
			"  cvedge train --model colour\n\n" +
			"  # ship an iteration trained in the portal\n" +
			"  cvedge train --model colour --iteration 7d1e5c9a-0b5e-4a1c-9d7e-2f3c4b5a6e7f",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := store.CheckModel(tf.opts.Model); err != nil {
				return usageError{fmt.Errorf("--model: %w", err)}
			}
			switch tf.trainingType {
			case "", "Regular", "Advanced":
				tf.opts.Train.Type = tf.trainingType
			default:
				return usageErrorf("--training-type %q: give Regular or Advanced", tf.trainingType)
			}
			if tf.opts.Train.ReservedHours < 0 {
				return usageErrorf("--reserved-hours %d: give 0 or more hours", tf.opts.Train.ReservedHours)
			}
			if tf.opts.Poll <= 0 || tf.opts.TrainTimeout <= 0 || tf.opts.ExportTimeout <= 0 || tf.summaryTimeout <= 0 {
				return usageErrorf("--poll, --train-timeout, --export-timeout and --summary-timeout must be above 0")
			}
			if tf.waitSummary && tf.asJSON {
				return usageErrorf("--wait-summary prints the summary for a person: leave out --json, and read it later with cvedge models shadow-summary --json")
			}
			if tf.opts.Iteration != "" {
				if err := store.CheckIteration(tf.opts.Iteration); err != nil {
					return usageError{fmt.Errorf("--iteration: %w", err)}
				}
			}
			return tf.run(stdout, stderr)
		},
	}
	tf.sf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&tf.opts.Model, "model", "", "model name in the store (as under models: in the config)")
	f.StringVar(&tf.endpoint, "training-endpoint", "", "Custom Vision training endpoint (default $"+collect.EnvEndpoint+")")
	f.StringVar(&tf.project, "project", "", "Custom Vision project id (default $"+collect.EnvProject+")")
	f.StringVar(&tf.opts.Iteration, "iteration", "", "ship this existing iteration of the project instead of training a new one")
	f.StringVar(&tf.trainingType, "training-type", "", "Regular or Advanced (default: Custom Vision's, Regular)")
	f.IntVar(&tf.opts.Train.ReservedHours, "reserved-hours", 0, "budget of an Advanced training, in hours")
	f.BoolVar(&tf.opts.Train.Force, "force-train", false, "train even when no image or tag changed since the last iteration")
	f.StringVar(&tf.opts.Flavor, "flavor", "", "ONNX export flavor (default: the plain ONNX export)")
	f.DurationVar(&tf.opts.Poll, "poll", 10*time.Second, "how often to look at the training and the export")
	f.DurationVar(&tf.opts.TrainTimeout, "train-timeout", 2*time.Hour, "how long to wait for the training")
	f.DurationVar(&tf.opts.ExportTimeout, "export-timeout", 30*time.Minute, "how long to wait for the export")
	f.BoolVar(&tf.opts.AllowTagChange, "allow-tag-change", false, "accept a candidate whose tags differ from what serves now")
	f.StringVar(&tf.caFile, "ca-file", "", "CA certificates to trust for the Training API and the download, beside the system's (default: the config's store.ca_file)")
	f.StringVar(&tf.library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search)")
	f.BoolVar(&tf.asJSON, "json", false, "print the result as JSON (docs/cli.md)")
	f.BoolVar(&tf.waitSummary, "wait-summary", false, "then wait for the agent's shadow summary of the candidate (models.<name>.shadow.summary_after) and print it")
	f.DurationVar(&tf.summaryTimeout, "summary-timeout", 24*time.Hour, "how long --wait-summary waits")
	return cmd
}

// trainJSON is what `cvedge train --json` prints.
type trainJSON struct {
	Model     string `json:"model"`
	Project   string `json:"project"`
	Iteration string `json:"iteration"`
	Name      string `json:"name"`
	SHA256    string `json:"sha256"`
	Shadow    bool   `json:"shadow"`
	Active    bool   `json:"active"`
}

func (tf *trainFlags) run(stdout, stderr io.Writer) error {
	log := newLogger(configs.Agent{LogLevel: "info", LogFormat: "auto"}, stderr).With("component", "train")
	t, err := collect.TrainingFor("cvedge train", tf.endpoint, tf.project, log)
	if err != nil {
		return err
	}
	m, err := tf.sf.open(tf.library)
	if err != nil {
		return err
	}
	if c := tf.sf.loaded; tf.waitSummary && c != nil && c.Models[tf.opts.Model].Shadow.SummaryAfter <= 0 {
		return fmt.Errorf("--wait-summary: models.%s.shadow.summary_after is not set in %s, so the agent makes no summary: set it (and reload the agent)", tf.opts.Model, tf.sf.config)
	}
	start := time.Now()
	sc := configs.Default().Store
	if tf.sf.loaded != nil {
		sc = tf.sf.loaded.Store
	}
	tf.opts.Limits = store.Limits{MaxDownload: int64(sc.MaxDownloadMB) << 20, MaxUnpacked: int64(sc.MaxUnpackedMB) << 20, Timeout: sc.DownloadTimeout}
	var pool *x509.CertPool
	if f := cmp.Or(tf.caFile, sc.CAFile); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %s: no PEM certificate in it", f)
		}
	}
	tf.opts.Client = store.Client(pool, tf.opts.Limits.Timeout)
	t.Client = store.Client(pool, 60*time.Second)
	t.Client.Timeout = 2 * time.Minute

	line := isTerminal(stderr) // a progress line on a terminal; nothing when piped
	drawn := false
	sh := &train.Shipper{T: t, M: m, Log: log, Progress: func(what string, since time.Duration) {
		if line {
			fmt.Fprintf(stderr, "\r%s, %v   ", what, since.Round(time.Second))
			drawn = true
		}
	}}
	ctx, stop := collect.UntilSignal(context.Background())
	defer stop()
	res, err := sh.Ship(ctx, tf.opts)
	if drawn {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	state, err := m.Store.State(tf.opts.Model)
	if err != nil {
		return err
	}
	if tf.asJSON {
		return writeJSON(stdout, trainJSON{Model: tf.opts.Model, Project: t.Project, Iteration: res.Added.ID, Name: res.Iteration.Name,
			SHA256: res.Added.SHA256, Shadow: state.Shadow == res.Added.ID, Active: state.Active == res.Added.ID})
	}
	fmt.Fprintf(stdout, "%s: iteration %s (%s) is in the store as the shadow candidate, not active (SHA-256 %s)\n",
		tf.opts.Model, res.Added.ID, res.Iteration.Name, res.Added.SHA256[:12])
	fmt.Fprintf(stdout, "a running agent runs it beside the active iteration from its next start or reload (systemctl reload cvedge);\n"+
		"promote it with: cvedge models activate %s %s\n", tf.opts.Model, res.Added.ID)
	if !tf.waitSummary {
		return nil
	}
	log.Info("waiting for the agent's shadow summary of the candidate; reload the agent if it has not taken the candidate yet",
		"model", tf.opts.Model, "candidate", res.Added.ID, "timeout", tf.summaryTimeout)
	sum, err := waitShadowSummary(ctx, m.Store, tf.opts.Model, res.Added.ID, start, tf.opts.Poll, tf.summaryTimeout)
	if err != nil {
		return err
	}
	printShadowSummary(stdout, tf.opts.Model, sum)
	return nil
}

// waitShadowSummary waits until the store holds a shadow summary of candidate made after
// since, looking every poll, at most timeout.
func waitShadowSummary(ctx context.Context, st *store.Store, model, candidate string, since time.Time, poll, timeout time.Duration) (agent.ShadowSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if raw, err := st.ShadowSummary(model); err == nil {
			sum, err := parseShadowSummary(model, raw)
			if err == nil && sum.Iteration == candidate && !sum.Time.Before(since) {
				return sum, nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return agent.ShadowSummary{}, fmt.Errorf("no shadow summary of %s after %v (--summary-timeout): is the agent running with the candidate (reload it) and seeing parts? Read it later with cvedge models shadow-summary %s", candidate, timeout, model)
			}
			return agent.ShadowSummary{}, ctx.Err()
		case <-t.C:
		}
	}
}
