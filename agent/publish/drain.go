package publish

import (
	"fmt"
	"time"

	"github.com/cvedge/cvedge/agent/spool"
)

// drain delivers the spool, oldest first, with up to Window messages in flight while the
// broker answers, and one at a time after a failure until one gets through. Messages over
// MaxPayload, and those connectionLost set aside, are acknowledged without sending.
func (p *Publisher) drain() {
	defer p.wg.Done()
	if p.spool == nil {
		<-p.stop
		return
	}
	d := &drainer{p: p, tick: time.NewTicker(time.Second), timer: stoppedTimer(), pend: make([]pending, 0, p.window)}
	defer d.tick.Stop()
	for {
		d.fill()
		if len(d.pend) == 0 {
			if d.rewind {
				d.rewind = false
				p.spool.Rewind()
				continue
			}
			if !d.idle() {
				return
			}
			continue
		}
		switch d.await() {
		case stopped:
			return
		case failed:
			// Everything not acknowledged is handed out again, one at a time until one gets
			// through. (A message the broker keeps closing the connection over is found by
			// connectionLost, and skipped here by isPoison.)
			d.pend = d.pend[:0]
			p.spool.Rewind()
			d.probe = true
			if !d.idle() {
				return
			}
		}
	}
}

// drainer is the state of the drain loop: the messages in flight, oldest first, and whether
// it probes one at a time or must rewind the spool before reading on.
type drainer struct {
	p             *Publisher
	tick          *time.Ticker
	timer         *time.Timer
	pend          []pending
	probe, rewind bool
}

// The outcomes of waiting for the oldest message in flight.
const (
	delivered = iota // acknowledged: the next one is the oldest now
	again            // the broker's state changed: wait again
	failed           // not acknowledged: hand everything out again
	stopped          // the publisher closes
)

// idle waits for news (a message spooled, a reconnection) or a second; false: stop.
func (d *drainer) idle() bool {
	select {
	case <-d.p.stop:
		return false
	case <-d.p.wake:
	case <-d.tick.C:
	}
	return true
}

// fill hands messages of the spool to paho until the window (1 while probing or stalled) is
// full, the spool is empty, or a message must wait until it is the oldest.
func (d *drainer) fill() {
	p := d.p
	limit := p.window
	if d.probe || p.stalled.Load() {
		limit = 1
	}
	for len(d.pend) < limit && !d.rewind && !p.down() {
		tk, rec, ok, err := p.spool.Next()
		if err != nil {
			p.log.Error("reading the spool", "err", err)
			return
		}
		if !ok {
			return
		}
		if p.isPoison(rec) { // set aside when paho gave up resending it
			if len(d.pend) > 0 {
				d.rewind = true
				return
			}
			p.ack(tk)
			continue
		}
		if p.maxPayload > 0 && len(rec.Payload) > p.maxPayload {
			if len(d.pend) > 0 { // set it aside once it is the oldest
				d.rewind = true
				return
			}
			p.putAside(rec, tk.Class, fmt.Sprintf("payload of %d bytes is over mqtt.max_payload_kb (%d KiB)", len(rec.Payload), p.maxPayload>>10))
			p.ack(tk)
			continue
		}
		w := p.wire(Message{Topic: rec.Topic, QoS: rec.QoS, Retained: rec.Retained, Payload: rec.Payload})
		d.pend = append(d.pend, pending{tk: tk, tok: p.client.Publish(w.Topic, w.QoS, w.Retained, w.Payload), sent: time.Now(), qos: rec.QoS})
	}
}

// await waits for the broker's answer to the oldest message in flight, at most until the
// stall bound, and acknowledges it in the spool when it came.
func (d *drainer) await() int {
	p, f := d.p, d.pend[0]
	alarm := p.alarm.wait()
	if p.down() {
		return failed
	}
	d.timer.Reset(time.Until(f.sent.Add(p.stallAfter)))
	defer d.timer.Stop()
	select {
	case <-f.tok.Done():
		if f.tok.Error() != nil {
			return failed
		}
	case <-d.timer.C:
		p.stall()
		return failed
	case <-alarm:
		return again
	case <-p.stop:
		return stopped
	}
	p.ack(f.tk)
	p.drained.Add(1)
	p.sent.Add(1)
	if f.qos > 0 {
		p.unstall()
	}
	d.pend = append(d.pend[:0], d.pend[1:]...)
	d.probe = false
	return delivered
}

func (p *Publisher) ack(tk spool.Ticket) {
	if err := p.spool.Ack(tk); err != nil {
		p.log.Error("updating the spool", "err", err)
	}
}

// isPoison reports whether r was set aside as a message the broker drops the connection
// over: the spool's copy is then acknowledged without sending it. The message stays known,
// so that every copy of it (the spool can hold more than one, from several connection
// losses) is skipped, not only the first: one sent again would cost three more connections
// and be set aside a second time.
func (p *Publisher) isPoison(r spool.Record) bool {
	if p.poison.Load() == 0 {
		return false
	}
	p.poisonMu.Lock()
	defer p.poisonMu.Unlock()
	k := poisonKey(p.wire(Message{Topic: r.Topic, Retained: r.Retained, Payload: r.Payload}).Topic, r.Payload) // as paho saw it
	return p.poisonSet[k]
}
