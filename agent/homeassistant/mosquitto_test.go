package homeassistant_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/homeassistant"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// retained returns what a subscriber to homeassistant/# that connects now gets: Home Assistant
// starting after the agent. The broker sends the retained messages on subscribing, before a
// message the subscriber publishes after its subscription: once that one is back, they are
// all in.
func retained(t *testing.T, url string) map[string]paho.Message {
	t.Helper()
	var mu sync.Mutex
	got := map[string]paho.Message{}
	const mark = "homeassistant/test/mark"
	back := make(chan struct{})
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("ha-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("homeassistant/#", 1, func(_ paho.Client, m paho.Message) {
		if m.Topic() == mark {
			close(back)
			return
		}
		mu.Lock()
		got[m.Topic()] = m
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := c.Publish(mark, 1, false, "x"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish the mark: %v", tok.Error())
	}
	select {
	case <-back:
	case <-time.After(10 * time.Second):
		t.Fatal("the mark did not come back")
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

func publishAll(t *testing.T, c paho.Client, msgs []publish.Message) {
	t.Helper()
	for _, m := range msgs {
		if tok := c.Publish(m.Topic, m.QoS, m.Retained, m.Payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", m.Topic, tok.Error())
		}
	}
}

// TestRetainedOnBroker: published to a real mosquitto, the config messages are retained (Home
// Assistant starting later gets them all, flagged retained, unchanged), and the removals of a
// camera a reload took away clear its configs from the broker.
func TestRetainedOnBroker(t *testing.T) {
	b := testenv.StartMosquitto(t)
	cfg := config()
	msgs := homeassistant.Messages(cfg, status(cfg), nil)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL).SetClientID("cvedge-line3"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	publishAll(t, c, msgs)

	var want []publish.Message
	for _, m := range msgs {
		if len(m.Payload) > 0 {
			want = append(want, m)
		}
	}
	got := retained(t, b.URL)
	if len(got) != len(want) {
		t.Errorf("a late subscriber got %d config messages; want %d (empty ones leave nothing retained)", len(got), len(want))
	}
	for _, m := range want {
		r, ok := got[m.Topic]
		switch {
		case !ok:
			t.Errorf("%s: not retained", m.Topic)
		case !r.Retained():
			t.Errorf("%s: delivered without the retain flag", m.Topic)
		case string(r.Payload()) != string(m.Payload):
			t.Errorf("%s: payload changed", m.Topic)
		}
	}

	// a reload removes conveyor
	after := config()
	after.Cameras = slices.DeleteFunc(after.Cameras, func(c configs.Camera) bool { return c.Name == "conveyor" })
	publishAll(t, c, homeassistant.Messages(after, status(after), homeassistant.Cameras(cfg)))
	left := len(want) - len(homeassistant.Keys())
	got = retained(t, b.URL)
	for topic := range got {
		if strings.Contains(topic, "/conveyor_") {
			t.Errorf("%s still retained after the camera was removed", topic)
		}
	}
	if len(got) != left {
		t.Errorf("%d configs retained after the removal; want %d", len(got), left)
	}
}
