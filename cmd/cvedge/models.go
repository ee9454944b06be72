package main

import (
	"encoding/json"
	"errors"
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
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// modelFlags are the model settings a command line may change; the rest are the defaults.
type modelFlags struct {
	format    string
	threshold float64
	resize    string
	inputSize int
	library   string
}

func (f *modelFlags) register(cmd *cobra.Command) {
	d := configs.DefaultModel()
	cmd.Flags().StringVar(&f.format, "format", d.Format, "export format: "+strings.Join(configs.ModelFormats, ", "))
	cmd.Flags().Float64Var(&f.threshold, "threshold", d.Threshold, "detectors: drop boxes at or below this probability")
	cmd.Flags().StringVar(&f.resize, "resize", d.Resize, "fit regions to the input: stretch or center_crop")
	cmd.Flags().IntVar(&f.inputSize, "input-size", d.InputSize, "input size for YOLO exports with symbolic height and width")
	cmd.Flags().StringVar(&f.library, "onnxruntime-library", "", "path of libonnxruntime.so (default: search, see docs/operations.md)")
}

// model returns the settings of a model at path, validated like a config entry.
func (f *modelFlags) model(path string) (configs.Model, error) {
	m := configs.DefaultModel()
	m.Path, m.Format, m.Threshold, m.Resize, m.InputSize = path, f.format, f.threshold, f.resize, f.inputSize
	cfg := configs.Config{Models: map[string]configs.Model{"m": m}}
	var bad []string
	for _, e := range strings.Split(fmt.Sprint(cfg.Validate()), "\n") {
		if strings.HasPrefix(e, "models.m.") {
			bad = append(bad, "--"+strings.ReplaceAll(strings.TrimPrefix(e, "models.m."), "_", "-"))
		}
	}
	if len(bad) > 0 {
		return m, errors.New(strings.Join(bad, "\n"))
	}
	return m, nil
}

func (f *modelFlags) runtime() (*models.Runtime, error) {
	return models.NewRuntime(models.Options{Library: f.library})
}

// stageSet holds the models a command loads with its command line's settings.
type stageSet struct {
	flags  *modelFlags
	rt     *models.Runtime
	stages []*pipeline.ModelStage // in the order loaded
}

// openStages opens onnxruntime for the command's models; the set's close frees them and it.
func (f *modelFlags) openStages() (*stageSet, error) {
	rt, err := f.runtime()
	if err != nil {
		return nil, err
	}
	return &stageSet{flags: f, rt: rt}, nil
}

// load loads the export at path, named after its file or folder.
func (s *stageSet) load(path string) (*pipeline.ModelStage, error) {
	mc, err := s.flags.model(path)
	if err != nil {
		return nil, err
	}
	st, err := pipeline.LoadStage(s.rt, filepath.Base(filepath.Clean(path)), mc)
	if err != nil {
		return nil, err
	}
	s.stages = append(s.stages, st)
	return st, nil
}

func (s *stageSet) close() {
	for _, st := range s.stages {
		st.Close()
	}
	s.rt.Close()
}

func inspectCmd(stdout io.Writer) *cobra.Command {
	var mf modelFlags
	cmd := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Load a Custom Vision export and print what the agent will do with it",
		Long: "Load a Custom Vision export (ZIP, folder, or .onnx with labels.txt) with onnxruntime, run a warm-up\n" +
			"inference and print its format, domain, input, outputs, pixel format and range, labels, iteration and SHA-256.\n" +
			"Exits non-zero with the reason when the agent would refuse the model.",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			mc, err := mf.model(args[0])
			if err != nil {
				return err
			}
			rt, err := mf.runtime()
			if err != nil {
				return err
			}
			defer rt.Close()
			m, err := models.Load(rt, filepath.Base(args[0]), mc)
			if err != nil {
				return err
			}
			defer m.Close()
			printInfo(stdout, m.Info, m.Chunk())
			return nil
		},
	}
	mf.register(cmd)
	return cmd
}

func printInfo(w io.Writer, in models.Info, chunk int) {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	i := in.Input
	dtype := "float32"
	if i.Float16 {
		dtype = "float16"
	}
	batch := "1"
	if i.DynamicBatch {
		batch = fmt.Sprintf("dynamic (up to %d regions a call)", chunk)
	}
	size := fmt.Sprintf("%dx%d", i.Width, i.Height)
	if i.SymbolicSize {
		size += " (symbolic in the model; --input-size)"
	}
	pixelKey := "none, so BGR"
	if i.Pixels.FormatKey != "" {
		pixelKey = i.Pixels.FormatKey
	}
	fmt.Fprintf(w, "model:       %s\n", in.Source)
	fmt.Fprintf(w, "format:      %s (%s)\n", in.Format, in.Domain)
	fmt.Fprintf(w, "flavor:      %s\n", dash(in.Flavor))
	fmt.Fprintf(w, "iteration:   %s\n", dash(in.Iteration))
	fmt.Fprintf(w, "exported:    %s\n", dash(in.Exported))
	fmt.Fprintf(w, "sha256:      %s\n", in.SHA256)
	fmt.Fprintf(w, "producer:    %s (opset %d)\n", dash(in.Producer), in.Opset)
	fmt.Fprintf(w, "input:       %s %s, %s, batch %s\n", i.Name, dtype, size, batch)
	fmt.Fprintf(w, "pixels:      %s, %s (from metadata_props: %s)\n", i.Pixels.Order, i.Pixels.Range, pixelKey)
	fmt.Fprintf(w, "outputs:     %s\n", strings.Join(in.Outputs, ", "))
	fmt.Fprintf(w, "labels (%d): %s\n", len(in.Labels), strings.Join(in.Labels, ", "))
	if p := in.Properties; p != nil && (p["Image.BitmapPixelFormat"] != "" || p["Image.NominalPixelRange"] != "") {
		fmt.Fprintf(w, "note:        metadata_properties.json says %s %s; ignored for pixels (the model's own metadata decides)\n",
			dash(p["Image.BitmapPixelFormat"]), dash(p["Image.NominalPixelRange"]))
	}
}

// apiResult is what `predict --json` prints per image: the file and the Prediction API fields.
type apiResult struct {
	File        string        `json:"file"`
	ID          string        `json:"id"`
	Project     string        `json:"project"`
	Iteration   string        `json:"iteration"`
	Created     time.Time     `json:"created"`
	Predictions []payload.Tag `json:"predictions"`
}

func predictCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		mf              modelFlags
		model, det, cls string
		asJSON          bool
		padding         float64
	)
	cmd := &cobra.Command{
		Use:   "predict (--model MODEL | --detector D [--classifier C]) PATH...",
		Short: "Run models on image files or folders, one line per image",
		Long: "Run a model, or a detector and a classifier on each detected crop, on images. A PATH may be a file or a\n" +
			"folder (searched recursively, in name order). --json prints one JSON object per image: \"file\" and the\n" +
			"Custom Vision Prediction API fields.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if (model == "") == (det == "" && cls == "") {
				return errors.New("give --model, or --detector and/or --classifier")
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
			load := func(path string) (pipeline.Stage, error) {
				if path == "" {
					return nil, nil
				}
				return set.load(path)
			}
			var dst, cst pipeline.Stage
			if model != "" {
				st, err := load(model)
				if err != nil {
					return err
				}
				if st.Detector() {
					dst = st
				} else {
					cst = st
				}
			} else {
				if dst, err = load(det); err != nil {
					return err
				}
				if cst, err = load(cls); err != nil {
					return err
				}
				if dst != nil && !dst.Detector() {
					return fmt.Errorf("--detector %s is a classifier", det)
				}
				if cst != nil && cst.Detector() {
					return fmt.Errorf("--classifier %s is a detector", cls)
				}
			}
			pl := pipeline.New(pipeline.Options{Detector: dst, Classifier: cst, Padding: float32(padding)})
			defer pl.Close()
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
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "a classifier or a detector, run alone")
	cmd.Flags().StringVar(&det, "detector", "", "detector: finds the regions")
	cmd.Flags().StringVar(&cls, "classifier", "", "classifier: runs on each detected region (or the whole image)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per image")
	cmd.Flags().Float64Var(&padding, "crop-padding", configs.DefaultCamera().Pipeline.CropPadding, "grow each detected box by this fraction before classifying it")
	mf.register(cmd)
	return cmd
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
