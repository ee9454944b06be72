// Package publish sends the agent's messages to an MQTT broker with paho, and keeps them in
// the on-disk spool while the broker is unreachable, frozen or refusing them.
//
// Cameras never wait for the network: Send queues a message in memory. The live goroutine
// publishes the queue, keeping up to Window messages in flight without waiting for each
// acknowledgement, so a broker far away still takes a full line's rate; the acks goroutine
// settles them in order. A message the broker does not take (no connection, an error, or no
// acknowledgement within the stall time) goes to the spool. A broker that stops
// acknowledging (frozen, overloaded, a pulled cable with the TCP connection still open) is
// noticed within the stall time, min(mqtt.publish_timeout, mqtt.keepalive); from then on,
// and while the connection is down, every message goes to disk at once, including those in
// flight. The drain goroutine delivers the spool, oldest first, with the same window while
// the broker answers and one message at a time after a failure, until one gets through.
//
// A message larger than MaxPayload, or one the broker drops the connection over each time
// it is sent, is set aside in the dead-letter folder (counted, logged), never retried
// forever. Connection failures are logged once per reason with what to fix, and kept for
// stats and readiness. With SpoolFirst, messages with a class are written to the spool
// before they are published, so a crash at any moment loses none.
//
// All goroutines belong to the Publisher and stop in Close. Every wait on paho has a
// timeout.
//
// It is the project's MQTT transport: every connection to a broker, the agent's and cvedge
// collect's, gets its paho options and TLS from ClientOptions (connection.go); connection
// failures are explained by Explain. Files: publish.go (queue, window, acknowledgements),
// drain.go (the spool's delivery), session.go (paho's session store, messages the broker
// drops the connection over), connection.go (options, TLS, the broker's answer to the
// subscriptions, failures), subscriptions.go (each subscription's queue and goroutine),
// iothub.go (the Azure IoT Hub dialect: SAS tokens, the events topic's property bag,
// cloud-to-device messages), recorder.go (Recorder, the fake for tests).
package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/configs"
)

// Message is one MQTT publication.
type Message struct {
	Topic    string
	QoS      byte
	Retained bool
	Payload  []byte
	// Class is the spool class (spool.Predictions, spool.Samples) of a message that must
	// arrive even if the broker is away; "" for messages that are only worth sending now
	// (status, stats).
	Class string
	// Camera, when set, is passed to Options.Observe.
	Camera string
	queued time.Time
}

// Options configure a Publisher beyond the MQTT config.
type Options struct {
	// Will is published by the broker if the agent vanishes without disconnecting.
	Will *Message
	// OnConnect returns messages to publish after every (re)connection, such as the retained
	// birth status.
	OnConnect func() []Message
	// Spool keeps messages with a Class while the broker is away. nil: they are dropped.
	Spool *spool.Store
	// DeadLetter keeps messages that can never be delivered. nil: they are dropped and
	// counted.
	DeadLetter *spool.DeadLetter
	// Subscriptions are topics to subscribe to (QoS 1, again on every reconnection), with the
	// function that takes each message. Each topic's handler runs on a goroutine of its own,
	// one message at a time, in the order the broker sent them (see subscriptions.go).
	Subscriptions map[string]func(payload []byte)
	// Busy, when set, takes a message that came while InboxSize others of its topic were
	// still waiting for the handler: it is not handled, so answer the sender (a "busy"
	// result). It runs on paho's goroutine: keep it short.
	Busy func(topic string, payload []byte)
	// Echo is a topic one of the OnConnect messages goes to (the retained status). The
	// publisher subscribes to it too: when its own message does not come back, the broker's
	// access rules refuse this client writing or reading its topics (MQTT 3.1.1 brokers drop
	// such messages without a word), and that is reported.
	Echo string
	// Observe, when set, hears how long each live message took from Send to the broker's
	// acknowledgement.
	Observe func(m Message, d time.Duration)
}

// Stats are the publisher's counters.
type Stats struct {
	Connected bool
	// State is connected, stalled (connected, but the broker does not acknowledge),
	// connecting (no connection yet or since a loss) or refused (the last attempt failed:
	// LastError says why).
	State string
	// LastError is why the last connection attempt failed or the connection was lost, with
	// what to check; "" once connected.
	LastError string
	// Queued is the number of messages waiting in memory; InFlight the live messages
	// published and not yet acknowledged (also only in memory; those from the spool stay
	// on disk until acknowledged).
	Queued, InFlight int
	// Sent counts messages the broker acknowledged (QoS 1 and 2) or took (QoS 0).
	Sent uint64
	// Spooled counts messages written to the spool; Drained those delivered from it.
	Spooled, Drained uint64
	// Skipped counts messages without a class (status, stats) not sent because the broker
	// was away; they are only worth sending now.
	Skipped uint64
	// Lost counts messages with a class the spool could not take (a disk error). Spool
	// bound drops are counted by the spool's owner.
	Lost uint64
	// SetAside counts messages that could never be delivered (over the size limit, or
	// refused each time), kept in the dead-letter folder.
	SetAside uint64
}

// flight is a live message published and not yet settled.
type flight struct {
	m    Message
	tok  paho.Token
	sent time.Time
}

// pending is a spooled message published and not yet acknowledged.
type pending struct {
	tk   spool.Ticket
	tok  paho.Token
	sent time.Time
	qos  byte
}

// Publisher delivers messages to one broker.
type Publisher struct {
	client     paho.Client
	hub        *hub // the Azure IoT Hub dialect (iothub.go); nil for a plain broker
	session    *sessionStore
	broker     string // for logs, without a password
	log        *slog.Logger
	stallAfter time.Duration
	window     int
	maxPayload int
	spoolFirst bool
	spool      *spool.Store
	dead       *spool.DeadLetter
	queue      chan Message
	flights    chan flight   // live messages in flight, oldest first
	slots      chan struct{} // one per live message in flight: live blocks while the window is full
	subs       chan subCheck
	echo       chan int64 // the connection (upSince) whose echo came back
	echoWant   atomic.Pointer[[]byte]
	wake       chan struct{} // the drain goroutine has something to do
	stop       chan struct{} // closed by Close
	alarm      *signal       // fired on a stall, a connection loss and the shutdown deadline
	hurry      atomic.Bool   // shutdown deadline passed: spool instead of publishing
	stalled    atomic.Bool   // connected, but the broker stopped acknowledging
	upSince    atomic.Int64  // when the connection was made (Unix ns)
	// poisonSet holds messages set aside because the broker closed the connection over
	// them, so that the drain skips their spooled copies; poison counts those set aside.
	poisonMu  sync.Mutex
	poisonSet map[uint64]bool
	poison    atomic.Int64
	inflight  atomic.Int64 // live messages in flight

	connMu sync.Mutex
	conn   connState

	closeMu sync.Mutex
	closed  bool
	wg      sync.WaitGroup

	// inboxes are the subscriptions' queues, by topic, each served by a goroutine counted in
	// serving, until quiet closes (subscriptions.go); busy is Options.Busy, fed by busyQ;
	// refused counts the messages refused as busy.
	inboxes   map[string]*inbox
	serving   sync.WaitGroup
	quiet     chan struct{}
	quietOnce sync.Once
	busy      func(topic string, payload []byte)
	busyQ     chan busyAnswer
	refused   atomic.Uint64
	strayLog  every
	// lostAt is when the connection was last lost (mono); an acknowledgement sent from
	// lossWindow before it may not have reached the broker.
	lostAt     atomic.Int64
	lossWindow time.Duration

	sent, spooled, drained, skipped, lost, setAside atomic.Uint64
	observe                                         func(Message, time.Duration)
}

// connState is what the agent knows of the last connection failure.
type connState struct {
	reason   string
	since    time.Time
	logged   map[string]time.Time // when each kind of failure was last logged
	attempts int
}

// Connect starts a client for cfg. It returns at once; the connection is made, and remade
// after a loss, in the background with backoff. It fails only on settings that can never
// work (unreadable TLS files or password file).
func Connect(cfg configs.MQTT, o Options, log *slog.Logger) (*Publisher, error) {
	opts, err := ClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	window := max(cfg.Inflight, 1)
	p := &Publisher{
		log: log.With("component", "mqtt"), broker: configs.Redact(cfg.Broker), spool: o.Spool, dead: o.DeadLetter,
		stallAfter: min(cfg.PublishTimeout, cfg.KeepAlive), window: window, maxPayload: cfg.MaxPayloadKB << 10,
		spoolFirst: cfg.SpoolFirst && o.Spool != nil,
		queue:      make(chan Message, cfg.QueueSize), flights: make(chan flight, window), slots: make(chan struct{}, window), subs: make(chan subCheck, 4), echo: make(chan int64, 1),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), alarm: newSignal(), observe: o.Observe,
		session: newSessionStore(), strayLog: every{period: logEvery},
		lossWindow: max(2*cfg.KeepAlive, 10*time.Second),
	}
	if p.stallAfter <= 0 {
		p.stallAfter = max(cfg.PublishTimeout, cfg.KeepAlive, time.Second)
	}
	if cfg.AzureIoTHub.Enabled() {
		if p.hub, err = newHub(cfg); err != nil {
			return nil, err
		}
		p.hub.options(opts, cfg)
		p.broker = configs.Redact(opts.Servers[0].String())
		if opts.TLSConfig == nil {
			if opts.TLSConfig, err = tlsConfig(cfg.TLS); err != nil {
				return nil, err
			}
		}
		o.Echo = "" // the hub sends nothing back to the device
	}
	opts.SetStore(p.session)
	opts.SetMaxResumePubInFlight(1) // after a reconnection, the oldest message goes first and alone
	if o.Will != nil {
		w := p.wire(*o.Will)
		opts.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retained)
	}
	clientID := cfg.ClientID
	if p.hub != nil {
		clientID = p.hub.dev.DeviceID
	}
	opts.SetOnConnectHandler(func(c paho.Client) { p.onConnect(c, clientID, o) })
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		p.connectionLost(err)
		p.alarm.fire()
		p.failed("connection lost", err)
		p.log.Warn("lost the MQTT broker; spooling until it is back", "broker", p.broker, "err", configs.RedactError(err))
	})
	opts.SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
		switch n := n.(type) {
		case paho.ConnectionNotificationBrokerFailed: // a network or TLS error
			p.failed("cannot connect", n.Reason)
		case paho.ConnectionNotificationFailed: // also the broker's refusal (CONNACK)
			p.failed("cannot connect", n.Reason)
		}
	})
	// paho's handlers only queue a message (waiting at most a moment, see stuckAfter in
	// subscriptions.go), so paho may call them in order, from its one goroutine; each message
	// is acknowledged once handled
	opts.SetOrderMatters(true).SetAutoAckDisabled(true).SetDefaultPublishHandler(p.unrouted)
	p.client = paho.NewClient(opts)
	p.routeSubscriptions(o)
	p.client.Connect() // with ConnectRetry the token completes only once connected; do not wait
	p.wg.Add(4)
	if p.hub != nil {
		p.wg.Add(1)
		go p.renewToken()
	}
	go p.live()
	go p.acks()
	go p.drain()
	go p.watchSubscriptions(cfg.PublishTimeout)
	return p, nil
}

// onConnect runs on each connection: it subscribes to o's topics, publishes what
// o.OnConnect returns (subscribing to o.Echo to see its own status come back), hands the
// subscriptions to watchSubscriptions, and wakes the spool's drain.
func (p *Publisher) onConnect(c paho.Client, clientID string, o Options) {
	p.log.Info("connected to MQTT broker", "broker", p.broker, "client_id", clientID)
	p.connected()
	conn := p.upSince.Load()
	var toks []paho.Token
	for _, topic := range p.subscribed() {
		toks = append(toks, c.Subscribe(topic, 1, nil)) // routed by route
	}
	var msgs []Message
	if o.OnConnect != nil {
		msgs = o.OnConnect()
	}
	echo := ""
	for _, m := range msgs {
		if m.Topic == o.Echo {
			echo, m.Payload = o.Echo, append([]byte(nil), m.Payload...)
			p.echoWant.Store(&m.Payload)
		}
	}
	if echo != "" {
		toks = append(toks, c.Subscribe(echo, 1, func(_ paho.Client, m paho.Message) {
			defer m.Ack()
			if want := p.echoWant.Load(); want != nil && bytes.Equal(*want, m.Payload()) {
				select {
				case p.echo <- conn:
				default:
				}
			}
		}))
	}
	for _, m := range msgs {
		m = p.wire(m)
		c.Publish(m.Topic, m.QoS, m.Retained, m.Payload) // tracked by paho; never wait in a handler
	}
	select {
	case p.subs <- subCheck{toks: toks, conn: conn, echo: echo}:
	default:
	}
	p.poke()
}

// Send queues m. It never blocks on the network: when the memory queue is full, a message
// with a Class goes straight to the spool, and any other is dropped and counted. With
// SpoolFirst, a message with a Class is on disk before Send returns.
func (p *Publisher) Send(m Message) {
	m.queued = time.Now()
	if p.maxPayload > 0 && len(m.Payload) > p.maxPayload {
		p.putAside(spool.Record{Topic: m.Topic, QoS: m.QoS, Retained: m.Retained, Created: m.queued, Payload: m.Payload}, m.Class,
			fmt.Sprintf("payload of %d bytes is over mqtt.max_payload_kb (%d KiB)", len(m.Payload), p.maxPayload>>10))
		return
	}
	if p.spoolFirst && m.Class != "" {
		p.toSpool(m)
		return
	}
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		p.toSpool(m)
		return
	}
	select {
	case p.queue <- m:
	default:
		p.toSpool(m)
	}
}

// interrupted is true while nothing should wait on the broker: no connection, a broker that
// stopped acknowledging, or the shutdown deadline passed.
func (p *Publisher) interrupted() bool { return p.stalled.Load() || p.down() }

// down is true while nothing can be sent: no connection, or the shutdown deadline passed.
// (A stalled broker still gets the drain's probe.)
func (p *Publisher) down() bool { return p.hurry.Load() || !p.client.IsConnectionOpen() }

// live publishes the memory queue without waiting for acknowledgements; acks settles them.
// It waits for a slot while the window is full.
func (p *Publisher) live() {
	defer p.wg.Done()
	defer close(p.flights)
	for m := range p.queue {
		if p.interrupted() {
			p.toSpool(m)
			continue
		}
		p.slots <- struct{}{}
		p.inflight.Add(1)
		w := p.wire(m)
		p.flights <- flight{m: m, tok: p.client.Publish(w.Topic, w.QoS, w.Retained, w.Payload), sent: time.Now()}
	}
}

// acks settles the live messages in flight, oldest first.
func (p *Publisher) acks() {
	defer p.wg.Done()
	timer := stoppedTimer()
	for f := range p.flights {
		p.settle(f, timer)
		p.inflight.Add(-1)
		<-p.slots
	}
}

// settle waits for f's acknowledgement until the stall time; a message not acknowledged
// goes to the spool. While the broker is interrupted it does not wait at all.
func (p *Publisher) settle(f flight, timer *time.Timer) {
	for {
		alarm := p.alarm.wait()
		if p.interrupted() {
			if done(f.tok) && f.tok.Error() == nil {
				p.delivered(f.m)
				return
			}
			p.toSpool(f.m)
			return
		}
		timer.Reset(time.Until(f.sent.Add(p.stallAfter)))
		select {
		case <-f.tok.Done():
			timer.Stop()
			if err := f.tok.Error(); err != nil {
				p.log.Debug("publish failed; spooling", "topic", f.m.Topic, "err", err)
				p.toSpool(f.m)
				return
			}
			p.delivered(f.m)
			return
		case <-timer.C:
			p.stall()
			p.toSpool(f.m)
			return
		case <-alarm:
			timer.Stop()
		}
	}
}

func done(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

func (p *Publisher) delivered(m Message) {
	p.sent.Add(1)
	if m.QoS > 0 { // a QoS 0 token completes once written, answered or not
		p.unstall()
	}
	if p.observe != nil {
		p.observe(m, time.Since(m.queued))
	}
}

// stall marks the broker as not acknowledging: until it does again, nothing waits on it.
func (p *Publisher) stall() {
	if p.stalled.CompareAndSwap(false, true) {
		p.log.Warn("the MQTT broker does not acknowledge (frozen, overloaded or cut off): every message goes to the spool until it answers",
			"broker", p.broker, "waited", p.stallAfter)
		p.alarm.fire()
	}
}

func (p *Publisher) unstall() {
	if p.stalled.CompareAndSwap(true, false) {
		p.log.Info("the MQTT broker acknowledges again", "broker", p.broker)
	}
}

// toSpool keeps m on disk, or drops it when it has no class or there is no spool.
func (p *Publisher) toSpool(m Message) {
	if m.Class == "" || p.spool == nil {
		p.skipped.Add(1)
		return
	}
	err := p.spool.Append(m.Class, spool.Record{Topic: m.Topic, QoS: m.QoS, Retained: m.Retained, Created: time.Now(), Payload: m.Payload})
	if err != nil {
		n := p.lost.Add(1)
		if n == 1 || n%100 == 0 {
			p.log.Error("message lost: the spool could not take it", "topic", m.Topic, "err", err, "lost_total", n)
		}
		return
	}
	p.spooled.Add(1)
	p.poke()
}

// putAside keeps a message that can never be delivered in the dead-letter folder.
func (p *Publisher) putAside(r spool.Record, class, reason string) {
	n := p.setAside.Add(1)
	file := ""
	var err error
	if class != "" && p.dead != nil {
		file, err = p.dead.Put(r, reason)
	}
	if n == 1 || n%100 == 0 || err != nil {
		p.log.Error("message set aside: it cannot be delivered", "topic", r.Topic, "bytes", len(r.Payload), "reason", reason,
			"file", file, "err", err, "set_aside_total", n)
	}
}

func (p *Publisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// stoppedTimer returns a timer for a goroutine to reset.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	st := Stats{Connected: p.client.IsConnectionOpen(), Queued: len(p.queue), InFlight: int(p.inflight.Load()), Sent: p.sent.Load(),
		Spooled: p.spooled.Load(), Drained: p.drained.Load(), Skipped: p.skipped.Load(), Lost: p.lost.Load(), SetAside: p.setAside.Load()}
	p.connMu.Lock()
	reason := p.conn.reason
	p.connMu.Unlock()
	switch {
	case st.Connected && p.stalled.Load():
		st.State, st.LastError = "stalled", fmt.Sprintf("the broker has not acknowledged a message for %s", p.stallAfter)
	case st.Connected:
		st.State = "connected"
		if strings.HasPrefix(reason, "subscription refused") || strings.HasPrefix(reason, "access refused") {
			st.LastError = reason
		}
	case reason != "" && !strings.HasPrefix(reason, "connection lost"):
		st.State, st.LastError = "refused", reason
	default:
		st.State, st.LastError = "connecting", reason
	}
	return st
}

// Connected reports whether the broker is connected now.
func (p *Publisher) Connected() bool { return p.client.IsConnectionOpen() }

// Close stops handling the subscriptions' messages (waiting up to handlerWait for a handler
// to end the one it handles), delivers what is queued in memory until ctx ends, then spools
// the rest; it publishes last (such as a retained "offline" status), disconnects and stops
// its goroutines. The spool stays open: it belongs to the caller.
func (p *Publisher) Close(ctx context.Context, last ...Message) error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	close(p.queue)
	p.closeMu.Unlock()

	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			p.hurry.Store(true) // out of time: the rest goes to the spool
			p.alarm.fire()
		case <-done:
		}
	}()
	p.StopHandling()
	hctx, hcancel := context.WithTimeout(ctx, handlerWait)
	p.waitHandlers(hctx)
	hcancel()
	close(p.stop)
	p.wg.Wait()
	close(done)
	var err error
	if p.client.IsConnectionOpen() && !p.hurry.Load() {
		wait := stoppedTimer()
		for _, m := range last {
			m = p.wire(m)
			t := p.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
			wait.Reset(p.stallAfter)
			select {
			case <-t.Done():
				err = errors.Join(err, t.Error())
			case <-wait.C:
				err = errors.Join(err, fmt.Errorf("no acknowledgement within %s", p.stallAfter))
			}
			wait.Stop()
		}
	}
	p.client.Disconnect(250)
	return err
}

// wire is m as it goes on the wire: unchanged for a plain broker, on the device's events
// topic for an IoT hub.
func (p *Publisher) wire(m Message) Message {
	if p.hub != nil {
		return p.hub.mapped(m)
	}
	return m
}

// signal wakes every goroutine waiting on it at once.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// wait returns a channel closed at the next fire.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}
