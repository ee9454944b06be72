package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
	"google.golang.org/protobuf/proto"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/plc"
	"github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// TestSparkplugFromTheAgent runs the demo agent with sparkplug on: a Sparkplug host sees the
// agent as an edge node (NBIRTH) and its camera as a device (DBIRTH) with its model, the
// parts the agent decides arrive as DDATA (Parts/Total and the last decision's tag), and a
// clean stop ends the session with DDEATH and NDEATH.
func TestSparkplugFromTheAgent(t *testing.T) {
	testenv.EndToEnd(t)
	broker := testenv.StartMosquitto(t)
	host := testenv.Subscribe(t, broker.URL, "spBv1.0/#")
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.Sparkplug.Enabled = true
	cfg.Sparkplug.GroupID, cfg.Sparkplug.EdgeNodeID = "plant1", "e2e"
	cfg.Sparkplug.DataInterval = 100 * time.Millisecond
	stop := runAgent(t, cfg)

	metrics := func(topic string) map[string]*sparkplugpb.Payload_Metric {
		out := map[string]*sparkplugpb.Payload_Metric{}
		for _, raw := range host.Get(topic) {
			var p sparkplugpb.Payload
			if err := proto.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: not a Sparkplug B payload: %v", topic, err)
			}
			for _, m := range p.GetMetrics() {
				out[m.GetName()] = m // births carry names; data messages only aliases
			}
		}
		return out
	}
	testenv.WaitFor(t, "the node's and the camera's births", 30*time.Second, func() bool {
		return len(host.Get("spBv1.0/plant1/NBIRTH/e2e")) > 0 && len(host.Get("spBv1.0/plant1/DBIRTH/e2e/conveyor")) > 0
	})
	if _, ok := metrics("spBv1.0/plant1/NBIRTH/e2e")["bdSeq"]; !ok {
		t.Fatal("NBIRTH without bdSeq")
	}
	testenv.WaitFor(t, "a part decided in the camera's metrics", 60*time.Second, func() bool {
		births := metrics("spBv1.0/plant1/DBIRTH/e2e/conveyor")
		total, ok := births["Parts/Total"]
		tag := births["Last Decision/Tag"]
		return ok && total.GetLongValue() > 0 && tag != nil && tag.GetStringValue() != ""
	})
	births := metrics("spBv1.0/plant1/DBIRTH/e2e/conveyor")
	var names []string
	for n := range births {
		names = append(names, n)
	}
	t.Logf("camera metrics: %s", strings.Join(names, ", "))
	// a part of a tag not seen before makes a new DBIRTH; one of a tag seen, a DDATA
	testenv.WaitFor(t, "DDATA from the camera as parts are decided", 60*time.Second, func() bool {
		return len(host.Get("spBv1.0/plant1/DDATA/e2e/conveyor")) > 0
	})
	stop()
	testenv.WaitFor(t, "DDEATH and NDEATH at the stop", 10*time.Second, func() bool {
		return len(host.Get("spBv1.0/plant1/DDEATH/e2e/conveyor")) > 0 && len(host.Get("spBv1.0/plant1/NDEATH/e2e")) > 0
	})
}

// TestPLCFromTheAgent runs the demo agent with the Modbus server on and reads it as a PLC
// would, with a real Modbus TCP client: the agent is online, its camera online, parts are
// counted and each decision bumps the sequence; the heartbeat counts.
func TestPLCFromTheAgent(t *testing.T) {
	testenv.EndToEnd(t)
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.PLC.Modbus.Enabled = true
	cfg.PLC.Modbus.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	runAgent(t, cfg)

	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + cfg.PLC.Modbus.Listen, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the Modbus server", 20*time.Second, func() bool { return c.Open() == nil })
	defer c.Close()
	cam := uint16(plc.BlockSize) // the first camera's block
	read := func(addr uint16) uint16 {
		v, err := c.ReadRegister(addr, modbus.HOLDING_REGISTER)
		if err != nil {
			t.Fatalf("register %d: %v", addr, err)
		}
		return v
	}
	read32 := func(addr uint16) uint32 {
		v, err := c.ReadUint32(addr, modbus.HOLDING_REGISTER)
		if err != nil {
			t.Fatalf("registers %d-%d: %v", addr, addr+1, err)
		}
		return v
	}
	testenv.WaitFor(t, "the agent and its camera online, two parts decided", 60*time.Second, func() bool {
		return read(plc.RegAgentState) == plc.AgentOnline && read(cam+plc.OffCameraState) == plc.CameraOnline &&
			read32(cam+plc.OffSequence) >= 2 && read32(cam+plc.OffParts) >= 2
	})
	if n := read(cam + plc.OffTagCount); n != 4 {
		t.Errorf("%d tags in the camera's list, want the colour classifier's 4", n)
	}
	beat := read(plc.RegHeartbeat)
	testenv.WaitFor(t, "the heartbeat", 5*time.Second, func() bool { return read(plc.RegHeartbeat) != beat })
}

// TestHomeAssistantFromTheAgent: with homeassistant on, the agent announces its camera's
// entities as retained discovery configs when it connects; after a restart in which the
// camera was renamed, the old camera's entities are removed (empty retained configs) and
// the new one's announced.
func TestHomeAssistantFromTheAgent(t *testing.T) {
	testenv.EndToEnd(t)
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.HomeAssistant.Enabled = true
	stop := runAgent(t, cfg)
	ha := testenv.Subscribe(t, broker.URL, "homeassistant/#")
	config := "homeassistant/sensor/cvedge_e2e/conveyor_parts/config"
	testenv.WaitFor(t, "the camera's parts entity", 30*time.Second, func() bool { return len(ha.Get(config)) > 0 })
	var announced map[string]any
	if err := json.Unmarshal(ha.Get(config)[0], &announced); err != nil || announced["state_topic"] != "cvedge/e2e/cameras/conveyor/counts" {
		t.Fatalf("the parts entity: %v %v", announced, err)
	}
	stop()

	renamed := *cfg
	renamed.Cameras = append([]configs.Camera(nil), cfg.Cameras...)
	renamed.Cameras[0].Name = "belt"
	renamed.MQTT.ClientID += "-2"
	runAgent(t, &renamed)
	testenv.WaitFor(t, "the old camera removed, the new one announced", 30*time.Second, func() bool {
		old := ha.Get(config)
		return len(old) > 1 && len(old[len(old)-1]) == 0 && len(ha.Get("homeassistant/sensor/cvedge_e2e/belt_parts/config")) > 0
	})
}

// TestIntegrationsEndWhenOneFailsToStart: the PLC server cannot listen (its port is taken),
// so the agent does not start; the Sparkplug node it had started is stopped with it, not
// left connecting behind an agent that returned.
func TestIntegrationsEndWhenOneFailsToStart(t *testing.T) {
	testenv.EndToEnd(t)
	broker := testenv.StartMosquitto(t)
	host := testenv.Subscribe(t, broker.URL, "spBv1.0/#")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := demoConfig(t, broker.URL, "")
	cfg.Sparkplug.Enabled, cfg.Sparkplug.GroupID, cfg.Sparkplug.EdgeNodeID = true, "plant1", "e2e"
	cfg.PLC.Modbus.Enabled, cfg.PLC.Modbus.Listen = true, taken.Addr().String()
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "plc.modbus.listen") {
		t.Fatalf("Run: %v, want the taken port of plc.modbus.listen", err)
	}
	testenv.WaitFor(t, "the Sparkplug node's goroutine to end", 10*time.Second, func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "sparkplug.(*Node).run")
	})
	if len(host.Get("spBv1.0/plant1/NBIRTH/e2e")) > 0 && len(host.Get("spBv1.0/plant1/NDEATH/e2e")) == 0 {
		t.Error("the node was born and never died")
	}
}
