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
