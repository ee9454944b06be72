package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// beltPart is a part drawn on the grey belt: a square, or a triangle pointing up, of side 64
// at (x, y), in BGR as the demo models read colours.
type beltPart struct {
	bgr      [3]uint8
	x, y     int
	triangle bool
}

// writeBelt writes a 416x416 PNG of the grey belt with the parts drawn (416: the demo
// detector's input, so nothing is stretched).
func writeBelt(t *testing.T, path string, parts ...beltPart) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 416, 416))
	for i := range img.Pix {
		img.Pix[i] = 72
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	for _, p := range parts {
		for dy := range 64 {
			for dx := range 64 {
				if p.triangle && (2*dx < 63-dy || 2*dx > 63+dy) {
					continue
				}
				img.SetRGBA(p.x+dx, p.y+dy, color.RGBA{p.bgr[2], p.bgr[1], p.bgr[0], 255})
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// cascadeConfig writes a config whose camera line1 runs the demo detector, the colour
// classifier and, for red parts, the shape classifier; camera still has a classifier only.
// The model store's folder does not exist.
func cascadeConfig(t *testing.T) (path, storeDir string) {
	t.Helper()
	dir := t.TempDir()
	demo := testenv.Path("testdata", "demo")
	storeDir = filepath.Join(dir, "models")
	yaml := fmt.Sprintf(`
agent: {id: desk}
store: {dir: %q}
spool: {dir: %q}
models:
  parts: {path: %q, threshold: 0.5}
  colour: {path: %q}
  shape: {path: %q}
cameras:
  - name: line1
    source: %q
    pipeline: {detector: parts, classifier: colour, routes: {red: shape}}
  - name: still
    source: %q
    pipeline: {classifier: colour}
`, storeDir, filepath.Join(dir, "spool"), filepath.Join(demo, "detector"), filepath.Join(demo, "classifier"), filepath.Join(demo, "shape"),
		filepath.Join(demo, "conveyor.avi"), filepath.Join(demo, "conveyor.avi"))
	path = filepath.Join(dir, "cvedge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, storeDir
}

// beltSet writes the labelled scene of TestEvalCascade and its COCO file; it returns the
// file's path.
//
//	a.png: a blue and a green square, a red square and a red triangle, labelled blue, green,
//	       square and triangle: the detector finds the four, the colour classifier tags them,
//	       the shape classifier (route of red) gives the red ones their final tag.
//	b.png: a pale square (chroma 25: the detector misses it) labelled yellow, a green square
//	       labelled blue (found, final tag green: wrong), and a yellow square nobody labelled
//	       (a false part, final tag yellow).
//	c.png: labelled, but no such file.
func beltSet(t *testing.T) string {
	dir := t.TempDir()
	blue, green, red, yellow, pale := [3]uint8{190, 100, 30}, [3]uint8{60, 170, 60}, [3]uint8{45, 40, 200}, [3]uint8{40, 200, 220}, [3]uint8{100, 100, 125}
	writeBelt(t, filepath.Join(dir, "a.png"), beltPart{bgr: blue, x: 48, y: 48}, beltPart{bgr: green, x: 304, y: 48},
		beltPart{bgr: red, x: 48, y: 304}, beltPart{bgr: red, x: 304, y: 304, triangle: true})
	writeBelt(t, filepath.Join(dir, "b.png"), beltPart{bgr: pale, x: 48, y: 48}, beltPart{bgr: green, x: 304, y: 48}, beltPart{bgr: yellow, x: 48, y: 304})
	cats := []string{"blue", "green", "square", "triangle", "yellow"}
	c := map[string]any{}
	var categories, images, annotations []map[string]any
	for i, name := range cats {
		categories = append(categories, map[string]any{"id": i + 1, "name": name})
	}
	for i, f := range []string{"a.png", "b.png", "c.png"} {
		images = append(images, map[string]any{"id": i + 1, "file_name": f, "width": 416, "height": 416})
	}
	box := func(image, cat, x, y int) {
		annotations = append(annotations, map[string]any{"image_id": image, "category_id": cat, "bbox": []int{x, y, 64, 64}})
	}
	box(1, 1, 48, 48)
	box(1, 2, 304, 48)
	box(1, 3, 48, 304)
	box(1, 4, 304, 304)
	box(2, 5, 48, 48)
	box(2, 1, 304, 48)
	box(3, 1, 48, 48)
	c["categories"], c["images"], c["annotations"] = categories, images, annotations
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "set.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEvalCascade scores camera line1 of a config through the agent's pipeline, real ONNX
// models that compute their answers from the pixels, on the scene of beltSet: 6 parts, 5
// found, 4 right, 1 false part on 2 images, and c.png failed. Rows true tags, columns final
// tags, the last of each "no part" (false parts, missed parts):
//
//	blue      1 1 0 0 0 0
//	green     0 1 0 0 0 0
//	square    0 0 1 0 0 0
//	triangle  0 0 0 1 0 0
//	yellow    0 0 0 0 0 1
//	no part   0 0 0 0 1 0
func TestEvalCascade(t *testing.T) {
	needRuntime(t)
	cfg, storeDir := cascadeConfig(t)
	data := beltSet(t)
	out := t.TempDir()
	code, stdout, errs := cvedge(t, "eval", "--config", cfg, "--camera", "line1", "--data", data, "--out", out)
	if code != 1 || !strings.Contains(errs, "camera line1 could not read or run 1 of 3 images (the first, "+filepath.Join(filepath.Dir(data), "c.png")) ||
		!strings.Contains(errs, "--allow-failures") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	if want := "camera line1: parts found 83.3% (5 of 6), final tag right 80.0% of found, end to end 66.7%, false parts 0.50 per image, on 3 images (1 failed)\n"; !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	r := readReport(t, out)
	c := r.Cascade
	if r.Kind != "cascade" || c == nil {
		t.Fatalf("report %+v", r)
	}
	if got := strings.Join(c.Confusion.Labels, ","); got != "blue,green,square,triangle,yellow,no part" {
		t.Errorf("labels %s", got)
	}
	if got := fmt.Sprint(c.Confusion.Matrix); got != "[[1 1 0 0 0 0] [0 1 0 0 0 0] [0 0 1 0 0 0] [0 0 0 1 0 0] [0 0 0 0 0 1] [0 0 0 0 1 0]]" {
		t.Errorf("matrix %s", got)
	}
	if c.Parts != 6 || c.Found != 5 || c.Right != 4 || c.FalseParts != 1 || c.Failed != 1 {
		t.Errorf("parts %d found %d right %d false %d failed %d", c.Parts, c.Found, c.Right, c.FalseParts, c.Failed)
	}
	var roles []string
	for _, m := range c.Models {
		roles = append(roles, m.Role+"="+m.Name)
	}
	if got := strings.Join(roles, ","); got != "detector=parts,classifier=colour,routes.red=shape" {
		t.Errorf("models %s", got)
	}
	for _, f := range []string{"report.md", "cascade.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); !os.IsNotExist(err) {
		t.Errorf("a cascade score wrote report.html, which shows the models' scores only: %v", err)
	}
	if _, err := os.Stat(storeDir); !os.IsNotExist(err) {
		t.Errorf("the model store's folder was created: %v", err)
	}

	// --allow-failures accepts the score; --json prints the headline
	code, stdout, errs = cvedge(t, "eval", "--config", cfg, "--camera", "line1", "--data", data, "--out", t.TempDir(), "--allow-failures", "--json")
	var j evalJSON
	if code != 0 || json.Unmarshal([]byte(stdout), &j) != nil || j.Kind != "cascade" || j.Cascade == nil || j.Cascade.Right != 4 || j.Cascade.Parts != 6 {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
}

// TestEvalCascadeRefuses: what does not make a cascade score is a usage error that says what
// to give instead.
func TestEvalCascadeRefuses(t *testing.T) {
	needRuntime(t)
	cfg, _ := cascadeConfig(t)
	data := beltSet(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"images": [{"id": 1, "file_name": "a.png", "width": 416, "height": 416}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9]}], "categories": [{"id": 1, "name": "brass"}]}`), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--camera", "line1", "--data", data}, 2, "--camera needs --config"},
		{[]string{"--config", cfg, "--camera", "line1", "--model", "x.zip", "--data", data}, 2, "--model does not go with --config"},
		{[]string{"--config", cfg, "--camera", "line1", "--threshold", "0.3", "--data", data}, 2, "--threshold does not go with --config"},
		{[]string{"--config", cfg, "--camera", "line1", "--training-endpoint", "https://x.example/", "--data", data}, 2, "--training-endpoint does not go with --config"},
		{[]string{"--config", cfg, "--camera", "line1"}, 2, "give --data"},
		{[]string{"--config", cfg, "--data", data}, 2, "give --camera: config " + cfg + " has 2 cameras (line1, still)"},
		{[]string{"--config", cfg, "--camera", "line9", "--data", data}, 2, "--camera line9: config " + cfg + " has no such camera (cameras: line1, still)"},
		{[]string{"--config", cfg, "--camera", "still", "--data", data}, 2, "cameras[1].pipeline.detector is empty"},
		{[]string{"--config", cfg, "--camera", "line1", "--data", bad}, 1, `tag "brass" is no final tag camera line1 can give`},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.yaml"), "--camera", "line1", "--data", data}, 1, "none.yaml"},
	}
	// a route to a model of type llm: its answers come after the models, so no cascade score
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	llmCfg := filepath.Join(t.TempDir(), "llm.yaml")
	withLLM := strings.Replace(string(raw), "  shape: {path:", "  odd: {type: llm, tags: [gizmo], prompt: which gizmo}\n  shape: {path:", 1)
	withLLM = strings.Replace(withLLM, "routes: {red: shape}", "routes: {red: odd}", 1) + "llm: {enabled: true, endpoint: \"https://llm.example/v1/chat/completions\"}\n"
	if err := os.WriteFile(llmCfg, []byte(withLLM), 0o600); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		args []string
		code int
		want string
	}{[]string{"--config", llmCfg, "--camera", "line1", "--data", data}, 2, `routes.red goes to model "odd" of type llm`})
	for _, c := range cases {
		code, stdout, errs := cvedge(t, append([]string{"eval", "--out", t.TempDir()}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want %d and %q\n%s%s", c.args, code, c.code, c.want, stdout, errs)
		}
	}
}
