package publish_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/agent/testenv"
)

// hubHarness starts a publisher that is the fake hub's device, with a token ttl.
func hubHarness(t *testing.T, h *testenv.IoTHub, ttl time.Duration, o publish.Options) *harness {
	t.Helper()
	cfg := mqttConfig("ssl://" + h.Addr)
	cfg.TLS.CAFile = h.CA
	cfg.AzureIoTHub.ConnectionString = testenv.IoTHubConnectionString()
	cfg.AzureIoTHub.TokenTTL = ttl
	return start(t, cfg, o)
}

func keyNotLogged(t *testing.T, hr *harness) {
	t.Helper()
	logs := hr.logs.String()
	for _, secret := range []string{base64.StdEncoding.EncodeToString(testenv.IoTHubKey), string(testenv.IoTHubKey), "SharedAccessSignature", "sig="} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, logs)
		}
	}
}

// Predictions reach the hub on the device's events topic with their own topic in the
// property bag and the JSON intact; the retained status goes as a normal message with
// retained=true; a cloud-to-device command reaches the commands handler and its result
// comes back as an event.
func TestIoTHubEventsAndCommands(t *testing.T) {
	h := testenv.StartIoTHub(t)
	var hr *harness
	status := publish.Message{Topic: "t/status", QoS: 1, Retained: true, Payload: []byte(`{"state":"online"}`)}
	commands := make(chan string, 4)
	hr = hubHarness(t, h, time.Hour, publish.Options{
		Will:      &publish.Message{Topic: "t/status", QoS: 1, Retained: true, Payload: []byte(`{"state":"offline"}`)},
		OnConnect: func() []publish.Message { return []publish.Message{status} },
		Subscriptions: map[string]func([]byte){
			"t/commands": func(b []byte) { commands <- string(b) },
			"t/feedback": func([]byte) { t.Error("a command reached the feedback handler") },
		},
	})
	hr.waitConnected(t)
	pred := `{"schema":1,"camera":"conveyor","tags":[{"tag":"ok","p":0.93}],"note":"a&b=c /x"}`
	hr.pub.Send(publish.Message{Topic: "t/cameras/conveyor/predictions", QoS: 1, Payload: []byte(pred), Class: spool.Predictions})
	testenv.WaitFor(t, "the prediction at the hub", 10*time.Second, func() bool { return len(h.EventsFor("t/cameras/conveyor/predictions")) > 0 })
	e := h.EventsFor("t/cameras/conveyor/predictions")[0]
	if e.Payload != pred || e.Props.Get("kind") != "predictions" || e.Props.Get("$.ct") != "application/json" || e.QoS != 1 || e.Props.Get("retained") != "" {
		t.Fatalf("prediction event %+v", e)
	}
	testenv.WaitFor(t, "the status at the hub", 10*time.Second, func() bool { return len(h.EventsFor("t/status")) > 0 })
	if s := h.EventsFor("t/status")[0]; s.Retained || s.Props.Get("retained") != "true" || s.Payload != string(status.Payload) {
		t.Fatalf("status event %+v: want it not retained, with retained=true", s)
	}

	// the cloud sends a command, as the service SDK does: properties in the topic
	if err := h.SendC2D("%24.mid=42&topic=commands", []byte(`{"command":"snapshot","id":"c1"}`)); err != nil {
		t.Fatal(err)
	}
	var got string
	select {
	case got = <-commands:
	case <-time.After(10 * time.Second):
		_, b, _ := h.Snapshot()
		t.Fatalf("the cloud-to-device command did not reach the commands handler (hub: %v)", b)
	}
	if got != `{"command":"snapshot","id":"c1"}` {
		t.Fatalf("command payload %q", got)
	}
	hr.pub.Send(publish.Message{Topic: "t/results", QoS: 1, Payload: []byte(`{"id":"c1","ok":true}`), Class: spool.Predictions})
	testenv.WaitFor(t, "the command's result at the hub", 10*time.Second, func() bool { return len(h.EventsFor("t/results")) > 0 })
	h.NoBreaches(t)
	keyNotLogged(t, hr)
}

// A token about to expire is renewed: the device reconnects with a fresh one before the
// hub would close the connection over it, and every message sent meanwhile arrives.
func TestIoTHubTokenRenewal(t *testing.T) {
	h := testenv.StartIoTHub(t)
	hr := hubHarness(t, h, 3*time.Second, publish.Options{})
	hr.waitConnected(t)
	n := 0
	testenv.WaitFor(t, "three tokens", 30*time.Second, func() bool {
		hr.pub.Send(msg("t/renew", n, 64))
		n++
		time.Sleep(100 * time.Millisecond)
		_, _, tokens := h.Snapshot()
		return tokens >= 3
	})
	testenv.WaitFor(t, "every message at the hub", 20*time.Second, func() bool {
		seen := map[string]bool{}
		evs, _, _ := h.Snapshot()
		for _, e := range evs {
			seen[e.Props.Get("topic")] = true
		}
		for i := range n {
			if !seen[fmt.Sprintf("t/renew/%d", i)] {
				return false
			}
		}
		return true
	})
	h.NoBreaches(t)
	keyNotLogged(t, hr)
}

// Messages sent while the hub is away are spooled and delivered once it is back, with
// their own topic in the property bag.
func TestIoTHubAwaySpools(t *testing.T) {
	h := testenv.StartIoTHub(t)
	hr := hubHarness(t, h, time.Hour, publish.Options{})
	hr.waitConnected(t)
	h.StopBroker()
	testenv.WaitFor(t, "the publisher to see the hub gone", 15*time.Second, func() bool { return !hr.pub.Connected() })
	for i := range 20 {
		hr.pub.Send(msg("t/away", i, 64))
	}
	testenv.WaitFor(t, "the messages in the spool", 10*time.Second, func() bool { return hr.pub.Stats().Spooled >= 20 })
	h.StartBroker(t)
	testenv.WaitFor(t, "the spooled messages at the hub", 30*time.Second, func() bool {
		for i := range 20 {
			if len(h.EventsFor(fmt.Sprintf("t/away/%d", i))) == 0 {
				return false
			}
		}
		return true
	})
	if e := h.EventsFor("t/away/7")[0]; !strings.Contains(e.Payload, `"i":7`) {
		t.Fatalf("spooled message 7 arrived as %q", e.Payload)
	}
	h.NoBreaches(t)
	keyNotLogged(t, hr)
}
