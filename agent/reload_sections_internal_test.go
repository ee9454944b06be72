package agent

import (
	"reflect"
	"slices"
	"testing"

	"github.com/cvedge/cvedge/configs"
)

// TestIntegrationsWaitForARestart: each integration holds something a reload cannot hand
// over (Sparkplug its own MQTT session with its will and bdSeq, the PLC server its port and
// clients, Home Assistant the retained configs under its prefix, the station its listener),
// so a reload keeps the running section and names it as needing a restart.
func TestIntegrationsWaitForARestart(t *testing.T) {
	for _, c := range []struct {
		section string
		change  func(*configs.Config)
		get     func(*configs.Config) any
	}{
		{"sparkplug", func(c *configs.Config) { c.Sparkplug.Enabled, c.Sparkplug.GroupID = true, "plant2" }, func(c *configs.Config) any { return c.Sparkplug }},
		{"plc", func(c *configs.Config) { c.PLC.Modbus.Enabled, c.PLC.Modbus.Listen = true, "127.0.0.1:1502" }, func(c *configs.Config) any { return c.PLC }},
		{"homeassistant", func(c *configs.Config) { c.HomeAssistant.Enabled, c.HomeAssistant.DiscoveryPrefix = true, "plant/ha" }, func(c *configs.Config) any { return c.HomeAssistant }},
		{"ui", func(c *configs.Config) { c.UI.Enabled, c.UI.FPS = true, 2 }, func(c *configs.Config) any { return c.UI }},
	} {
		cur, next := configs.Default(), configs.Default()
		c.change(&next)
		changed := keepUntilRestart(&next, &cur)
		if !slices.Contains(changed, c.section) {
			t.Errorf("%s: restart needed for %v; want %s among them", c.section, changed, c.section)
		}
		if !reflect.DeepEqual(c.get(&next), c.get(&cur)) {
			t.Errorf("%s: the reload took %+v; want the running %+v", c.section, c.get(&next), c.get(&cur))
		}
	}
}
