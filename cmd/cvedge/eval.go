package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/eval"
	"github.com/cvedge/cvedge/configs"
)

func evalCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		mf        modelFlags
		paths     []string
		data, out string
		mapping   []string
		asJSON    bool
		allowFail bool
		cf        cascadeFlags
		portal    portalFlags
	)
	cmd := &cobra.Command{
		Use:   "eval (--model M [--model M2 ...] | --config FILE [--camera NAME]) --data DIR",
		Short: "Score models on labelled field images, side by side",
		Long: "Run one or more models on a labelled data set and report accuracy, per-tag precision, recall and F1 and the\n" +
			"confusion matrix (classifiers), or AP@0.5 per tag and mAP (detectors). Classification data is a folder per tag;\n" +
			"folder names match tags ignoring case and punctuation, or use --map Folder=tag. Detection data is a COCO JSON\n" +
			"file or a folder written by cvedge collect. Writes report.md, report.json and a PNG per confusion matrix.\n\n" +
			"Reads the models and the data set; writes the report into --out (default eval-<date>-<time> in the current\n" +
			"folder) and prints each model's headline score, or with --json the same as one JSON object (docs/cli.md).\n" +
			"The report lists every image a model got wrong, and every image it could not read or run with why; any of the\n" +
			"latter makes the exit status 1 (the scores leave them out), unless --allow-failures. report.html is the same\n" +
			"in one self-contained page, with a thumbnail of each image a model got wrong. A tag of the data set that a\n" +
			"model lacks (but another model knows) counts as that model's misses and shows as \"not in model\".\n" +
			"With --training-endpoint it sets the Custom Vision portal's precision, recall and AP of each iteration beside\n" +
			"the field's, with the gap; the key comes from CUSTOMVISION_TRAINING_KEY (docs/improvement.md).\n" +
			"On a terminal it shows its progress on stderr; piped, it does not.\n\n" +
			"--config FILE --camera NAME scores the camera's pipeline end to end instead (the cascade score): its\n" +
			"detector, classifier, routes, crop padding, thresholds, masks and quality gate as the agent runs them, on a\n" +
			"detection data set whose boxes carry each part's final tag. It reports the parts found, the final tags right,\n" +
			"the false parts and a confusion matrix of final tags with a column of missed parts and a row of false\n" +
			"parts, in report.md, report.json and cascade.png.",
		Example: "  cvedge eval --model colour-v1.zip --model colour-v2.zip --data ./labelled --out ./eval-v2\n" +
			"  cvedge eval --model parts.zip --data annotations.json --json\n" +
			"  CUSTOMVISION_TRAINING_KEY=... cvedge eval --model colour-v2.zip --data ./labelled \\\n" +
			"      --training-endpoint https://myresource.cognitiveservices.azure.com/ --project PROJECT-ID\n" +
			"  cvedge eval --config /etc/cvedge/cvedge.yaml --camera line1 --data parts.json --out eval-line1",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cf.set() {
				return cf.run(cmd, data, out, asJSON, allowFail, stdout, stderr)
			}
			if len(paths) == 0 || data == "" {
				return usageErrorf("give --model (one or more) and --data, or --config and --camera and --data")
			}
			explicit, err := folderTags(mapping)
			if err != nil {
				return err
			}
			training, err := portal.training(len(paths), stderr)
			if err != nil {
				return err
			}
			set, err := mf.openStages()
			if err != nil {
				return err
			}
			defer set.close()
			list, err := evalModels(set, paths)
			if err != nil {
				return err
			}
			portals, err := portal.fetch(training, list) // before the long part: a wrong key fails at once
			if err != nil {
				return err
			}
			prog := newProgress(stderr)
			report, err := eval.Run(eval.Options{Models: list, Data: data, Map: explicit, Progress: prog.update})
			prog.done() // a model cut short by an error
			if err != nil {
				return err
			}
			for i, p := range portals {
				report.Models[i].CompareWithPortal(p)
			}
			if out == "" {
				out = "eval-" + time.Now().Format("20060102-150405")
			}
			if err := report.Write(out); err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(stdout, newEvalJSON(report, out)); err != nil {
					return err
				}
			} else {
				printEval(stdout, report, out)
			}
			return failures(report, out, allowFail)
		},
	}
	cmd.Flags().StringArrayVar(&paths, "model", nil, "a model to score (repeat to compare iterations)")
	cmd.Flags().StringVar(&data, "data", "", "labelled data set: a folder per tag, a COCO JSON file, or a cvedge collect folder")
	cmd.Flags().StringVar(&out, "out", "", "report folder (default eval-<date>-<time>)")
	cmd.Flags().StringArrayVar(&mapping, "map", nil, "FOLDER=TAG: the tag of a folder whose name differs from it")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary (each model's score, where the report is) as JSON (docs/cli.md)")
	cmd.Flags().BoolVar(&allowFail, "allow-failures", false, "exit 0 even when some images could not be read or run (they are listed in the report either way)")
	portal.register(cmd)
	mf.register(cmd)
	cf.register(cmd)
	return cmd
}

// portalFlags say where to read the portal's figures of the iterations scored.
type portalFlags struct {
	endpoint, project string
	iterations        []string
}

func (f *portalFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.endpoint, "training-endpoint", "", "compare with the portal: the Custom Vision training resource's endpoint (key from "+collect.EnvKey+")")
	cmd.Flags().StringVar(&f.project, "project", "", "with --training-endpoint: the project id (default from "+collect.EnvProject+")")
	cmd.Flags().StringArrayVar(&f.iterations, "iteration", nil, "with --training-endpoint: the iteration id of each --model, in order (default: the export's manifest)")
}

// training checks the flags and the environment that say where the portal is: nil without
// --training-endpoint.
func (f *portalFlags) training(models int, stderr io.Writer) (*collect.Training, error) {
	if f.endpoint == "" {
		if f.project != "" || len(f.iterations) > 0 {
			return nil, usageErrorf("--project and --iteration go with --training-endpoint")
		}
		return nil, nil
	}
	if err := collect.CheckEndpoint(f.endpoint); err != nil {
		return nil, usageErrorf("--training-endpoint %v", err)
	}
	t := &collect.Training{Endpoint: f.endpoint, Key: os.Getenv(collect.EnvKey), Project: f.project,
		Log: newLogger(configs.Agent{LogLevel: "info", LogFormat: "auto"}, stderr)}
	if t.Project == "" {
		t.Project = os.Getenv(collect.EnvProject)
	}
	if t.Key == "" {
		return nil, usageErrorf("--training-endpoint needs the training key in %s (the training resource's key, not the prediction key)", collect.EnvKey)
	}
	if t.Project == "" {
		return nil, usageErrorf("--training-endpoint needs the project id: give --project or set %s (the portal's project settings show it)", collect.EnvProject)
	}
	if len(f.iterations) > 0 && len(f.iterations) != models {
		return nil, usageErrorf("give one --iteration per --model (%d models, %d iterations), or none to take them from the exports' manifests", models, len(f.iterations))
	}
	return t, nil
}

// fetch reads from t the portal's performance of each model's iteration: none when t is nil.
// The key never leaves the request header.
func (f *portalFlags) fetch(t *collect.Training, list []eval.Model) ([]*eval.Portal, error) {
	if t == nil {
		return nil, nil
	}
	ctx, stop := collect.UntilSignal(context.Background())
	defer stop()
	var out []*eval.Portal
	for i, m := range list {
		it := m.Info.Iteration
		if len(f.iterations) > 0 {
			it = f.iterations[i]
		}
		p, err := eval.FetchPortal(ctx, t, it)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Info.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// folderTags reads the --map flags: FOLDER=TAG each.
func folderTags(mapping []string) (map[string]string, error) {
	explicit := map[string]string{}
	for _, m := range mapping {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" || v == "" {
			return nil, usageErrorf("--map %q: write FOLDER=TAG", m)
		}
		explicit[k] = v
	}
	return explicit, nil
}

// evalModels loads the --model exports into set, all classifiers or all detectors.
func evalModels(set *stageSet, paths []string) ([]eval.Model, error) {
	var list []eval.Model
	for _, p := range paths {
		st, err := set.load(p)
		if err != nil {
			return nil, err
		}
		if st.Detector() != set.stages[0].Detector() {
			return nil, usageErrorf("--model: give classifiers only, or detectors only, in one evaluation")
		}
		list = append(list, eval.Model{Info: st.Model().Info, Stage: st})
	}
	return list, nil
}

// evalJSON is what `eval --json` prints: the summary; report.json has the rest.
type evalJSON struct {
	Data       string          `json:"data"`
	Kind       string          `json:"kind"`
	Report     string          `json:"report"`
	ReportJSON string          `json:"reportJSON"`
	ReportHTML string          `json:"reportHTML,omitempty"` // not for the cascade score
	Models     []evalModelJSON `json:"models"`
	// Cascade is the headline of the cascade score (--config), kind cascade.
	Cascade *cascadeJSON `json:"cascade,omitempty"`
}

// evalModelJSON is one model's headline score: accuracy for classifiers, map for detectors.
type evalModelJSON struct {
	Name      string   `json:"name"`
	Source    string   `json:"source"`
	Iteration string   `json:"iteration"`
	Images    int      `json:"images"`
	Failed    int      `json:"failed"`
	Accuracy  *float64 `json:"accuracy,omitempty"`
	MeanAP    *float64 `json:"meanAP,omitempty"`
	MAP       *float64 `json:"map,omitempty"`
	// PortalAP is the portal's average precision of the iteration, with --training-endpoint.
	PortalAP *float64 `json:"portalAP,omitempty"`
}

func newEvalJSON(r *eval.Report, out string) evalJSON {
	j := evalJSON{Data: r.Data, Kind: r.Kind, Report: filepath.Join(out, "report.md"), ReportJSON: filepath.Join(out, "report.json"),
		ReportHTML: filepath.Join(out, "report.html"), Models: []evalModelJSON{}}
	if r.Cascade != nil {
		j.ReportHTML = ""
	}
	for _, m := range r.Models {
		j.Models = append(j.Models, evalModelJSON{Name: m.Name, Source: m.Source, Iteration: m.Iteration, Images: m.Images,
			Failed: m.Failed, Accuracy: m.Accuracy, MeanAP: m.MeanAP, MAP: m.MAP})
		if m.Portal != nil {
			ap := m.Portal.AveragePrecision
			j.Models[len(j.Models)-1].PortalAP = &ap
		}
	}
	return j
}

// printEval prints each model's headline score and where the report is.
func printEval(stdout io.Writer, report *eval.Report, out string) {
	for _, m := range report.Models {
		switch {
		case m.Accuracy != nil:
			fmt.Fprintf(stdout, "%s: accuracy %.1f%% on %d images (%d failed), mean AP %.3f\n", m.Name, 100**m.Accuracy, m.Images, m.Failed, *m.MeanAP)
		case m.MAP != nil:
			fmt.Fprintf(stdout, "%s: mAP@0.5 %.3f on %d images (%d failed)\n", m.Name, *m.MAP, m.Images, m.Failed)
		}
	}
	for _, m := range report.Models {
		if p := m.Portal; p != nil && p.Gap != nil {
			fmt.Fprintf(stdout, "%s: portal AP %.3f (iteration %s), field %.3f: gap %+.3f\n", m.Name, p.AveragePrecision, p.Iteration, p.AveragePrecision+p.Gap.AP, p.Gap.AP)
		}
	}
	fmt.Fprintf(stdout, "report: %s (and report.html)\n", filepath.Join(out, "report.md"))
}

// failures is the error of an evaluation where a model could not read or run some images:
// its score leaves them out, so it does not pass silently unless allowed.
func failures(r *eval.Report, out string, allowed bool) error {
	for _, m := range r.Models {
		if m.Failed > 0 && !allowed {
			f := m.Failures[0]
			return fmt.Errorf("model %s could not read or run %d of %d images (the first, %s: %s; all in %s): fix them, or pass --allow-failures to accept the score without them",
				m.Name, m.Failed, m.Images, f.File, f.Reason, filepath.Join(out, "report.md"))
		}
	}
	return nil
}
