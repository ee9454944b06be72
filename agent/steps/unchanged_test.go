package steps_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
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
