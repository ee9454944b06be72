package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/tools/eval"
	"github.com/cvedge/cvedge/configs"
)

// cascadeFlags are the flags of `eval --config`: the camera whose pipeline is scored.
type cascadeFlags struct {
	config, camera string
}

func (cf *cascadeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&cf.config, "config", "", "score the pipeline of a camera of this config end to end: detector, classifier, routes (cascade score)")
	cmd.Flags().StringVar(&cf.camera, "camera", "", "with --config: the camera whose pipeline to score (default: the config's only camera)")
}

// set reports whether the command runs in cascade mode.
func (cf *cascadeFlags) set() bool { return cf.config != "" || cf.camera != "" }

// modelOnly are the flags of eval that name or set models: with --config, the config does.
var modelOnly = []string{"model", "map", "format", "threshold", "resize", "input-size", "onnxruntime-library"}

// run scores the pipeline of camera cf.camera of config cf.config on the detection data set
// data, writes the report into out and prints its headline (or, with asJSON, the summary).
func (cf *cascadeFlags) run(cmd *cobra.Command, data, out string, asJSON, allowFail bool, stdout, stderr io.Writer) error {
	if cf.config == "" {
		return usageErrorf("--camera needs --config: the config whose camera's pipeline to score")
	}
	for _, f := range modelOnly {
		if cmd.Flags().Changed(f) {
			return usageErrorf("--%s does not go with --config: the camera's pipeline takes its models and their settings from the config (models.<name>)", f)
		}
	}
	for _, f := range []string{"training-endpoint", "project", "iteration"} {
		if cmd.Flags().Changed(f) {
			return usageErrorf("--%s does not go with --config: the portal's figures are those of one iteration, so compare them with --model EXPORT", f)
		}
	}
	if data == "" {
		return usageErrorf("give --data: a COCO JSON file or a cvedge collect folder, each box labelled with its part's final tag")
	}
	cfg, err := configs.Load(cf.config)
	if err != nil {
		return err
	}
	name, err := cascadeCamera(cfg, cf.config, cf.camera)
	if err != nil {
		return err
	}
	cp, err := agent.OpenCameraPipeline(cfg, name, newLogger(configs.Agent{LogLevel: "warn", LogFormat: "text"}, stderr))
	if err != nil {
		return fmt.Errorf("config %s: %w", cf.config, err)
	}
	defer cp.Close()
	o := eval.CascadeOptions{Camera: name, Pipeline: cp.Pipeline, Data: data}
	var detectorTags []string
	seen := map[string]bool{}
	for _, r := range cp.Roles {
		if r.Info.Format == "llm" {
			return usageErrorf("camera %s: %s goes to model %q of type llm, whose answers come after the models, per part: the cascade score runs the models only; score a copy of the config without that route", name, r.Role, r.Info.Name)
		}
		o.Models = append(o.Models, eval.CascadeModel{Role: r.Role, Name: r.Info.Name, Iteration: r.Info.Iteration})
		if r.Role == "detector" {
			detectorTags = r.Info.Labels
			continue
		}
		for _, l := range r.Info.Labels {
			if !seen[l] {
				seen[l] = true
				o.Tags = append(o.Tags, l)
			}
		}
	}
	if o.Tags == nil { // no classifier: the detector's tags are final
		o.Tags = detectorTags
	}
	prog := newProgress(stderr)
	o.Progress = func(n, total int) { prog.update("camera "+name, n, total) }
	report, err := eval.Cascade(o)
	prog.done()
	if err != nil {
		return err
	}
	if out == "" {
		out = "eval-" + time.Now().Format("20060102-150405")
	}
	if err := report.Write(out); err != nil {
		return err
	}
	c := report.Cascade
	if asJSON {
		j := newEvalJSON(report, out)
		j.Cascade = &cascadeJSON{Camera: c.Camera, Images: c.Images, Failed: c.Failed, PartScore: c.PartScore, FalsePerImage: c.FalsePerImage}
		if err := writeJSON(stdout, j); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "camera %s: parts found %.1f%% (%d of %d), final tag right %.1f%% of found, end to end %.1f%%, false parts %.2f per image, on %d images (%d failed)\n",
			c.Camera, 100*c.PartsFound, c.Found, c.Parts, 100*c.TagAccuracy, 100*c.EndToEnd, c.FalsePerImage, c.Images, c.Failed)
		fmt.Fprintf(stdout, "report: %s\n", filepath.Join(out, "report.md"))
	}
	if c.Failed > 0 && !allowFail {
		f := c.Failures[0]
		return fmt.Errorf("camera %s could not read or run %d of %d images (the first, %s: %s; all in %s): fix them, or pass --allow-failures to accept the score without them",
			c.Camera, c.Failed, c.Images, f.File, f.Reason, filepath.Join(out, "report.md"))
	}
	return nil
}

// cascadeCamera is the camera to score: the one named, else the config's only one. A camera
// without a detector is refused: the cascade score needs one.
func cascadeCamera(cfg *configs.Config, path, name string) (string, error) {
	var names []string
	for _, c := range cfg.Cameras {
		names = append(names, c.Name)
	}
	if name == "" {
		if len(names) != 1 {
			return "", usageErrorf("give --camera: config %s has %d cameras (%s)", path, len(names), strings.Join(names, ", "))
		}
		name = names[0]
	}
	i := slices.Index(names, name)
	if i < 0 {
		return "", usageErrorf("--camera %s: config %s has no such camera (cameras: %s)", name, path, strings.Join(names, ", "))
	}
	if cfg.Cameras[i].Pipeline.Detector == "" {
		return "", usageErrorf("--camera %s: cameras[%d].pipeline.detector is empty in %s: the cascade score needs a detector; score the camera's classifier alone with --model and a folder per tag", name, i, path)
	}
	return name, nil
}

// cascadeJSON is the cascade's headline in `eval --config --json`; report.json has the rest.
type cascadeJSON struct {
	Camera string `json:"camera"`
	Images int    `json:"images"`
	Failed int    `json:"failed"`
	eval.PartScore
	FalsePerImage float64 `json:"falsePartsPerImage"`
}
