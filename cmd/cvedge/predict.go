package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// apiResult is what `predict --json` prints per image: the file and the Prediction API fields.
type apiResult struct {
	File        string        `json:"file"`
	ID          string        `json:"id"`
	Project     string        `json:"project"`
	Iteration   string        `json:"iteration"`
	Created     time.Time     `json:"created"`
	Predictions []payload.Tag `json:"predictions"`
}

// predictFlags name the models of predict: one alone, or a detector and a classifier.
type predictFlags struct {
	model, detector, classifier string
}

func predictCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		mf      modelFlags
		pf      predictFlags
		asJSON  bool
		padding float64
	)
	cmd := &cobra.Command{
		Use:   "predict (--model MODEL | --detector D [--classifier C]) PATH...",
		Short: "Run models on image files or folders, one line per image",
		Long: "Run a model, or a detector and a classifier on each detected crop, on images. A PATH may be a file or a\n" +
			"folder (searched recursively, in name order). --json prints one JSON object per image: \"file\" and the\n" +
			"Custom Vision Prediction API fields.\n\n" +
			"Reads the models and the images; writes the results to stdout and nothing to disk. An image that cannot be\n" +
			"read or run is named on stderr, and makes the exit code 1 once the others are done.",
		Example: "  cvedge predict --model colour.zip part.jpg\n" +
			"  cvedge predict --detector parts.zip --classifier colour.zip --json stills/ > results.jsonl",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if (pf.model == "") == (pf.detector == "" && pf.classifier == "") {
				return usageErrorf("give --model, or --detector and/or --classifier")
			}
			files, err := imageFiles(args)
			if err != nil {
				return err
			}
			set, err := mf.openStages()
			if err != nil {
				return err
			}
			defer set.close()
			det, cls, err := pf.loadStages(set)
			if err != nil {
				return err
			}
			pl := pipeline.New(pipeline.Options{Detector: det, Classifier: cls, Padding: float32(padding)})
			defer pl.Close()
			return printPredictions(pl, files, asJSON, stdout, stderr)
		},
	}
	cmd.Flags().StringVar(&pf.model, "model", "", "a classifier or a detector, run alone")
	cmd.Flags().StringVar(&pf.detector, "detector", "", "detector: finds the regions")
	cmd.Flags().StringVar(&pf.classifier, "classifier", "", "classifier: runs on each detected region (or the whole image)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per image")
	cmd.Flags().Float64Var(&padding, "crop-padding", configs.DefaultCamera().Pipeline.CropPadding, "grow each detected box by this fraction before classifying it")
	mf.register(cmd)
	return cmd
}

// loadStages loads the models the flags name into set, and returns them as the detector and the
// classifier (either may be nil), refusing a model given for the other job.
func (pf predictFlags) loadStages(set *stageSet) (det, cls pipeline.Stage, err error) {
	load := func(path string) (pipeline.Stage, error) {
		if path == "" {
			return nil, nil
		}
		return set.load(path)
	}
	if pf.model != "" {
		st, err := load(pf.model)
		if err != nil {
			return nil, nil, err
		}
		if st.Detector() {
			return st, nil, nil
		}
		return nil, st, nil
	}
	if det, err = load(pf.detector); err != nil {
		return nil, nil, err
	}
	if cls, err = load(pf.classifier); err != nil {
		return nil, nil, err
	}
	if det != nil && !det.Detector() {
		return nil, nil, usageErrorf("--detector %s is a classifier", pf.detector)
	}
	if cls != nil && cls.Detector() {
		return nil, nil, usageErrorf("--classifier %s is a detector", pf.classifier)
	}
	return det, cls, nil
}

// printPredictions runs pl on each file and prints a line (or a JSON object) per image; a
// file that cannot be read or run is named on stderr, and counted in the error.
func printPredictions(pl *pipeline.Pipeline, files []string, asJSON bool, stdout, stderr io.Writer) error {
	failed := 0
	enc := json.NewEncoder(stdout)
	for _, file := range files {
		f, err := camera.ReadImage(file)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", file, err)
			failed++
			continue
		}
		msg, err := pl.Process(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", file, err)
			failed++
			continue
		}
		if asJSON {
			if err := enc.Encode(apiResult{File: file, ID: msg.ID, Project: msg.Project, Iteration: msg.Iteration, Created: msg.Created, Predictions: msg.Predictions}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(stdout, "%s: %s\n", file, pipeline.Summary(msg))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

// imageFiles expands the paths: files as given, folders searched recursively for images, in
// name order.
func imageFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && camera.IsImage(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no images (.jpg, .png, .bmp, .tif, .webp)", p)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}
