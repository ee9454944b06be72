package steps_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"reflect"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/preprocess"
)

// TestMarks: a prediction's detections become boxes in the frame's pixels, labelled with the
// final tag through every level, its probability and the trackId; a classifier alone marks
// the whole frame; boxes outside the frame or not numbers are left out.
func TestMarks(t *testing.T) {
	frame := image.Rect(0, 0, 640, 480)
	box := func(l, t, w, h float32) *payload.Box { return &payload.Box{Left: l, Top: t, Width: w, Height: h} }
	cls := func(tag string, p float32, uncertain bool, next *payload.Classification) *payload.Classification {
		return &payload.Classification{Model: "m", Predictions: []payload.Tag{{TagName: tag, Probability: p}, {TagName: "other", Probability: 1 - p}}, Uncertain: uncertain, Next: next}
	}
	nan := float32(math.NaN())
	cases := []struct {
		name string
		msg  *payload.Prediction
		want []preprocess.Mark
	}{
		{"no prediction", nil, nil},
		{"nothing found", &payload.Prediction{}, nil},
		{"detector alone", &payload.Prediction{Predictions: []payload.Tag{
			{TagName: "part", Probability: 0.904, BoundingBox: box(0.25, 0.5, 0.5, 0.25)},
		}}, []preprocess.Mark{{Box: image.Rect(160, 240, 480, 360), Label: "part 90%"}}},
		{"classified and tracked", &payload.Prediction{Predictions: []payload.Tag{
			{TagName: "part", Probability: 0.99, TrackID: 12, BoundingBox: box(0, 0, 0.5, 0.5), Classification: cls("brass", 0.93, false, nil)},
			{TagName: "part", Probability: 0.97, TrackID: 13, BoundingBox: box(0.5, 0.5, 0.25, 0.25), Classification: cls("steel", 0.6, false, nil)},
		}}, []preprocess.Mark{{Box: image.Rect(0, 0, 320, 240), Label: "brass 93% #12"}, {Box: image.Rect(320, 240, 480, 360), Label: "steel 60% #13"}}},
		{"second level", &payload.Prediction{Predictions: []payload.Tag{
			{TagName: "part", Probability: 0.99, TrackID: 3, BoundingBox: box(0.1, 0.1, 0.1, 0.1), Classification: cls("metal", 0.95, false, cls("brass", 0.88, false, nil))},
		}}, []preprocess.Mark{{Box: image.Rect(64, 48, 128, 96), Label: "brass 88% #3"}}},
		{"uncertain first level", &payload.Prediction{Predictions: []payload.Tag{
			{TagName: "part", Probability: 0.99, TrackID: 5, BoundingBox: box(0.1, 0.1, 0.1, 0.1), Classification: cls("metal", 0.41, true, cls("brass", 0.88, false, nil))},
		}}, []preprocess.Mark{{Box: image.Rect(64, 48, 128, 96), Label: "unknown #5"}}},
		{"uncertain second level, untracked", &payload.Prediction{Predictions: []payload.Tag{
			{TagName: "part", Probability: 0.99, BoundingBox: box(0.1, 0.1, 0.1, 0.1), Classification: cls("metal", 0.95, false, cls("brass", 0.3, true, nil))},
		}}, []preprocess.Mark{{Box: image.Rect(64, 48, 128, 96), Label: "unknown"}}},
		{"outside, clipped, not a number", &payload.Prediction{Predictions: []payload.Tag{
			{TagName: "a", Probability: 0.5, BoundingBox: box(1.2, 0.1, 0.3, 0.3)},
			{TagName: "b", Probability: 0.5, BoundingBox: box(0.75, -0.25, 0.5, 0.5)},
			{TagName: "c", Probability: 0.5, BoundingBox: box(nan, 0.1, 0.3, 0.3)},
		}}, []preprocess.Mark{{Box: image.Rect(480, 0, 640, 120), Label: "b 50%"}}},
		{"classifier alone", &payload.Prediction{Predictions: []payload.Tag{{TagName: "green", Probability: 0.994}, {TagName: "red", Probability: 0.006}}},
			[]preprocess.Mark{{Box: frame, Label: "green 99%"}}},
		{"classifier alone, second level", &payload.Prediction{Predictions: []payload.Tag{{TagName: "metal", Probability: 0.9}}, Route: cls("copper", 0.71, false, nil)},
			[]preprocess.Mark{{Box: frame, Label: "copper 71%"}}},
		{"classifier alone, uncertain", &payload.Prediction{Predictions: []payload.Tag{{TagName: "metal", Probability: 0.3}}, Uncertain: true, Route: cls("copper", 0.71, false, nil)},
			[]preprocess.Mark{{Box: frame, Label: "unknown"}}},
	}
	for _, c := range cases {
		if got := steps.Marks(c.msg, frame); !reflect.DeepEqual(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if got := steps.Marks(&payload.Prediction{Predictions: []payload.Tag{{TagName: "green", Probability: 1}}}, image.Rectangle{}); len(got) != 0 {
		t.Errorf("marks on an empty frame: %+v", got)
	}
}

// snapshotImage decodes the JPEG of the snapshot answering command id.
func snapshotImage(t *testing.T, rec *publish.Recorder, id string) image.Image {
	t.Helper()
	snaps, err := publish.Decode[payload.Snapshot](rec, "/cameras/cam/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.CommandID != id {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(s.JPEG)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("snapshot %s: %v", id, err)
		}
		return img
	}
	t.Fatalf("no snapshot answers %s", id)
	return nil
}

// greenPixels counts the pixels of img in r that are the boxes' green.
func greenPixels(img image.Image, r image.Rectangle) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); g>>8 > 200 && r>>8 < 80 && b>>8 < 80 {
				n++
			}
		}
	}
	return n
}

// TestSnapshotAnnotated: a snapshot asked with annotate has the boxes of its frame's
// prediction drawn, one asked without has none; a frame without a prediction (gated, or
// failed) is sent as it is, and the result says so.
func TestSnapshotAnnotated(t *testing.T) {
	rec := &publish.Recorder{}
	s := steps.NewSnapshots(env(rec), "cam")
	s.Request("plain", false)
	s.Request("drawn", true)
	f := frame(t, 320, 240)
	defer f.Close()
	msg := prediction("p1", 1, detection(payload.Box{Left: 0.25, Top: 0.25, Width: 0.5, Height: 0.5}, "red", 0.93))
	msg.Predictions[0].TrackID = 12
	s.Handle(context.Background(), &pipeline.Frame{Frame: f}, msg)
	drawn := snapshotImage(t, rec, "drawn")
	if n := greenPixels(drawn, image.Rect(79, 70, 82, 170)); n < 250 { // the box's left edge, x 80
		t.Errorf("%d green pixels on the box's left edge of the annotated snapshot", n)
	}
	if n := greenPixels(drawn, image.Rect(90, 90, 230, 170)); n > 0 {
		t.Errorf("%d green pixels inside the box", n)
	}
	if n := greenPixels(snapshotImage(t, rec, "plain"), image.Rect(0, 0, 320, 240)); n > 0 {
		t.Errorf("%d green pixels in the snapshot asked without annotate", n)
	}
	res, _ := publish.Decode[payload.Result](rec, "/commands/results")
	if len(res) != 2 || res[0].ID != "plain" || res[0].Detail["annotated"] != "" || res[1].ID != "drawn" || res[1].Detail["annotated"] != "true" || res[1].PredictionID != "p1" {
		t.Fatalf("results %+v", res)
	}
	for _, c := range []struct {
		id   string
		err  error
		msg  *payload.Prediction
		want string
	}{
		{"gated", pipeline.ErrGated, &payload.Prediction{Quality: payload.Quality{Gate: "fail"}}, "sent without boxes: the quality gate kept the frame from the models"},
		{"failed", errors.New("detector: session lost"), nil, "sent without boxes: the models failed on the frame"},
	} {
		rec := &publish.Recorder{}
		s := steps.NewSnapshots(env(rec), "cam")
		s.Request(c.id, true)
		s.Handle(context.Background(), &pipeline.Frame{Frame: f, Err: c.err}, c.msg)
		if n := greenPixels(snapshotImage(t, rec, c.id), image.Rect(0, 0, 320, 240)); n > 0 {
			t.Errorf("%s: %d green pixels in a snapshot of a frame without a prediction", c.id, n)
		}
		res, _ := publish.Decode[payload.Result](rec, "/commands/results")
		if len(res) != 1 || !res[0].OK || res[0].Detail["annotated"] != "false" || res[0].Detail["annotation"] != c.want {
			t.Errorf("%s: results %+v", c.id, res)
		}
	}
}
