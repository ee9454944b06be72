package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image"
	_ "image/jpeg"
	"image/png"
	"os"
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

// boxGreen is the fraction of the pixels along the left and right edges of box (in the
// pixels of img) that are the boxes' green.
func boxGreen(img image.Image, box image.Rectangle) float64 {
	n, green := 0, 0
	for y := box.Min.Y + 4; y < box.Max.Y-4; y++ {
		for _, x := range []int{box.Min.X, box.Max.X - 1} {
			r, g, b, _ := img.At(x, y).RGBA()
			n++
			if g>>8 > 200 && r>>8 < 80 && b>>8 < 80 {
				green++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(green) / float64(n)
}

func decodeFile(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// TestPredictAnnotate: --annotate writes each still with the detector's boxes drawn where the
// prediction puts them, at the still's size, and the predictions printed are unchanged.
func TestPredictAnnotate(t *testing.T) {
	needRuntime(t)
	demo := testenv.Path("testdata", "demo")
	out := filepath.Join(t.TempDir(), "annotated")
	res := predictJSON(t, "--detector", filepath.Join(demo, "detector"), "--classifier", filepath.Join(demo, "classifier"), "--threshold", "0.5",
		"--annotate", out, filepath.Join(demo, "stills"))
	if len(res) != 3 {
		t.Fatalf("%d results for 3 stills", len(res))
	}
	for _, r := range res {
		orig := decodeFile(t, r.File)
		drawn := decodeFile(t, filepath.Join(out, filepath.Base(r.File)))
		if drawn.Bounds() != orig.Bounds() {
			t.Fatalf("%s: annotated %v, the still is %v", r.File, drawn.Bounds(), orig.Bounds())
		}
		if len(r.Predictions) == 0 {
			t.Fatalf("%s: nothing detected; the test needs parts", r.File)
		}
		w, h := float32(orig.Bounds().Dx()), float32(orig.Bounds().Dy())
		for _, d := range r.Predictions {
			b := d.BoundingBox
			box := image.Rect(int(b.Left*w+0.5), int(b.Top*h+0.5), int((b.Left+b.Width)*w+0.5), int((b.Top+b.Height)*h+0.5)).Intersect(orig.Bounds())
			if g := boxGreen(drawn, box); g < 0.9 {
				t.Errorf("%s: %.0f%% of the edge of box %v is green in the annotated image; want it drawn", r.File, g*100, box)
			}
			if g := boxGreen(orig, box); g > 0.5 {
				t.Errorf("%s: the still itself is green along box %v: the test cannot tell a drawn box", r.File, box)
			}
		}
	}
	// the results are those without --annotate
	plain := predictJSON(t, "--detector", filepath.Join(demo, "detector"), "--classifier", filepath.Join(demo, "classifier"), "--threshold", "0.5", filepath.Join(demo, "stills"))
	for i := range plain {
		if len(plain[i].Predictions) != len(res[i].Predictions) || plain[i].Predictions[0].TagName != res[i].Predictions[0].TagName {
			t.Errorf("%s: %+v with --annotate, %+v without", res[i].File, res[i].Predictions, plain[i].Predictions)
		}
	}
}

// TestPredictAnnotateNames: the images of a folder keep their sub-folders (two x.jpg do not
// collide), other formats get .jpg added, a file there is overwritten, images inside the
// output folder are not read, and two files that would be written to one name are refused
// before anything runs.
func TestPredictAnnotateNames(t *testing.T) {
	needRuntime(t)
	demo := testenv.Path("testdata", "demo")
	still, err := os.ReadFile(filepath.Join(demo, "stills", "frame_040.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	in := t.TempDir()
	for _, sub := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(in, sub), 0o755)
		if err := os.WriteFile(filepath.Join(in, sub, "x.jpg"), still, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, decodeFile(t, filepath.Join(in, "a", "x.jpg"))); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(in, "b", "y.png"), buf.Bytes(), 0o644)
	out := filepath.Join(in, "annotated") // inside the folder given
	os.MkdirAll(filepath.Join(out, "a"), 0o755)
	os.WriteFile(filepath.Join(out, "a", "x.jpg"), []byte("an earlier run's"), 0o644)
	classifier := filepath.Join(demo, "classifier")
	for run := range 2 {
		res := predictJSON(t, "--model", classifier, "--annotate", out, in)
		if len(res) != 3 {
			t.Fatalf("run %d: %d results, want a/x.jpg, b/x.jpg and b/y.png alone", run, len(res))
		}
		for _, name := range []string{"a/x.jpg", "b/x.jpg", "b/y.png.jpg"} {
			img := decodeFile(t, filepath.Join(out, filepath.FromSlash(name)))
			// a classifier alone: the whole image is the box
			if g := boxGreen(img, img.Bounds()); g < 0.9 {
				t.Errorf("run %d: %s: %.0f%% of the image's edge is green; want the whole-image box", run, name, g*100)
			}
		}
	}
	out2 := filepath.Join(t.TempDir(), "out")
	code, _, errs := cvedge(t, "predict", "--model", classifier, "--annotate", out2, filepath.Join(in, "a", "x.jpg"), filepath.Join(in, "b", "x.jpg"))
	if code != 2 || !strings.Contains(errs, "would both be written to "+filepath.Join(out2, "x.jpg")) {
		t.Fatalf("two x.jpg given as files: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Fatal("the output folder was made for a run that was refused")
	}
}
