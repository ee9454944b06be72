package publish

import (
	"io"
	"log/slog"
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
// acknowledged, not handled twice. The same command sent again by its sender (not flagged) is
// handled again, and so is a flagged message never handled before.
func TestRedeliveryHandledOnce(t *testing.T) {
	var handled []string
	done := make(chan struct{}, 10)
	p := &Publisher{log: slog.New(slog.NewTextHandler(io.Discard, nil)), quiet: make(chan struct{}), busyLog: every{period: logEvery}}
	in := newInbox("t/commands", func(b []byte) { handled = append(handled, string(b)); done <- struct{}{} })
	p.serving.Add(1)
	go p.serve(in)
	defer func() { p.StopHandling(); p.serving.Wait() }()
	var acks atomic.Int32
	send := func(payload string, dup bool) {
		p.take(in, message{topic: "t/commands", payload: []byte(payload), qos: 1, dup: dup, acks: &acks})
	}
	send(`{"id":"c1"}`, false)
	send(`{"id":"c1"}`, true)  // the broker's redelivery
	send(`{"id":"c1"}`, false) // the sender's second send
	send(`{"id":"c2"}`, true)  // redelivered, never handled here
	deadline := time.Now().Add(5 * time.Second)
	for acks.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if acks.Load() != 4 {
		t.Fatalf("%d of 4 messages acknowledged", acks.Load())
	}
	for range 3 {
		<-done
	}
	if got := len(handled); got != 3 || handled[0] != `{"id":"c1"}` || handled[1] != `{"id":"c1"}` || handled[2] != `{"id":"c2"}` {
		t.Fatalf("handled %q; want c1, c1 (sent again), c2", handled)
	}
}

// TestRecent: the set holds the last n keys added.
func TestRecent(t *testing.T) {
	r := newRecent(3)
	for k := uint64(1); k <= 5; k++ {
		r.add(k)
	}
	for k, want := range map[uint64]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
		if r.has(k) != want {
			t.Errorf("has(%d) = %v, want %v", k, !want, want)
		}
	}
	r.add(5)
	r.add(5)
	if !r.has(5) || r.has(3) || r.has(4) {
		t.Error("a key added again: the older keys leave first")
	}
}
