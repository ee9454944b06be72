package publish

import (
	"maps"
	"slices"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// InboxSize is how many messages of one subscription wait for its handler. One more goes to
// Options.Busy.
const InboxSize = 64

// inbox is one subscription's queue. paho's handler (take) puts each message in it, never
// waiting; one goroutine (serve) hands them to the subscription's handler in the order they
// came, and acknowledges each once handled. So:
//   - a slow handler (a correction waiting on a hung disk) holds up only its own topic, and
//     a flood holds at most InboxSize messages and one goroutine, whatever its QoS;
//   - commands run in the order they were sent (activate, then rollback);
//   - a message not handled when the agent stops is not acknowledged, and the broker hands
//     it over again from the persistent session on the next connection.
type inbox struct {
	topic  string
	handle func([]byte)
	msgs   chan paho.Message
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
	for topic, handle := range o.Subscriptions {
		in := &inbox{topic: topic, handle: handle, msgs: make(chan paho.Message, InboxSize)}
		p.inboxes[topic] = in
		p.wg.Add(1)
		go p.serve(in)
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

// take queues m for its inbox's goroutine. When InboxSize messages wait already, m goes to
// Options.Busy instead (the sender gets an answer) and is acknowledged.
func (p *Publisher) take(in *inbox, m paho.Message) {
	select {
	case in.msgs <- m:
		return
	case <-p.stop: // stopping: not acknowledged, the broker sends it again next time
		return
	default:
	}
	n := p.refused.Add(1)
	if p.busyLog.due(time.Now()) {
		p.log.Warn("messages come faster than they are handled; each one over the queue is refused with a busy answer",
			"topic", in.topic, "queue", InboxSize, "refused_so_far", n)
	}
	if p.busy != nil {
		p.busy(in.topic, m.Payload())
	}
	m.Ack()
}

// serve hands in's messages to its handler, one at a time, until the publisher closes.
func (p *Publisher) serve(in *inbox) {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case m := <-in.msgs:
			in.handle(m.Payload())
			m.Ack()
		}
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
