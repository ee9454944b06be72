package steps_test

import (
	"image"
	"math"
	"reflect"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
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
