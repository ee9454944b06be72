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

// inbox is one subscription's queue. paho's handler (take) puts each message in it; one
// goroutine (serve) hands them to the subscription's handler in the order they came, and
// acknowledges each once handled. So:
//   - a slow handler (a correction waiting on a hung disk) holds up only its own topic, and
//     a flood holds at most InboxSize messages and one goroutine, whatever its QoS;
//   - commands are taken in the order they were sent;
//   - a message not handled when the agent stops is not acknowledged, and the broker hands
//     it over again from the persistent session on the next connection;
//   - a message the broker sends again, flagged as a duplicate, because a lost connection
//     took its acknowledgement, is not handled twice (see duplicate).
type inbox struct {
	topic  string
	handle func([]byte)
	msgs   chan keyed
	// started is when the handler began the message it handles (mono), 0 while idle.
	started atomic.Int64

	mu sync.Mutex
	// queued counts the messages waiting in msgs or being handled, by key (recent.key);
	// pending keeps the duplicates of those, to be acknowledged with them.
	queued  map[uint64]int
	pending map[uint64][]paho.Message
	// handled is when each of the last QoS 1 messages handled was acknowledged (mono).
	handled recent
	// waitFrom and waited: how long take waited for room in the second from waitFrom.
	// Only take touches them (paho's one goroutine).
	waitFrom, waited time.Duration
}

// keyed is a message with its key (recent.key of its payload).
type keyed struct {
	m   paho.Message
	key uint64
}

// epoch is the origin of mono.
var epoch = time.Now()

// mono is the time since the process started, from the monotonic clock: a clock step does
// not move it. Never 0.
func mono() time.Duration { return time.Since(epoch) + 1 }

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
	return &inbox{topic: topic, handle: handle, msgs: make(chan keyed, InboxSize), queued: map[uint64]int{}, pending: map[uint64][]paho.Message{}, handled: newRecent(256)}
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
// up: behind it, a QoS 1 message that finds the inbox full waits up to stuckAfter for room
// (a burst of commands). The waits of one inbox add up to at most waitBudget a second:
// while take waits, paho reads nothing else from the connection, the broker's
// acknowledgements included. Behind a handler held up longer, or past the budget, or at
// QoS 0 (which the broker does not bound), the message is refused at once.
const (
	stuckAfter = 250 * time.Millisecond
	waitBudget = 250 * time.Millisecond
)

// take is paho's handler of a subscription's messages: it queues m for the inbox's
// goroutine. When InboxSize messages wait already, it may wait for room (see stuckAfter);
// failing that, m is acknowledged and goes to Options.Busy, so the sender gets an answer.
func (p *Publisher) take(in *inbox, m paho.Message) {
	if p.quieted() {
		return
	}
	key := in.handled.key(m.Payload())
	if m.Duplicate() {
		switch p.duplicate(in, key, m) {
		case withCopy:
			return
		case handledBefore:
			m.Ack()
			return
		}
	}
	if in.enqueue(m, key) {
		return
	}
	if m.Qos() > 0 && in.keepsUp() && in.mayWait() {
		t := time.NewTimer(stuckAfter)
		start := mono()
		in.count(key, 1) // before serve can take it
		select {
		case in.msgs <- keyed{m, key}:
			t.Stop()
			in.waited += mono() - start
			return
		case <-p.quiet: // stopping: left for the next run
			t.Stop()
			in.count(key, -1)
			return
		case <-t.C:
			in.waited += stuckAfter
			in.count(key, -1)
		}
	}
	// the process's logger passes this warning at most every 10 s (ops.LimitedHandler)
	p.log.Warn("messages come faster than they are handled; each one over the queue is refused with a busy answer",
		"topic", in.topic, "queue", InboxSize, "refused_so_far", p.refused.Add(1))
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

// enqueue puts m in the inbox if there is room.
func (in *inbox) enqueue(m paho.Message, key uint64) bool {
	in.count(key, 1) // before serve can take it
	select {
	case in.msgs <- keyed{m, key}:
		return true
	default:
		in.count(key, -1)
		return false
	}
}

// What duplicate found of a message flagged as a duplicate.
const (
	notSeen       = iota // taken as any message
	withCopy             // kept, to be acknowledged with its copy once that is handled
	handledBefore        // handled shortly before the connection was lost: acknowledge it
)

// duplicate looks for an earlier copy of m, which the broker sent again because the
// acknowledgement may not have reached it. A copy waiting in the inbox, or being handled,
// came on the connection that was lost, so its own acknowledgement goes nowhere: m is kept
// and acknowledged once that copy is handled, or never if the agent stops first (the broker
// then sends it again on the next run). A copy handled from lossWindow before the loss on
// may have lost its acknowledgement: m is acknowledged, not handled again.
func (p *Publisher) duplicate(in *inbox, key uint64, m paho.Message) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.queued[key] > 0 {
		in.pending[key] = append(in.pending[key], m)
		return withCopy
	}
	if at, ok := in.handled.get(key); ok && at > time.Duration(p.lostAt.Load())-p.lossWindow {
		return handledBefore
	}
	return notSeen
}

// done records that a message with key was handled (in handled, when remember) and no
// longer waits; when no other copy waits, it returns the duplicates kept for it, to be
// acknowledged.
func (in *inbox) done(key uint64, remember bool) []paho.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	if remember {
		in.handled.add(key, mono())
	}
	if in.queued[key]--; in.queued[key] > 0 {
		return nil
	}
	delete(in.queued, key)
	kept := in.pending[key]
	delete(in.pending, key)
	return kept
}

func (in *inbox) count(key uint64, d int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.queued[key] += d; in.queued[key] <= 0 {
		delete(in.queued, key)
	}
}

// keepsUp reports whether the handler is idle or began its message less than stuckAfter
// ago.
func (in *inbox) keepsUp() bool {
	since := in.started.Load()
	return since == 0 || mono()-time.Duration(since) < stuckAfter
}

// mayWait reports whether take's waits of this second leave room for another.
func (in *inbox) mayWait() bool {
	if now := mono(); now-in.waitFrom > time.Second {
		in.waitFrom, in.waited = now, 0
	}
	return in.waited < waitBudget
}

// serve hands in's messages to its handler, one at a time, until handling stops.
func (p *Publisher) serve(in *inbox) {
	defer p.serving.Done()
	for {
		select {
		case <-p.quiet:
			return
		case k := <-in.msgs:
			if p.quieted() {
				return
			}
			in.started.Store(int64(mono()))
			in.handle(k.m.Payload())
			in.started.Store(0)
			k.m.Ack()
			for _, d := range in.done(k.key, k.m.Qos() > 0) {
				d.Ack()
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
			for { // those refused before the stop still get their answer
				select {
				case b := <-p.busyQ:
					p.busy(b.topic, b.payload)
				default:
					return
				}
			}
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

// recent keeps a value for each of the last n keys added.
type recent struct {
	seed maphash.Seed
	ring []uint64
	vals map[uint64]time.Duration
	refs map[uint64]int
	next int
}

func newRecent(n int) recent {
	return recent{seed: maphash.MakeSeed(), ring: make([]uint64, n), vals: map[uint64]time.Duration{}, refs: map[uint64]int{}}
}

func (r *recent) key(b []byte) uint64 { return maphash.Bytes(r.seed, b) }

func (r *recent) get(k uint64) (time.Duration, bool) {
	v, ok := r.vals[k]
	return v, ok
}

// add sets k's value, and forgets the key added n adds ago (unless added again since).
func (r *recent) add(k uint64, v time.Duration) {
	if old := r.ring[r.next]; r.refs[old] > 0 {
		if r.refs[old]--; r.refs[old] == 0 {
			delete(r.refs, old)
			delete(r.vals, old)
		}
	}
	r.ring[r.next] = k
	r.refs[k]++
	r.vals[k] = v
	r.next = (r.next + 1) % len(r.ring)
}

// logEvery is how often a flood of stray messages is logged: at Info, or with an error
// that differs from one to the next, which the process logger's limit does not catch.
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
