package configs

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestProblemsUnder: each problem of Validate carries its key, and a caller finds those under
// a key without reading the message; the joined message reads as it always did.
func TestProblemsUnder(t *testing.T) {
	c := Default()
	c.Agent.ID, c.MQTT.TopicPrefix, c.MQTT.QoS = "cell1", "cvedge/cell1", 5
	m := DefaultModel()
	m.Path, m.Resize, m.Threshold = "m.onnx", "squash", 2
	c.Models = map[string]Model{"m": m, "mm": m}
	err := fmt.Errorf("config x.yaml: %w", c.Validate())

	got := ProblemsUnder(err, "models.m.")
	if len(got) != 2 || got[0].Key != "models.m.resize" || got[1].Key != "models.m.threshold" {
		t.Fatalf("models.m.: %v", got)
	}
	if msg := got[0].Err.Error(); msg != `"squash" is not one of stretch, center_crop` {
		t.Errorf("the problem without its key: %q", msg)
	}
	if got := ProblemsUnder(err, "mqtt."); len(got) != 1 || got[0].Error() != "mqtt.qos: 5 must be 0, 1 or 2" {
		t.Errorf("mqtt.: %v", got)
	}
	if got := ProblemsUnder(err, "store."); len(got) != 0 {
		t.Errorf("store.: %v", got)
	}
	if got := ProblemsUnder(nil, ""); got != nil {
		t.Errorf("nil: %v", got)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Key != "mqtt.qos" {
		t.Errorf("errors.As finds the first problem: %v", p)
	}
	for _, line := range []string{"mqtt.qos: 5 must be 0, 1 or 2", "models.mm.threshold: 2 must be between 0 and 1", "cameras: no camera configured"} {
		if !strings.Contains(err.Error(), "\n"+line) && !strings.HasPrefix(err.Error(), "config x.yaml: "+line) {
			t.Errorf("the message lacks the line %q:\n%v", line, err)
		}
	}
}

// TestShadowSummaryAfter: a negative models.<name>.shadow.summary_after is refused, and so is
// one with the stats off (mqtt.stats_interval: 0), naming
// the key; 0 (the default) and a count pass.
func TestShadowSummaryAfter(t *testing.T) {
	for _, c := range []struct {
		n       int
		noStats bool
		bad     bool
	}{{0, false, false}, {500, false, false}, {-1, false, true}, {500, true, true}, {0, true, false}} {
		cfg := Default()
		if c.noStats { // the summary is taken with the stats: none, no summary
			cfg.MQTT.StatsInterval = 0
		}
		m := DefaultModel()
		m.Path, m.Shadow.SummaryAfter = "m.onnx", c.n
		cfg.Models = map[string]Model{"m": m}
		got := ProblemsUnder(cfg.Validate(), "models.m.shadow.")
		if c.bad != (len(got) == 1 && got[0].Key == "models.m.shadow.summary_after") || (!c.bad && len(got) != 0) {
			t.Errorf("summary_after %d: %v", c.n, got)
		}
	}
}

// TestMotionValidation: each bad key of cameras[].motion is refused under its own name, with
// the fix; the defaults pass, with the gate on or off; a hold under tracking.max_missed + 1
// is refused on a camera that tracks (not on one without a detector), and so is the gate on
// a camera whose every frame is asked for.
func TestMotionValidation(t *testing.T) {
	base := func(edit func(c *Camera)) []*Problem {
		cfg := Default()
		cfg.Agent.ID, cfg.MQTT.TopicPrefix = "cell1", "cvedge/cell1"
		m := DefaultModel()
		m.Path = "m.onnx"
		cfg.Models = map[string]Model{"parts": m}
		cam := DefaultCamera()
		cam.Name, cam.Source, cam.Pipeline.Detector = "cam1", "0", "parts"
		edit(&cam)
		cfg.Cameras = []Camera{cam}
		return ProblemsUnder(cfg.Validate(), "cameras[0].motion")
	}
	for _, c := range []struct {
		name string
		edit func(c *Camera)
		key  string // "": no problem
		says string
	}{
		{"defaults, off", func(c *Camera) {}, "", ""},
		{"defaults, on", func(c *Camera) { c.Motion.Enabled = true }, "", ""},
		{"threshold below 0", func(c *Camera) { c.Motion.Threshold = -0.1 }, "threshold", "from 0 (one changed cell is change) to below 1"},
		{"threshold 1", func(c *Camera) { c.Motion.Threshold = 1 }, "threshold", "from 0 (one changed cell is change) to below 1"},
		{"threshold NaN", func(c *Camera) { c.Motion.Threshold = math.NaN() }, "threshold", "from 0 (one changed cell is change) to below 1"},
		{"pixel_delta 0", func(c *Camera) { c.Motion.PixelDelta = 0 }, "pixel_delta", "1 to 254"},
		{"pixel_delta 255", func(c *Camera) { c.Motion.PixelDelta = 255 }, "pixel_delta", "1 to 254"},
		{"report_interval negative", func(c *Camera) { c.Motion.ReportInterval = -1 }, "report_interval", "0 (no reports) or more"},
		{"report_interval 0", func(c *Camera) { c.Motion.ReportInterval = 0 }, "", ""},
		{"max_interval 0", func(c *Camera) { c.Motion.MaxInterval = 0 }, "max_interval", "must be above 0"},
		{"hold negative", func(c *Camera) { c.Motion.Hold = -1 }, "hold", "allowed 0 (tracking.max_missed + 1) to 1000"},
		{"hold under max_missed + 1", func(c *Camera) { c.Motion.Hold = 10 }, "hold", "under tracking.max_missed + 1 (11)"},
		{"hold of max_missed + 1", func(c *Camera) { c.Motion.Hold = 11 }, "", ""},
		{"short hold, no tracking", func(c *Camera) { c.Motion.Hold, c.Tracking.Enabled = 2, false }, "", ""},
		{"trigger mqtt", func(c *Camera) { c.Motion.Enabled, c.Trigger = true, "mqtt" }, "enabled", "turn the gate off, or use trigger continuous or interval"},
		{"trigger hardware", func(c *Camera) { c.Motion.Enabled, c.Trigger = true, "hardware" }, "enabled", "trigger hardware"},
		{"trigger mqtt, gate off", func(c *Camera) { c.Trigger = "mqtt" }, "", ""},
	} {
		got := base(c.edit)
		if c.key == "" {
			if len(got) != 0 {
				t.Errorf("%s: %v", c.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Key != "cameras[0].motion."+c.key || !strings.Contains(got[0].Error(), c.says) {
			t.Errorf("%s: %v; want one problem of cameras[0].motion.%s saying %q", c.name, got, c.key, c.says)
		}
	}
}
