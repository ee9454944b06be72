package publish

import (
	"context"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// InboxSize is how many messages of one subscription wait for its handler. One more goes to
// Options.Busy. A waiting message is not acknowledged yet, and a broker sends a client only
// so many unacknowledged messages in all (mosquitto: 20): with a handler held up, its
// topic's messages must leave room in that window for the other topics'.
const InboxSize = 8

// inbox is one subscription's queue. paho's handler (take) puts each message in it, never
// waiting; one goroutine (serve) hands them to the subscription's handler in the order they
// came, and acknowledges each once handled. So:
//   - a slow handler (a correction waiting on a hung disk) holds up only its own topic, and
//     a flood holds at most InboxSize messages and one goroutine, whatever its QoS;
//   - commands are taken in the order they were sent;
//   - a message not handled when the agent stops is not acknowledged, and the broker hands
//     it over again from the persistent session on the next connection.
type inbox struct {
	topic  string
	handle func([]byte)
	msgs   chan paho.Message
	// started is when the handler began the message it handles (Unix ns), 0 while idle.
	started atomic.Int64
	// handled remembers the last QoS 1 messages handled, so that one the broker sends again
	// (flagged as a duplicate) because a lost connection took its acknowledgement is not
	// handled twice. Only serve touches it.
	handled recent
}

// busyAnswers is how many refused messages wait for Options.Busy; beyond, they go
// unanswered. A payload over maxBusyPayload is not kept for it (Busy gets nil): the agent
// reads no id from a message that large anyway.
const (
	busyAnswers    = 256
	maxBusyPayload = 64 << 10
)

// busyAnswer is a message refused as busy, waiting for Options.Busy.
type busyAnswer struct {
	topic   string
	payload []byte
}

// routeSubscriptions makes each subscription's inbox and gives paho its handler before the
// first connection. The broker hands over what the persistent session kept (commands sent
// while the agent was away) the moment it accepts the connection, before onConnect has
// subscribed again: a message with no handler yet would be neither handled nor
// acknowledged, and would hold back the rest until a later reconnection. Messages on no
// subscribed topic (an old subscription the session still has, from another topic prefix)
// are acknowledged and dropped, so that they do not fill the broker's in-flight window.
func (p *Publisher) routeSubscriptions(o Options) {
	p.inboxes = map[string]*inbox{}
	p.busy = o.Busy
	p.quiet = make(chan struct{})
	p.busyQ = make(chan busyAnswer, busyAnswers)
	for topic, handle := range o.Subscriptions {
		in := newInbox(topic, handle)
		p.inboxes[topic] = in
		p.serving.Add(1)
		go p.serve(in)
	}
	if p.busy != nil {
		p.wg.Add(1)
		go p.answerBusy()
	}
	if p.hub != nil {
		if len(p.inboxes) > 0 {
			p.client.AddRoute(p.hub.deviceBound(), p.onDeviceBound)
		}
		return
	}
	for topic, in := range p.inboxes {
		p.client.AddRoute(topic, func(_ paho.Client, m paho.Message) { p.take(in, m) })
	}
}

func newInbox(topic string, handle func([]byte)) *inbox {
	return &inbox{topic: topic, handle: handle, msgs: make(chan paho.Message, InboxSize), handled: newRecent(256)}
}

// subscribed returns the topics onConnect subscribes to: those routeSubscriptions routed.
func (p *Publisher) subscribed() []string {
	if p.hub != nil {
		if len(p.inboxes) > 0 {
			return []string{p.hub.deviceBound()}
		}
		return nil
	}
	return slices.Sorted(maps.Keys(p.inboxes))
}

// StopHandling stops taking messages: from now on they are left unacknowledged, for the
// broker to hand over again on the next connection. The agent calls it as it begins to
// stop, so that a command arriving during the shutdown waits for the next run rather than
// being refused or half done. Close calls it too.
func (p *Publisher) StopHandling() {
	p.quietOnce.Do(func() { close(p.quiet) })
}

func (p *Publisher) quieted() bool {
	select {
	case <-p.quiet:
		return true
	default:
		return false
	}
}

// stuckAfter is how long a handler may take over one message and still count as keeping
// up: behind it, a message that finds the inbox full waits up to stuckAfter for room (a
// burst); behind a handler held up longer, it is refused at once.
const stuckAfter = 250 * time.Millisecond

// take is paho's handler of a subscription's messages: it queues m for the inbox's
// goroutine. When InboxSize messages wait already, and the handler is held up (or does not
// make room within stuckAfter), m is acknowledged and goes to Options.Busy instead, so the
// sender gets an answer.
func (p *Publisher) take(in *inbox, m paho.Message) {
	if p.quieted() {
		return
	}
	select {
	case in.msgs <- m:
		return
	default:
	}
	if since := in.started.Load(); since == 0 || time.Since(time.Unix(0, since)) < stuckAfter {
		// a burst behind a handler that keeps up: wait for room, a little
		t := time.NewTimer(stuckAfter)
		select {
		case in.msgs <- m:
			t.Stop()
			return
		case <-t.C:
		}
	}
	n := p.refused.Add(1)
	if p.busyLog.due(time.Now()) {
		p.log.Warn("messages come faster than they are handled; each one over the queue is refused with a busy answer",
			"topic", in.topic, "queue", InboxSize, "refused_so_far", n)
	}
	if p.busy != nil {
		b := busyAnswer{in.topic, m.Payload()}
		if len(b.payload) > maxBusyPayload {
			b.payload = nil
		}
		select { // answered from another goroutine: the answer may wait on the spool's disk
		case p.busyQ <- b:
		default: // answers are behind too: this one goes unanswered (counted, logged above)
		}
	}
	m.Ack()
}

// serve hands in's messages to its handler, one at a time, until handling stops.
func (p *Publisher) serve(in *inbox) {
	defer p.serving.Done()
	for {
		select {
		case <-p.quiet:
			return
		case m := <-in.msgs:
			if p.quieted() {
				return
			}
			key := in.handled.key(m.Payload())
			if m.Duplicate() && in.handled.has(key) {
				m.Ack()
				continue
			}
			in.started.Store(time.Now().UnixNano())
			in.handle(m.Payload())
			in.started.Store(0)
			m.Ack()
			if m.Qos() > 0 {
				in.handled.add(key)
			}
		}
	}
}

// answerBusy hands the busy messages to Options.Busy until the publisher closes.
func (p *Publisher) answerBusy() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case b := <-p.busyQ:
			p.busy(b.topic, b.payload)
		}
	}
}

// handlerWait bounds how long Close waits for a handler to end the message it handles.
const handlerWait = 2 * time.Second

// waitHandlers waits until the handlers end the messages they are handling, or ctx ends:
// one stuck on a hung disk must not hold up the shutdown.
func (p *Publisher) waitHandlers(ctx context.Context) {
	done := make(chan struct{})
	go func() { // ends with the last handler
		p.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.log.Warn("stopping while a command or correction is still being handled; not waiting for it")
	}
}

// unrouted is paho's handler of a message on no subscribed topic: acknowledged and dropped.
func (p *Publisher) unrouted(_ paho.Client, m paho.Message) {
	m.Ack()
	if p.strayLog.due(time.Now()) {
		p.log.Info("message on a topic this agent does not subscribe to ignored: its persistent session at the broker still has an old subscription (another topic prefix?)",
			"topic", clipped(m.Topic()))
	}
}

// recent is a set of the last n keys added.
type recent struct {
	seed maphash.Seed
	ring []uint64
	set  map[uint64]int
	next int
}

func newRecent(n int) recent {
	return recent{seed: maphash.MakeSeed(), ring: make([]uint64, n), set: map[uint64]int{}}
}

func (r *recent) key(b []byte) uint64 { return maphash.Bytes(r.seed, b) }

func (r *recent) has(k uint64) bool { return r.set[k] > 0 }

func (r *recent) add(k uint64) {
	if old := r.ring[r.next]; r.set[old] > 0 {
		if r.set[old]--; r.set[old] == 0 {
			delete(r.set, old)
		}
	}
	r.ring[r.next] = k
	r.set[k]++
	r.next = (r.next + 1) % len(r.ring)
}

// logEvery is how often a flood of busy or stray messages is logged.
const logEvery = 10 * time.Second

// every lets something happen at most once per period (a log line in a flood).
type every struct {
	mu     sync.Mutex
	period time.Duration
	last   time.Time
}

func (e *every) due(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && now.Sub(e.last) < e.period {
		return false
	}
	e.last = now
	return true
}
