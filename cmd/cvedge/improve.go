package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/tools/bench"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/eval"
	"github.com/cvedge/cvedge/configs"
)

func collectCmd(stdout, stderr io.Writer) *cobra.Command {
	cfg := configs.Default().MQTT
	host, _ := os.Hostname()
	cfg.ClientID = "cvedge-collect-" + host
	var (
		out, topic string
		upload     bool
		every      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "collect --out DIR",
		Short: "Collect the samples of many agents into a Custom Vision data set, and optionally upload them",
		Long: "Subscribe to the samples that agents publish and write them into DIR: a folder per corrected tag, unreviewed/ for\n" +
			"samples nobody tagged yet, frames/ for whole frames, and index.jsonl. A restart resumes the data set. With --upload\n" +
			"the corrected images go to the Custom Vision training project named by " + collect.EnvEndpoint + ",\n" +
			collect.EnvKey + " and " + collect.EnvProject + ".",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return errors.New("--out: give the data set folder")
			}
			check := configs.Default()
			check.MQTT = cfg
			check.Agent.ID, check.MQTT.TopicPrefix = "collect", "collect"
			if err := mqttProblems(check.Validate()); err != nil {
				return err
			}
			log := newLogger(configs.Agent{LogLevel: "info", LogFormat: "auto"}, stderr)
			ds, err := collect.OpenDataset(out)
			if err != nil {
				return err
			}
			defer ds.Close()
			c := &collect.Collector{DS: ds, Log: log}
			if upload {
				t, err := collect.TrainingFromEnv(log)
				if err != nil {
					return err
				}
				c.Up = &collect.Uploader{T: t, Dir: out}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log.Info("collecting", "data_set", out, "samples", ds.Len(), "topic", topic, "upload", upload)
			err = c.Run(ctx, cfg, topic, every)
			fmt.Fprintf(stdout, "%s: %s; %d samples in the data set\n", out, c.Counts(), ds.Len())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "data set folder (created; resumed when it exists)")
	f.StringVar(&topic, "topic", "cvedge/+/cameras/+/samples", "MQTT topic filter of the samples")
	f.StringVar(&cfg.Broker, "broker", cfg.Broker, "broker URL")
	f.StringVar(&cfg.ClientID, "client-id", cfg.ClientID, "stable client id: the broker keeps samples for it while the collector is away")
	f.StringVar(&cfg.Username, "username", "", "broker user name")
	f.StringVar(&cfg.PasswordFile, "password-file", "", "file holding the broker password (or set CVEDGE_MQTT_PASSWORD)")
	f.StringVar(&cfg.TLS.CAFile, "ca-file", "", "CA bundle of the broker's certificate")
	f.StringVar(&cfg.TLS.CertFile, "cert-file", "", "client certificate, for mutual TLS")
	f.StringVar(&cfg.TLS.KeyFile, "key-file", "", "client key, for mutual TLS")
	f.BoolVar(&upload, "upload", false, "upload corrected images to the Custom Vision training project")
	f.DurationVar(&every, "upload-interval", 30*time.Second, "how often to upload new corrected images")
	cfg.Password = os.Getenv("CVEDGE_MQTT_PASSWORD")
	return cmd
}

// mqttProblems keeps the MQTT part of a validation error, with flag names.
func mqttProblems(err error) error {
	if err == nil {
		return nil
	}
	var keep []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(line, "mqtt.") {
			keep = append(keep, line)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return errors.New(strings.Join(keep, "\n"))
}

func evalCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		mf        modelFlags
		paths     []string
		data, out string
		mapping   []string
	)
	cmd := &cobra.Command{
		Use:   "eval --model M [--model M2 ...] --data DIR",
		Short: "Score models on labelled field images, side by side",
		Long: "Run one or more models on a labelled data set and report accuracy, per-tag precision, recall and F1 and the\n" +
			"confusion matrix (classifiers), or AP@0.5 per tag and mAP (detectors). Classification data is a folder per tag;\n" +
			"folder names match tags ignoring case and punctuation, or use --map Folder=tag. Detection data is a COCO JSON\n" +
			"file or a folder written by cvedge collect. Writes report.md, report.json and a PNG per confusion matrix.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if len(paths) == 0 || data == "" {
				return errors.New("give --model (one or more) and --data")
			}
			explicit := map[string]string{}
			for _, m := range mapping {
				k, v, ok := strings.Cut(m, "=")
				if !ok || k == "" || v == "" {
					return fmt.Errorf("--map %q: write FOLDER=TAG", m)
				}
				explicit[k] = v
			}
			set, err := mf.openStages()
			if err != nil {
				return err
			}
			defer set.close()
			for _, p := range paths {
				st, err := set.load(p)
				if err != nil {
					return err
				}
				if st.Detector() != set.stages[0].Detector() {
					return errors.New("--model: give classifiers only, or detectors only, in one evaluation")
				}
			}
			list := make([]eval.Model, len(set.stages))
			for i, st := range set.stages {
				list[i] = eval.Model{Info: st.Model().Info, Stage: st}
			}
			prog := newProgress(stderr)
			report, err := eval.Run(eval.Options{Models: list, Data: data, Map: explicit, Progress: prog.update})
			if err != nil {
				return err
			}
			if out == "" {
				out = "eval-" + time.Now().Format("20060102-150405")
			}
			if err := report.Write(out); err != nil {
				return err
			}
			for _, m := range report.Models {
				switch {
				case m.Accuracy != nil:
					fmt.Fprintf(stdout, "%s: accuracy %.1f%% on %d images (%d failed)\n", m.Name, 100**m.Accuracy, m.Images, m.Failed)
				case m.MAP != nil:
					fmt.Fprintf(stdout, "%s: mAP@0.5 %.3f on %d images (%d failed)\n", m.Name, *m.MAP, m.Images, m.Failed)
				}
			}
			fmt.Fprintf(stdout, "report: %s\n", filepath.Join(out, "report.md"))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&paths, "model", nil, "a model to score (repeat to compare iterations)")
	cmd.Flags().StringVar(&data, "data", "", "labelled data set: a folder per tag, a COCO JSON file, or a cvedge collect folder")
	cmd.Flags().StringVar(&out, "out", "", "report folder (default eval-<date>-<time>)")
	cmd.Flags().StringArrayVar(&mapping, "map", nil, "FOLDER=TAG: the tag of a folder whose name differs from it")
	mf.register(cmd)
	return cmd
}

// progress draws a bar on a terminal, and nothing elsewhere.
type progress struct {
	w    io.Writer
	on   bool
	last time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) step(name string, n, total int) {
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && n < total) {
		return
	}
	p.last = time.Now()
	width := 30
	fill := width * n / max(total, 1)
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// update is eval's progress: a step, and the end of the line once a model is done.
func (p *progress) update(name string, n, total int) {
	p.step(name, n, total)
	if n == total {
		p.done()
	}
}

func benchCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		o        bench.Options
		asJSON   bool
		markdown string
		lib      string
		config   string
		cpuProf  string
		memProf  string
	)
	cmd := &cobra.Command{
		Use:   "bench --detector D --classifier C --source FILE",
		Short: "Measure the models alone, the pipeline and the whole agent on this machine, in one run",
		Long: "Measure, in one run: onnxruntime's own time per call for each model (a tight loop); the full pipeline\n" +
			"(capture, decode, preprocess, detect, crop, classify, JSON) with per-stage p50 and p99; the pipeline publishing\n" +
			"to an embedded MQTT broker; the efficiency (end-to-end throughput divided by what the raw model times allow for\n" +
			"the same work); Go heap allocations per frame; peak RSS; and, with --cameras, several realtime cameras sharing\n" +
			"the models. Timings are measured, never asserted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Source == "" {
				return errors.New("--source: give a video file or an image folder")
			}
			o.Runtime = configs.Default().ONNXRuntime
			if config != "" {
				cfg, err := configs.Load(config)
				if err != nil {
					return err
				}
				o.Runtime = cfg.ONNXRuntime
			}
			if lib != "" {
				o.Runtime.Library = lib
			}
			if cpuProf != "" {
				f, err := os.Create(cpuProf)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if memProf != "" {
				if err := writeHeapProfile(memProf); err != nil {
					return fmt.Errorf("--memprofile: %w", err)
				}
			}
			if markdown != "" {
				if err := os.WriteFile(markdown, []byte(rep.Markdown()), 0o644); err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			fmt.Fprint(stdout, rep.Markdown())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Detector, "detector", "", "detector export")
	f.StringVar(&o.Classifier, "classifier", "", "classifier export (on each detection's crop, or the whole frame)")
	f.StringVar(&o.Source, "source", "", "video file or image folder (looped as needed)")
	f.IntVar(&o.Frames, "frames", 300, "frames through the pipeline")
	f.IntVar(&o.Cameras, "cameras", 0, "also run this many realtime cameras on the source, sharing the models")
	f.Float64Var(&o.FPS, "fps", 10, "frame rate of each realtime camera")
	f.Float64Var(&o.Seconds, "seconds", 10, "how long the realtime cameras run")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&markdown, "markdown", "", "also write the report's tables to this file")
	f.StringVar(&lib, "onnxruntime-library", "", "path of libonnxruntime.so (default: the config's, or search)")
	f.StringVar(&config, "config", "", "take the onnxruntime section (threads, graph optimization, memory arena, execution provider) from this config")
	f.StringVar(&cpuProf, "cpuprofile", "", "write a Go CPU profile of the run to this file (go tool pprof)")
	f.StringVar(&memProf, "memprofile", "", "write a Go heap profile (what is live at the end, and what the run allocated) to this file (go tool pprof)")
	return cmd
}

// writeHeapProfile writes the Go heap profile, after a collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
