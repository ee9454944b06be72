package steps_test

import (
	"context"
	"errors"
	"fmt"
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

// TestUnchangedFramesAfterNothingEndParts: a part seen in 4 frames, then frames without it.
// When the frames after it are kept from the models by the motion gate after one where the
// models found nothing (ErrUnchangedEmpty), the track and the part end on the same frame as
// when those frames go through the models and find nothing; when they are unchanged since a
// frame that still showed the part (ErrUnchanged), nothing ends: the part is still there.
func TestUnchangedFramesAfterNothingEndParts(t *testing.T) {
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector, cc.Tracking.MaxMissed = "cam", "det", 3
	const seen, after = 4, 10
	endsAt := func(rest error) (int, []uint64) {
		rec := &publish.Recorder{}
		list := pipeline.NewSteps(steps.NewTrack(cc.Tracking, true, new(atomic.Uint64)), steps.NewParts(env(rec), cc, nil, nil, nil))
		defer list.Close()
		at := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
		var ids []uint64
		end := -1
		for i := range seen + after {
			var msg *payload.Prediction
			var err error
			switch {
			case i < seen:
				msg = prediction(fmt.Sprint(i), uint64(i+1), detection(payload.Box{Left: 0.1 + 0.05*float32(i), Top: 0.4, Width: 0.1, Height: 0.2}, "red", 0.9))
			case rest == nil || (i == seen && rest == pipeline.ErrUnchangedEmpty):
				msg = prediction(fmt.Sprint(i), uint64(i+1)) // through the models, nothing found
			default:
				msg, err = prediction(fmt.Sprint(i), 0), rest
			}
			msg.Width, msg.Height, msg.Captured = 640, 360, at.Add(time.Duration(i)*100*time.Millisecond)
			list.Handle(context.Background(), &pipeline.Frame{Camera: cc.Name, Err: err}, msg)
			for _, d := range msg.Predictions {
				ids = append(ids, d.TrackID)
			}
			evs, derr := publish.Decode[payload.Part](rec, "/cameras/cam/parts")
			if derr != nil {
				t.Fatal(derr)
			}
			if end < 0 && len(evs) > 0 && evs[len(evs)-1].Event == "end" {
				end = i
			}
		}
		return end, ids
	}
	want, ids := endsAt(nil)
	if want != seen+cc.Tracking.MaxMissed {
		t.Fatalf("through the models, the part ended on frame %d, want %d (seen in %d, max_missed %d)", want, seen+cc.Tracking.MaxMissed, seen, cc.Tracking.MaxMissed)
	}
	if ids[0] == 0 || ids[len(ids)-1] != ids[0] {
		t.Fatalf("the part's trackIds: %v", ids)
	}
	if got, _ := endsAt(pipeline.ErrUnchangedEmpty); got != want {
		t.Errorf("kept from the models after a frame without it (ErrUnchangedEmpty): the part ended on frame %d, want %d", got, want)
	}
	if got, _ := endsAt(pipeline.ErrUnchanged); got != -1 {
		t.Errorf("kept from the models while its picture stayed (ErrUnchanged): the part ended on frame %d, want never", got)
	}
}

// TestUnchangedFramesAfterNothingBreakVotes: the vote forgets a part missed for more than
// max_gap frames; frames kept from the models after one where they found nothing count as
// missed, so a part seen again after them starts a new vote, as it does after frames that
// went through and found nothing; one seen again after frames unchanged since it was seen
// goes on with its vote.
func TestUnchangedFramesAfterNothingBreakVotes(t *testing.T) {
	cfg := configs.DefaultCamera().Pipeline.Vote
	cfg.Frames = 5
	box := payload.Box{Left: 0.4, Top: 0.4, Width: 0.1, Height: 0.2}
	voteAfter := func(gap error) (first, again int) {
		step := steps.NewVote(cfg, true)
		frame := func(err error, dets ...payload.Tag) *payload.Prediction {
			msg := prediction("p", 1, dets...)
			step.Handle(context.Background(), &pipeline.Frame{Err: err}, msg)
			return msg
		}
		first = frame(nil, detection(box, "red", 0.9)).Predictions[0].Vote.Track
		for i := range cfg.MaxGap + 1 {
			if i == 0 && gap == pipeline.ErrUnchangedEmpty {
				frame(nil) // the frame the gate compares the next ones with: nothing found
				continue
			}
			frame(gap)
		}
		return first, frame(nil, detection(box, "red", 0.9)).Predictions[0].Vote.Track
	}
	if a, b := voteAfter(nil); a == b {
		t.Fatalf("after %d frames without the part, its vote went on (track %d)", cfg.MaxGap+1, a)
	}
	if a, b := voteAfter(pipeline.ErrUnchangedEmpty); a == b {
		t.Errorf("after 1 frame without the part and %d kept from the models after it, its vote went on (track %d)", cfg.MaxGap, a)
	}
	if a, b := voteAfter(pipeline.ErrUnchanged); a != b {
		t.Errorf("after %d frames unchanged since the part was seen, a new vote started (%d, then %d)", cfg.MaxGap+1, a, b)
	}
}

// stillPartRun streams frames of a part lying still on the belt for frames [10, 150) of 200
// through a pipeline with the motion gate on or off (hold as given) and the track and parts
// steps, with a detector that finds the square the scene drew except on the frames in miss
// (a score at the threshold flickering on the sensor's noise). It returns the parts started
// and the frames showing the part that the gate kept from the models as empty.
func stillPartRun(t *testing.T, gate bool, hold int, miss map[uint64]bool) (parts, empties int) {
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
	o.Motion.Hold, o.Misses = cc.MotionHold(), cc.PartMisses()
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
		if errors.Is(err, pipeline.ErrUnchangedEmpty) && f.Seq >= in && f.Seq < out {
			empties++
		}
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
	return parts, empties
}

// TestMotionGateStillPartFlickering: a part lying still whose detection flickers (missed on
// one or two frames in a row) is one part with the gate on, as with it off: the frames that
// miss it went through on an unchanged picture, so the gate holds open until the steps have
// seen the misses through the models, and no frame showing it is kept from them as empty.
func TestMotionGateStillPartFlickering(t *testing.T) {
	for _, c := range []struct {
		name string
		hold int
		miss map[uint64]bool
	}{
		{"two misses, default hold", 0, map[uint64]bool{40: true, 41: true}},
		{"one miss, default hold", 0, map[uint64]bool{40: true}},
		{"one miss, hold 1", 1, map[uint64]bool{40: true}},
		{"one miss after it, hold 1", 1, map[uint64]bool{41: true}},
		{"five misses, default hold", 0, map[uint64]bool{40: true, 41: true, 42: true, 43: true, 44: true}},
	} {
		off, _ := stillPartRun(t, false, c.hold, c.miss)
		for range 3 { // the Stream's goroutines meet differently each run
			on, empties := stillPartRun(t, true, c.hold, c.miss)
			if on != off || on != 1 || empties != 0 {
				t.Errorf("%s: %d parts with the gate, %d without (want 1); %d frames showing the part kept from the models as empty", c.name, on, off, empties)
			}
		}
	}
}
