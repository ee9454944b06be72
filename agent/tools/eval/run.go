package eval

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// Model is one model to score: what it is (name, source, format, iteration, tags) and the
// stage that runs it. The caller loads and closes the stage.
type Model struct {
	Info  models.Info
	Stage pipeline.Stage
}

// Options say what Run scores, on what.
type Options struct {
	// Models are all classifiers or all detectors; the report keeps their order.
	Models []Model
	// Data is the labelled data set: a folder per tag for classifiers (see LoadFolders), a
	// COCO JSON file or a cvedge collect folder for detectors (see LoadDetection).
	Data string
	// Map gives the tag of a folder whose name differs from it (see MatchFolders).
	Map map[string]string
	// Progress, when set, is told after each image how far the scoring of model has gone:
	// n of total images. n reaches total once per model.
	Progress func(model string, n, total int)
}

// Run runs each model through a pipeline of its own on every image of the data set, and
// scores its answers against the labels. An image that cannot be read or run counts as
// failed; a model that fails on every image is an error.
func Run(o Options) (*Report, error) {
	if len(o.Models) == 0 {
		return nil, errors.New("no model to score")
	}
	detect := o.Models[0].Stage.Detector()
	for _, m := range o.Models {
		if m.Stage.Detector() != detect {
			return nil, errors.New("give classifiers only, or detectors only, in one evaluation")
		}
	}
	if o.Progress == nil {
		o.Progress = func(string, int, int) {}
	}
	report := &Report{Data: o.Data, Created: time.Now().UTC(), Kind: "classification"}
	var err error
	if detect {
		report.Kind = "detection"
		err = detectors(report, o)
	} else {
		err = classifiers(report, o)
	}
	if err != nil {
		return nil, err
	}
	return report, nil
}

func classifiers(report *Report, o Options) error {
	set, err := LoadFolders(o.Data)
	if err != nil {
		return err
	}
	total := 0
	for _, f := range set.Folders {
		total += len(set.Files[f])
	}
	for _, m := range o.Models {
		info := m.Info
		match, err := MatchFolders(set.Folders, info.Labels, o.Map)
		if err != nil {
			return fmt.Errorf("model %s: %w", info.Name, err)
		}
		index := map[string]int{}
		for i, l := range info.Labels {
			index[l] = i
		}
		conf := NewConfusion(info.Labels)
		mr := modelReport(info)
		pl := pipeline.New(pipeline.Options{Classifier: m.Stage})
		for _, folder := range set.Folders {
			for _, file := range set.Files[folder] {
				mr.Images++
				o.Progress(info.Name, mr.Images, total)
				msg, err := predictFile(pl, file)
				if err == nil && len(msg.Predictions) == 0 {
					err = errors.New("the model gave no tag")
				}
				if err != nil {
					mr.fail(file, err)
					continue
				}
				top := msg.Predictions[0]
				conf.Add(index[match[folder]], index[top.TagName])
				if top.TagName != match[folder] {
					mr.Misclassified = append(mr.Misclassified, Misclassified{File: file, True: match[folder], Predicted: top.TagName, Probability: top.Probability})
				}
			}
		}
		pl.Close()
		if mr.Failed == mr.Images {
			return mr.allFailed()
		}
		acc := conf.Accuracy()
		mr.Accuracy, mr.Tags, mr.Confusion = &acc, conf.PerTag(), conf
		report.Models = append(report.Models, mr)
	}
	return nil
}

func detectors(report *Report, o Options) error {
	images, err := LoadDetection(o.Data)
	if err != nil {
		return err
	}
	for _, m := range o.Models {
		info := m.Info
		for _, im := range images {
			for _, obj := range im.Objects {
				if !contains(info.Labels, obj.Tag) {
					return fmt.Errorf("model %s: the data set has tag %q, which the model does not know (tags: %s)", info.Name, obj.Tag, strings.Join(info.Labels, ", "))
				}
			}
		}
		det := NewDetections()
		mr := modelReport(info)
		pl := pipeline.New(pipeline.Options{Detector: m.Stage})
		for _, im := range images {
			mr.Images++
			o.Progress(info.Name, mr.Images, len(images))
			msg, err := predictFile(pl, im.File)
			if err != nil {
				mr.fail(im.File, err)
				continue
			}
			var found []Object
			for _, p := range msg.Predictions {
				b := p.BoundingBox
				found = append(found, Object{Tag: p.TagName, Score: float64(p.Probability), Box: Box{Left: float64(b.Left), Top: float64(b.Top), Width: float64(b.Width), Height: float64(b.Height)}})
			}
			det.AddImage(im.Objects, found)
		}
		pl.Close()
		if mr.Failed == mr.Images {
			return mr.allFailed()
		}
		mr.AP = map[string]float64{}
		for _, tag := range det.Tags() {
			mr.AP[tag] = det.AP(tag)
		}
		mAP := det.MAP()
		mr.MAP = &mAP
		report.Models = append(report.Models, mr)
	}
	return nil
}

func modelReport(info models.Info) ModelReport {
	return ModelReport{Name: info.Name, Source: info.Source, Format: string(info.Format), Iteration: info.Iteration}
}

// predictFile runs the pipeline on one image file.
func predictFile(pl *pipeline.Pipeline, file string) (*payload.Prediction, error) {
	f, err := camera.ReadImage(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return pl.Process(f)
}

// fail counts file as failed, with why.
func (m *ModelReport) fail(file string, err error) {
	m.Failed++
	m.Failures = append(m.Failures, ImageFailure{File: file, Reason: err.Error()})
}

// allFailed is the error of a model that could run none of the images: it names the first
// and why, which is usually the same for all (a path, a format).
func (m *ModelReport) allFailed() error {
	if len(m.Failures) == 0 {
		return fmt.Errorf("model %s: the data set has no image", m.Name)
	}
	return fmt.Errorf("model %s: none of the %d images could be read or run; the first, %s: %s", m.Name, m.Images, m.Failures[0].File, m.Failures[0].Reason)
}
