package main

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// needRuntime skips (or fails under CI=true) when onnxruntime cannot be found.
func needRuntime(t *testing.T) {
	t.Helper()
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
}

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

// TestInspectRefusesONNX10: the 2018 ONNX 1.0 export is refused with what it is and what to do.
func TestInspectRefusesONNX10(t *testing.T) {
	needRuntime(t)
	model := filepath.Join(testenv.RealData(t, "legacy-onnx10-plankton"), "model.onnx")
	code, _, errs := cvedge(t, "inspect", model)
	for _, want := range []string{"ONNX 1.0 export", "opset 1", "re-export the iteration from the Custom Vision portal as ONNX"} {
		if code == 0 || !strings.Contains(errs, want) {
			t.Fatalf("exit %d, stderr %q; want it to contain %q", code, errs, want)
		}
	}
}

func TestInspectDemo(t *testing.T) {
	needRuntime(t)
	code, out, errs := cvedge(t, "inspect", testenv.Path("testdata", "demo", "detector"))
	for _, want := range []string{"format:      detector-yolo (ObjectDetection)", "input:       data float32, 416x416, batch 1",
		"pixels:      BGR, NominalRange_0_255 (from metadata_props: Bgr8)", "labels (1): part", "iteration:   b43331db-0554-52bc-9c48-3c8a25250027",
		"metadata_properties.json says Rgb8 Normalized_0_1; ignored"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want %q in\n%s%s", code, want, out, errs)
		}
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

func TestModelsCommands(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	code, out, errs := cvedge(t, "models", "--store", dir, "add", "--model", "colour", testenv.Path("testdata", "demo", "classifier"))
	if code != 0 || !strings.Contains(out, "colour: iteration ad92cb91-12e0-5f2a-9680-3961651a2636 added") {
		t.Fatalf("add: %d %s%s", code, out, errs)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "add", "--model", "colour", "--activate", testenv.Path("testdata", "models", "classifier-v2"))
	if code == 0 || !strings.Contains(errs, `is in the store but not active: the tags change (added: "blue_v2"`) {
		t.Fatalf("add --activate with other tags: %d %s", code, errs)
	}
	code, out, errs = cvedge(t, "models", "--store", dir, "add", "--model", "colour", "--activate", "--allow-tag-change", testenv.Path("testdata", "models", "classifier-v2"))
	if code != 0 || !strings.Contains(out, "is active") {
		t.Fatalf("add --activate: %d %s%s", code, out, errs)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "add", "--model", "colour", filepath.Join(testenv.RealData(t, "legacy-onnx10-plankton"), "model.onnx"))
	if code == 0 || !strings.Contains(errs, "ONNX 1.0 export") {
		t.Fatalf("a model that does not load entered the store: %d %s", code, errs)
	}
	_, out, _ = cvedge(t, "models", "--store", dir, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "*") || strings.Contains(lines[1], "*") {
		t.Fatalf("list:\n%s", out)
	}
	if code, out, _ := cvedge(t, "models", "--store", dir, "rollback", "colour"); code != 0 || !strings.Contains(out, "ad92cb91-12e0-5f2a-9680-3961651a2636 is active again") {
		t.Fatalf("rollback: %s", out)
	}
	for _, args := range [][]string{
		{"models", "--store", dir, "activate", "colour", "../../etc"},
		{"models", "--store", dir, "add", "--model", "../x", "p"},
		{"models", "--store", dir, "rollback", "colour"},
	} {
		if code, _, errs := cvedge(t, args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}

// TestModelsSlotGuard: cvedge models refuses what the activate command refuses: a detector
// in a classifier's place (exit 1, the formats named), and other tags without
// --allow-tag-change.
func TestModelsSlotGuard(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	add := func(args ...string) (int, string, string) {
		return cvedge(t, append([]string{"models", "--store", dir, "add", "--model", "colour"}, args...)...)
	}
	if code, _, errs := add(testenv.Path("testdata", "demo", "classifier")); code != 0 {
		t.Fatalf("add the classifier: %s", errs)
	}
	code, _, errs := add("--activate", "--allow-tag-change", testenv.Path("testdata", "demo", "detector"))
	if code == 0 || !strings.Contains(errs, "a detector-yolo cannot replace a classifier") {
		t.Fatalf("add --activate a detector in the classifier's place: exit %d, %s", code, errs)
	}
	_, out, _ := cvedge(t, "models", "--store", dir, "list", "colour")
	var detector string
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[2] != "*" {
			detector = f[1]
		}
	}
	if detector == "" {
		t.Fatalf("the detector is not in the store (not active):\n%s", out)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "activate", "--allow-tag-change", "colour", detector)
	if code == 0 || !strings.Contains(errs, "a detector-yolo cannot replace a classifier") {
		t.Fatalf("activate a detector in the classifier's place: exit %d, %s", code, errs)
	}
	if code, _, errs := add(testenv.Path("testdata", "models", "classifier-v2")); code != 0 {
		t.Fatalf("add v2: %s", errs)
	}
	_, out, _ = cvedge(t, "models", "--store", dir, "list", "colour")
	v2 := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] != detector && f[1] != "ITERATION" && f[1] != "ad92cb91-12e0-5f2a-9680-3961651a2636" {
			v2 = f[1]
		}
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "activate", "colour", v2)
	if code == 0 || !strings.Contains(errs, `removed: "blue", "green", "red", "yellow"`) || !strings.Contains(errs, "--allow-tag-change") {
		t.Fatalf("activate v2 without --allow-tag-change: exit %d, %s", code, errs)
	}
	if code, out, errs := cvedge(t, "models", "--store", dir, "activate", "--allow-tag-change", "colour", v2); code != 0 || !strings.Contains(out, v2+" is active") {
		t.Fatalf("activate v2 with --allow-tag-change: exit %d, %s%s", code, out, errs)
	}
	// a store whose detector got active unchecked (by hand): rolling back to a classifier
	// is refused as the rollback command refuses it
	st, _ := store.Open(dir)
	if _, err := st.Activate("colour", detector); err != nil {
		t.Fatal(err)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "rollback", "colour")
	if code == 0 || !strings.Contains(errs, "a classifier cannot replace a detector-yolo") {
		t.Fatalf("rollback from a detector to a classifier: exit %d, %s", code, errs)
	}
	if state, _ := st.State("colour"); state.Active != detector {
		t.Fatalf("a refused rollback changed the store: %s is active", state.Active)
	}
}
