package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

func stage(t testing.TB, rt *models.Runtime, path string) *pipeline.ModelStage {
	t.Helper()
	m := loadModel(t, rt, path)
	st, err := pipeline.NewModelStage(m, "stretch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func loadModel(t testing.TB, rt *models.Runtime, path string) *models.Model {
	t.Helper()
	mc := configs.DefaultModel()
	mc.Path = path
	m, err := models.Load(rt, "detector", mc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// video opens the demo video as a camera that hands over every frame, once.
func video(t testing.TB, ctx context.Context) *camera.Camera {
	t.Helper()
	cc := configs.DefaultCamera()
	cc.Name, cc.Source, cc.Loop, cc.Realtime = "conveyor", testenv.Path("testdata", "demo", "conveyor.avi"), false, false
	cam, err := camera.New(cc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cam.Start(ctx)
	t.Cleanup(func() { cam.Close() })
	return cam
}

// TestStreamMatchesProcess: Stream prepares frame n+1 while the models run on frame n, gives
// the frames in order with the answers Process gives, survives iterations swapped between
// preparing a frame and running it, and stops cleanly on a cancelled context.
func TestStreamMatchesProcess(t *testing.T) {
	testenv.EndToEnd(t)
	rt, err := models.NewRuntime(models.Options{})
	if err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	defer rt.Close()
	det := stage(t, rt, testenv.Path("testdata", "demo", "detector"))
	cls := stage(t, rt, testenv.Path("testdata", "demo", "classifier"))
	const frames = 40
	ctx := context.Background()

	// the reference: one frame at a time
	var want []*payload.Prediction
	cam := video(t, ctx)
	seq := pipeline.New(pipeline.Options{Agent: "a", Boot: "b", Camera: "conveyor", Detector: det, Classifier: cls, Padding: 0.1})
	for range frames {
		f, err := cam.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := seq.Process(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, msg)
	}
	seq.Close()

	// one frame ahead, with the detector swapped to float16 and back on the way
	cam = video(t, ctx)
	pl := pipeline.New(pipeline.Options{Agent: "a", Boot: "b", Camera: "conveyor", Detector: det, Classifier: cls, Padding: 0.1})
	defer pl.Close()
	read := make(chan int, frames+1)
	n := 0
	var got []*payload.Prediction
	_, err = pipeline.Stream(ctx, pl, func(ctx context.Context) (*camera.Frame, int, error) {
		if n == frames {
			return nil, n, io.EOF
		}
		f, err := cam.Next(ctx)
		n++
		read <- n
		return f, n, err
	}, func(f *camera.Frame, i int, msg *payload.Prediction, err error) {
		f.Close()
		if err != nil {
			t.Errorf("frame %d: %v", i, err)
			return
		}
		got = append(got, msg)
		if i < frames { // the next frame is grabbed while this one is still being handled
			for deadline := time.After(5 * time.Second); ; {
				select {
				case k := <-read:
					if k <= i {
						continue
					}
				case <-deadline:
					t.Fatalf("frame %d done and frame %d not grabbed: Stream is not running ahead", i, i+1)
				}
				break
			}
		}
		switch i {
		case 10:
			if err := det.Swap(loadModel(t, rt, testenv.Path("testdata", "models", "detector-fp16"))); err != nil {
				t.Fatal(err)
			}
		case 20:
			if err := det.Swap(loadModel(t, rt, testenv.Path("testdata", "demo", "detector"))); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Stream ended with %v, want io.EOF", err)
	}
	if len(got) != frames {
		t.Fatalf("%d messages, want %d", len(got), frames)
	}
	found := 0
	for i, g := range got {
		w := want[i]
		if g.FrameID != uint64(i+1) || *g.SourcePos != *w.SourcePos {
			t.Fatalf("message %d: frame %d at %d, want frame %d at %d", i, g.FrameID, *g.SourcePos, i+1, *w.SourcePos)
		}
		if len(g.Predictions) != len(w.Predictions) {
			t.Errorf("frame %d: %d detections, one at a time %d", i+1, len(g.Predictions), len(w.Predictions))
			continue
		}
		for j, p := range g.Predictions {
			q := w.Predictions[j]
			if models.Box(*p.BoundingBox).IoU(models.Box(*q.BoundingBox)) < 0.9 || p.Classification.Predictions[0].TagName != q.Classification.Predictions[0].TagName {
				t.Errorf("frame %d detection %d: %+v %s, one at a time %+v %s", i+1, j, *p.BoundingBox, p.Classification.Predictions[0].TagName, *q.BoundingBox, q.Classification.Predictions[0].TagName)
			}
			found++
		}
		// a swap in done(n) is in force from frame n+1, n+2 or n+3: up to two frames are
		// already past the detector
		fp16 := g.Models[0].SHA256 != w.Models[0].SHA256
		if k := i + 1; (k <= 10 || k > 23) && fp16 || k > 13 && k <= 20 && !fp16 {
			t.Errorf("frame %d ran detector %s", k, g.Models[0].SHA256[:12])
		}
		if swapped := map[int]bool{11: true, 12: true, 13: true, 21: true, 22: true, 23: true}; i > 0 && g.Models[0].SHA256 != got[i-1].Models[0].SHA256 && !swapped[i+1] {
			t.Errorf("frame %d: the detector changed outside a swap", i+1)
		}
	}
	if found < frames {
		t.Errorf("only %d detections in %d frames", found, frames)
	}

	// a context cancelled mid-way ends the stream; the frames in flight are still done
	cam = video(t, ctx)
	cctx, cancel := context.WithCancel(ctx)
	doneFrames := 0
	_, err = pipeline.Stream(cctx, pl, func(ctx context.Context) (*camera.Frame, int, error) {
		f, err := cam.Next(ctx)
		return f, 0, err
	}, func(f *camera.Frame, _ int, _ *payload.Prediction, err error) {
		f.Close()
		if doneFrames++; doneFrames == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || doneFrames < 5 || doneFrames > 7 {
		t.Fatalf("cancelled stream: %v after %d frames", err, doneFrames)
	}
}

// demoPipeline is the demo's detector and its classifier in a pipeline, with 30 frames of
// the demo video read first. The test's cleanup frees them all.
func demoPipeline(tb testing.TB) (*pipeline.Pipeline, []*camera.Frame) {
	testenv.EndToEnd(tb)
	tb.Helper()
	rt, err := models.NewRuntime(models.Options{})
	if err != nil {
		testenv.Missing(tb, "onnxruntime: %v", err)
	}
	tb.Cleanup(func() { rt.Close() }) // cleanups run last first: this one after the models'
	det := stage(tb, rt, testenv.Path("testdata", "demo", "detector"))
	cls := stage(tb, rt, testenv.Path("testdata", "demo", "classifier"))
	cam := video(tb, context.Background())
	var frames []*camera.Frame
	tb.Cleanup(func() {
		for _, f := range frames {
			f.Close()
		}
	})
	for range 30 {
		f, err := cam.Next(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		frames = append(frames, f)
	}
	pl := pipeline.New(pipeline.Options{Agent: "a", Boot: "b", Camera: "conveyor", Detector: det, Classifier: cls, Padding: 0.1})
	tb.Cleanup(pl.Close)
	return pl, frames
}

// BenchmarkProcess: one frame of the demo through the detector and the classifier on its
// crops, and the JSON of the message, one frame at a time (no capture: the frames are read
// first). allocs/op is the Go heap allocations per frame in steady state.
func BenchmarkProcess(b *testing.B) {
	pl, frames := demoPipeline(b)
	for _, f := range frames { // steady state: tensors of every batch size, results grown, JSON encoders made
		msg, err := pl.Process(f)
		if err != nil {
			b.Fatal(err)
		}
		json.Marshal(msg)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		msg, err := pl.Process(frames[i%len(frames)])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// The pipeline reuses its model results and cuts messages out of slabs: a message must still
// read the same after later frames went through, and a frame must cost (next to) no
// allocation of its own in steady state.
func TestProcessAllocations(t *testing.T) {
	pl, frames := demoPipeline(t)
	var msgs []*payload.Prediction
	var bodies [][]byte
	for range 3 {
		for _, f := range frames {
			msg, err := pl.Process(f)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(msg)
			msgs, bodies = append(msgs, msg), append(bodies, body)
		}
	}
	parts := 0
	for i, msg := range msgs {
		if again, _ := json.Marshal(msg); string(again) != string(bodies[i]) {
			t.Fatalf("message %d changed after later frames:\nthen %s\nnow  %s", i, bodies[i], again)
		}
		for _, p := range msg.Predictions {
			if p.BoundingBox != nil && p.Classification != nil && len(p.Classification.Predictions) > 0 {
				parts++
			}
		}
	}
	if parts < len(msgs) {
		t.Fatalf("only %d classified detections in %d frames: the test frames show too little", parts, len(msgs))
	}
	if matProfile {
		t.Log("allocations not counted: with the matprofile tag gocv allocates to record each Mat (make test counts them in a run without it)")
		return
	}
	i := 0
	n := testing.AllocsPerRun(90, func() {
		if _, err := pl.Process(frames[i%len(frames)]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if n > 1 {
		t.Errorf("Process allocates %.0f times a frame in steady state; want at most 1 (slab blocks, IDs)", n)
	}
	t.Logf("%.0f allocations a frame", n)
}
