package steps_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"io"
	"log/slog"
	"strings"
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

// These tests run the steps on frames drawn here, with a publish.Recorder for the broker:
// milliseconds each, no models, no broker.

func env(rec *publish.Recorder) *steps.Env {
	return &steps.Env{Agent: "line1", Boot: "b00t", Prefix: "cvedge/line1", Pub: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// frame draws a w x h frame, grey with a red square in the middle.
func frame(t *testing.T, w, h int) *camera.Frame {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{90, 90, 90, 255}}, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(w/4, h/4, 3*w/4, 3*h/4), &image.Uniform{color.RGBA{200, 20, 20, 255}}, image.Point{}, draw.Src)
	f, err := camera.FrameOf(img)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// detection is a detected part at box, classified as tag with probability p.
func detection(box payload.Box, tag string, p float32) payload.Tag {
	return payload.Tag{TagName: "part", Probability: 0.9, BoundingBox: &box,
		Classification: &payload.Classification{Model: "colour", Iteration: "it1", Predictions: []payload.Tag{{TagName: tag, Probability: p}, {TagName: "other", Probability: 1 - p}}}}
}

func prediction(id string, frameID uint64, tags ...payload.Tag) *payload.Prediction {
	return &payload.Prediction{Schema: payload.Schema, ID: id, Agent: "line1", Camera: "cam", FrameID: frameID, Captured: time.Now(),
		Models: []payload.ModelRef{{Name: "det", Stage: "detector"}, {Name: "colour", Stage: "classifier"}}, Predictions: tags}
}

// TestProcessedFrame: a processed frame is published, counted and answers its trigger; the
// ring keeps its pixels, and Steps closes those of a frame nobody kept.
func TestProcessedFrame(t *testing.T) {
	rec := &publish.Recorder{}
	e := env(rec)
	ring := steps.NewRing(configs.Ring{Frames: 2, MaxMB: 10, MaxAge: time.Minute})
	defer ring.Clear()
	list := pipeline.NewSteps(ring, steps.NewCount("cam", e.Log), steps.NewPublish(e, "cam", 1), steps.NewTriggerResult(e, "mqtt"), steps.NewLog(false, "cam", e.Log))
	if got := strings.Join(list.Names(), ","); got != "ring,count,publish,trigger" {
		t.Fatalf("steps %s: the log step is off and must be left out", got)
	}
	msg := prediction("p1", 7, detection(payload.Box{Left: 0.25, Top: 0.25, Width: 0.5, Height: 0.5}, "red", 0.9))
	msg.LatencyMs.Queue, msg.LatencyMs.Detect, msg.LatencyMs.Classify = 2, 3, 4
	f := frame(t, 64, 48)
	list.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam", Trigger: &pipeline.Trigger{ID: "t1"}}, msg)
	if f.Closed() {
		t.Fatal("the ring kept the frame, yet it was closed")
	}
	preds, err := publish.Decode[payload.Prediction](rec, "/cameras/cam/predictions")
	if err != nil || len(preds) != 1 || preds[0].ID != "p1" {
		t.Fatalf("predictions %+v %v", preds, err)
	}
	if m := rec.Messages("/predictions")[0]; m.QoS != 1 || m.Camera != "cam" {
		t.Fatalf("published %+v", m)
	}
	res, _ := publish.Decode[payload.Result](rec, "/commands/results")
	if len(res) != 1 || !res[0].OK || res[0].ID != "t1" || res[0].Detail["predictionId"] != "p1" || res[0].PredictionID != "p1" || res[0].FrameID != 7 {
		t.Fatalf("trigger result %+v", res)
	}
	// frameId is a number, as in every other message, and only there
	if raw := string(rec.Messages("/commands/results")[0].Payload); !strings.Contains(raw, `"frameId":7,`) || strings.Count(raw, "frameId") != 1 {
		t.Fatalf("trigger result %s: want frameId as the number 7, once", raw)
	}
	c := list.Count()
	if c.Processed != 1 || c.InferUs != 7000 || len(c.QueueMs) != 1 || c.QueueMs[0] != 2 {
		t.Fatalf("counts %+v", c)
	}
	// without a ring, the frame is closed once the steps are done
	g := frame(t, 32, 24)
	pipeline.NewSteps(steps.NewCount("cam", e.Log)).Handle(context.Background(), &pipeline.Frame{Frame: g}, prediction("p2", 8))
	if !g.Closed() {
		t.Fatal("a frame no step kept is still open")
	}
}

// TestFailedAndGatedFrames: a failed frame answers its trigger with the error and is
// counted, not published; a frame the gate skipped is counted and may be sampled.
func TestFailedAndGatedFrames(t *testing.T) {
	rec := &publish.Recorder{}
	e := env(rec)
	sc := configs.Default().Samples
	sc.Enabled, sc.QualityGate.Enabled, sc.DedupDistance = true, true, 0
	samples := steps.NewSamples(e, "cam", 0.1, sc, true, 1)
	defer samples.Close()
	list := pipeline.NewSteps(samples, steps.NewCount("cam", e.Log), steps.NewPublish(e, "cam", 1), steps.NewTriggerResult(e, "mqtt"))
	boom := errors.New("camera cam frame 3: detector: session lost")
	list.Handle(context.Background(), &pipeline.Frame{Frame: frame(t, 64, 48), Trigger: &pipeline.Trigger{ID: "t1"}, Err: boom}, nil)
	gated := &payload.Prediction{ID: "g1", Quality: payload.Quality{Gate: "fail", Failed: []string{"too_dark"}}}
	list.Handle(context.Background(), &pipeline.Frame{Frame: frame(t, 64, 48), Err: pipeline.ErrGated}, gated)
	if n := len(rec.Messages("/predictions")); n != 0 {
		t.Fatalf("%d predictions published for a failed and a gated frame", n)
	}
	res, _ := publish.Decode[payload.Result](rec, "/commands/results")
	if len(res) != 1 || res[0].OK || res[0].Error != boom.Error() {
		t.Fatalf("trigger result %+v", res)
	}
	smp, _ := publish.Decode[payload.Sample](rec, "/cameras/cam/samples")
	if len(smp) != 1 || smp[0].Reason != "quality_gate" || smp[0].Crop == nil || smp[0].PredictionID != "" {
		t.Fatalf("samples %+v", smp)
	}
	if c := list.Count(); c.Failed != 1 || c.Gated != 1 || c.Processed != 0 || c.Samples["quality_gate"] != 1 {
		t.Fatalf("counts %+v", c)
	}
}

// TestUnchangedFrames: the frames a pipeline's motion gate skips are counted as unchanged,
// not as failed, and not published, except the unchanged report, which is published as a
// prediction saying "motion": "unchanged", numbered next to the frame processed before it.
func TestUnchangedFrames(t *testing.T) {
	rec := &publish.Recorder{}
	e := env(rec)
	none := &pipeline.FakeStage{Model: "det", Iteration: "d1", Finds: true, Answer: func(*camera.Frame, image.Rectangle) []models.Prediction { return nil }}
	g := configs.DefaultCamera().Motion
	g.Enabled, g.ReportInterval, g.MaxInterval, g.Hold = true, time.Second, time.Hour, 11
	pl := pipeline.New(pipeline.Options{Agent: "line1", Camera: "cam", Detector: none, Motion: g})
	defer pl.Close()
	list := pipeline.NewSteps(steps.NewCount("cam", e.Log), steps.NewPublish(e, "cam", 1))
	start := time.Now()
	for _, after := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 1700 * time.Millisecond} {
		f := frame(t, 64, 48)
		f.Captured = start.Add(after)
		msg, err := pl.Process(f)
		list.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam", Err: err}, msg)
	}
	if c := list.Count(); c.Processed != 1 || c.Unchanged != 3 || c.Failed != 0 {
		t.Fatalf("counts %+v: want 1 processed, 3 unchanged, none failed", c)
	}
	preds, err := publish.Decode[payload.Prediction](rec, "/cameras/cam/predictions")
	if err != nil || len(preds) != 2 {
		t.Fatalf("published %+v %v: want the frame processed and one unchanged report", preds, err)
	}
	if p := preds[0]; p.Motion != "" || p.FrameID != 1 || len(p.Models) != 1 {
		t.Errorf("the frame processed: %+v", p)
	}
	if p := preds[1]; p.Motion != pipeline.MotionUnchanged || p.FrameID != 2 || len(p.Models) != 0 || len(p.Predictions) != 0 || !p.Captured.Equal(start.Add(1500*time.Millisecond)) || p.Quality.Brightness == 0 {
		t.Errorf("the unchanged report: %+v", p)
	}
}

// TestVoteFollowsParts: parts moving along a conveyor keep their track, are decided once
// after N frames by majority, and a part entering far away gets a track of its own.
func TestVoteFollowsParts(t *testing.T) {
	vote := steps.NewVote(configs.Vote{Frames: 3, IoU: 0.3, MaxGap: 1}, true)
	tags := []string{"red", "blue", "red", "red"}
	var ids []int
	for i, tag := range tags {
		x := 0.1 + 0.05*float32(i) // moving right, overlapping from frame to frame
		msg := prediction("p", uint64(i+1), detection(payload.Box{Left: x, Top: 0.4, Width: 0.2, Height: 0.2}, tag, 0.9))
		if i == 3 {
			msg.Predictions = append(msg.Predictions, detection(payload.Box{Left: 0.7, Top: 0.1, Width: 0.2, Height: 0.2}, "blue", 0.9))
		}
		vote.Handle(context.Background(), &pipeline.Frame{}, msg)
		v := msg.Predictions[0].Vote
		ids = append(ids, v.Track)
		if v.Decided != (i >= 2) || v.First != (i == 2) || v.Tag != "red" || v.Frames != i+1 {
			t.Fatalf("frame %d: vote %+v", i+1, v)
		}
		if i == 3 && (msg.Predictions[1].Vote.Track == v.Track || msg.Predictions[1].Vote.Decided) {
			t.Fatalf("a new part shares the track or is decided at once: %+v", msg.Predictions[1].Vote)
		}
	}
	if ids[0] != ids[1] || ids[1] != ids[2] || ids[2] != ids[3] {
		t.Fatalf("the moving part changed tracks: %v", ids)
	}
	// a classifier alone: the frame's final tag (its route's) is voted on
	// while the decided tag stays, the camera sees one thing: first marks only a change
	whole := steps.NewVote(configs.Vote{Frames: 2}, false)
	for i, c := range []struct {
		tag, want      string
		decided, first bool
	}{{"ok", "ok", false, false}, {"ok", "ok", true, true}, {"ok", "ok", true, false}, {"ok", "ok", true, false},
		{"nok", "ok", true, false}, {"nok", "nok", true, true}, {"nok", "nok", true, false}} {
		msg := &payload.Prediction{Predictions: []payload.Tag{{TagName: "part", Probability: 0.9}}, Route: &payload.Classification{Predictions: []payload.Tag{{TagName: c.tag}}}}
		whole.Handle(context.Background(), &pipeline.Frame{}, msg)
		if v := msg.Vote; v == nil || v.Tag != c.want || v.Decided != c.decided || v.First != c.first {
			t.Fatalf("frame %d (%s): %+v, want tag %s, decided %v, first %v", i+1, c.tag, msg.Vote, c.want, c.decided, c.first)
		}
	}
	if steps.NewVote(configs.Vote{}, true) != nil {
		t.Fatal("vote with frames 0 must be off")
	}
}

// TestSamplesAndCorrections: a low-confidence detection is sampled with its padded crop, and
// an operator's correction names the detection it is about.
func TestSamplesAndCorrections(t *testing.T) {
	rec := &publish.Recorder{}
	sc := configs.Default().Samples
	sc.Enabled, sc.LowConfidence.Enabled, sc.LowConfidence.Threshold, sc.DedupDistance = true, true, 0.6, 0
	s := steps.NewSamples(env(rec), "cam", 0.1, sc, true, 1)
	defer s.Close()
	f := frame(t, 64, 48)
	defer f.Close()
	msg := prediction("p1", 3, detection(payload.Box{Left: 0.25, Top: 0.25, Width: 0.5, Height: 0.5}, "red", 0.9),
		detection(payload.Box{Left: 0.5, Top: 0.5, Width: 0.25, Height: 0.25}, "blue", 0.4))
	s.Handle(context.Background(), &pipeline.Frame{Frame: f}, msg)
	smp, _ := publish.Decode[payload.Sample](rec, "/cameras/cam/samples")
	if len(smp) != 1 || smp[0].Reason != "low_confidence" || *smp[0].Detection != 1 || smp[0].PredictionID != "p1" {
		t.Fatalf("samples %+v", smp)
	}
	if want := s.Region(f, msg, 1); smp[0].Crop.Width != want.Dx() || want.Dx() <= 16 {
		t.Fatalf("crop %dx%d, want the padded crop %v", smp[0].Crop.Width, smp[0].Crop.Height, want)
	}
	if _, err := s.Correction(f, msg, payload.Feedback{ID: "fb1", PredictionID: "p1", Tag: "green"}, colourLabels); err == nil || !strings.Contains(err.Error(), `say which one is wrong in "detection" (0-1)`) {
		t.Fatalf("a correction of two detections without \"detection\": %v", err)
	}
	one := 0
	c, err := s.Correction(f, msg, payload.Feedback{ID: "fb1", PredictionID: "p1", Tag: "green", Detection: &one, Operator: "ann"}, colourLabels)
	if err != nil || c.Reason != "operator" || c.CorrectTag != "green" || c.Prediction.Classification.Predictions[0].TagName != "red" || c.Detail != "corrected by ann" {
		t.Fatalf("correction %+v %v", c, err)
	}
}

// colourLabels knows the tags of the models of prediction(): the detector det and the
// classifier colour.
func colourLabels(model string) []string {
	return map[string][]string{"det": {"part"}, "colour": {"red", "green", "blue", "other"}, "shape": {"Round", "Square"}}[model]
}

// TestCorrectionTags: a correction's tag must be one of the model the correction is about
// (the classifier of the detection, a second-level classifier after it, the classifier of a
// frame, or the detector of a detection no classifier saw); it matches ignoring case, the
// sample carries the model's spelling, and a refusal lists the model's tags.
func TestCorrectionTags(t *testing.T) {
	s := steps.NewSamples(env(&publish.Recorder{}), "cam", 0.1, configs.Default().Samples, true, 1)
	defer s.Close()
	f := frame(t, 64, 48)
	defer f.Close()
	zero := 0
	detected := prediction("p1", 3, detection(payload.Box{Left: 0.25, Top: 0.25, Width: 0.5, Height: 0.5}, "red", 0.9))
	routed := prediction("p2", 4, detection(payload.Box{Left: 0.25, Top: 0.25, Width: 0.5, Height: 0.5}, "red", 0.9))
	routed.Predictions[0].Classification.Next = &payload.Classification{Model: "shape", Predictions: []payload.Tag{{TagName: "Round", Probability: 0.8}}}
	unclassified := prediction("p3", 5, payload.Tag{TagName: "part", Probability: 0.9, BoundingBox: &payload.Box{Width: 0.5, Height: 0.5}})
	alone := &payload.Prediction{ID: "p4", FrameID: 6, Models: []payload.ModelRef{{Name: "colour", Stage: "classifier"}},
		Predictions: []payload.Tag{{TagName: "red", Probability: 0.9}, {TagName: "green", Probability: 0.1}}}
	for _, c := range []struct {
		name, tag string
		msg       *payload.Prediction
		want      string // the sample's correctTag, or the error's text
		ok        bool
	}{
		{"the classifier's tag", "green", detected, "green", true},
		{"another case", "GREEN", detected, "green", true},
		{"not the classifier's", "purple", detected, `tag "purple" is not a tag of the model this correction is about (model colour has red, green, blue, other)`, false},
		{"the detector's tag for a classified part", "part", detected, "model colour has red, green, blue, other", false},
		{"a second level's tag", "square", routed, "Square", true},
		{"a first level's tag with routes", "Blue", routed, "blue", true},
		{"neither level's", "oval", routed, "model colour has red, green, blue, other; model shape has Round, Square", false},
		{"the detector's, no classifier saw it", "PART", unclassified, "part", true},
		{"not the detector's", "green", unclassified, "model det has part", false},
		{"a classifier alone", "Other", alone, "other", true},
		{"not the classifier alone's", "part", alone, "model colour has red, green, blue, other", false},
	} {
		det := &zero
		if c.msg == alone {
			det = nil
		}
		smp, err := s.Correction(f, c.msg, payload.Feedback{ID: "fb", PredictionID: c.msg.ID, Tag: c.tag, Detection: det}, colourLabels)
		switch {
		case c.ok && (err != nil || smp.CorrectTag != c.want):
			t.Errorf("%s: %q gave %+v, %v; want correctTag %q", c.name, c.tag, smp, err, c.want)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %q gave %v; want an error with %q", c.name, c.tag, err, c.want)
		}
	}
	// a model the agent no longer has (a reload took it away) is not checked
	if smp, err := s.Correction(f, detected, payload.Feedback{ID: "fb", PredictionID: "p1", Tag: "purple", Detection: &zero}, func(string) []string { return nil }); err != nil || smp.CorrectTag != "purple" {
		t.Errorf("correction about a model gone: %+v %v", smp, err)
	}
}

// TestSnapshots: snapshot commands wait for the next frame, at most four at a time, and are
// answered with the frame and its prediction's id.
func TestSnapshots(t *testing.T) {
	rec := &publish.Recorder{}
	s := steps.NewSnapshots(env(rec), "cam")
	for i := range 4 {
		if err := s.Request(string(rune('a'+i)), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Request("e", false); err == nil || !strings.Contains(err.Error(), "4 snapshots waiting") {
		t.Fatalf("a fifth snapshot: %v", err)
	}
	f := frame(t, 64, 48)
	defer f.Close()
	s.Handle(context.Background(), &pipeline.Frame{Frame: f}, prediction("p1", 1))
	snaps, _ := publish.Decode[payload.Snapshot](rec, "/cameras/cam/snapshot")
	if len(snaps) != 4 || snaps[0].Width != 64 || snaps[0].PredictionID != "p1" || snaps[0].JPEG == "" {
		t.Fatalf("snapshots %d %+v", len(snaps), snaps)
	}
	if res, _ := publish.Decode[payload.Result](rec, "/commands/results"); len(res) != 4 || !res[3].OK ||
		res[3].Detail["predictionId"] != "p1" || res[3].PredictionID != "p1" || res[3].FrameID != 1 {
		t.Fatalf("results %+v", res)
	}
}

// fakeShadow is a candidate that names every region "blue".
type fakeShadow struct{ compared map[string]bool }

func (s *fakeShadow) ShadowInfer(_ *camera.Frame, regions []image.Rectangle, _ *models.Results) (pipeline.Inference, func(string, bool), error) {
	preds := make([][]models.Prediction, len(regions))
	for i := range preds {
		preds[i] = []models.Prediction{{TagName: "blue", Probability: 0.8}}
	}
	return pipeline.Inference{Preds: preds, Ref: payload.ModelRef{Iteration: "candidate"}}, func(tag string, agrees bool) { s.compared[tag] = agrees }, nil
}

// TestShadowStep: the candidate answers on the regions the classifier saw, beside the active
// answer, and each comparison is counted.
func TestShadowStep(t *testing.T) {
	sh := &fakeShadow{compared: map[string]bool{}}
	step := steps.NewShadow(sh, "cam", slog.New(slog.NewTextHandler(io.Discard, nil)))
	msg := prediction("p1", 1, detection(payload.Box{Width: 0.5, Height: 0.5}, "red", 0.9), payload.Tag{TagName: "part", BoundingBox: &payload.Box{}})
	step.Handle(context.Background(), &pipeline.Frame{Regions: []image.Rectangle{image.Rect(0, 0, 10, 10), {}}}, msg)
	got := msg.Predictions[0].Classification.Shadow
	if agreed, ok := sh.compared["red"]; !ok || agreed {
		t.Fatalf("compared %v: want red, disagreeing", sh.compared)
	}
	if got == nil || got.TagName != "blue" || got.Agrees || got.Iteration != "candidate" || len(sh.compared) != 1 {
		t.Fatalf("shadow %+v, compared %v", got, sh.compared)
	}
	if steps.NewShadow(nil, "cam", nil) != nil {
		t.Fatal("no candidate: no step")
	}
}
