package models

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
	"github.com/x448/float16"
	ort "github.com/yalue/onnxruntime_go"
)

func newRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	rt, err := NewRuntime(Options{})
	if err != nil {
		testenv.Missing(tb, "onnxruntime: %v", err)
	}
	tb.Cleanup(func() { rt.Close() })
	return rt
}

func loadModel(tb testing.TB, rt *Runtime, path string, edit ...func(*configs.Model)) *Model {
	tb.Helper()
	c := configs.DefaultModel()
	c.Path = path
	for _, e := range edit {
		e(&c)
	}
	m, err := Load(rt, "test", c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// scene paints an image of w x h pixels: a grey belt with shapes on it. Pixels are BGR 0-255.
type scene struct {
	w, h   int
	shapes []shape
}

type shape struct {
	kind       string // square, circle, triangle
	cx, cy, r  float64
	b, g, rr   float32
	wantColour string
}

func (s scene) pixel(x, y int) (b, g, r float32) {
	fx, fy := float64(x)+0.5, float64(y)+0.5
	for _, sh := range s.shapes {
		dx, dy := fx-sh.cx, fy-sh.cy
		in := false
		switch sh.kind {
		case "square":
			in = math.Abs(dx) <= sh.r && math.Abs(dy) <= sh.r
		case "circle":
			in = dx*dx+dy*dy <= sh.r*sh.r
		case "triangle": // apex up, base at cy+r
			in = dy <= sh.r && dy >= -sh.r && math.Abs(dx) <= (dy+sh.r)/2
		}
		if in {
			return sh.b, sh.g, sh.rr
		}
	}
	return 72, 72, 72
}

// fill writes the scene into a slot in the model's channel order and range.
func (s scene) fill(in Input, slot Slot) {
	plane := in.Width * in.Height
	for y := 0; y < in.Height; y++ {
		for x := 0; x < in.Width; x++ {
			b, g, r := s.pixel(x*s.w/in.Width, y*s.h/in.Height)
			c := [3]float32{b, g, r}
			if in.Pixels.Order == RGB {
				c[0], c[2] = c[2], c[0]
			}
			for ch := 0; ch < 3; ch++ {
				v := c[ch]*in.Pixels.Scale + in.Pixels.Offset
				i := ch*plane + y*in.Width + x
				if slot.F16 != nil {
					slot.F16[i] = f16(v)
				} else {
					slot.F32[i] = v
				}
			}
		}
	}
}

var colours = map[string][3]float32{
	"blue": {190, 100, 30}, "green": {60, 170, 60}, "red": {45, 40, 200}, "yellow": {40, 200, 220},
}

func part(kind, colour string, cx, cy, r float64) shape {
	c := colours[colour]
	return shape{kind: kind, cx: cx, cy: cy, r: r, b: c[0], g: c[1], rr: c[2], wantColour: colour}
}

func predictScenes(t *testing.T, m *Model, scenes ...scene) [][]Prediction {
	t.Helper()
	res, err := m.Predict(len(scenes), func(i int, s Slot) error {
		scenes[i].fill(m.Info.Input, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDemoModelsDescribe(t *testing.T) {
	rt := newRuntime(t)
	cases := []struct {
		dir    string
		format Format
		w, h   int
		labels string
		batch  bool
	}{
		{"detector", FormatDetectorYOLO, 416, 416, "part", false},
		{"classifier", FormatClassifier, 224, 224, "blue,green,red,yellow", true},
		{"shape", FormatClassifierONNX12, 227, 227, "circle,square,triangle", true},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			m := loadModel(t, rt, testenv.Path("testdata", "demo", c.dir))
			in := m.Info.Input
			if m.Info.Format != c.format || in.Width != c.w || in.Height != c.h || in.DynamicBatch != c.batch {
				t.Fatalf("got format %s input %dx%d batch %v", m.Info.Format, in.Width, in.Height, in.DynamicBatch)
			}
			if got := strings.Join(m.Info.Labels, ","); got != c.labels {
				t.Fatalf("labels %s", got)
			}
			if in.Pixels.Order != BGR || in.Pixels.Scale != 1 {
				t.Fatalf("pixels %+v: the model's metadata_props say Bgr8 0-255 (metadata_properties.json says otherwise and must be ignored)", in.Pixels)
			}
			if len(m.Info.Iteration) != 36 || len(m.Info.SHA256) != 64 {
				t.Fatalf("iteration %q sha %q", m.Info.Iteration, m.Info.SHA256)
			}
		})
	}
}

func TestColourClassifierReadsPixels(t *testing.T) {
	m := loadModel(t, newRuntime(t), testenv.Path("testdata", "demo", "classifier"))
	var scenes []scene
	var want []string
	for _, colour := range []string{"blue", "green", "red", "yellow"} {
		for _, kind := range []string{"square", "circle", "triangle"} {
			scenes = append(scenes, scene{w: 120, h: 120, shapes: []shape{part(kind, colour, 60, 60, 45)}})
			want = append(want, colour)
		}
	}
	res := predictScenes(t, m, scenes...) // 12 images: more than max_batch, so chunked
	for i, r := range res {
		if len(r) != 4 || r[0].TagName != want[i] || r[0].Probability < 0.9 {
			t.Errorf("scene %d: want %s first, got %+v", i, want[i], r)
		}
		var sum float32
		for _, p := range r {
			sum += p.Probability
		}
		if math.Abs(float64(sum-1)) > 1e-4 {
			t.Errorf("scene %d: softmax probabilities sum to %v", i, sum)
		}
	}
}

func TestShapeClassifierONNX12(t *testing.T) {
	m := loadModel(t, newRuntime(t), testenv.Path("testdata", "demo", "shape"))
	kinds := []string{"circle", "square", "triangle"}
	var scenes []scene
	for _, k := range kinds {
		scenes = append(scenes, scene{w: 227, h: 227, shapes: []shape{part(k, "red", 113, 113, 80)}})
	}
	for i, r := range predictScenes(t, m, scenes...) {
		if r[0].TagName != kinds[i] || r[0].Probability < 0.8 {
			t.Errorf("%s: got %+v", kinds[i], r)
		}
	}
}

func TestYOLODetectorLocalisesParts(t *testing.T) {
	m := loadModel(t, newRuntime(t), testenv.Path("testdata", "demo", "detector"))
	sc := scene{w: 640, h: 360, shapes: []shape{
		part("square", "red", 120, 150, 40),
		part("circle", "blue", 420, 220, 44),
	}}
	res := predictScenes(t, m, sc)[0]
	if len(res) != 2 {
		t.Fatalf("want 2 detections, got %d: %+v", len(res), res)
	}
	for _, sh := range sc.shapes {
		truth := Box{Left: float32((sh.cx - sh.r) / 640), Top: float32((sh.cy - sh.r) / 360), Width: float32(2 * sh.r / 640), Height: float32(2 * sh.r / 360)}
		best := float32(0)
		for _, d := range res {
			best = max(best, d.Box.IoU(truth))
		}
		if best < 0.85 {
			t.Errorf("part at %v,%v: best IoU %.2f with %+v", sh.cx, sh.cy, best, res)
		}
	}
	for _, d := range res {
		if d.TagName != "part" || d.Probability < 0.9 {
			t.Errorf("detection %+v", d)
		}
	}
	if empty := predictScenes(t, m, scene{w: 640, h: 360})[0]; len(empty) != 0 {
		t.Errorf("empty belt: want no detections, got %+v", empty)
	}
}

func f16(v float32) uint16 { return float16.Fromfloat32(v).Bits() }

func TestFlavours(t *testing.T) {
	rt := newRuntime(t)
	belt := scene{w: 640, h: 360, shapes: []shape{part("square", "red", 120, 150, 40), part("circle", "yellow", 420, 220, 44)}}
	crops := []scene{
		{w: 100, h: 100, shapes: []shape{part("circle", "blue", 50, 50, 40)}},
		{w: 100, h: 100, shapes: []shape{part("triangle", "green", 50, 50, 40)}},
		{w: 100, h: 100, shapes: []shape{part("square", "red", 50, 50, 40)}},
	}
	ref := loadModel(t, rt, demo("detector"))
	want := predictScenes(t, ref, belt)[0]

	t.Run("detector float16", func(t *testing.T) {
		m := loadModel(t, rt, testenv.Path("testdata", "models", "detector-fp16"))
		if !m.Info.Input.Float16 || m.Info.Flavor != "OnnxFloat16" {
			t.Fatalf("input %+v flavor %q", m.Info.Input, m.Info.Flavor)
		}
		got := predictScenes(t, m, belt)[0]
		sameBoxes(t, got, want, 0.95)
	})
	t.Run("detector symbolic size", func(t *testing.T) {
		for _, size := range []int{416, 320} {
			m := loadModel(t, rt, testenv.Path("testdata", "models", "detector-symbolic"), func(c *configs.Model) { c.InputSize = size })
			if !m.Info.Input.SymbolicSize || m.Info.Input.Width != size {
				t.Fatalf("input %+v", m.Info.Input)
			}
			sameBoxes(t, predictScenes(t, m, belt)[0], want, 0.9)
		}
	})
	t.Run("detector ssd", func(t *testing.T) {
		m := loadModel(t, rt, testenv.Path("testdata", "models", "detector-ssd"))
		if m.Info.Format != FormatDetectorSSD || m.Info.Input.Pixels.Order != RGB || m.Info.Input.Name != "image_tensor" {
			t.Fatalf("info %+v", m.Info)
		}
		got := predictScenes(t, m, belt)[0]
		sameBoxes(t, got, want, 0.9)
		tags := map[string]bool{}
		for _, d := range got {
			tags[d.TagName] = true
		}
		if !tags["red"] || !tags["yellow"] {
			t.Fatalf("SSD classes %+v: want red and yellow", got)
		}
	})
	for _, name := range []string{"classifier-fp16", "classifier-rgb01"} {
		t.Run(name, func(t *testing.T) {
			m := loadModel(t, rt, testenv.Path("testdata", "models", name))
			for i, r := range predictScenes(t, m, crops...) {
				if r[0].TagName != crops[i].shapes[0].wantColour {
					t.Errorf("crop %d: want %s, got %+v", i, crops[i].shapes[0].wantColour, r)
				}
			}
		})
	}
	t.Run("rgb01 metadata decides", func(t *testing.T) {
		m := loadModel(t, rt, testenv.Path("testdata", "models", "classifier-rgb01"))
		if p := m.Info.Input.Pixels; p.Order != RGB || p.Scale != 1.0/255 {
			t.Fatalf("pixels %+v, want RGB /255 from metadata_props", p)
		}
		// fed as metadata_properties.json would suggest to a careless reader of another model:
		// BGR 0-255. The model then sees blue as red and saturates: the answers go wrong.
		wrong := m.Info.Input
		wrong.Pixels = Pixels{Order: BGR, Scale: 1}
		res, err := m.Predict(1, func(_ int, s Slot) error { crops[0].fill(wrong, s); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if res[0][0].TagName == "blue" {
			t.Fatalf("wrongly fed pixels still gave blue: the test cannot tell the difference")
		}
	})
}

// sameBoxes checks that got has as many boxes as want, and that each box of want overlaps
// one of got by IoU minIoU or more.
func sameBoxes(t *testing.T, got, want []Prediction, minIoU float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d detections, want %d: %+v", len(got), len(want), got)
	}
	for _, w := range want {
		best := float32(0)
		for _, g := range got {
			best = max(best, g.Box.IoU(*w.Box))
		}
		if best < minIoU {
			t.Errorf("box %+v: best IoU %.3f among %+v", *w.Box, best, got)
		}
	}
}

// TestModelOutlivesRuntime: a model closed after its Runtime (a deferred rt.Close runs before
// the t.Cleanup that closes the model) still predicts and closes without calling into an
// unloaded library; the library is unloaded when the last of them is closed, and a closed
// Runtime loads nothing.
func TestModelOutlivesRuntime(t *testing.T) {
	newRuntime(t).Close() // skip or fail here when onnxruntime is missing
	if env.users != 0 {
		t.Fatalf("%d users of the onnxruntime environment left by earlier tests", env.users)
	}
	rt, err := NewRuntime(Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := testenv.Path("testdata", "demo", "classifier")
	c := configs.DefaultModel()
	c.Path = path
	m, err := Load(rt, "test", c)
	if err != nil {
		rt.Close()
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if !ort.IsInitialized() {
		t.Fatal("closing the Runtime unloaded onnxruntime while a model loaded from it is open")
	}
	res := predictScenes(t, m, scene{w: 100, h: 100, shapes: []shape{part("square", "red", 50, 50, 40)}})
	if res[0][0].TagName != "red" {
		t.Fatalf("after the Runtime was closed: %+v", res[0])
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if ort.IsInitialized() {
		t.Fatal("onnxruntime is still loaded after the Runtime and its only model were closed")
	}
	if _, err := Load(rt, "test", c); err == nil || !strings.Contains(err.Error(), "the onnxruntime runtime is closed") {
		t.Fatalf("Load on a closed Runtime: %v", err)
	}
}

// TestProviderFallsBackToCPU: this onnxruntime build has no CUDA; asking for it loads the
// model on the CPU and says so.
func TestProviderFallsBackToCPU(t *testing.T) {
	newRuntime(t) // skip or fail here when onnxruntime is missing
	var buf bytes.Buffer
	rt, err := NewRuntime(Options{ExecutionProvider: "cuda", GraphOptimization: "basic", NoMemoryArena: true, IntraOpThreads: 1,
		Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	m := loadModel(t, rt, testenv.Path("testdata", "demo", "classifier"))
	if !strings.Contains(buf.String(), "execution provider not available in this onnxruntime; running on the CPU") || !strings.Contains(buf.String(), "provider=cuda") {
		t.Fatalf("log:\n%s", buf.String())
	}
	if m.Provider() != "cpu" {
		t.Errorf("Provider() = %q after the fallback, want cpu", m.Provider())
	}
	res := predictScenes(t, m, scene{w: 100, h: 100, shapes: []shape{part("square", "red", 50, 50, 40)}})
	if res[0][0].TagName != "red" {
		t.Fatalf("on the CPU: %+v", res[0])
	}
}

// A Feed filled outside the model's lock gives what Predict gives, for float32 and float16
// models, and is refused by a model of another input.
func TestFeedMatchesPredict(t *testing.T) {
	rt := newRuntime(t)
	sc := scene{w: 640, h: 360, shapes: []shape{part("square", "red", 120, 150, 40), part("circle", "blue", 420, 220, 44)}}
	det := loadModel(t, rt, testenv.Path("testdata", "demo", "detector"))
	for _, path := range []string{testenv.Path("testdata", "demo", "detector"), testenv.Path("testdata", "models", "detector-fp16")} {
		m := loadModel(t, rt, path)
		feed, err := m.NewFeed()
		if err != nil {
			t.Fatal(err)
		}
		sc.fill(m.Info.Input, feed.Slot())
		got, err := m.Run(feed)
		if err != nil {
			t.Fatal(err)
		}
		want := predictScenes(t, m, sc)[0]
		if len(got) != 2 || len(got) != len(want) {
			t.Fatalf("%s: feed gave %+v, Predict %+v", path, got, want)
		}
		sameBoxes(t, got, want, 0.99)
		if m.Info.Input.Float16 {
			if _, err := det.Run(feed); err == nil || !strings.Contains(err.Error(), "feed was made for") {
				t.Errorf("float32 detector ran a float16 feed: %v", err)
			}
		}
		feed.Close()
		feed.Close() // twice is harmless
		if _, err := m.Run(feed); err == nil {
			t.Error("a closed feed ran")
		}
	}
}

// A Results reused from call to call holds each call's own predictions (the bound tensors
// are read and written afresh on every run), its lists do not overlap, and a steady stream
// of calls allocates nothing.
func TestResultsReused(t *testing.T) {
	rt := newRuntime(t)
	a := scene{w: 640, h: 360, shapes: []shape{part("square", "red", 120, 150, 40), part("circle", "blue", 420, 220, 44)}}
	b := scene{w: 640, h: 360, shapes: []shape{part("square", "green", 500, 90, 40)}}
	cropA := scene{w: 100, h: 100, shapes: []shape{part("square", "red", 50, 50, 40)}}
	cropB := scene{w: 100, h: 100, shapes: []shape{part("square", "blue", 50, 50, 40)}}
	for _, c := range []struct {
		path   string
		scenes [2][]scene // two calls
	}{
		{testenv.Path("testdata", "demo", "detector"), [2][]scene{{a}, {b}}},
		{testenv.Path("testdata", "models", "detector-fp16"), [2][]scene{{a}, {b}}},
		{testenv.Path("testdata", "demo", "classifier"), [2][]scene{{cropA, cropB, cropA}, {cropB}}},
	} {
		m := loadModel(t, rt, c.path)
		var r Results
		call := func(sc []scene) func(i int, s Slot) error {
			return func(i int, s Slot) error { sc[i].fill(m.Info.Input, s); return nil }
		}
		for k, sc := range c.scenes {
			if err := m.PredictInto(&r, len(sc), call(sc)); err != nil {
				t.Fatal(err)
			}
			want := predictScenes(t, m, sc...)
			got := r.Lists()
			if len(got) != len(want) {
				t.Fatalf("%s call %d: %d lists, want %d", c.path, k, len(got), len(want))
			}
			for i := range want {
				if len(got[i]) != len(want[i]) || len(got[i]) == 0 || got[i][0].TagName != want[i][0].TagName {
					t.Fatalf("%s call %d image %d: %+v, want %+v", c.path, k, i, got[i], want[i])
				}
				if m.Info.Format.IsDetector() {
					sameBoxes(t, got[i], want[i], 0.99)
				}
				if cap(got[i]) != len(got[i]) {
					t.Errorf("%s: list %d has room beyond its end (cap %d, len %d): an append would overwrite the next", c.path, i, cap(got[i]), len(got[i]))
				}
			}
		}
		sc := c.scenes[0]
		fill := call(sc)
		if n := testing.AllocsPerRun(20, func() {
			if err := m.PredictInto(&r, len(sc), fill); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: PredictInto with a reused Results allocates %.1f times a call", c.path, n)
		}
		if m.Info.Format.IsDetector() {
			feed, err := m.NewFeed()
			if err != nil {
				t.Fatal(err)
			}
			a.fill(m.Info.Input, feed.Slot())
			if n := testing.AllocsPerRun(20, func() {
				if err := m.RunInto(&r, feed); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("%s: RunInto with a reused Results allocates %.1f times a call", c.path, n)
			}
			feed.Close()
		}
	}
}

// Where the session runs on another provider than the CPU, tensors are passed on each run
// instead of bound once; both ways give the same predictions.
func TestUnboundRunsMatchBound(t *testing.T) {
	rt := newRuntime(t)
	sc := []scene{
		{w: 640, h: 360, shapes: []shape{part("square", "red", 120, 150, 40), part("circle", "blue", 420, 220, 44)}},
		{w: 640, h: 360, shapes: []shape{part("square", "green", 500, 90, 40)}},
	}
	for _, path := range []string{testenv.Path("testdata", "demo", "detector"), testenv.Path("testdata", "demo", "classifier")} {
		bound, unbound := loadModel(t, rt, path), loadModel(t, rt, path)
		unbound.mu.Lock()
		for _, bd := range unbound.batches { // made by the warm-up, bound
			bd.destroy()
		}
		unbound.batches, unbound.bindIO = map[int]*binding{}, false
		unbound.mu.Unlock()
		for i := range sc {
			want, got := predictScenes(t, bound, sc[i]), predictScenes(t, unbound, sc[i])
			if len(got[0]) == 0 || len(got[0]) != len(want[0]) || got[0][0].TagName != want[0][0].TagName || got[0][0].Probability != want[0][0].Probability {
				t.Fatalf("%s scene %d: unbound %+v, bound %+v", path, i, got[0], want[0])
			}
		}
		for _, bd := range unbound.batches {
			if bd.io != nil {
				t.Fatalf("%s: a binding made with bindIO false is bound", path)
			}
		}
	}
}
