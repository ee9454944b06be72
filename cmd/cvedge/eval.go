package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/tools/eval"
)

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
			explicit, err := folderTags(mapping)
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
			printEval(stdout, report, out)
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

// folderTags reads the --map flags: FOLDER=TAG each.
func folderTags(mapping []string) (map[string]string, error) {
	explicit := map[string]string{}
	for _, m := range mapping {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("--map %q: write FOLDER=TAG", m)
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
			return nil, errors.New("--model: give classifiers only, or detectors only, in one evaluation")
		}
		list = append(list, eval.Model{Info: st.Model().Info, Stage: st})
	}
	return list, nil
}

// printEval prints each model's headline score and where the report is.
func printEval(stdout io.Writer, report *eval.Report, out string) {
	for _, m := range report.Models {
		switch {
		case m.Accuracy != nil:
			fmt.Fprintf(stdout, "%s: accuracy %.1f%% on %d images (%d failed)\n", m.Name, 100**m.Accuracy, m.Images, m.Failed)
		case m.MAP != nil:
			fmt.Fprintf(stdout, "%s: mAP@0.5 %.3f on %d images (%d failed)\n", m.Name, *m.MAP, m.Images, m.Failed)
		}
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(out, "report.md"))
}

// progress draws a bar on a terminal, and nothing elsewhere.
type progress struct {
	w    io.Writer
	on   bool
	last time.Time
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, on: isTerminal(w)}
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
