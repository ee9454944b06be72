package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"io"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// The motion gate's tests run frames of the demo's size (640 x 360) at 10 frames a second of
// capture time (Captured is set, not waited for): a belt of still dark grey, and parts of the
// palette, which the fake detector finds.

const gateStep = 100 * time.Millisecond // between two frames' Captured

var gateStart = time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)

// gateConfig is the gate as configs.DefaultCamera sets it, turned on, with the hold of
// tracking.max_missed + 1.
func gateConfig() configs.Motion {
	cc := configs.DefaultCamera()
	m := cc.Motion
	m.Enabled, m.Hold = true, cc.MotionHold()
	return m
}

// drawn is a part drawn in any colour: r may reach out of the frame.
type drawn struct {
	c color.RGBA
	r image.Rectangle
}

// belt returns frame i of a 640 x 360 dark grey belt with the parts drawn on it, captured at
// gateStart + i * gateStep. The caller closes it.
func belt(t testing.TB, i int, parts ...drawn) *camera.Frame {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{40, 40, 40, 255}}, image.Point{}, draw.Src)
	for _, p := range parts {
		draw.Draw(img, p.r.Intersect(img.Bounds()), &image.Uniform{p.c}, image.Point{}, draw.Src)
	}
	var f *camera.Frame
	var err error
	if beltJPEG {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		f, err = camera.FrameOfJPEG(buf.Bytes())
	} else {
		f, err = camera.FrameOf(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Seq, f.Captured = uint64(i+1), gateStart.Add(time.Duration(i)*gateStep)
	return f
}

// beltJPEG makes belt's frames come as from an MJPEG camera: the gate reads a 1/4 view.
var beltJPEG bool

// outcome is what the pipeline did with one frame.
type outcome struct {
	through bool   // it went through the models
	report  bool   // skipped, and published as the unchanged report
	found   int    // detections
	frameID uint64 // its number, when published
}

// gateRun runs the frames that scene draws (n of them) through a pipeline with the gate g,
// one at a time (Process) or overlapped (Stream), and says what became of each.
func gateRun(t *testing.T, g configs.Motion, n int, stream bool, scene func(i int) []drawn) []outcome {
	t.Helper()
	pl := pipeline.New(pipeline.Options{Agent: "a", Camera: "belt", Detector: spotter(), Motion: g})
	defer pl.Close()
	out := make([]outcome, n)
	note := func(i int, msg *payload.Prediction, err error) {
		switch {
		case err == nil:
			out[i] = outcome{through: true, found: len(msg.Predictions), frameID: msg.FrameID}
			if msg.Motion != "" {
				t.Errorf("frame %d went through the models and says motion %q", i, msg.Motion)
			}
		case errors.Is(err, pipeline.ErrUnchanged):
			out[i] = outcome{report: msg.Motion == pipeline.MotionUnchanged, frameID: msg.FrameID}
			if out[i].report != (msg.FrameID != 0) || len(msg.Predictions) != 0 || len(msg.Models) != 0 {
				t.Errorf("frame %d skipped: motion %q, frame id %d, %d predictions, models %v", i, msg.Motion, msg.FrameID, len(msg.Predictions), msg.Models)
			}
		default:
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if !stream {
		for i := range n {
			f := belt(t, i, scene(i)...)
			msg, err := pl.Process(f)
			note(i, msg, err)
			f.Close()
		}
		return out
	}
	i := 0
	_, err := pipeline.Stream(context.Background(), pl, func(context.Context) (*camera.Frame, int, error) {
		if i == n {
			return nil, i, io.EOF
		}
		i++
		return belt(t, i-1, scene(i-1)...), i - 1, nil
	}, func(f *camera.Frame, k int, msg *payload.Prediction, err error) {
		note(k, msg, err)
		f.Close()
	})
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return out
}

// TestMotionGateStillPicture: on a still picture, after the first frame, every frame skips
// the models (ErrUnchanged) but one each max_interval; after report_interval without change,
// one frame is the unchanged report, numbered next to the frames published, with no gap.
func TestMotionGateStillPicture(t *testing.T) {
	g := gateConfig()
	every := int(g.MaxInterval / gateStep)
	n := int(g.ReportInterval/gateStep) + every/2 // past the first report, short of the next
	out := gateRun(t, g, n, false, func(int) []drawn { return nil })
	var ids []uint64
	for i, o := range out {
		want := i%every == 0
		if o.through != want {
			t.Errorf("frame %d (%v): through the models %v, want %v", i, time.Duration(i)*gateStep, o.through, want)
		}
		if wantReport := i == int(g.ReportInterval/gateStep)+1; o.report != wantReport { // the report's time came with a safety-net frame
			t.Errorf("frame %d (%v): report %v, want %v", i, time.Duration(i)*gateStep, o.report, wantReport)
		}
		if o.frameID != 0 {
			ids = append(ids, o.frameID)
		}
	}
	for k, id := range ids {
		if id != uint64(k+1) {
			t.Fatalf("published frame ids %v: want 1, 2, 3 ... with no gap", ids)
		}
	}
}

// partEntering draws the demo's smallest part (the side of its smallest full box) entering
// from the left edge at speed pixels a frame, its first pixels in at frame first; it stops
// with its centre at stopAt, or (0) goes on and leaves at the right.
func partEntering(c color.RGBA, side, first, speed, stopAt int) func(i int) []drawn {
	return func(i int) []drawn {
		if i < first {
			return nil
		}
		x := (i - first + 1) * speed // its right edge
		if stopAt > 0 {
			x = min(x, stopAt+side/2)
		}
		return []drawn{{c, image.Rect(x-side, 150, x, 150+side)}}
	}
}

// spotter is a fast fake detector for the belt: one box around every pixel that is not the
// belt's grey.
func spotter() *pipeline.FakeStage {
	return &pipeline.FakeStage{Model: "spotter", Iteration: "s1", Finds: true, Answer: func(f *camera.Frame, region image.Rectangle) []models.Prediction {
		img, ok := pixels(f).(*image.RGBA)
		if !ok {
			panic("the frame is not RGBA")
		}
		var box image.Rectangle
		for y := region.Min.Y; y < region.Max.Y; y++ {
			row := img.Pix[img.PixOffset(region.Min.X, y):img.PixOffset(region.Max.X, y)]
			for x := 0; x < len(row); x += 4 {
				if row[x] != 40 || row[x+1] != 40 || row[x+2] != 40 {
					box = box.Union(image.Rect(region.Min.X+x/4, y, region.Min.X+x/4+1, y+1))
				}
			}
		}
		if box.Empty() {
			return nil
		}
		w, h := float32(region.Dx()), float32(region.Dy())
		b := models.Box{Left: float32(box.Min.X-region.Min.X) / w, Top: float32(box.Min.Y-region.Min.Y) / h, Width: float32(box.Dx()) / w, Height: float32(box.Dy()) / h}
		return []models.Prediction{{TagName: "part", Probability: 0.9, Box: &b}}
	}}
}

// smallestPart is the side of the smallest whole part of the demo videos, in pixels.
func smallestPart(t *testing.T) int {
	side := 1 << 30
	for _, video := range []string{"conveyor", "crowded"} {
		for _, fr := range testenv.VideoTruth(t, video).Frames {
			for _, p := range fr.Parts {
				if p.Visible == 1 {
					side = min(side, int(p.Box[2]), int(p.Box[3]))
				}
			}
		}
	}
	return side
}

// TestMotionGateNeverDropsAPartEntering: on a still belt, the frame where a part first shows
// (its first pixel column, at 1 pixel a frame, or a belt's pace) goes through the models,
// and so does every frame while it is in view, one at a time and overlapped (Stream), for
// each colour of the demo's parts, from decoded frames and from JPEG ones (the gate reads a
// reduced view of those). A part as small as the demo's smallest.
func TestMotionGateNeverDropsAPartEntering(t *testing.T) {
	side := smallestPart(t)
	g := gateConfig()
	defer func() { beltJPEG = false }()
	for _, enc := range []bool{false, true} {
		beltJPEG = enc
		for _, stream := range []bool{false, true} {
			for _, name := range []string{"red", "green", "blue"} {
				for _, speed := range []int{1, 3, 20} {
					const first = 8
					scene := partEntering(palette[name], side, first, speed, 0)
					n := first + min((640+side)/speed, 40)
					out := gateRun(t, g, n, stream, scene)
					for i := first; i < n; i++ {
						if !out[i].through {
							t.Errorf("jpeg %v, stream %v, %s part at %d px a frame: frame %d (%d after it came in) was kept from the models", enc, stream, name, speed, i, i-first)
						}
					}
					if out[first].found == 0 {
						t.Errorf("stream %v, %s part at %d px a frame: its first frame went through and the fake detector did not find it", stream, name, speed)
					}
				}
			}
		}
	}
}

// TestMotionGateCatchesASlowCreep: a faint part (20 grey levels over the belt) creeping in a
// pixel a frame moves no cell by the pixel delta from one frame to the next, yet frames go
// through the models while it comes in, long before max_interval: its change adds up against
// the reference, the last frame through the models.
func TestMotionGateCatchesASlowCreep(t *testing.T) {
	g := gateConfig()
	faint := color.RGBA{60, 60, 60, 255}
	const first = 5
	n := int(g.MaxInterval / gateStep) // all before the first safety-net frame
	out := gateRun(t, g, n, false, func(i int) []drawn {
		if i < first {
			return nil
		}
		return []drawn{{faint, image.Rect(0, 150, i-first+1, 250)}}
	})
	through := 0
	for i := first; i < n; i++ {
		if out[i].through {
			through++
		}
	}
	// 1 px of a 10 px cell moves it by 2 levels a frame: the change shows every 5 or 6 px,
	// and never against the frame before
	if want := (n - first) / 12; through < want {
		t.Errorf("%d frames of the creep went through the models, want at least %d", through, want)
	}
}

// TestMotionGateHoldsAfterTheLastDetection: a part comes in, stops in the middle of the belt
// for three seconds and is taken off it (it vanishes): while it is in view the gate stays
// open (at most the two frames in flight in Stream skip, while the detector has not yet said
// that it found the part), and after the last frame that shows it, hold frames still go
// through, so that its track can end and the part be decided; then the gate closes.
func TestMotionGateHoldsAfterTheLastDetection(t *testing.T) {
	side := smallestPart(t)
	g := gateConfig()
	const first, stop = 5, 30
	enter := partEntering(palette["green"], side, first, 14, 320)
	gone := first + 320/14 + stop // taken off the belt here
	n := gone + g.Hold + 20
	scene := func(i int) []drawn {
		if i >= gone {
			return nil
		}
		return enter(i)
	}
	for _, stream := range []bool{false, true} {
		out := gateRun(t, g, n, stream, scene)
		last := -1
		skipped := 0
		for i := first; i < gone; i++ {
			if out[i].found > 0 {
				last = i
			}
			if out[i].through {
				skipped = 0
				continue
			}
			if skipped++; skipped > 2 || !stream {
				t.Errorf("stream %v: frame %d, with the part in view, was kept from the models (%d in a row)", stream, i, skipped)
			}
		}
		if last != gone-1 {
			t.Fatalf("stream %v: the part was last found in frame %d, want %d", stream, last, gone-1)
		}
		for i := gone; i < n; i++ {
			if want := i-gone < g.Hold; out[i].through != want {
				t.Errorf("stream %v: frame %d, %d after the part was taken off: through the models %v, want %v (hold %d)", stream, i, i-gone+1, out[i].through, want, g.Hold)
			}
		}
	}
}

// TestMotionGateSeesASmallPart: with the default settings, a part covering part of one cell
// (4 x 4 pixels of the 640-wide frame, white on the belt) appearing on a still belt goes
// through the models: one changed cell is change.
func TestMotionGateSeesASmallPart(t *testing.T) {
	const at = 8
	out := gateRun(t, gateConfig(), at+1, false, func(i int) []drawn {
		if i < at {
			return nil
		}
		return []drawn{{color.RGBA{255, 255, 255, 255}, image.Rect(301, 201, 305, 205)}}
	})
	if out[at-1].through {
		t.Fatalf("the still belt's frame %d went through the models: the test shows nothing", at-1)
	}
	if !out[at].through {
		t.Fatal("a 4 x 4 pixel part came into view and the frame was kept from the models")
	}
}
