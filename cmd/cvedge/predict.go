package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
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
		mf       modelFlags
		pf       predictFlags
		asJSON   bool
		padding  float64
		annotate string
	)
	cmd := &cobra.Command{
		Use:   "predict (--model MODEL | --detector D [--classifier C]) [--annotate DIR] PATH...",
		Short: "Run models on image files or folders, one line per image",
		Long: "Run a model, or a detector and a classifier on each detected crop, on images. A PATH may be a file or a\n" +
			"folder (searched recursively, in name order). --json prints one JSON object per image: \"file\" and the\n" +
			"Custom Vision Prediction API fields.\n\n" +
			"--annotate DIR writes each image, with its boxes and final tags drawn (\"brass 93%\"; the whole image\n" +
			"for a classifier alone), as a JPEG into DIR (created): a.jpg as DIR/a.jpg, other images with .jpg added\n" +
			"(a.png as DIR/a.png.jpg), the images of a folder under their sub-folders (stills/left/a.jpg as\n" +
			"DIR/left/a.jpg). A file already there is overwritten; images inside DIR are not read. Two images that\n" +
			"would be written to the same file (a/x.jpg and b/x.jpg given as files) are refused before any runs.\n\n" +
			"Reads the models and the images; writes the results to stdout and nothing to disk but the --annotate\n" +
			"images. An image that cannot be read, run or written is named on stderr, and makes the exit code 1 once\n" +
			"the others are done.",
		Example: "  cvedge predict --model colour.zip part.jpg\n" +
			"  cvedge predict --detector parts.zip --classifier colour.zip --json stills/ > results.jsonl\n" +
			"  cvedge predict --detector parts.zip --classifier colour.zip --annotate annotated/ stills/",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if (pf.model == "") == (pf.detector == "" && pf.classifier == "") {
				return usageErrorf("give --model, or --detector and/or --classifier")
			}
			files, err := imageFiles(args)
			if err != nil {
				return err
			}
			if annotate != "" {
				if files, err = annotatedNames(files, annotate); err != nil {
					return err
				}
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
	cmd.Flags().StringVar(&annotate, "annotate", "", "write each image with its boxes and tags drawn, as JPEG, into folder `DIR` (created; files there are overwritten)")
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

// printPredictions runs pl on each file and prints a line (or a JSON object) per image, and
// writes the annotated image of each file that names one; a file that cannot be read, run or
// written is named on stderr, and counted in the error.
func printPredictions(pl *pipeline.Pipeline, files []imageFile, asJSON bool, stdout, stderr io.Writer) error {
	failed := 0
	enc := json.NewEncoder(stdout)
	for _, in := range files {
		file := in.path
		f, err := camera.ReadImage(file)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", file, err)
			failed++
			continue
		}
		msg, err := pl.Process(f)
		if err == nil && in.annotated != "" {
			err = writeAnnotated(in.annotated, f, msg)
		}
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

// writeAnnotated writes frame f with the boxes and tags of msg drawn, as a JPEG at path
// (its folder created, a file there replaced).
func writeAnnotated(path string, f *camera.Frame, msg *payload.Prediction) error {
	img, err := preprocess.EncodeMarkedJPEG(f.Mat(), steps.Marks(msg, f.Bounds()), 0, 90, 0)
	if err != nil {
		return fmt.Errorf("--annotate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("--annotate: %w", err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		return fmt.Errorf("--annotate: %w (check that the folder is writable and the disk not full)", err)
	}
	return nil
}

// imageFile is one image to run: its path, its name within the argument it came from (the
// file's name, or its path inside the folder given), and where its annotated image goes.
type imageFile struct {
	path, rel string
	annotated string // "": none
}

// imageFiles expands the paths: files as given, folders searched recursively for images, in
// name order.
func imageFiles(paths []string) ([]imageFile, error) {
	var out []imageFile
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, imageFile{path: p, rel: filepath.Base(p)})
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
		for _, f := range found {
			rel, err := filepath.Rel(p, f)
			if err != nil {
				return nil, err
			}
			out = append(out, imageFile{path: f, rel: rel})
		}
	}
	return out, nil
}

// annotatedNames names the annotated image of each file in dir (created): its name within
// its argument, with .jpg added unless it ends in .jpg or .jpeg. Images already inside dir
// (the annotated images of an earlier run) are left out; two images named alike are refused.
func annotatedNames(files []imageFile, dir string) ([]imageFile, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--annotate: %w", err)
	}
	out := files[:0]
	by := map[string]string{} // annotated file -> the image written there
	for _, f := range files {
		if abs, err := filepath.Abs(f.path); err == nil && strings.HasPrefix(abs, absDir+string(filepath.Separator)) {
			continue
		}
		name := f.rel
		if ext := strings.ToLower(filepath.Ext(name)); ext != ".jpg" && ext != ".jpeg" {
			name += ".jpg"
		}
		f.annotated = filepath.Join(dir, name)
		if other, ok := by[f.annotated]; ok {
			return nil, usageErrorf("--annotate: %s and %s would both be written to %s; give their common folder instead, or annotate them in separate runs", other, f.path, f.annotated)
		}
		by[f.annotated] = f.path
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--annotate: every image given is inside %s, the folder the annotated images go to; give another folder", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--annotate: %w (check the path and that its parent is writable)", err)
	}
	return out, nil
}
