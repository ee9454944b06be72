package steps_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
)

// classified is detection trackId at box x, classified as tag with probability p (uncertain
// when asked), refined by a second level to next when given.
func classified(track uint64, x float32, tag string, p float32, uncertain bool, next string) payload.Tag {
	d := detection(payload.Box{Left: x, Top: 0.4, Width: 0.1, Height: 0.2}, tag, p)
	d.TrackID = track
	d.Classification.Uncertain = uncertain
	if next != "" {
		d.Classification.Next = &payload.Classification{Model: "size", Predictions: []payload.Tag{{TagName: next, Probability: p}}}
	}
	return d
}

// TestPartsDecideOncePerPart: a part gets a start event when it appears and one end event,
// with the decision over all its frames, once it is unseen for more than max_missed frames.
func TestPartsDecideOncePerPart(t *testing.T) {
	rec := &publish.Recorder{}
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector, cc.Tracking.MaxMissed = "cam", "det", 2
	cc.Pipeline.Thresholds = map[string]float64{"Green": 0.8}
	cc.Verdicts = configs.Verdicts{OK: []string{"Large"}, NOK: []string{"small"}, Default: "nok"}
	m := ops.NewMetrics(func() ops.Snapshot { return ops.Snapshot{} })
	step := steps.NewParts(env(rec), cc, m, nil, nil)
	frames := [][]payload.Tag{
		{classified(1, 0.1, "red", 0.9, false, "large"), classified(2, 0.6, "green", 0.7, false, "")},
		{classified(1, 0.2, "red", 0.8, false, "large"), classified(2, 0.65, "green", 0.75, false, "")},
		{classified(1, 0.3, "blue", 0.6, false, ""), classified(3, 0.0, "blue", 0.5, true, "")},
		{classified(1, 0.4, "red", 0.95, false, "large"), classified(3, 0.05, "blue", 0.55, true, "")},
		{}, {}, {}, // every part unseen for 3 frames: all end
	}
	for i, dets := range frames {
		msg := prediction("p", uint64(i+1), dets...)
		step.Handle(context.Background(), &pipeline.Frame{}, msg)
	}
	evs, err := publish.Decode[payload.Part](rec, "/cameras/cam/parts")
	if err != nil {
		t.Fatal(err)
	}
	starts, ends := map[uint64]payload.Part{}, map[uint64]payload.Part{}
	for _, ev := range evs {
		m := starts
		if ev.Event == "end" {
			m = ends
		}
		if _, twice := m[ev.TrackID]; twice {
			t.Fatalf("two %s events for track %d", ev.Event, ev.TrackID)
		}
		m[ev.TrackID] = ev
	}
	if len(starts) != 3 || len(ends) != 3 {
		t.Fatalf("%d starts, %d ends; want 3 of each: %+v", len(starts), len(ends), evs)
	}
	red := ends[1]
	if red.TagName != "large" || red.Verdict != "ok" || red.Frames != 4 || red.FirstFrameID != 1 || red.LastFrameID != 4 || red.BestFrameID != 4 ||
		len(red.Path) != 3 || red.Path[1] != "red" || red.PartID != starts[1].PartID || red.PartID == ends[2].PartID {
		t.Errorf("part 1 (red and large in 3 of 4 frames): %+v", red)
	}
	if want := float32((0.9 + 0.8 + 0.95) / 4); red.Probability < want-0.001 || red.Probability > want+0.001 {
		t.Errorf("part 1's probability %v, want the decided tag's confidence over its 4 frames, %v", red.Probability, want)
	}
	if g := ends[2]; g.TagName != steps.Unknown || g.Verdict != "nok" || g.Votes["green"] == 0 {
		t.Errorf("part 2, green at 0.7 and 0.75 under green's threshold of 0.8: %+v", g)
	}
	if b := ends[3]; b.TagName != steps.Unknown {
		t.Errorf("part 3, uncertain in every frame: %+v", b)
	}
	if s := starts[1]; s.BoundingBox == nil || s.BoundingBox.Left != 0.1 || s.Frames != 0 || s.Verdict != "" {
		t.Errorf("start of part 1: %+v", s)
	}
	// each part counted once, by tag and verdict
	if n := testutil.ToFloat64(m.Parts.WithLabelValues("cam", "large", "ok")); n != 1 {
		t.Errorf("cvedge_parts_total{tag=large,verdict=ok} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.Parts.WithLabelValues("cam", steps.Unknown, "nok")); n != 2 {
		t.Errorf("cvedge_parts_total{tag=unknown,verdict=nok} = %v, want 2", n)
	}
	// without verdicts, parts get none
	rec2 := &publish.Recorder{}
	cc.Verdicts = configs.DefaultCamera().Verdicts
	step = steps.NewParts(env(rec2), cc, nil, nil, nil)
	step.Handle(context.Background(), &pipeline.Frame{}, prediction("p", 1, classified(9, 0.1, "red", 0.9, false, "")))
	for range 3 {
		step.Handle(context.Background(), &pipeline.Frame{}, prediction("p", 2))
	}
	if evs, _ := publish.Decode[payload.Part](rec2, "/parts"); len(evs) != 2 || evs[1].Verdict != "" || evs[1].TagName != "red" {
		t.Errorf("without verdicts: %+v", evs)
	}
}
