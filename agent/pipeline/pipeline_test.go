package pipeline_test

import (
	"errors"
	"image"
	"image/color"
	"image/draw"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/preprocess"
)

// The fakes below are models that compute their answers from the pixels, so that these tests
// check what the pipeline does with a frame in milliseconds, without onnxruntime.

var palette = map[string]color.RGBA{"red": {200, 20, 20, 255}, "green": {20, 200, 20, 255}, "blue": {20, 20, 200, 255}}

type part struct {
	colour string
	at     image.Rectangle
}

// scene draws the parts as filled rectangles on a dark grey frame of w x h.
func scene(t testing.TB, w, h int, parts ...part) *camera.Frame {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{40, 40, 40, 255}}, image.Point{}, draw.Src)
	for _, p := range parts {
		draw.Draw(img, p.at, &image.Uniform{palette[p.colour]}, image.Point{}, draw.Src)
	}
	f, err := camera.FrameOf(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// pixels returns the frame as a Go image.
func pixels(f *camera.Frame) image.Image {
	img, err := f.Image()
	if err != nil {
		panic(err)
	}
	return img
}

// finder is a fake detector: one box around the pixels of each colour of the palette found
// in the region, tagged "part", with a probability of the share of the box the colour fills.
func finder() *pipeline.FakeStage {
	return &pipeline.FakeStage{Model: "finder", Iteration: "f1", Finds: true, Answer: func(f *camera.Frame, region image.Rectangle) []models.Prediction {
		img := pixels(f)
		var out []models.Prediction
		for _, name := range []string{"blue", "green", "red"} {
			var box image.Rectangle
			n := 0
			for y := region.Min.Y; y < region.Max.Y; y++ {
				for x := region.Min.X; x < region.Max.X; x++ {
					if color.RGBAModel.Convert(img.At(x, y)) == palette[name] {
						box = box.Union(image.Rect(x, y, x+1, y+1))
						n++
					}
				}
			}
			if n == 0 {
				continue
			}
			w, h := float32(region.Dx()), float32(region.Dy())
			b := models.Box{Left: float32(box.Min.X-region.Min.X) / w, Top: float32(box.Min.Y-region.Min.Y) / h, Width: float32(box.Dx()) / w, Height: float32(box.Dy()) / h}
			out = append(out, models.Prediction{TagName: "part", Probability: float32(n) / float32(box.Dx()*box.Dy()) * 0.9, Box: &b})
		}
		return out
	}}
}

// namer is a fake classifier: the colour whose channel dominates the region's mean, with its
// share of the three channels as probability.
func namer(model string) *pipeline.FakeStage {
	return &pipeline.FakeStage{Model: model, Iteration: model + "-1", Answer: func(f *camera.Frame, region image.Rectangle) []models.Prediction {
		r, g, b := mean(pixels(f), region)
		preds := []models.Prediction{{TagName: "red", Probability: r / (r + g + b)}, {TagName: "green", Probability: g / (r + g + b)}, {TagName: "blue", Probability: b / (r + g + b)}}
		best := 0
		for i := range preds {
			if preds[i].Probability > preds[best].Probability {
				best = i
			}
		}
		preds[0], preds[best] = preds[best], preds[0]
		return preds
	}}
}

// sizer is a fake second-level classifier: "large" when the region is over 40 pixels wide.
func sizer() *pipeline.FakeStage {
	return &pipeline.FakeStage{Model: "sizer", Iteration: "s1", Answer: func(_ *camera.Frame, region image.Rectangle) []models.Prediction {
		if region.Dx() > 40 {
			return []models.Prediction{{TagName: "large", Probability: 0.9}, {TagName: "small", Probability: 0.1}}
		}
		return []models.Prediction{{TagName: "small", Probability: 0.9}, {TagName: "large", Probability: 0.1}}
	}}
}

func mean(img image.Image, region image.Rectangle) (r, g, b float32) {
	for y := region.Min.Y; y < region.Max.Y; y++ {
		for x := region.Min.X; x < region.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			r, g, b = r+float32(c.R), g+float32(c.G), b+float32(c.B)
		}
	}
	return r, g, b
}

func process(t *testing.T, o pipeline.Options, f *camera.Frame) (*payload.Prediction, *pipeline.Pipeline) {
	t.Helper()
	pl := pipeline.New(o)
	t.Cleanup(pl.Close)
	msg, err := pl.Process(f)
	if err != nil {
		t.Fatal(err)
	}
	return msg, pl
}

// TestDetectCropClassify: each part is found where it is drawn, its padded crop goes to the
// classifier, which names its colour; the regions the classifier saw are reported.
func TestDetectCropClassify(t *testing.T) {
	f := scene(t, 160, 120, part{"red", image.Rect(10, 20, 50, 60)}, part{"blue", image.Rect(100, 30, 130, 90)})
	det, cls := finder(), namer("colour")
	msg, pl := process(t, pipeline.Options{Agent: "a", Camera: "line", Detector: det, Classifier: cls, Padding: 0.1, Project: "0f8fad5b-d9cb-469f-a165-70867728950e"}, f)
	if len(msg.Predictions) != 2 || msg.FrameID != 1 || msg.Camera != "line" || msg.Iteration != "f1" || msg.Project != "0f8fad5b-d9cb-469f-a165-70867728950e" {
		t.Fatalf("message %+v", msg)
	}
	if len(msg.Models) != 2 || msg.Models[0].Stage != "detector" || msg.Models[1].Stage != "classifier" {
		t.Fatalf("models %+v", msg.Models)
	}
	want := map[string]image.Rectangle{"blue": image.Rect(100, 30, 130, 90), "red": image.Rect(10, 20, 50, 60)}
	seen := cls.Seen()
	for i, p := range msg.Predictions {
		c := p.Classification
		if c == nil || c.Model != "colour" || c.Predictions[0].TagName == "" {
			t.Fatalf("detection %d: %+v", i, p)
		}
		truth := want[c.Predictions[0].TagName]
		b := p.BoundingBox
		got := image.Rect(int(b.Left*160+0.5), int(b.Top*120+0.5), int((b.Left+b.Width)*160+0.5), int((b.Top+b.Height)*120+0.5))
		if got != truth {
			t.Errorf("detection %d (%s): box %v, drawn at %v", i, c.Predictions[0].TagName, got, truth)
		}
		crop := preprocess.CropRect(f.Bounds(), 160, 120, b.Left, b.Top, b.Width, b.Height, 0.1)
		if pl.Regions()[i] != crop || seen[i] != crop || !truth.In(crop) || crop == truth {
			t.Errorf("detection %d: classified %v, region %v; want the padded crop %v around %v", i, seen[i], pl.Regions()[i], crop, truth)
		}
	}
}

// TestRoutes: a tag with a route goes to its second-level classifier; the others and the
// uncertain ones stop at the first level.
func TestRoutes(t *testing.T) {
	f := scene(t, 200, 100, part{"red", image.Rect(10, 10, 70, 60)}, part{"green", image.Rect(100, 10, 120, 30)}, part{"blue", image.Rect(150, 50, 170, 70)})
	route := sizer()
	msg, _ := process(t, pipeline.Options{Detector: finder(), Classifier: namer("colour"), Padding: 0,
		Routes: map[string]pipeline.Stage{"RED": route, "green": route}, Thresholds: map[string]float64{"green": 0.95}}, f)
	byColour := map[string]*payload.Classification{}
	for _, p := range msg.Predictions {
		byColour[p.Classification.Predictions[0].TagName] = p.Classification
	}
	if n := byColour["red"].Next; n == nil || n.Model != "sizer" || n.Predictions[0].TagName != "large" {
		t.Errorf("red (routed, tag matched ignoring case): next %+v", n)
	}
	if g := byColour["green"]; !g.Uncertain || g.Next != nil {
		t.Errorf("green under its threshold: uncertain %v, next %+v; want uncertain and not routed", g.Uncertain, g.Next)
	}
	if b := byColour["blue"]; b.Uncertain || b.Next != nil {
		t.Errorf("blue (no route): %+v", b)
	}
	if len(route.Seen()) != 1 || msg.Models[len(msg.Models)-1].Stage != "route" {
		t.Errorf("the route ran on %d regions; models %+v", len(route.Seen()), msg.Models)
	}
}

// TestDetectionThreshold: a detection under its tag's threshold is not reported or
// classified.
func TestDetectionThreshold(t *testing.T) {
	f := scene(t, 100, 100, part{"red", image.Rect(10, 10, 40, 40)})
	cls := namer("colour")
	msg, _ := process(t, pipeline.Options{Detector: finder(), Classifier: cls, Thresholds: map[string]float64{"Part": 0.95}}, f)
	if len(msg.Predictions) != 0 || len(cls.Seen()) != 0 {
		t.Fatalf("a detection at 0.9 under a threshold of 0.95: %+v", msg.Predictions)
	}
	msg, _ = process(t, pipeline.Options{Detector: finder(), Classifier: cls, Thresholds: map[string]float64{"part": 0.5}}, f)
	if len(msg.Predictions) != 1 {
		t.Fatalf("a detection at 0.9 over a threshold of 0.5: %+v", msg.Predictions)
	}
}

// TestMasks: a detection centred in a mask is dropped before the classifier sees it; one
// beside the mask, even overlapping it, is kept.
func TestMasks(t *testing.T) {
	f := scene(t, 100, 100, part{"red", image.Rect(10, 10, 40, 40)}, part{"blue", image.Rect(60, 10, 90, 40)})
	cls := namer("colour")
	hands := configs.Area{Name: "hands", Points: []configs.Point{{0, 0}, {0.3, 0}, {0.3, 1}, {0, 1}}} // the red part's centre (0.25) is in it
	msg, _ := process(t, pipeline.Options{Detector: finder(), Classifier: cls, Masks: []configs.Area{hands}}, f)
	if len(msg.Predictions) != 1 || len(cls.Seen()) != 1 || msg.Predictions[0].Classification.Predictions[0].TagName != "blue" {
		t.Fatalf("with the red part masked: %d predictions, %d crops classified: %+v", len(msg.Predictions), len(cls.Seen()), msg.Predictions)
	}
}

// TestClassifierAlone: without a detector the classifier names the whole frame, and its
// route refines it.
func TestClassifierAlone(t *testing.T) {
	f := scene(t, 64, 48, part{"green", image.Rect(0, 0, 64, 40)})
	cls := namer("colour")
	msg, pl := process(t, pipeline.Options{Classifier: cls, Routes: map[string]pipeline.Stage{"green": sizer()}}, f)
	if msg.Predictions[0].TagName != "green" || msg.Predictions[0].BoundingBox != nil || msg.Route == nil || msg.Route.Predictions[0].TagName != "large" {
		t.Fatalf("message %+v route %+v", msg.Predictions, msg.Route)
	}
	if r := pl.Regions(); len(r) != 1 || r[0] != f.Bounds() || cls.Seen()[0] != f.Bounds() {
		t.Fatalf("regions %v", r)
	}
}

// TestQualityGate: a frame out of bounds is flagged, or skipped with its quality and not
// numbered, without running the models.
func TestQualityGate(t *testing.T) {
	dark := scene(t, 64, 48)
	cls := namer("colour")
	gate := configs.QualityGate{Action: "skip", MinBrightness: 100}
	pl := pipeline.New(pipeline.Options{Classifier: cls, Gate: gate})
	defer pl.Close()
	msg, err := pl.Process(dark)
	if !errors.Is(err, pipeline.ErrGated) || msg == nil || msg.Quality.Gate != "fail" || msg.FrameID != 0 || len(cls.Seen()) != 0 {
		t.Fatalf("skip: err %v, msg %+v", err, msg)
	}
	gate.Action = "flag"
	msg, _ = process(t, pipeline.Options{Classifier: cls, Gate: gate}, dark)
	if msg.Quality.Gate != "fail" || !strings.Contains(strings.Join(msg.Quality.Failed, ","), "too_dark") || len(msg.Predictions) == 0 {
		t.Fatalf("flag: %+v", msg)
	}
}

// TestStageFailure: a model's error fails the frame, naming the camera and the stage.
func TestStageFailure(t *testing.T) {
	f := scene(t, 64, 48, part{"red", image.Rect(5, 5, 30, 30)})
	cls := namer("colour")
	cls.Err = errors.New("session lost")
	pl := pipeline.New(pipeline.Options{Camera: "line", Detector: finder(), Classifier: cls})
	defer pl.Close()
	if _, err := pl.Process(f); err == nil || !strings.Contains(err.Error(), "line") || !strings.Contains(err.Error(), "classifier: session lost") {
		t.Fatalf("err %v", err)
	}
}
