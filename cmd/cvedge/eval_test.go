package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/agent/tools/eval"
)

func readReport(t *testing.T, dir string) eval.Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r eval.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEvalRealHemlock: the real export scores 100% with a 10/10 diagonal on its 20 photos.
func TestEvalRealHemlock(t *testing.T) {
	needRuntime(t)
	dir := testenv.RealData(t, "hemlock-cherry-onnx12")
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--model", dir, "--data", filepath.Join(dir, "images"), "--out", out)
	if code != 0 || !strings.Contains(stdout, "accuracy 100.0% on 20 images (0 failed)") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	r := readReport(t, out)
	m := r.Models[0]
	if *m.Accuracy != 1 || fmt.Sprint(m.Confusion.Matrix) != "[[10 0] [0 10]]" || strings.Join(m.Confusion.Labels, ",") != "JapaneseCherry,hemlock" {
		t.Fatalf("report %+v", m)
	}
	if _, err := os.Stat(filepath.Join(out, m.Picture)); err != nil {
		t.Fatal(err)
	}
}

// writePart writes a PNG of a part of colour c (BGR order as the demo uses) on the grey belt.
func writePart(t *testing.T, path string, bgr [3]uint8) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 100, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 100; x++ {
			c := color.RGBA{72, 72, 72, 255}
			if x >= 20 && x < 80 && y >= 20 && y < 80 {
				c = color.RGBA{bgr[2], bgr[1], bgr[0], 255}
			}
			img.Set(x, y, c)
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	png.Encode(f, img)
}

// TestEvalHandComputed: a small data set with one mislabelled image, scored by hand.
//
// Folders: red (3 images, one of them really green), green (2), blue (1), Yellow (1). The
// classifier sees colours, so:
//
//	true \ predicted  blue green red yellow
//	blue                1    0    0    0
//	green               0    2    0    0
//	red                 0    1    2    0
//	yellow              0    0    0    1
//
// accuracy 6/7; red recall 2/3, precision 1; green precision 2/3, recall 1.
func TestEvalHandComputed(t *testing.T) {
	needRuntime(t)
	data := t.TempDir()
	colours := map[string][3]uint8{"blue": {190, 100, 30}, "green": {60, 170, 60}, "red": {45, 40, 200}, "yellow": {40, 200, 220}}
	files := map[string]string{"red/1.png": "red", "red/2.png": "red", "red/3.png": "green", "green/1.png": "green", "green/2.png": "green", "blue/1.png": "blue", "Yellow/1.png": "yellow"}
	for f, c := range files {
		writePart(t, filepath.Join(data, f), colours[c])
	}
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	m := readReport(t, out).Models[0]
	if fmt.Sprint(m.Confusion.Matrix) != "[[1 0 0 0] [0 2 0 0] [0 1 2 0] [0 0 0 1]]" || !near(*m.Accuracy, 6.0/7) {
		t.Fatalf("confusion %v accuracy %v", m.Confusion.Matrix, *m.Accuracy)
	}
	for _, s := range m.Tags {
		switch s.Tag {
		case "red":
			if !near(s.Recall, 2.0/3) || s.Precision != 1 || s.Support != 3 {
				t.Errorf("red %+v", s)
			}
		case "green":
			if !near(s.Precision, 2.0/3) || s.Recall != 1 {
				t.Errorf("green %+v", s)
			}
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestEvalDetectorCOCO scores the demo detector on stills of the video, from a COCO file
// written from the video's ground truth.
func TestEvalDetectorCOCO(t *testing.T) {
	needRuntime(t)
	demo := testenv.Path("testdata", "demo")
	truth := testenv.DemoTruth(t)
	dir := t.TempDir()
	type img struct {
		ID       int    `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	}
	type ann struct {
		ImageID    int       `json:"image_id"`
		CategoryID int       `json:"category_id"`
		BBox       []float64 `json:"bbox"`
	}
	c := struct {
		Images      []img            `json:"images"`
		Annotations []ann            `json:"annotations"`
		Categories  []map[string]any `json:"categories"`
	}{Categories: []map[string]any{{"id": 1, "name": "part"}}}
	for i, frame := range []int{40, 120} { // every part fully in view
		name := fmt.Sprintf("frame_%03d.jpg", frame)
		b, _ := os.ReadFile(filepath.Join(demo, "stills", name))
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
		c.Images = append(c.Images, img{ID: i + 1, FileName: name, Width: truth.Width, Height: truth.Height})
		for _, p := range truth.Frames[frame].Parts {
			c.Annotations = append(c.Annotations, ann{ImageID: i + 1, CategoryID: 1, BBox: p.Box[:]})
		}
	}
	coco, _ := json.Marshal(c)
	os.WriteFile(filepath.Join(dir, "annotations.json"), coco, 0o644)
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--model", filepath.Join(demo, "detector"), "--threshold", "0.5", "--data", filepath.Join(dir, "annotations.json"), "--out", out)
	if code != 0 || !strings.Contains(stdout, "mAP@0.5 1.000 on 2 images") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
}

func TestEvalRefusesBadData(t *testing.T) {
	needRuntime(t)
	empty := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", empty}, "is empty"},
		{[]string{"eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", filepath.Join(empty, "none")}, "no such file"},
		{[]string{"eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", testenv.Path("testdata", "demo")}, `folder "classifier" holds no images`},
		{[]string{"eval", "--data", empty}, "give --model"},
		{[]string{"eval", "--model", "m", "--data", empty, "--map", "x"}, "write FOLDER=TAG"},
	}
	for _, c := range cases {
		code, _, errs := cvedge(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want %q", c.args[1:], code, errs, c.want)
		}
	}
	mislabelled := t.TempDir()
	writePart(t, filepath.Join(mislabelled, "purple", "1.png"), [3]uint8{200, 0, 200})
	code, _, errs := cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", mislabelled)
	if code == 0 || !strings.Contains(errs, `folder "purple" matches no tag of the model (tags: blue, green, red, yellow)`) {
		t.Errorf("mislabelled: exit %d %q", code, errs)
	}
}

// TestEvalJSON: eval --json prints the summary as JSON: each model's score, the report's
// paths; a detector has a map and no accuracy.
func TestEvalJSON(t *testing.T) {
	needRuntime(t)
	data := t.TempDir()
	colours := map[string][3]uint8{"blue": {190, 100, 30}, "red": {45, 40, 200}}
	for f, c := range map[string]string{"red/1.png": "red", "red/2.png": "blue", "blue/1.png": "blue"} {
		writePart(t, filepath.Join(data, f), colours[c])
	}
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--json", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", out)
	var s evalJSON
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("exit %d: %v\n%s%s", code, err, stdout, errs)
	}
	if code != 0 || s.Kind != "classification" || s.Report != filepath.Join(out, "report.md") || s.ReportJSON != filepath.Join(out, "report.json") || len(s.Models) != 1 {
		t.Fatalf("exit %d, %+v", code, s)
	}
	m := s.Models[0]
	if m.Name != "classifier" || m.Images != 3 || m.Failed != 0 || m.Accuracy == nil || !near(*m.Accuracy, 2.0/3) || m.MAP != nil {
		t.Errorf("%+v", m)
	}
	if r := readReport(t, out); *r.Models[0].Accuracy != *m.Accuracy {
		t.Errorf("the summary says %v, report.json %v", *m.Accuracy, *r.Models[0].Accuracy)
	}
}

// TestEvalNamesFailuresAndMistakes: the report lists the image the classifier got wrong
// (red/3.png, painted green) with its true and predicted tag, and the image it could not read
// with why; that image makes the exit status 1, and --allow-failures 0.
func TestEvalNamesFailuresAndMistakes(t *testing.T) {
	needRuntime(t)
	data := t.TempDir()
	colours := map[string][3]uint8{"green": {60, 170, 60}, "red": {45, 40, 200}}
	for f, c := range map[string]string{"red/1.png": "red", "red/3.png": "green", "green/1.png": "green"} {
		writePart(t, filepath.Join(data, f), colours[c])
	}
	broken := filepath.Join(data, "green", "2.png")
	if err := os.WriteFile(broken, []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", out)
	if code != 1 || !strings.Contains(errs, "could not read or run 1 of 4 images") || !strings.Contains(errs, "--allow-failures") || !strings.Contains(errs, broken) {
		t.Fatalf("exit %d, want 1 naming the image and --allow-failures\n%s%s", code, stdout, errs)
	}
	m := readReport(t, out).Models[0]
	if len(m.Failures) != 1 || m.Failures[0].File != broken || m.Failures[0].Reason == "" {
		t.Errorf("failures %+v, want %s with why", m.Failures, broken)
	}
	wrong := filepath.Join(data, "red", "3.png")
	if len(m.Misclassified) != 1 || m.Misclassified[0].File != wrong || m.Misclassified[0].True != "red" || m.Misclassified[0].Predicted != "green" {
		t.Errorf("misclassified %+v, want %s: red taken for green", m.Misclassified, wrong)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"could not read or run", broken, "got wrong", wrong} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if code, stdout, errs := cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", t.TempDir(), "--allow-failures"); code != 0 {
		t.Fatalf("with --allow-failures: exit %d\n%s%s", code, stdout, errs)
	}
}

// TestEvalDifferentTagSets: the demo classifier (blue, green, red, yellow) and its second
// iteration (blue_v2, green_v2, ...) scored side by side on folders red (2 red parts) and
// green_v2 (1 green part): each model lacks the other's folder, which counts as its misses
// and shows as "not in model"; neither refuses. demo: 2 of 3 right; v2: 1 of 3.
func TestEvalDifferentTagSets(t *testing.T) {
	needRuntime(t)
	data := t.TempDir()
	writePart(t, filepath.Join(data, "red", "1.png"), [3]uint8{45, 40, 200})
	writePart(t, filepath.Join(data, "red", "2.png"), [3]uint8{45, 40, 200})
	writePart(t, filepath.Join(data, "green_v2", "1.png"), [3]uint8{60, 170, 60})
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--model", testenv.Path("testdata", "models", "classifier-v2"),
		"--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	r := readReport(t, out)
	demo, v2 := r.Models[0], r.Models[1]
	if !near(*demo.Accuracy, 2.0/3) || !near(*v2.Accuracy, 1.0/3) {
		t.Fatalf("accuracy %v and %v, want 2/3 and 1/3", *demo.Accuracy, *v2.Accuracy)
	}
	if len(demo.Misclassified) != 1 || demo.Misclassified[0].True != "green_v2 (not in this model)" || demo.Misclassified[0].Predicted != "green" {
		t.Errorf("demo misclassified %+v", demo.Misclassified)
	}
	if len(v2.Misclassified) != 2 || v2.Misclassified[0].True != "red (not in this model)" || v2.Misclassified[0].Predicted != "red_v2" {
		t.Errorf("v2 misclassified %+v", v2.Misclassified)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "| green_v2 | not in model | - | - | - |") || !strings.Contains(string(md), "| red | 100.0% | 100.0% | 1.000 | 1.000 | not in model | - | - | - | 2 |") {
		t.Errorf("report.md does not show the tags not in each model:\n%s", md)
	}
}

// TestEvalPortal: with --training-endpoint, eval asks a fake Training API on loopback for the
// performance of the export's iteration (from its manifest), sets it beside the field's in
// report.json, report.md and report.html, and prints the AP gap. The key planted in
// CUSTOMVISION_TRAINING_KEY appears in no output, report file or log; a wrong key says to
// check it, a wrong project to check the ids.
func TestEvalPortal(t *testing.T) {
	needRuntime(t)
	const key = "planted-key-3f9a7c1e5d"
	const iteration = "ad92cb91-12e0-5f2a-9680-3961651a2636" // testdata/demo/classifier's manifest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Query().Get("threshold") != "0.5" || r.URL.Query().Get("overlapThreshold") != "0.3" {
			t.Errorf("%s %s", r.Method, r.URL)
		}
		if r.Header.Get("Training-Key") != key {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/customvision/v3.3/training/projects/proj-1/iterations/"+iteration+"/performance" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"perTagPerformance":[{"id":"t1","name":"red","precision":1,"recall":0.9,"averagePrecision":0.98},
			{"id":"t2","name":"blue","precision":0.95,"recall":1,"averagePrecision":0.97}],"precision":0.97,"recall":0.95,"averagePrecision":0.975}`))
	}))
	defer srv.Close()
	data := t.TempDir()
	writePart(t, filepath.Join(data, "red", "1.png"), [3]uint8{45, 40, 200})
	writePart(t, filepath.Join(data, "red", "2.png"), [3]uint8{60, 170, 60}) // green: a miss
	writePart(t, filepath.Join(data, "blue", "1.png"), [3]uint8{190, 100, 30})
	t.Setenv("CUSTOMVISION_TRAINING_KEY", key)
	t.Setenv("CUSTOMVISION_PROJECT_ID", "proj-1")
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", out,
		"--training-endpoint", srv.URL+"/", "--allow-failures")
	if code != 0 || !strings.Contains(stdout, "classifier: portal AP 0.975 (iteration "+iteration+"), field") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	m := readReport(t, out).Models[0]
	if m.Portal == nil || len(m.Portal.PerTag) != 2 || m.Portal.PerTag[0].Gap == nil || !near(m.Portal.PerTag[0].Gap.Recall, 0.5-0.9) {
		t.Fatalf("portal %+v", m.Portal)
	}
	all := stdout + errs
	for _, f := range []string{"report.json", "report.md", "report.html"} {
		raw, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		all += string(raw)
		if !strings.Contains(string(raw), "0.980") && !strings.Contains(string(raw), "0.98") {
			t.Errorf("%s lacks the portal's AP of red", f)
		}
	}
	for _, args := range [][]string{{"--project", "proj-2"}, {"--iteration", "other"}} {
		code, stdout, errs := cvedge(t, append([]string{"eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", t.TempDir(),
			"--training-endpoint", srv.URL}, args...)...)
		if code == 0 || !strings.Contains(errs, "not found: check the project id") {
			t.Errorf("%v: exit %d, %s", args, code, errs)
		}
		all += stdout + errs
	}
	t.Setenv("CUSTOMVISION_TRAINING_KEY", "wrong-"+key)
	code, stdout, errs = cvedge(t, "eval", "--model", testenv.Path("testdata", "demo", "classifier"), "--data", data, "--out", t.TempDir(), "--training-endpoint", srv.URL)
	if code == 0 || !strings.Contains(errs, "check CUSTOMVISION_TRAINING_KEY") {
		t.Errorf("wrong key: exit %d, %s", code, errs)
	}
	all += stdout + errs
	if strings.Contains(all, key) {
		t.Errorf("the key shows in an output or a report:\n%s", all)
	}
	t.Setenv("CUSTOMVISION_TRAINING_KEY", "")
	if code, _, errs := cvedge(t, "eval", "--model", "m", "--data", data, "--training-endpoint", srv.URL); code == 0 || !strings.Contains(errs, "needs the training key in CUSTOMVISION_TRAINING_KEY") {
		t.Errorf("no key: exit %d, %s", code, errs)
	}
}
