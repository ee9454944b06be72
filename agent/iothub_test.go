package agent_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestIoTHubAgent runs the agent on the demo video as a device of a fake IoT hub that holds
// it to the hub's rules: predictions arrive on the device's events topic with their own
// topic in the property bag and valid JSON, the retained status as a normal message with
// retained=true, and a cloud-to-device snapshot command is executed and answered with its
// result as an event; a C2D message with kind=feedback reaches the feedback handler.
func TestIoTHubAgent(t *testing.T) {
	hub := testenv.StartIoTHub(t)
	cfg := demoConfig(t, "ssl://"+hub.Addr, "    loop: true\n")
	cfg.MQTT.TLS.CAFile = hub.CA
	cfg.MQTT.AzureIoTHub.ConnectionString = testenv.IoTHubConnectionString()
	runAgent(t, cfg)
	schemas := testenv.LoadSchemas(t)
	preds := "cvedge/e2e/cameras/conveyor/predictions"
	testenv.WaitFor(t, "predictions at the hub", 30*time.Second, func() bool { return len(hub.EventsFor(preds)) > 3 })
	for _, e := range hub.EventsFor(preds)[:3] {
		if err := schemas.Validate("prediction", []byte(e.Payload)); err != nil || e.Props.Get("kind") != "predictions" || e.QoS != 1 {
			t.Fatalf("prediction event %+v: %v", e, err)
		}
	}
	testenv.WaitFor(t, "the status at the hub", 10*time.Second, func() bool { return len(hub.EventsFor("cvedge/e2e/status")) > 0 })
	if s := hub.EventsFor("cvedge/e2e/status")[0]; s.Retained || s.Props.Get("retained") != "true" || !strings.Contains(s.Payload, `"online"`) {
		t.Fatalf("status event %+v", s)
	}

	if err := hub.SendC2D("topic=commands", []byte(`{"id":"c1","command":"snapshot","camera":"conveyor"}`)); err != nil {
		t.Fatal(err)
	}
	if err := hub.SendC2D("kind=feedback", []byte(`{"id":"f1","predictionId":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	results := map[string]payload.Result{}
	testenv.WaitFor(t, "both results at the hub", 20*time.Second, func() bool {
		for _, e := range hub.EventsFor("cvedge/e2e/commands/results") {
			var r payload.Result
			if json.Unmarshal([]byte(e.Payload), &r) == nil {
				results[r.ID] = r
			}
		}
		return len(results) >= 2
	})
	if r := results["c1"]; !r.OK {
		t.Errorf("snapshot command: %+v", r)
	}
	if r := results["f1"]; r.OK || !strings.Contains(r.Error, `"tag" must be the correct tag`) {
		t.Errorf("feedback: %+v (want the feedback handler's refusal of a correction without a tag)", r)
	}
	testenv.WaitFor(t, "the snapshot at the hub", 20*time.Second, func() bool { return len(hub.EventsFor("cvedge/e2e/cameras/conveyor/snapshot")) > 0 })
	hub.NoBreaches(t)
}
