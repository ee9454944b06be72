package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/tools/bench"
	"github.com/cvedge/cvedge/configs"
)

// benchFlags are the settings of cvedge bench.
type benchFlags struct {
	o                                       bench.Options
	asJSON                                  bool
	markdown, lib, config, cpuProf, memProf string
}

func benchCmd(stdout, stderr io.Writer) *cobra.Command {
	bf := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench --detector D --classifier C --source FILE",
		Short: "Measure the models alone, the pipeline and the whole agent on this machine, in one run",
		Long: "Measure, in one run: onnxruntime's own time per call for each model (a tight loop); the full pipeline\n" +
			"(capture, decode, preprocess, detect, crop, classify, JSON) with per-stage p50 and p99; the pipeline publishing\n" +
			"to an embedded MQTT broker; the efficiency (end-to-end throughput divided by what the raw model times allow for\n" +
			"the same work); Go heap allocations per frame; peak RSS; with a detector, what tracking the parts and deciding\n" +
			"them costs per frame; and, with --cameras, several realtime cameras sharing the models, each deciding its parts\n" +
			"at a line across the middle of the frame, with the latency from the part's last frame to its decision's\n" +
			"arrival at a subscriber. Timings are measured, never asserted.\n\n" +
			"Reads the models and the source (a video file or an image folder, looped as needed); starts its own MQTT broker\n" +
			"on a free loopback port, in the process (--broker: publishes to a running one instead, so that the figures are\n" +
			"the agent's alone); writes the report to stdout (tables, or --json), the tables also to --markdown, and the\n" +
			"profiles to --cpuprofile and --memprofile. On a terminal it shows the progress of each phase (pipeline frames,\n" +
			"models alone, end to end, models alone again, cameras) on stderr; piped, it does not.",
		Example: "  cvedge bench --detector parts.zip --classifier colour.zip --source line1.mp4\n" +
			"  cvedge bench --detector parts.zip --source stills/ --frames 100 --cameras 4 --fps 10 --json > bench.json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bf.o.Source == "" {
				return usageErrorf("--source: give a video file or an image folder")
			}
			if bf.o.Detector == "" && bf.o.Classifier == "" {
				return usageErrorf("--detector, --classifier: give a detector, a classifier, or both")
			}
			if err := bf.onnxRuntime(); err != nil {
				return err
			}
			if bf.cpuProf != "" {
				stop, err := startCPUProfile(bf.cpuProf)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer stop()
			}
			prog := newProgress(stderr)
			bf.o.Progress = prog.update
			rep, err := bench.Run(cmd.Context(), bf.o)
			prog.done() // a phase cut short by an error
			if err != nil {
				return err
			}
			if bf.memProf != "" {
				if err := writeHeapProfile(bf.memProf); err != nil {
					return fmt.Errorf("--memprofile: %w", err)
				}
			}
			return bf.printReport(stdout, rep)
		},
	}
	bf.register(cmd)
	return cmd
}

func (bf *benchFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&bf.o.Detector, "detector", "", "detector export")
	f.StringVar(&bf.o.Classifier, "classifier", "", "classifier export (on each detection's crop, or the whole frame)")
	f.StringVar(&bf.o.Source, "source", "", "video file or image folder (looped as needed)")
	f.IntVar(&bf.o.Frames, "frames", 300, "frames through the pipeline")
	f.IntVar(&bf.o.Cameras, "cameras", 0, "also run this many realtime cameras on the source, sharing the models")
	f.Float64Var(&bf.o.FPS, "fps", 10, "frame rate of each realtime camera")
	f.Float64Var(&bf.o.Seconds, "seconds", 10, "how long the realtime cameras run")
	f.BoolVar(&bf.o.Motion, "motion", false, "with --cameras, turn each camera's motion gate on (cameras[].motion at its defaults)")
	f.StringVar(&bf.o.Broker, "broker", "", "publish to this running MQTT broker (tcp://HOST:PORT, no credentials), under cvedge/bench/, instead of one embedded in the process: the figures are then the agent's alone")
	f.BoolVar(&bf.asJSON, "json", false, "print the report as one JSON object (docs/cli.md)")
	f.StringVar(&bf.markdown, "markdown", "", "also write the report's tables to this file")
	f.StringVar(&bf.lib, "onnxruntime-library", "", "path of libonnxruntime.so (default: the config's, or search)")
	f.StringVar(&bf.config, "config", "", "take the onnxruntime section (threads, graph optimization, memory arena, execution provider) from this config; a file with that section alone will do")
	f.StringVar(&bf.cpuProf, "cpuprofile", "", "write a Go CPU profile of the run to this file (go tool pprof)")
	f.StringVar(&bf.memProf, "memprofile", "", "write a Go heap profile (what is live at the end, and what the run allocated) to this file (go tool pprof)")
}

// onnxRuntime sets the onnxruntime settings: the defaults, or the --config file's, with the
// library of --onnxruntime-library.
func (bf *benchFlags) onnxRuntime() error {
	bf.o.Runtime = configs.Default().ONNXRuntime
	if bf.config != "" {
		rt, err := configs.LoadRuntime(bf.config) // the onnxruntime section alone will do
		if err != nil {
			return err
		}
		bf.o.Runtime = rt
	}
	if bf.lib != "" {
		bf.o.Runtime.Library = bf.lib
	}
	return nil
}

// printReport writes the report: its tables to --markdown when given, and JSON or the tables to
// stdout.
func (bf *benchFlags) printReport(stdout io.Writer, rep *bench.Report) error {
	if bf.markdown != "" {
		if err := os.WriteFile(bf.markdown, []byte(rep.Markdown()), 0o644); err != nil {
			return err
		}
	}
	if bf.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprint(stdout, rep.Markdown())
	return nil
}

// startCPUProfile starts a Go CPU profile into path; stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
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
