package agent_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestMotionGateIdleCamera: a camera whose picture stands still (an empty belt), with the
// motion gate on, sends its first frame through the models, then publishes an unchanged
// report every report_interval: a prediction with "motion": "unchanged", no models and no
// predictions, valid against the schema and numbered on with no gap; the stats count the
// frames the gate kept from the models.
func TestMotionGateIdleCamera(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	dir := testenv.StillBelt(t, 3, 320, 180)
	c := &cfg.Cameras[0]
	c.Source, c.Loop, c.Realtime, c.FPS = dir, true, true, 20
	c.Motion.Enabled, c.Motion.ReportInterval, c.Motion.MaxInterval = true, 300*time.Millisecond, time.Hour
	cfg.MQTT.StatsInterval = 200 * time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	reports := func() int {
		n := 0
		for _, p := range predictions(t, col, "conveyor") {
			if p.Motion == pipeline.MotionUnchanged {
				n++
			}
		}
		return n
	}
	testenv.WaitFor(t, "two unchanged reports", 30*time.Second, func() bool { return reports() >= 2 })
	var cam payload.CameraStats
	testenv.WaitFor(t, "stats with unchanged frames", 10*time.Second, func() bool {
		all := col.Get("cvedge/e2e/stats")
		var st payload.Stats
		if len(all) == 0 || json.Unmarshal(all[len(all)-1], &st) != nil || len(st.Cameras) == 0 {
			return false
		}
		cam = st.Cameras[0]
		return cam.Unchanged > 0
	})
	stop()
	preds := predictions(t, col, "conveyor")
	for i, p := range preds {
		if p.FrameID != uint64(i+1) {
			t.Fatalf("message %d has frameId %d: want 1, 2, 3 ... with no gap", i, p.FrameID)
		}
		if report := p.Motion == pipeline.MotionUnchanged; report != (i > 0) || (report && (len(p.Models) != 0 || len(p.Predictions) != 0 || p.Quality.Brightness == 0)) {
			t.Errorf("message %d: motion %q, models %v, %d predictions, quality %+v: want the first frame through the models, then reports", i, p.Motion, p.Models, len(p.Predictions), p.Quality)
		}
	}
	if cam.Unchanged < uint64(len(preds)-1) || cam.Failed != 0 {
		t.Errorf("stats %+v after %d messages", cam, len(preds))
	}
	col.ValidateAll(t)
}
