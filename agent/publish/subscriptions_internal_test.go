package publish

import (
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// message is a paho.Message for tests, counting its acknowledgements.
type message struct {
	topic   string
	payload []byte
	qos     byte
	dup     bool
	acks    *atomic.Int32
}

func (m message) Duplicate() bool   { return m.dup }
func (m message) Qos() byte         { return m.qos }
func (m message) Retained() bool    { return false }
func (m message) Topic() string     { return m.topic }
func (m message) MessageID() uint16 { return 1 }
func (m message) Payload() []byte   { return m.payload }
func (m message) Ack()              { m.acks.Add(1) }

// TestRedeliveryHandledOnce: a QoS 1 message handled while the connection dropped lost its
// acknowledgement with it, and the broker sends it again, flagged as a duplicate. It is
// acknowledged, not handled twice; so is a duplicate of one still waiting in the inbox. The
// same command sent again by its sender (not flagged) is handled again, and so is a flagged
// message never handled before, or one handled long before the connection was lost.
func TestRedeliveryHandledOnce(t *testing.T) {
	var handled []string
	done := make(chan struct{}, 10)
	hold := make(chan struct{})
	p := &Publisher{log: slog.New(slog.NewTextHandler(io.Discard, nil)), quiet: make(chan struct{}), lossWindow: time.Hour, session: newSessionStore()}
	in := newInbox("t/commands", func(b []byte) {
		if string(b) == "hold" {
			<-hold
		}
		handled = append(handled, string(b))
		done <- struct{}{}
	})
	p.serving.Add(1)
	go p.serve(in)
	defer func() { p.StopHandling(); p.serving.Wait() }()
	var acks atomic.Int32
	send := func(payload string, dup bool) {
		p.take(in, message{topic: "t/commands", payload: []byte(payload), qos: 1, dup: dup, acks: &acks})
	}
	waitAcks := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for acks.Load() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if acks.Load() != n {
			t.Fatalf("%d of %d messages acknowledged", acks.Load(), n)
		}
	}
	send("c1", false)
	waitAcks(1)
	p.connectionLost(nil) // c1's acknowledgement may be lost with it
	send("c1", true)      // the broker's redelivery: acknowledged, not handled
	send("c1", false)     // the sender's second send: handled
	send("c2", true)      // redelivered, never handled here: handled
	waitAcks(4)
	send("hold", false)
	send("c3", false)
	send("c3", true) // redelivered while its first copy waits: acknowledged with it
	time.Sleep(50 * time.Millisecond)
	if acks.Load() != 4 {
		close(hold)
		t.Fatalf("%d acknowledgements while c3 waits, want 4: its duplicate waits for it", acks.Load())
	}
	close(hold)
	waitAcks(7)
	p.lossWindow = 0
	p.connectionLost(nil) // long after c1 was handled: its acknowledgement reached the broker
	send("c1", true)
	waitAcks(8)
	for range 6 {
		<-done
	}
	if got := strings.Join(handled, " "); got != "c1 c1 c2 hold c3 c1" {
		t.Fatalf("handled %q; want c1, c1 (sent again), c2, hold, c3, c1 (from long before the loss)", got)
	}
}

// TestDuplicateOfUnhandledCopyLeftForNextRun: the agent stops before it handles a message
// whose duplicate came meanwhile. Neither is acknowledged, so the broker sends it again on
// the next run.
func TestDuplicateOfUnhandledCopyLeftForNextRun(t *testing.T) {
	hold, entered := make(chan struct{}), make(chan struct{}, 1)
	p := &Publisher{log: slog.New(slog.NewTextHandler(io.Discard, nil)), quiet: make(chan struct{}), lossWindow: time.Hour, session: newSessionStore()}
	in := newInbox("t/commands", func(b []byte) {
		if string(b) == "hold" {
			entered <- struct{}{}
			<-hold
		}
	})
	p.serving.Add(1)
	go p.serve(in)
	var acks atomic.Int32
	send := func(payload string, dup bool) {
		p.take(in, message{topic: "t/commands", payload: []byte(payload), qos: 1, dup: dup, acks: &acks})
	}
	send("hold", false)
	<-entered
	send("c4", false)
	send("c4", true)
	p.StopHandling()
	close(hold)
	p.serving.Wait()
	if n := acks.Load(); n != 1 {
		t.Fatalf("%d acknowledgements; want 1 (hold): c4 and its duplicate must stay unacknowledged", n)
	}
}

// TestRecent: it keeps the last n keys added.
func TestRecent(t *testing.T) {
	r := newRecent(3)
	for k := uint64(1); k <= 5; k++ {
		r.add(k, time.Duration(k))
	}
	for k, want := range map[uint64]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
		if v, ok := r.get(k); ok != want || (ok && v != time.Duration(k)) {
			t.Errorf("get(%d) = %v, %v; want %v", k, v, ok, want)
		}
	}
	r.add(5, 7)
	r.add(5, 8)
	if v, ok := r.get(5); !ok || v != 8 {
		t.Errorf("get(5) = %v, %v: want the last value", v, ok)
	}
	if _, ok := r.get(3); ok {
		t.Error("a key added again: the older keys leave first")
	}
	if _, ok := r.get(4); ok {
		t.Error("a key added again: the older keys leave first")
	}
}
