package main

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

func predictJSON(t *testing.T, args ...string) []apiResult {
	t.Helper()
	code, out, errs := cvedge(t, append([]string{"predict", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("cvedge predict %v: exit %d\n%s", args, code, errs)
	}
	var res []apiResult
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r apiResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		res = append(res, r)
	}
	return res
}

// TestPredictRealHemlock: the real ONNX 1.2 export classifies all 20 labelled photos right.
func TestPredictRealHemlock(t *testing.T) {
	needRuntime(t)
	dir := testenv.RealData(t, "hemlock-cherry-onnx12")
	res := predictJSON(t, "--model", dir, filepath.Join(dir, "images"))
	if len(res) != 20 {
		t.Fatalf("%d results for the 20 photos", len(res))
	}
	want := map[string]string{"Hemlock": "hemlock", "Japanese_Cherry": "JapaneseCherry"}
	for _, r := range res {
		tag := want[filepath.Base(filepath.Dir(r.File))]
		if len(r.Predictions) != 2 || r.Predictions[0].TagName != tag || r.Predictions[0].Probability < 0.5 {
			t.Errorf("%s: want %s, got %+v", r.File, tag, r.Predictions)
		}
		if r.ID == "" || r.Created.IsZero() {
			t.Errorf("%s: Prediction API fields missing: %+v", r.File, r)
		}
	}
}

// TestRealMultilabel: the multilabel export loads and its tags have independent
// probabilities (sigmoid): they do not sum to 1.
func TestRealMultilabel(t *testing.T) {
	needRuntime(t)
	dir := testenv.RealData(t, "computer-onnx12-multilabel")
	code, out, errs := cvedge(t, "inspect", dir)
	if code != 0 || !strings.Contains(out, "classifier-onnx12") || !strings.Contains(out, "labels (5): controller, keyboard, laptop, monitor, mouse") {
		t.Fatalf("inspect: %d\n%s%s", code, out, errs)
	}
	photos := testenv.RealData(t, "hemlock-cherry-onnx12", "images")
	res := predictJSON(t, "--model", dir, photos)
	independent := false
	for _, r := range res {
		var sum float32
		for _, p := range r.Predictions {
			if p.Probability < 0 || p.Probability > 1 {
				t.Fatalf("%s: probability %v out of range", r.File, p.Probability)
			}
			sum += p.Probability
		}
		if len(r.Predictions) != 5 {
			t.Fatalf("%s: %d tags", r.File, len(r.Predictions))
		}
		independent = independent || sum < 0.95 || sum > 1.05
	}
	if !independent {
		t.Fatal("every image's probabilities sum to 1: they look like a softmax, not independent sigmoids")
	}
}

// TestPredictTwoStages runs detector and classifier on stills of the demo video and checks
// them against the video's ground truth.
func TestPredictTwoStages(t *testing.T) {
	needRuntime(t)
	demo := testenv.Path("testdata", "demo")
	truth := testenv.DemoTruth(t)
	res := predictJSON(t, "--detector", filepath.Join(demo, "detector"), "--classifier", filepath.Join(demo, "classifier"), "--threshold", "0.5", filepath.Join(demo, "stills"))
	if len(res) != 3 {
		t.Fatalf("%d results for 3 stills", len(res))
	}
	for _, r := range res {
		idx, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(r.File), "frame_"), ".jpg"))
		parts := truth.Frames[idx].Parts
		found := 0
		for _, p := range parts {
			cx := (p.Box[0] + p.Box[2]/2) / float64(truth.Width)
			cy := (p.Box[1] + p.Box[3]/2) / float64(truth.Height)
			for _, d := range r.Predictions {
				b := d.BoundingBox
				if cx >= float64(b.Left) && cx <= float64(b.Left+b.Width) && cy >= float64(b.Top) && cy <= float64(b.Top+b.Height) {
					if d.Classification == nil || d.Classification.Predictions[0].TagName != p.Colour {
						t.Errorf("%s: part %s classified %+v", r.File, p.Colour, d.Classification)
					}
					found++
				}
			}
		}
		if found != len(parts) || len(r.Predictions) != len(parts) {
			t.Errorf("%s: %d parts, %d detections, %d matched", r.File, len(parts), len(r.Predictions), found)
		}
	}
}

func TestPredictErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"predict", "x.jpg"}, "give --model, or --detector and/or --classifier"},
		{[]string{"predict", "--model", "m", filepath.Join(t.TempDir(), "none.jpg")}, "no such file"},
		{[]string{"predict", "--model", "m", t.TempDir()}, "no images"},
		{[]string{"predict", "--model", "m", "--threshold", "2", testenv.Path("testdata", "demo", "stills")}, "--threshold: 2 must be between 0 and 1"},
		{[]string{"inspect", "--format", "yolo", "m"}, `--format: "yolo" is not one of`},
		{[]string{"inspect", "--resize", "center-crop", "m"}, `--resize: "center-crop" is not one of stretch, center_crop`}, // the value as it is spelt
		{[]string{"collect"}, "--out: give the data set folder"},
		{[]string{"collect", "--out", t.TempDir(), "--broker", "http://x"}, `mqtt.broker: scheme "http" is not one of`},
	}
	for _, c := range cases {
		code, _, errs := cvedge(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
}
