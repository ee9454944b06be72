package testenv

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Inbox is the tests' MQTT client, in the place of a plant dashboard: it keeps every message
// it receives, by topic, and sends commands.
type Inbox struct {
	C    paho.Client
	mu   sync.Mutex
	msgs map[string][][]byte
}

func newInbox() *Inbox { return &Inbox{msgs: map[string][][]byte{}} }

func (in *Inbox) keep(_ paho.Client, m paho.Message) {
	in.mu.Lock()
	in.msgs[m.Topic()] = append(in.msgs[m.Topic()], append([]byte(nil), m.Payload()...))
	in.mu.Unlock()
}

// Subscribe connects a client with a clean session, subscribed to topic at QoS 1.
func Subscribe(tb testing.TB, brokerURL, topic string) *Inbox {
	tb.Helper()
	in := newInbox()
	in.C = paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())))
	if tok := in.C.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := in.C.Subscribe(topic, 1, in.keep); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe: %v", tok.Error())
	}
	tb.Cleanup(func() { in.C.Disconnect(100) })
	return in
}

// Dashboard connects a client with a persistent session that reconnects and resubscribes to
// topic by itself, as a plant dashboard would, so that it misses nothing across broker
// restarts.
func Dashboard(tb testing.TB, brokerURL, topic string) *Inbox {
	tb.Helper()
	in := newInbox()
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("test-dashboard-%d", time.Now().UnixNano())).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetMaxReconnectInterval(time.Second).
		SetConnectRetryInterval(500 * time.Millisecond).SetDefaultPublishHandler(in.keep)
	opts.SetOnConnectHandler(func(c paho.Client) { c.Subscribe(topic, 1, in.keep) })
	in.C = paho.NewClient(opts)
	if tok := in.C.Connect(); !tok.WaitTimeout(10 * time.Second) {
		tb.Fatal("dashboard did not connect")
	}
	for deadline := time.Now().Add(5 * time.Second); !in.C.IsConnectionOpen() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the subscription is made in the connect handler
	tb.Cleanup(func() { in.C.Disconnect(100) })
	return in
}

// Get returns the messages received on topic so far, oldest first.
func (in *Inbox) Get(topic string) [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([][]byte(nil), in.msgs[topic]...)
}

// Publish sends body on topic at QoS 1 and waits for the broker to take it.
func (in *Inbox) Publish(tb testing.TB, topic, body string) {
	tb.Helper()
	if tok := in.C.Publish(topic, 1, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		tb.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

// ValidateAll checks every message received against its schema in docs/schemas, except
// commands and feedback (what the tests sent, not what the agent said).
func (in *Inbox) ValidateAll(tb testing.TB) {
	tb.Helper()
	schemas := LoadSchemas(tb)
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for topic, msgs := range in.msgs {
		if strings.HasSuffix(topic, "/commands") || strings.HasSuffix(topic, "/feedback") {
			continue
		}
		name := SchemaForTopic(topic)
		if name == "" {
			tb.Errorf("topic %s has no schema in docs/schemas", topic)
			continue
		}
		for _, raw := range msgs {
			if err := schemas.Validate(name, raw); err != nil {
				tb.Errorf("%s: payload does not match %s.schema.json: %v\n%s", topic, name, err, raw)
			}
			n++
		}
	}
	tb.Logf("%d messages valid against their schemas", n)
}

// WaitFor polls cond every 100 ms until it holds, and fails the test after timeout, naming
// what it waited for.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
