package steps_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// TestMotionGateMissesNoPartOnTheDemos: with the demo's models, the demo video and the
// crowded one (a part stopped for two seconds, parts side by side, one three times faster)
// decide the same parts, with the same tracks, tags and ends, with the motion gate on as
// with it off, while the gate keeps the frames of the empty belt from the models.
func TestMotionGateMissesNoPartOnTheDemos(t *testing.T) {
	testenv.EndToEnd(t)
	rt, err := models.NewRuntime(models.Options{})
	if err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	defer rt.Close()
	det := demoStage(t, rt, "detector", 0.5) // as configs/demo.yaml
	cls := demoStage(t, rt, "classifier", 0)
	skipped := uint64(0)
	for _, video := range []string{"conveyor", "crowded"} {
		off, _ := decidedParts(t, det, cls, video, false)
		on, unchanged := decidedParts(t, det, cls, video, true)
		tr := testenv.VideoTruth(t, video)
		ids := map[int]bool{}
		for _, fr := range tr.Frames {
			for _, p := range fr.Parts {
				ids[p.ID] = true
			}
		}
		if len(off) != len(ids) {
			t.Fatalf("%s: %d parts decided without the gate, the video has %d", video, len(off), len(ids))
		}
		if !slices.Equal(on, off) {
			t.Errorf("%s: the parts decided (track tag ended)\nwith the gate    %v\nwithout the gate %v", video, on, off)
		}
		skipped += unchanged
		t.Logf("%s: %d parts decided; the gate kept %d of %d frames from the models", video, len(on), unchanged, len(tr.Frames))
	}
	if skipped == 0 {
		t.Error("the gate kept no frame of the empty belt from the models: this test checked nothing")
	}
}

func demoStage(t *testing.T, rt *models.Runtime, dir string, threshold float64) *pipeline.ModelStage {
	t.Helper()
	mc := configs.DefaultModel()
	mc.Path = testenv.Path("testdata", "demo", dir)
	if threshold > 0 {
		mc.Threshold = threshold
	}
	m, err := models.Load(rt, dir, mc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pipeline.NewModelStage(m, "stretch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// decidedParts runs testdata/demo/<video>.avi once, every frame, through the pipeline and
// the steps the agent runs on a tracking camera, with the motion gate on or off as the
// camera's defaults set it, and returns each part's end event as "track tag ended", and the
// frames the gate kept from the models.
func decidedParts(t *testing.T, det, cls pipeline.Stage, video string, motion bool) ([]string, uint64) {
	t.Helper()
	cc := configs.DefaultCamera()
	cc.Name, cc.Source, cc.Loop, cc.Realtime = "cam", testenv.Path("testdata", "demo", video+".avi"), false, false
	cc.Pipeline.Detector, cc.Pipeline.Classifier = "parts", "colour"
	cc.Motion.Enabled = motion
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cam, err := camera.New(cc, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cam.Start(ctx)
	defer cam.Close()
	o := pipeline.Options{Agent: "line1", Camera: cc.Name, Detector: det, Classifier: cls, Padding: float32(cc.Pipeline.CropPadding), Motion: cc.Motion}
	o.Motion.Hold = cc.MotionHold()
	pl := pipeline.New(o)
	defer pl.Close()
	rec := &publish.Recorder{}
	e := env(rec)
	list := pipeline.NewSteps(steps.NewCount(cc.Name, e.Log), steps.NewTrack(cc.Tracking, true, new(atomic.Uint64)), steps.NewParts(e, cc, nil, nil, nil))
	fr := &pipeline.Frame{}
	_, err = pipeline.Stream(ctx, pl, func(ctx context.Context) (*camera.Frame, struct{}, error) {
		f, err := cam.Next(ctx)
		return f, struct{}{}, err
	}, func(f *camera.Frame, _ struct{}, msg *payload.Prediction, err error) {
		*fr = pipeline.Frame{Frame: f, Camera: cc.Name, Err: err}
		fr.Regions = pl.Regions()
		list.Handle(ctx, fr, msg)
	})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("%s: %v", video, err)
	}
	list.Close()
	if c := list.Count(); c.Failed != 0 {
		t.Fatalf("%s: %d frames failed", video, c.Failed)
	}
	events, err := publish.Decode[payload.Part](rec, "/cameras/cam/parts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range events {
		if ev.Event == "end" {
			out = append(out, fmt.Sprintf("%d %s %s", ev.TrackID, ev.TagName, ev.Ended))
		}
	}
	return out, list.Count().Unchanged
}
