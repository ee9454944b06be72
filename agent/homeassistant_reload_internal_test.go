package agent

import (
	"slices"
	"testing"

	"github.com/cvedge/cvedge/configs"
)

// TestHomeAssistantWaitsForARestart: the discovery prefix names where the retained configs
// are, and turning discovery off does not remove them, so a reload keeps the running
// homeassistant section and names it as needing a restart.
func TestHomeAssistantWaitsForARestart(t *testing.T) {
	cur, next := configs.Default(), configs.Default()
	next.HomeAssistant.Enabled, next.HomeAssistant.DiscoveryPrefix = true, "plant/ha"
	changed := keepUntilRestart(&next, &cur)
	if !slices.Contains(changed, "homeassistant") {
		t.Errorf("restart needed for %v; want homeassistant among them", changed)
	}
	if next.HomeAssistant != cur.HomeAssistant {
		t.Errorf("the reload took homeassistant %+v; want the running %+v", next.HomeAssistant, cur.HomeAssistant)
	}
}
