package agent

import (
	"slices"
	"testing"

	"github.com/cvedge/cvedge/configs"
)

// TestSparkplugWaitsForARestart: the sparkplug section has its own MQTT session (its will,
// its bdSeq), so a reload keeps the running values and names the section as needing a
// restart.
func TestSparkplugWaitsForARestart(t *testing.T) {
	cur, next := configs.Default(), configs.Default()
	next.Sparkplug.Enabled, next.Sparkplug.GroupID = true, "plant2"
	changed := keepUntilRestart(&next, &cur)
	if !slices.Contains(changed, "sparkplug") {
		t.Errorf("restart needed for %v; want sparkplug among them", changed)
	}
	if next.Sparkplug != cur.Sparkplug {
		t.Errorf("the reload took sparkplug %+v; want the running %+v", next.Sparkplug, cur.Sparkplug)
	}
}
