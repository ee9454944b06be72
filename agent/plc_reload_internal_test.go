package agent

import (
	"slices"
	"testing"

	"github.com/cvedge/cvedge/configs"
)

// TestPLCWaitsForARestart: the Modbus server holds its port and its clients, so a reload
// keeps the running plc section and names it as needing a restart.
func TestPLCWaitsForARestart(t *testing.T) {
	cur, next := configs.Default(), configs.Default()
	next.PLC.Modbus.Enabled, next.PLC.Modbus.Listen = true, "127.0.0.1:1502"
	changed := keepUntilRestart(&next, &cur)
	if !slices.Contains(changed, "plc") {
		t.Errorf("restart needed for %v; want plc among them", changed)
	}
	if next.PLC != cur.PLC {
		t.Errorf("the reload took plc %+v; want the running %+v", next.PLC, cur.PLC)
	}
}
