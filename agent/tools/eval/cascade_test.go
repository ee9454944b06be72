package eval

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

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// TestMatchParts matches hand-made boxes: the strongest detection takes the part it overlaps
// most even where a weaker one overlaps it better, an IoU of exactly 0.5 counts, and tags play
// no part (the detector says "part", the truth "brass").
//
//	A  = (0, 0, .5, .5)      B  = (.25, 0, .5, .5)
//	d0 = A, score .6:        IoU 1 with A, 1/3 with B
//	d1 = (.0625, 0, .5, .5), score .9: IoU .78 with A, .45 with B
//	d2 = (.25, 0, .5, .25), score .5:  IoU .5 with B, .2 with A
//
// d1 goes first and takes A; d0 is left with B at 1/3: no part; d2 takes B at 0.5.
func TestMatchParts(t *testing.T) {
	truth := []Object{{Tag: "brass", Box: Box{0, 0, .5, .5}}, {Tag: "steel", Box: Box{.25, 0, .5, .5}}}
	found := []Object{
		{Tag: "part", Score: .6, Box: Box{0, 0, .5, .5}},
		{Tag: "part", Score: .9, Box: Box{.0625, 0, .5, .5}},
		{Tag: "part", Score: .5, Box: Box{.25, 0, .5, .25}},
	}
	if got := fmt.Sprint(MatchParts(truth, found, 0.5)); got != "[-1 0 1]" {
		t.Errorf("match %s, want [-1 0 1]", got)
	}
	// d2 alone, under a stricter bound: nothing
	if got := fmt.Sprint(MatchParts(truth, found[2:], 0.51)); got != "[-1]" {
		t.Errorf("match at 0.51 %s, want [-1]", got)
	}
	if got := fmt.Sprint(MatchParts(nil, found[:1], 0.5)); got != "[-1]" {
		t.Errorf("no truth: %s", got)
	}
	if got := fmt.Sprint(MatchParts(truth, nil, 0.5)); got != "[]" {
		t.Errorf("no detection: %s", got)
	}
}

// TestFinalTag: the deepest level's top tag, unknown at a level under its threshold, the
// detector's own tag without a classifier.
func TestFinalTag(t *testing.T) {
	cls := func(tag string, p float32, uncertain bool, next *payload.Classification) *payload.Classification {
		return &payload.Classification{Predictions: []payload.Tag{{TagName: tag, Probability: p}}, Uncertain: uncertain, Next: next}
	}
	cases := []struct {
		d    payload.Tag
		want string
		p    float32
	}{
		{payload.Tag{TagName: "part", Probability: .9}, "part", .9},
		{payload.Tag{TagName: "part", Probability: .9, Classification: cls("metal", .8, false, nil)}, "metal", .8},
		{payload.Tag{TagName: "part", Probability: .9, Classification: cls("metal", .8, false, cls("brass", .7, false, nil))}, "brass", .7},
		{payload.Tag{TagName: "part", Probability: .9, Classification: cls("metal", .8, false, cls("brass", .4, true, nil))}, Unknown, .4},
		{payload.Tag{TagName: "part", Probability: .9, Classification: cls("metal", .3, true, cls("brass", .7, false, nil))}, Unknown, .3},
		{payload.Tag{TagName: "part", Probability: .9, Classification: &payload.Classification{}}, "part", .9},
	}
	for i, c := range cases {
		if tag, p := FinalTag(c.d); tag != c.want || p != c.p {
			t.Errorf("%d: %s %v, want %s %v", i, tag, p, c.want, c.p)
		}
	}
}

// Colours of the cascade scene, on a grey belt (128, 128, 128).
var (
	brassRGB   = color.RGBA{200, 170, 40, 255}
	steelRGB   = color.RGBA{60, 60, 200, 255}
	plasticRGB = color.RGBA{40, 200, 40, 255}
	stainRGB   = color.RGBA{200, 40, 40, 255}   // no part: the classifier calls it plastic
	faintRGB   = color.RGBA{140, 128, 128, 255} // a part too pale for the detector
)

type square struct {
	c          color.RGBA
	x, y, side int
}

// writeScene writes a 100x100 grey PNG at path with the squares drawn.
func writeScene(t *testing.T, path string, squares ...square) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 100, 100))
	for i := range img.Pix {
		img.Pix[i] = 128
		if i%4 == 3 {
			img.Pix[i] = 255 // opaque
		}
	}
	for _, s := range squares {
		for y := s.y; y < s.y+s.side; y++ {
			for x := s.x; x < s.x+s.side; x++ {
				img.SetRGBA(x, y, s.c)
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

// pixels reads a frame's pixels.
func pixels(t *testing.T, f *camera.Frame) image.Image {
	img, err := f.Image()
	if err != nil {
		t.Error(err)
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	return img
}

func rgb(c color.Color) (r, g, b int) {
	r32, g32, b32, _ := c.RGBA()
	return int(r32 >> 8), int(g32 >> 8), int(b32 >> 8)
}

// cascadeStages are a detector, a classifier and a second-level classifier without
// onnxruntime that read the pixels. The detector boxes every colour that stands out of the
// grey (chroma over 30), one box a colour; the classifier calls the centre of a crop metal
// (red over green over blue, or blue first) or plastic (green or red first); the route of
// metal calls it brass (red over blue) or steel.
func cascadeStages(t *testing.T) (det, cls, route *pipeline.FakeStage) {
	det = &pipeline.FakeStage{Model: "parts", Iteration: "3", Finds: true, Answer: func(f *camera.Frame, region image.Rectangle) []models.Prediction {
		img := pixels(t, f)
		boxes := map[color.RGBA]image.Rectangle{}
		var order []color.RGBA
		for y := region.Min.Y; y < region.Max.Y; y++ {
			for x := region.Min.X; x < region.Max.X; x++ {
				r, g, b := rgb(img.At(x, y))
				if max(r, g, b)-min(r, g, b) <= 30 {
					continue
				}
				c := color.RGBA{uint8(r), uint8(g), uint8(b), 255}
				px := image.Rect(x, y, x+1, y+1)
				if old, ok := boxes[c]; ok {
					boxes[c] = old.Union(px)
				} else {
					boxes[c], order = px, append(order, c)
				}
			}
		}
		var out []models.Prediction
		w, h := float32(region.Dx()), float32(region.Dy())
		for _, c := range order {
			r := boxes[c].Sub(region.Min)
			out = append(out, models.Prediction{TagName: "part", Probability: .9,
				Box: &models.Box{Left: float32(r.Min.X) / w, Top: float32(r.Min.Y) / h, Width: float32(r.Dx()) / w, Height: float32(r.Dy()) / h}})
		}
		return out
	}}
	centre := func(f *camera.Frame, region image.Rectangle) (int, int, int) {
		m := region.Min.Add(region.Size().Div(2))
		return rgb(pixels(t, f).At(m.X, m.Y))
	}
	two := func(a, b string) []models.Prediction {
		return []models.Prediction{{TagName: a, Probability: .8}, {TagName: b, Probability: .2}}
	}
	cls = &pipeline.FakeStage{Model: "material", Iteration: "5", Answer: func(f *camera.Frame, region image.Rectangle) []models.Prediction {
		r, g, b := centre(f, region)
		if (r > g && g > b) || (b > r && b > g) {
			return two("metal", "plastic")
		}
		return two("plastic", "metal")
	}}
	route = &pipeline.FakeStage{Model: "metal", Iteration: "2", Answer: func(f *camera.Frame, region image.Rectangle) []models.Prediction {
		if r, _, b := centre(f, region); r > b {
			return two("brass", "steel")
		}
		return two("steel", "brass")
	}}
	return det, cls, route
}

// cocoSet writes a COCO file into dir from images (file name -> boxes in pixels, tagged).
func cocoSet(t *testing.T, dir string, files []string, boxes map[string][]Object) string {
	t.Helper()
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
	var c struct {
		Images      []img            `json:"images"`
		Annotations []ann            `json:"annotations"`
		Categories  []map[string]any `json:"categories"`
	}
	cats := map[string]int{}
	for i, f := range files {
		c.Images = append(c.Images, img{ID: i + 1, FileName: f, Width: 100, Height: 100})
		for _, o := range boxes[f] {
			if cats[o.Tag] == 0 {
				cats[o.Tag] = len(cats) + 1
				c.Categories = append(c.Categories, map[string]any{"id": cats[o.Tag], "name": o.Tag})
			}
			c.Annotations = append(c.Annotations, ann{ImageID: i + 1, CategoryID: cats[o.Tag], BBox: []float64{o.Box.Left, o.Box.Top, o.Box.Width, o.Box.Height}})
		}
	}
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

// TestCascade scores a detector, a classifier and a route through the pipeline on a scene
// worked out by hand:
//
//	a.png: brass, steel and plastic squares, labelled so: all three found and right.
//	b.png: a faint square labelled plastic (the detector misses it), a brass-coloured
//	       square labelled steel (found, final tag brass: wrong), and a stain nobody labelled
//	       (found, the classifier calls it plastic: a false part).
//	c.png: labelled, but no such file: failed.
//
// So 5 parts, 4 found, 3 right; 1 false part on 2 images scored; the matrix (rows true
// brass, plastic, steel, no part; columns final brass, plastic, steel, missed):
//
//	brass    1 0 0 0
//	plastic  0 1 0 1
//	steel    1 0 1 0
//	no part  0 1 0 0
func TestCascade(t *testing.T) {
	dir := t.TempDir()
	writeScene(t, filepath.Join(dir, "a.png"), square{brassRGB, 10, 10, 20}, square{steelRGB, 60, 10, 20}, square{plasticRGB, 10, 60, 20})
	writeScene(t, filepath.Join(dir, "b.png"), square{faintRGB, 10, 10, 20}, square{brassRGB, 60, 10, 20}, square{stainRGB, 60, 60, 20})
	box := func(tag string, x, y float64) Object { return Object{Tag: tag, Box: Box{x, y, 20, 20}} }
	data := cocoSet(t, dir, []string{"a.png", "b.png", "c.png"}, map[string][]Object{
		"a.png": {box("brass", 10, 10), box("steel", 60, 10), box("plastic", 10, 60)},
		"b.png": {box("plastic", 10, 10), box("steel", 60, 10)},
		"c.png": {box("brass", 10, 10)},
	})
	det, cls, route := cascadeStages(t)
	pl := pipeline.New(pipeline.Options{Detector: det, Classifier: cls, Routes: map[string]pipeline.Stage{"metal": route}, Padding: 0.1})
	defer pl.Close()
	var steps []string
	r, err := Cascade(CascadeOptions{Camera: "line1", Pipeline: pl, Data: data, Tags: []string{"brass", "plastic", "steel", "metal"},
		Models:   []CascadeModel{{Role: "detector", Name: "parts", Iteration: "3"}},
		Progress: func(n, total int) { steps = append(steps, fmt.Sprintf("%d/%d", n, total)) }})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Cascade
	if r.Kind != "cascade" || c.Images != 3 || c.Failed != 1 || !strings.Contains(c.Failures[0].File, "c.png") {
		t.Fatalf("kind %s, %d images, %d failed: %+v", r.Kind, c.Images, c.Failed, c.Failures)
	}
	if c.Parts != 5 || c.Found != 4 || c.Right != 3 || c.FalseParts != 1 {
		t.Errorf("parts %d found %d right %d false %d, want 5 4 3 1", c.Parts, c.Found, c.Right, c.FalseParts)
	}
	if !near(c.PartsFound, 0.8) || !near(c.TagAccuracy, 0.75) || !near(c.EndToEnd, 0.6) || !near(c.FalsePerImage, 0.5) {
		t.Errorf("found %v accuracy %v end to end %v false per image %v", c.PartsFound, c.TagAccuracy, c.EndToEnd, c.FalsePerImage)
	}
	if got := strings.Join(c.Confusion.Labels, ","); got != "brass,plastic,steel,no part" {
		t.Errorf("labels %s", got)
	}
	if got := fmt.Sprint(c.Confusion.Matrix); got != "[[1 0 0 0] [0 1 0 1] [1 0 1 0] [0 1 0 0]]" {
		t.Errorf("matrix %s", got)
	}
	want := map[string]CascadeTag{
		"brass":   {Tag: "brass", PartScore: PartScore{Parts: 1, Found: 1, Right: 1, PartsFound: 1, TagAccuracy: 1, EndToEnd: 1}},
		"plastic": {Tag: "plastic", PartScore: PartScore{Parts: 2, Found: 1, Right: 1, FalseParts: 1, PartsFound: .5, TagAccuracy: 1, EndToEnd: .5}},
		"steel":   {Tag: "steel", PartScore: PartScore{Parts: 2, Found: 2, Right: 1, PartsFound: 1, TagAccuracy: .5, EndToEnd: .5}},
	}
	if len(c.Tags) != 3 {
		t.Errorf("tags %+v", c.Tags)
	}
	for _, tag := range c.Tags {
		if tag != want[tag.Tag] {
			t.Errorf("tag %+v, want %+v", tag, want[tag.Tag])
		}
	}
	var wrong []string
	for _, w := range c.Wrong {
		wrong = append(wrong, fmt.Sprintf("%s %q->%q", filepath.Base(w.File), w.True, w.Final))
	}
	if got := strings.Join(wrong, ", "); got != `b.png ""->"plastic", b.png "plastic"->"", b.png "steel"->"brass"` {
		t.Errorf("wrong parts: %s", got)
	}
	if got := strings.Join(steps, ","); got != "1/3,2/3,3/3" {
		t.Errorf("progress %s", got)
	}

	out := t.TempDir()
	if err := r.Write(out); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"| 80.0% (4 of 5) | 75.0% (3 of 4) | 60.0% (3 of 5) | 0.50 (1) |",
		"| true \\ final | brass | plastic | steel | missed |",
		"| plastic | 0 | 1 | 0 | 1 |",
		"| false part | 0 | 1 | 0 | - |",
		"| plastic | 2 | 50.0% | 100.0% | 50.0% | 1 |",
		"| steel | 2 | 100.0% | 50.0% | 50.0% | 0 |",
		"![confusion matrix of the cascade of line1](cascade.png)",
	} {
		if !strings.Contains(string(md), line+"\n") {
			t.Errorf("report.md lacks %q:\n%s", line, md)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "cascade.png")); err != nil {
		t.Error(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || back.Cascade == nil || fmt.Sprint(back.Cascade.Confusion.Matrix) != fmt.Sprint(c.Confusion.Matrix) || back.Cascade.Right != 3 {
		t.Errorf("report.json: %v %s", err, raw)
	}
}

// TestCascadeRefuses: a tag the pipeline cannot give, no pipeline, and a data set none of
// whose images runs (a model that fails, no such file, a quality gate that skips every frame)
// are errors that say so.
func TestCascadeRefuses(t *testing.T) {
	dir := t.TempDir()
	writeScene(t, filepath.Join(dir, "a.png"), square{brassRGB, 10, 10, 20})
	data := cocoSet(t, dir, []string{"a.png"}, map[string][]Object{"a.png": {{Tag: "bronze", Box: Box{10, 10, 20, 20}}}})
	det, cls, _ := cascadeStages(t)
	pl := pipeline.New(pipeline.Options{Detector: det, Classifier: cls})
	defer pl.Close()
	broken := pipeline.New(pipeline.Options{Detector: &pipeline.FakeStage{Model: "gone", Finds: true, Err: fmt.Errorf("the model is gone")}})
	defer broken.Close()
	gated := pipeline.New(pipeline.Options{Detector: det, Classifier: cls, Gate: configs.QualityGate{Action: "skip", MinBrightness: 250}})
	defer gated.Close()
	cases := []struct {
		o    CascadeOptions
		want string
	}{
		{CascadeOptions{Camera: "line1", Pipeline: pl, Data: data, Tags: []string{"metal", "plastic"}}, `tag "bronze" is no final tag camera line1 can give (its models' tags: metal, plastic)`},
		{CascadeOptions{Data: data}, "no pipeline"},
		{CascadeOptions{Camera: "line1", Pipeline: broken, Data: data}, "camera line1: none of the 1 images could be read or run; the first, " + filepath.Join(dir, "a.png")},
		{CascadeOptions{Camera: "line1", Pipeline: pl, Data: filepath.Join(dir, "none.json")}, "none.json"},
		{CascadeOptions{Camera: "line1", Pipeline: gated, Data: data}, "a.png: frame skipped by the quality gate: too_dark"},
	}
	for _, c := range cases {
		if _, err := Cascade(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want %q", err, c.want)
		}
	}
}

// TestSameFrames: the regions of one frame of a cvedge collect folder are one image.
func TestSameFrames(t *testing.T) {
	in := []ImageTruth{
		{File: "f1.jpg", Objects: []Object{{Tag: "a"}}},
		{File: "f2.jpg", Objects: []Object{{Tag: "b"}}},
		{File: "f1.jpg", Objects: []Object{{Tag: "c"}}},
	}
	out := sameFrames(in)
	if len(out) != 2 || out[0].File != "f1.jpg" || len(out[0].Objects) != 2 || out[0].Objects[1].Tag != "c" || len(in[0].Objects) != 1 {
		t.Errorf("%+v", out)
	}
}

// TestCascadeNoneFound: a tag none of whose parts was found has no final-tag accuracy: the
// report says "-", not 0%.
func TestCascadeNoneFound(t *testing.T) {
	cr := &CascadeReport{Camera: "line1", Images: 1}
	cr.score([]cascadeCount{{truth: "brass"}, {truth: "steel", final: "steel"}})
	var b strings.Builder
	cr.markdown(&b)
	for _, line := range []string{"| brass | 1 | 0.0% | - | 0.0% | 0 |", "| steel | 1 | 100.0% | 100.0% | 100.0% | 0 |", "| 50.0% (1 of 2) | 100.0% (1 of 1) | 50.0% (1 of 2) | 0.00 (0) |"} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("no %q in\n%s", line, b.String())
		}
	}
	cr = &CascadeReport{Camera: "line1", Images: 1}
	cr.score([]cascadeCount{{truth: "brass"}})
	b.Reset()
	cr.markdown(&b)
	if !strings.Contains(b.String(), "| 0.0% (0 of 1) | - (0 of 0) | 0.0% (0 of 1) | 0.00 (0) |\n") {
		t.Errorf("headline with nothing found:\n%s", b.String())
	}
}

// TestCascadeCollectFolder: a cvedge collect folder holds one entry a region; the regions of
// one frame are one image with two parts, both found and right, and no false part (scored
// apart, each entry's other part would be one).
func TestCascadeCollectFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "frames"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeScene(t, filepath.Join(dir, "frames", "f1.png"), square{brassRGB, 10, 10, 20}, square{steelRGB, 60, 10, 20})
	var index []byte
	for i, e := range []struct {
		tag  string
		left float32
	}{{"brass", .1}, {"steel", .6}} {
		line, err := json.Marshal(dataset.Entry{SampleID: fmt.Sprint(i), File: fmt.Sprintf("%s/%d.jpg", e.tag, i), FrameFile: "frames/f1.png", Tag: e.tag,
			Region: &payload.Box{Left: e.left, Top: .1, Width: .2, Height: .2}})
		if err != nil {
			t.Fatal(err)
		}
		index = append(append(index, line...), '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, dataset.IndexFile), index, 0o644); err != nil {
		t.Fatal(err)
	}
	det, cls, route := cascadeStages(t)
	pl := pipeline.New(pipeline.Options{Detector: det, Classifier: cls, Routes: map[string]pipeline.Stage{"metal": route}})
	defer pl.Close()
	r, err := Cascade(CascadeOptions{Camera: "line1", Pipeline: pl, Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Cascade; c.Images != 1 || c.Parts != 2 || c.Right != 2 || c.FalseParts != 0 {
		t.Errorf("%d images, %d parts, %d right, %d false parts; want 1, 2, 2, 0", c.Images, c.Parts, c.Right, c.FalseParts)
	}
}
