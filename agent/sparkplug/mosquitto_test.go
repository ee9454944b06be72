package sparkplug

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/cvedge/cvedge/agent/payload"
	spb "github.com/cvedge/cvedge/agent/sparkplug/sparkplugpb"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// host is a Sparkplug host application's view: every message under spBv1.0/#, in the order
// the broker delivered them.
type host struct {
	c    paho.Client
	mu   sync.Mutex
	msgs []sent
	bad  []string
}

func newHost(t *testing.T, url string) *host {
	h := &host{}
	h.c = paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-host-%d", time.Now().UnixNano())))
	if tok := h.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	if tok := h.c.Subscribe(Namespace+"/#", 1, func(_ paho.Client, m paho.Message) {
		var p spb.Payload
		h.mu.Lock()
		defer h.mu.Unlock()
		if strings.Contains(m.Topic(), "/NCMD/") {
			return
		}
		if err := proto.Unmarshal(m.Payload(), &p); err != nil {
			h.bad = append(h.bad, m.Topic())
			return
		}
		h.msgs = append(h.msgs, sent{m.Topic(), m.Qos(), &p})
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("host subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { h.c.Disconnect(100) })
	return h
}

func (h *host) all() []sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sent(nil), h.msgs...)
}

// count is how many messages on topic (a suffix after spBv1.0/plant1/) satisfy ok.
func (h *host) count(topic string, ok func(*spb.Payload) bool) int {
	n := 0
	for _, m := range h.all() {
		if m.topic == Namespace+"/plant1/"+topic && (ok == nil || ok(m.p)) {
			n++
		}
	}
	return n
}

func bdSeqIs(v uint64) func(*spb.Payload) bool {
	return func(p *spb.Payload) bool { return metricNamed(p, "bdSeq").GetLongValue() == v }
}

// TestEdgeNodeOverMosquitto: the edge node on a real broker, as a host application sees it:
// births (bdSeq 0), DDATA, the connection cut (the broker delivers the NDEATH will with bdSeq
// 0), the births again on the new connection (bdSeq 1), a rebirth on NCMD (bdSeq still 1),
// and a clean stop (DDEATHs, then NDEATH bdSeq 1). Every message decodes, and the sequence
// numbers run on without a gap from each NBIRTH.
func TestEdgeNodeOverMosquitto(t *testing.T) {
	b := testenv.StartMosquitto(t)
	px := testenv.DelayProxy(t, b.Addr, 0)
	defer px.Close()
	h := newHost(t, b.URL)
	var logs testenv.LogBuffer
	cfg := configs.Default()
	cfg.Agent.ID = "cell1"
	cfg.MQTT.Broker, cfg.MQTT.ClientID = px.URL, "cvedge-cell1"
	cfg.MQTT.MaxReconnectInterval = time.Second
	cfg.Sparkplug = configs.Sparkplug{Enabled: true, GroupID: "plant1", EdgeNodeID: "cell1", DataInterval: 50 * time.Millisecond}
	n, err := Start(&cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("edge node log:\n%s", logs.String())
		}
	}()
	n.Status(status("conveyor", "gate"))

	testenv.WaitFor(t, "NBIRTH bdSeq 0 and both DBIRTHs", 10*time.Second, func() bool {
		return h.count("NBIRTH/cell1", bdSeqIs(0)) == 1 && h.count("DBIRTH/cell1/conveyor", nil) >= 1 && h.count("DBIRTH/cell1/gate", nil) >= 1
	})
	n.Decision(payload.Decision{Camera: "conveyor", PartID: "p-1", TagName: "red", Probability: 0.75, Verdict: "pass", Created: time.Now()})
	testenv.WaitFor(t, "the decision in DDATA", 10*time.Second, func() bool {
		return h.count("DDATA/cell1/conveyor", func(p *spb.Payload) bool {
			for _, m := range p.Metrics {
				if m.GetStringValue() == "red" && m.Name == nil {
					return true
				}
			}
			return false
		}) == 1
	})

	px.Cut()
	testenv.WaitFor(t, "the broker's NDEATH (will) with bdSeq 0", 15*time.Second, func() bool {
		return h.count("NDEATH/cell1", bdSeqIs(0)) == 1
	})
	testenv.WaitFor(t, "NBIRTH bdSeq 1 and both DBIRTHs again", 15*time.Second, func() bool {
		return h.count("NBIRTH/cell1", bdSeqIs(1)) == 1 && h.count("DBIRTH/cell1/conveyor", nil) >= 2 && h.count("DBIRTH/cell1/gate", nil) >= 2
	})
	if d := h.count("DBIRTH/cell1/conveyor", func(p *spb.Payload) bool { return metricNamed(p, "Last Decision/Tag").GetStringValue() == "red" }); d < 1 {
		t.Errorf("the conveyor's DBIRTH after reconnection lacks the last decision")
	}

	body, _ := proto.Marshal(&spb.Payload{Timestamp: proto.Uint64(uint64(time.Now().UnixMilli())), Metrics: []*spb.Payload_Metric{
		{Name: proto.String("Node Control/Rebirth"), Datatype: proto.Uint32(uint32(spb.DataType_Boolean)), Value: &spb.Payload_Metric_BooleanValue{BooleanValue: true}}}})
	if tok := h.c.Publish(Namespace+"/plant1/NCMD/cell1", 0, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	testenv.WaitFor(t, "a second NBIRTH with bdSeq 1 (rebirth)", 10*time.Second, func() bool {
		return h.count("NBIRTH/cell1", bdSeqIs(1)) == 2 && h.count("DBIRTH/cell1/gate", nil) >= 3
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the clean stop's DDEATHs and NDEATH bdSeq 1", 10*time.Second, func() bool {
		return h.count("DDEATH/cell1/conveyor", nil) == 1 && h.count("DDEATH/cell1/gate", nil) == 1 && h.count("NDEATH/cell1", bdSeqIs(1)) == 1
	})

	h.mu.Lock()
	if len(h.bad) > 0 {
		t.Errorf("messages that are not Sparkplug B payloads: %v", h.bad)
	}
	h.mu.Unlock()
	// the sequence numbers, from each NBIRTH on; the NDEATHs have none
	var last uint64
	for _, m := range h.all() {
		switch kind := strings.Split(m.topic, "/")[2]; {
		case kind == "NDEATH":
			if m.p.Seq != nil || m.qos != 1 {
				t.Errorf("%s: seq %v qos %d; want no seq, QoS 1", m.topic, m.p.Seq, m.qos)
			}
		case kind == "NBIRTH":
			if m.p.GetSeq() != 0 {
				t.Errorf("NBIRTH with seq %d", m.p.GetSeq())
			}
			last = 0
		case m.p.Seq == nil || m.p.GetSeq() != (last+1)%256:
			t.Errorf("%s: seq %v after %d", m.topic, m.p.Seq, last)
			last = m.p.GetSeq()
		default:
			last = m.p.GetSeq()
		}
	}
	ends := h.all()
	if end := ends[len(ends)-1]; end.topic != Namespace+"/plant1/NDEATH/cell1" {
		t.Errorf("the last message is %s, want the NDEATH", end.topic)
	}
}

// TestCloseWhileTheBrokerIsAway: with nothing listening at the broker's address, the edge
// node logs why it cannot connect (once, with what to check), keeps trying, and Close stops
// it at once, in the wait between two attempts.
func TestCloseWhileTheBrokerIsAway(t *testing.T) {
	var logs testenv.LogBuffer
	cfg := configs.Default()
	cfg.Agent.ID = "cell1"
	cfg.MQTT.Broker, cfg.MQTT.ClientID = fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t)), "cvedge-cell1"
	cfg.Sparkplug = configs.Sparkplug{Enabled: true, GroupID: "plant1", EdgeNodeID: "cell1", DataInterval: 50 * time.Millisecond}
	n, err := Start(&cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the log of the failed connection", 10*time.Second, func() bool {
		return logs.Count("nothing accepts connections at mqtt.broker") == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v\n%s", err, logs.String())
	}
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close again: %v", err)
	}

	// a separate broker: the hint names its key
	logs = testenv.LogBuffer{}
	cfg.Sparkplug.Broker = cfg.MQTT.Broker
	cfg.MQTT.Broker = "tcp://127.0.0.1:1"
	if n, err = Start(&cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the log of the failed connection to sparkplug.broker", 10*time.Second, func() bool {
		return logs.Count("nothing accepts connections at sparkplug.broker") == 1
	})
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v\n%s", err, logs.String())
	}
}
