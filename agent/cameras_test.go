package agent_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

func predictions(t *testing.T, col *testenv.Inbox, camera string) []payload.Prediction {
	t.Helper()
	var out []payload.Prediction
	for _, raw := range col.Get("cvedge/e2e/cameras/" + camera + "/predictions") {
		var p payload.Prediction
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestMQTTTrigger: a camera in trigger mode processes the next fresh frame after each
// trigger, and the prediction and the result carry the trigger id.
func TestMQTTTrigger(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.Cameras[0].Realtime, cfg.Cameras[0].FPS, cfg.Cameras[0].Trigger = true, 25, "mqtt"
	cfg.MQTT.StatsInterval = 200 * time.Millisecond
	parts := cfg.Models["parts"]
	parts.Project = "0f8fad5b-d9cb-469f-a165-70867728950e" // the detector, the first stage, gives the project
	cfg.Models["parts"] = parts
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	runAgent(t, cfg)
	testenv.WaitFor(t, "the camera online", 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/status")) > 0 })
	time.Sleep(500 * time.Millisecond)
	if n := len(predictions(t, col, "conveyor")); n != 0 {
		t.Fatalf("%d predictions before any trigger", n)
	}
	sent := map[string]time.Time{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("part-%d", i)
		sent[id] = time.Now()
		col.Publish(t, "cvedge/e2e/commands", fmt.Sprintf(`{"id":%q,"command":"trigger","camera":"conveyor"}`, id))
		time.Sleep(300 * time.Millisecond)
	}
	testenv.WaitFor(t, "three results", 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/commands/results")) >= 3 })
	preds := predictions(t, col, "conveyor")
	if len(preds) != 3 {
		t.Fatalf("%d predictions for 3 triggers", len(preds))
	}
	byID := map[string]payload.Prediction{}
	for _, p := range preds {
		byID[p.ID] = p
		if p.Project != parts.Project {
			t.Errorf("prediction %s: project %q, want models.parts.project %s", p.ID, p.Project, parts.Project)
		}
		if at, ok := sent[p.TriggerID]; !ok || p.Captured.Before(at) {
			t.Errorf("prediction %s: trigger %q, captured %v, trigger sent %v: want a frame captured after the trigger", p.ID, p.TriggerID, p.Captured, at)
		}
	}
	for _, raw := range col.Get("cvedge/e2e/commands/results") {
		var r payload.Result
		json.Unmarshal(raw, &r)
		p, ok := byID[r.Detail["predictionId"]]
		if !r.OK || !ok || p.TriggerID != r.ID || r.PredictionID != p.ID || r.FrameID != p.FrameID {
			t.Errorf("result %s does not name the prediction of its trigger", raw)
		}
		if !strings.Contains(string(raw), fmt.Sprintf(`"frameId":%d,`, p.FrameID)) {
			t.Errorf("result %s: want frameId as a number, as in the prediction", raw)
		}
	}
	// the frames it did not take were not wanted: skipped, not dropped (which would set off
	// the alert on a pipeline slower than its camera)
	var cam payload.CameraStats
	testenv.WaitFor(t, "stats with skipped frames", 10*time.Second, func() bool {
		all := col.Get("cvedge/e2e/stats")
		var st payload.Stats
		if len(all) == 0 || json.Unmarshal(all[len(all)-1], &st) != nil || len(st.Cameras) == 0 {
			return false
		}
		cam = st.Cameras[0]
		return cam.Skipped > 0
	})
	if cam.Dropped != 0 || cam.Overflow != 0 {
		t.Errorf("a trigger camera's stats: %+v", cam)
	}
	col.ValidateAll(t)
}

// TestHardwareTrigger: a camera fired by a line (here a realtime replay, each frame a
// trigger) gets every frame processed, in order: none replaced by a newer one, none lost.
func TestHardwareTrigger(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	c := &cfg.Cameras[0]
	c.Realtime, c.FPS, c.Trigger, c.TriggerQueue = true, 200, "hardware", 200 // faster than the pipeline; room for the whole video
	preds, _ := runDemo(t, broker, cfg)
	for i, p := range preds {
		if p.SourcePos == nil || *p.SourcePos != int64(i) {
			t.Fatalf("prediction %d is of frame %v: a triggered frame was lost or reordered", i, p.SourcePos)
		}
	}
}

// TestIntervalTrigger: one frame per interval.
func TestIntervalTrigger(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.Cameras[0].Realtime, cfg.Cameras[0].FPS = true, 25
	cfg.Cameras[0].Trigger, cfg.Cameras[0].Interval = "interval", 250*time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	testenv.WaitFor(t, "4 predictions", 10*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= 4 })
	stop()
	preds := predictions(t, col, "conveyor")
	for i := 1; i < len(preds); i++ {
		// each tick takes the first frame captured after it; at 25 fps that is up to 40 ms late
		if gap := preds[i].Captured.Sub(preds[i-1].Captured); gap < 250*time.Millisecond-40*time.Millisecond {
			t.Errorf("frames %d and %d captured %v apart; the interval is 250ms", preds[i-1].FrameID, preds[i].FrameID, gap)
		}
	}
}

// TestQualityGate: the demo belt has a mean brightness near 70. A gate wanting 200 or more
// flags every frame, or keeps every frame from the models.
func TestQualityGate(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	t.Run("flag", func(t *testing.T) {
		cfg := demoConfig(t, broker.URL, "    quality_gate: {action: flag, min_brightness: 200, max_overexposed: 0.5}\n")
		col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
		stop := runAgent(t, cfg)
		testenv.WaitFor(t, "predictions", 20*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= 20 })
		stop()
		for _, p := range predictions(t, col, "conveyor") {
			if p.Quality.Gate != "fail" || strings.Join(p.Quality.Failed, ",") != "too_dark" {
				t.Fatalf("frame %d quality %+v", p.FrameID, p.Quality)
			}
		}
		col.ValidateAll(t)
	})
	t.Run("skip", func(t *testing.T) {
		cfg := demoConfig(t, broker.URL, "    quality_gate: {action: skip, min_brightness: 200}\n")
		cfg.MQTT.StatsInterval = 200 * time.Millisecond
		col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
		stop := runAgent(t, cfg)
		testenv.WaitFor(t, "stats counting gated frames", 20*time.Second, func() bool {
			s, ok := lastStats(col, "cvedge/e2e/stats")
			return ok && len(s.Cameras) == 1 && s.Cameras[0].Gated >= 20
		})
		stop()
		if n := len(predictions(t, col, "conveyor")); n != 0 {
			t.Fatalf("%d predictions passed a gate that skips every frame", n)
		}
	})
}

// TestTwoCamerasShareModels runs two cameras on the same models: each gets every frame
// right, and each model is loaded once.
func TestTwoCamerasShareModels(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	second := cfg.Cameras[0]
	second.Name = "conveyor2"
	cfg.Cameras = append(cfg.Cameras, second)
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	tr := testenv.DemoTruth(t)
	stop := runAgent(t, cfg)
	testenv.WaitFor(t, "every frame on both cameras", 60*time.Second, func() bool {
		return len(predictions(t, col, "conveyor")) >= len(tr.Frames) && len(predictions(t, col, "conveyor2")) >= len(tr.Frames)
	})
	stop()
	for _, cam := range []string{"conveyor", "conveyor2"} {
		parts := 0
		for _, p := range predictions(t, col, cam) {
			for _, d := range p.Predictions {
				if d.Classification != nil {
					parts++
				}
			}
		}
		if parts < 288 {
			t.Errorf("%s: %d classified parts, the video shows 288 fully visible ones", cam, parts)
		}
	}
	var st payload.Status
	json.Unmarshal(col.Get("cvedge/e2e/status")[0], &st)
	if len(st.Models) != 2 || len(st.Cameras) != 2 {
		t.Fatalf("status: %d models, %d cameras", len(st.Models), len(st.Cameras))
	}
}
