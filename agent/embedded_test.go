package agent_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestEmbeddedBrokerCleanStop: with the embedded broker, a dashboard connected while the agent
// stops cleanly sees "offline, stopped" last, not the last will ("connection lost").
func TestEmbeddedBrokerCleanStop(t *testing.T) {
	testenv.EndToEnd(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := demoConfig(t, "tcp://"+addr, "    loop: true\n")
	cfg.MQTT.Embedded.Enabled, cfg.MQTT.Embedded.Listen = true, addr
	cfg.MQTT.StatsInterval = 0
	stop := runAgent(t, cfg)
	col := testenv.Dashboard(t, "tcp://"+addr, "cvedge/e2e/#") // retries until the broker listens
	testenv.WaitFor(t, "the retained status", 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/status")) > 0 })
	stop()
	statuses := col.Get("cvedge/e2e/status")
	var last payload.Status
	if err := json.Unmarshal(statuses[len(statuses)-1], &last); err != nil {
		t.Fatal(err)
	}
	if last.State != "offline" || last.Reason != "stopped" {
		t.Errorf("after a clean stop the dashboard saw last %s; want state offline, reason stopped", statuses[len(statuses)-1])
	}
	col.ValidateAll(t)
}
