package configs

import (
	"errors"
	"fmt"
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
