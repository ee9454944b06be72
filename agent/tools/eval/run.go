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
	"github.com/cvedge/cvedge/preprocess"
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
	matches, err := matchModels(set.Folders, o)
	if err != nil {
		return err
	}
	for k, m := range o.Models {
		info, match := m.Info, matches[k]
		labels := append([]string(nil), info.Labels...)
		index := map[string]int{}
		for i, l := range labels {
			index[l] = i
		}
		// a tag the model lacks gets a row of its own: all its images are misses
		missing := map[string]string{}
		for _, folder := range set.Folders {
			if t := match[folder]; t.missing {
				missing[folder] = t.tag + " (not in this model)"
				if _, ok := index[missing[folder]]; !ok {
					index[missing[folder]] = len(labels)
					labels = append(labels, missing[folder])
				}
			}
		}
		conf := NewConfusion(labels)
		rank := NewRanking(info.Labels)
		mr := modelReport(info)
		pl := pipeline.New(pipeline.Options{Classifier: m.Stage})
		for _, folder := range set.Folders {
			truth := match[folder].tag
			if match[folder].missing {
				truth = missing[folder]
			}
			for _, file := range set.Files[folder] {
				mr.Images++
				o.Progress(info.Name, mr.Images, total)
				var top payload.Tag
				thumb, err := judgeFile(pl, file, func(msg *payload.Prediction) (bool, error) {
					if len(msg.Predictions) == 0 {
						return false, errors.New("the model gave no tag")
					}
					top = msg.Predictions[0]
					probs := make(map[string]float64, len(msg.Predictions))
					for _, p := range msg.Predictions {
						probs[p.TagName] = float64(p.Probability)
					}
					rank.Add(truth, probs)
					return top.TagName != truth && len(mr.Misclassified) < GalleryMax, nil
				})
				if err != nil {
					mr.fail(file, err)
					continue
				}
				conf.Add(index[truth], index[top.TagName])
				if top.TagName != truth {
					mr.Misclassified = append(mr.Misclassified, Misclassified{File: file, True: truth, Predicted: top.TagName, Probability: top.Probability, Thumb: thumb})
				}
			}
		}
		pl.Close()
		if mr.Failed == mr.Images {
			return mr.allFailed()
		}
		acc, meanAP := conf.Accuracy(), rank.MeanAP()
		mr.Accuracy, mr.MeanAP, mr.Tags, mr.Confusion = &acc, &meanAP, conf.PerTag(), conf
		for i := range mr.Tags {
			s := &mr.Tags[i]
			if i >= len(info.Labels) {
				s.Tag, s.NotInModel = strings.TrimSuffix(s.Tag, " (not in this model)"), true
				continue
			}
			s.AP = rank.AP(s.Tag)
		}
		report.Models = append(report.Models, mr)
	}
	return nil
}

// folderTag is the tag of a data set folder for one model; missing when the model lacks it.
type folderTag struct {
	tag     string
	missing bool
}

// matchModels maps each folder to a tag of each model (see MatchFolders). A folder that some
// model knows but another does not is that other model's "not in model" tag, named as the
// first model that knows it names it; a folder no model knows is an error.
func matchModels(folders []string, o Options) ([]map[string]folderTag, error) {
	out := make([]map[string]folderTag, len(o.Models))
	problems := make([]map[string]string, len(o.Models))
	known := map[string]string{}
	for k, m := range o.Models {
		match, unmatched, err := matchFolders(folders, m.Info.Labels, o.Map)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Info.Name, err)
		}
		out[k] = map[string]folderTag{}
		for f, tag := range match {
			out[k][f] = folderTag{tag: tag}
			if _, ok := known[f]; !ok {
				known[f] = tag
			}
		}
		problems[k] = unmatched
	}
	for k, m := range o.Models {
		var unknown []string
		for _, f := range folders {
			if _, ok := out[k][f]; ok {
				continue
			}
			tag, ok := known[f]
			if !ok {
				unknown = append(unknown, f)
				continue
			}
			out[k][f] = folderTag{tag: tag, missing: true}
		}
		if len(unknown) > 0 {
			var why []string
			for _, f := range unknown {
				why = append(why, problems[k][f])
			}
			return nil, fmt.Errorf("model %s: %s", m.Info.Name, strings.Join(why, "\n"))
		}
	}
	return out, nil
}

func detectors(report *Report, o Options) error {
	images, err := LoadDetection(o.Data)
	if err != nil {
		return err
	}
	// a tag some model lacks counts as that model's misses (AP 0); one no model knows is
	// an error: a typo in the data set, most likely
	var lacking []string
	for _, im := range images {
		for _, obj := range im.Objects {
			known := false
			for _, m := range o.Models {
				known = known || contains(m.Info.Labels, obj.Tag)
			}
			if !known {
				info := o.Models[0].Info
				return fmt.Errorf("model %s: the data set has tag %q, which the model does not know (tags: %s)", info.Name, obj.Tag, strings.Join(info.Labels, ", "))
			}
			if !contains(lacking, obj.Tag) {
				lacking = append(lacking, obj.Tag)
			}
		}
	}
	for _, m := range o.Models {
		info := m.Info
		det := NewDetections()
		mr := modelReport(info)
		for _, tag := range lacking {
			if !contains(info.Labels, tag) {
				mr.NotInModel = append(mr.NotInModel, tag)
			}
		}
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

// GalleryMax is the most images of each model the report shows as thumbnails (wrong, then
// failed); the rest are listed in report.md and report.json.
const GalleryMax = 100

// thumbSide is the longer side of a thumbnail, in pixels.
const thumbSide = 160

// predictFile runs the pipeline on one image file.
func predictFile(pl *pipeline.Pipeline, file string) (msg *payload.Prediction, err error) {
	_, err = judgeFile(pl, file, func(m *payload.Prediction) (bool, error) { msg = m; return false, nil })
	return msg, err
}

// judgeFile runs the pipeline on one image file and hands the answer to judge, which says
// whether to keep a thumbnail of the image (or why the answer is no good).
func judgeFile(pl *pipeline.Pipeline, file string, judge func(*payload.Prediction) (bool, error)) ([]byte, error) {
	f, err := camera.ReadImage(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msg, err := pl.Process(f)
	if err != nil {
		return nil, err
	}
	keep, err := judge(msg)
	if err != nil || !keep {
		return nil, err
	}
	// a thumbnail that cannot be made leaves the image out of the gallery, not the score
	thumb, _ := preprocess.Thumbnail(f.Mat(), thumbSide, 70)
	return thumb, nil
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
