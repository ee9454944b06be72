package eval

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// writeSquare writes a grey PNG of side n pixels at path.
func writeSquare(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, n, n))); err != nil {
		t.Fatal(err)
	}
}

// bySize is a classifier without onnxruntime: an image 10 pixels wide is a cat, any other a dog.
func bySize(name string) Model {
	st := &pipeline.FakeStage{Model: name, Answer: func(_ *camera.Frame, r image.Rectangle) []models.Prediction {
		if r.Dx() == 10 {
			return []models.Prediction{{Tag: 0, TagName: "cat", Probability: 0.9}, {Tag: 1, TagName: "dog", Probability: 0.1}}
		}
		return []models.Prediction{{Tag: 1, TagName: "dog", Probability: 0.8}, {Tag: 0, TagName: "cat", Probability: 0.2}}
	}}
	return Model{Info: models.Info{Name: name, Format: models.FormatClassifier, Labels: []string{"cat", "dog"}}, Stage: st}
}

// TestRunClassifiers scores a fake classifier through the pipeline on a data set worked out
// by hand: cat/ holds two cats and a dog-sized image, Dogs/ two dogs and a file that is no
// image. So 6 images, 1 failed, and on the 5 others:
//
//	true \ predicted  cat dog
//	cat                 2   1
//	dog                 0   2
//
// accuracy 4/5. Folder Dogs matches tag dog through Map.
func TestRunClassifiers(t *testing.T) {
	data := t.TempDir()
	writeSquare(t, filepath.Join(data, "cat", "1.png"), 10)
	writeSquare(t, filepath.Join(data, "cat", "2.png"), 10)
	writeSquare(t, filepath.Join(data, "cat", "3.png"), 20)
	writeSquare(t, filepath.Join(data, "Dogs", "1.png"), 20)
	writeSquare(t, filepath.Join(data, "Dogs", "2.png"), 30)
	if err := os.WriteFile(filepath.Join(data, "Dogs", "3.png"), []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	var steps []string
	r, err := Run(Options{
		Models:   []Model{bySize("first"), bySize("second")},
		Data:     data,
		Map:      map[string]string{"Dogs": "dog"},
		Progress: func(model string, n, total int) { steps = append(steps, fmt.Sprintf("%s %d/%d", model, n, total)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "classification" || r.Data != data || len(r.Models) != 2 || r.Models[0].Name != "first" || r.Models[1].Name != "second" {
		t.Fatalf("report %+v", r)
	}
	for _, m := range r.Models {
		if m.Images != 6 || m.Failed != 1 || fmt.Sprint(m.Confusion.Matrix) != "[[2 1] [0 2]]" || !near(*m.Accuracy, 0.8) {
			t.Errorf("%s: %d images, %d failed, confusion %v, accuracy %v", m.Name, m.Images, m.Failed, m.Confusion.Matrix, *m.Accuracy)
		}
	}
	if got := strings.Join(steps, ","); got != "first 1/6,first 2/6,first 3/6,first 4/6,first 5/6,first 6/6,"+
		"second 1/6,second 2/6,second 3/6,second 4/6,second 5/6,second 6/6" {
		t.Errorf("progress %s", got)
	}
}

// TestRunRefuses: no model, a mix of jobs, a folder no tag matches and a model that fails on
// every image are errors that say so.
func TestRunRefuses(t *testing.T) {
	data := t.TempDir()
	writeSquare(t, filepath.Join(data, "cat", "1.png"), 10)
	detector := Model{Info: models.Info{Name: "det", Format: models.FormatDetectorYOLO, Labels: []string{"cat"}}, Stage: &pipeline.FakeStage{Model: "det", Finds: true}}
	broken := bySize("broken")
	broken.Stage.(*pipeline.FakeStage).Err = fmt.Errorf("the model is gone")
	other := bySize("other")
	other.Info.Labels = []string{"bird"}
	cases := []struct {
		models []Model
		want   string
	}{
		{nil, "no model to score"},
		{[]Model{bySize("cls"), detector}, "give classifiers only, or detectors only"},
		{[]Model{other}, `model other: folder "cat" matches no tag of the model (tags: bird)`},
		{[]Model{broken}, "model broken: none of the 1 images could be read or run"},
	}
	for _, c := range cases {
		if _, err := Run(Options{Models: c.models, Data: data}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d models: %v, want %q", len(c.models), err, c.want)
		}
	}
}

// bySide is a fake classifier that answers from the image's width: knows maps a width to
// the probabilities it gives its tags (best first as the pipeline wants them).
func bySide(name string, labels []string, knows map[int][]models.Prediction) Model {
	st := &pipeline.FakeStage{Model: name, Answer: func(_ *camera.Frame, r image.Rectangle) []models.Prediction {
		return knows[r.Dx()]
	}}
	return Model{Info: models.Info{Name: name, Format: models.FormatClassifier, Labels: labels}, Stage: st}
}

func pred(tag int, name string, p float32) models.Prediction {
	return models.Prediction{Tag: tag, TagName: name, Probability: p}
}

// TestRunDifferentTagSets: "old" knows cat and dog, "new" also bird; the data set has all
// three (cat: 2 images 10 px wide, dog: 1 of 20 px, bird: 2 of 30 px). Both are scored, side
// by side. For old, bird is "not in model": its 2 images are misses, predicted dog.
//
//	old: true \ predicted          cat dog
//	     cat                         2   0
//	     dog                         0   1
//	     bird (not in this model)    0   2
//
// accuracy 3/5; dog precision 1/3, recall 1; AP(cat) 1; AP(dog): ranked by dog's
// probability the birds (0.85) come before the dog (0.8), so 1/3; mean AP 2/3.
// new gets all 5 right: accuracy 1, mean AP 1.
func TestRunDifferentTagSets(t *testing.T) {
	data := t.TempDir()
	writeSquare(t, filepath.Join(data, "cat", "1.png"), 10)
	writeSquare(t, filepath.Join(data, "cat", "2.png"), 10)
	writeSquare(t, filepath.Join(data, "dog", "1.png"), 20)
	writeSquare(t, filepath.Join(data, "bird", "1.png"), 30)
	writeSquare(t, filepath.Join(data, "bird", "2.png"), 30)
	old := bySide("old", []string{"cat", "dog"}, map[int][]models.Prediction{
		10: {pred(0, "cat", 0.9), pred(1, "dog", 0.1)},
		20: {pred(1, "dog", 0.8), pred(0, "cat", 0.2)},
		30: {pred(1, "dog", 0.85), pred(0, "cat", 0.15)},
	})
	next := bySide("new", []string{"bird", "cat", "dog"}, map[int][]models.Prediction{
		10: {pred(1, "cat", 0.9), pred(2, "dog", 0.05), pred(0, "bird", 0.05)},
		20: {pred(2, "dog", 0.8), pred(1, "cat", 0.1), pred(0, "bird", 0.1)},
		30: {pred(0, "bird", 0.7), pred(2, "dog", 0.2), pred(1, "cat", 0.1)},
	})
	r, err := Run(Options{Models: []Model{old, next}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	o, n := r.Models[0], r.Models[1]
	if fmt.Sprint(o.Confusion.Labels) != "[cat dog bird (not in this model)]" || fmt.Sprint(o.Confusion.Matrix) != "[[2 0 0] [0 1 0] [0 2 0]]" {
		t.Fatalf("old: confusion %v %v", o.Confusion.Labels, o.Confusion.Matrix)
	}
	if !near(*o.Accuracy, 0.6) || !near(*o.MeanAP, 2.0/3) {
		t.Errorf("old: accuracy %v (want 3/5), mean AP %v (want 2/3)", *o.Accuracy, *o.MeanAP)
	}
	bird, _ := find(o.Tags, "bird")
	dog, _ := find(o.Tags, "dog")
	cat, _ := find(o.Tags, "cat")
	if !bird.NotInModel || bird.Support != 2 || bird.Recall != 0 || !near(dog.Precision, 1.0/3) || dog.Recall != 1 || !near(dog.AP, 1.0/3) || cat.AP != 1 {
		t.Errorf("old: bird %+v dog %+v cat %+v", bird, dog, cat)
	}
	if len(o.Misclassified) != 2 || o.Misclassified[0].True != "bird (not in this model)" || o.Misclassified[0].Predicted != "dog" || len(o.Misclassified[0].Thumb) == 0 {
		t.Errorf("old: misclassified %+v, want the 2 birds taken for dogs, with thumbnails", o.Misclassified)
	}
	if !near(*n.Accuracy, 1) || !near(*n.MeanAP, 1) || len(n.Misclassified) != 0 {
		t.Errorf("new: accuracy %v mean AP %v misclassified %v", *n.Accuracy, *n.MeanAP, n.Misclassified)
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "| bird | not in model | - | - | - | 100.0% | 100.0% | 1.000 | 1.000 | 2 |") {
		t.Errorf("report.md does not show bird as not in old's model beside new's scores:\n%s", md)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	if strings.Count(string(page), `src="data:image/jpeg;base64,`) != 2 || !strings.Contains(string(page), "not in model") {
		t.Errorf("report.html lacks the 2 thumbnails or the tag not in the model:\n%s", page)
	}
}

// TestRunDetectorsDifferentTagSets: "old" finds parts, "new" parts and gaskets; the image
// (20 px) has one of each. For old the gasket is not in the model: AP 0, mAP 1/2; new finds
// both: mAP 1. A tag neither knows is still an error.
func TestRunDetectorsDifferentTagSets(t *testing.T) {
	dir := t.TempDir()
	writeSquare(t, filepath.Join(dir, "a.png"), 20)
	os.WriteFile(filepath.Join(dir, "ann.json"), []byte(`{"images":[{"id":1,"file_name":"a.png","width":20,"height":20}],
	 "annotations":[{"image_id":1,"category_id":1,"bbox":[0,0,10,10]},{"image_id":1,"category_id":2,"bbox":[10,10,10,10]}],
	 "categories":[{"id":1,"name":"part"},{"id":2,"name":"gasket"}]}`), 0o644)
	found := func(labels ...string) func(*camera.Frame, image.Rectangle) []models.Prediction {
		return func(*camera.Frame, image.Rectangle) []models.Prediction {
			var out []models.Prediction
			for i, l := range labels {
				x := float32(i) * 0.5
				out = append(out, models.Prediction{Tag: i, TagName: l, Probability: 0.9, Box: &models.Box{Left: x, Top: x, Width: 0.5, Height: 0.5}})
			}
			return out
		}
	}
	old := Model{Info: models.Info{Name: "old", Format: models.FormatDetectorYOLO, Labels: []string{"part"}}, Stage: &pipeline.FakeStage{Model: "old", Finds: true, Answer: found("part")}}
	next := Model{Info: models.Info{Name: "new", Format: models.FormatDetectorYOLO, Labels: []string{"part", "gasket"}}, Stage: &pipeline.FakeStage{Model: "new", Finds: true, Answer: found("part", "gasket")}}
	r, err := Run(Options{Models: []Model{old, next}, Data: filepath.Join(dir, "ann.json")})
	if err != nil {
		t.Fatal(err)
	}
	o, n := r.Models[0], r.Models[1]
	if fmt.Sprint(o.NotInModel) != "[gasket]" || o.AP["gasket"] != 0 || !near(o.AP["part"], 1) || !near(*o.MAP, 0.5) || len(n.NotInModel) != 0 || !near(*n.MAP, 1) {
		t.Fatalf("old %+v %v, new %+v %v", o.AP, *o.MAP, n.AP, *n.MAP)
	}
	if md := r.Markdown(); !strings.Contains(md, "| gasket | not in model (0) | 1.000 |") {
		t.Errorf("report.md:\n%s", md)
	}
	if _, err := Run(Options{Models: []Model{old}, Data: filepath.Join(dir, "ann.json")}); err == nil || !strings.Contains(err.Error(), `the data set has tag "gasket", which the model does not know`) {
		t.Errorf("a tag no model knows: %v", err)
	}
}
