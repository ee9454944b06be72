package steps_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// stillPartRun streams frames of a part lying still on the belt for frames [10, 150) of 200
// through a pipeline with the motion gate on or off (hold as given) and the track and parts
// steps, with a detector that finds the square the scene drew except on the frames in miss
// (a score at the threshold flickering on the sensor's noise). It returns the parts started.
func stillPartRun(t *testing.T, gate bool, hold int, miss map[uint64]bool) (parts int) {
	t.Helper()
	const n, in, out = 200, 10, 150
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector = "cam", "det"
	cc.Motion.Enabled, cc.Motion.Hold = gate, hold
	det := &pipeline.FakeStage{Model: "det", Finds: true, Answer: func(f *camera.Frame, _ image.Rectangle) []models.Prediction {
		if f.Seq < in || f.Seq >= out || miss[f.Seq] {
			return nil
		}
		return []models.Prediction{{TagName: "part", Probability: 0.9, Box: &models.Box{Left: 0.4, Top: 0.4, Width: 0.1, Height: 0.1}}}
	}}
	o := pipeline.Options{Agent: "line1", Camera: cc.Name, Detector: det, Motion: cc.Motion}
	o.Motion.Hold = cc.MotionHold()
	pl := pipeline.New(o)
	defer pl.Close()
	rec := &publish.Recorder{}
	list := pipeline.NewSteps(steps.NewTrack(cc.Tracking, true, new(atomic.Uint64)), steps.NewParts(env(rec), cc, nil, nil, nil))
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	i := uint64(0)
	_, err := pipeline.Stream(context.Background(), pl, func(context.Context) (*camera.Frame, struct{}, error) {
		if i == n {
			return nil, struct{}{}, io.EOF
		}
		img := image.NewRGBA(image.Rect(0, 0, 640, 360))
		draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{40, 40, 40, 255}}, image.Point{}, draw.Src)
		if i >= in && i < out {
			draw.Draw(img, image.Rect(256, 144, 320, 180), &image.Uniform{color.RGBA{200, 20, 20, 255}}, image.Point{}, draw.Src)
		}
		f, err := camera.FrameOf(img)
		if err != nil {
			t.Fatal(err)
		}
		f.Seq, f.Captured = i, start.Add(time.Duration(i)*100*time.Millisecond)
		i++
		return f, struct{}{}, nil
	}, func(f *camera.Frame, _ struct{}, msg *payload.Prediction, err error) {
		list.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: cc.Name, Err: err}, msg)
		f.Close()
	})
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	list.Close()
	evs, err := publish.Decode[payload.Part](rec, "/cameras/cam/parts")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Event == "start" {
			parts++
		}
	}
	return parts
}

// TestMotionGateStillPartFlickering: a part lying still whose detection flickers (missed on
// one to five frames in a row, or on its first frames) is one part with the gate on, as with
// it off: after each detection the gate holds open for hold frames (tracking.max_missed + 1
// by default), so only frames through the models can end its track, and the frames it keeps
// from them are not misses.
func TestMotionGateStillPartFlickering(t *testing.T) {
	for _, c := range []struct {
		name string
		hold int
		miss map[uint64]bool
	}{
		{"two misses, default hold", 0, map[uint64]bool{40: true, 41: true}},
		{"one miss, default hold", 0, map[uint64]bool{40: true}},
		{"five misses, default hold", 0, map[uint64]bool{40: true, 41: true, 42: true, 43: true, 44: true}},
		{"missed on its first two frames", 0, map[uint64]bool{10: true, 11: true}},
	} {
		off := stillPartRun(t, false, c.hold, c.miss)
		for range 3 { // the Stream's goroutines meet differently each run
			if on := stillPartRun(t, true, c.hold, c.miss); on != off || on != 1 {
				t.Errorf("%s: %d parts with the gate, %d without (want 1)", c.name, on, off)
			}
		}
	}
}
