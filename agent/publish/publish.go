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
package publish

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

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
	// function that takes each message. Handlers run on paho's goroutines: keep them short.
	Subscriptions map[string]func(payload []byte)
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

// poisonAfter is how many times in a row the broker may drop the connection while the same
// spooled message is the one in flight before that message is set aside.
const poisonAfter = 3

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
	// them, until the drain meets their spooled copy; poison counts them.
	poisonMu  sync.Mutex
	poisonSet map[uint64]bool
	poison    atomic.Int64
	inflight  atomic.Int64 // live messages in flight

	connMu sync.Mutex
	conn   connState

	closeMu sync.Mutex
	closed  bool
	wg      sync.WaitGroup

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
		session: newSessionStore(),
	}
	if p.stallAfter <= 0 {
		p.stallAfter = max(cfg.PublishTimeout, cfg.KeepAlive, time.Second)
	}
	opts.SetStore(p.session)
	opts.SetMaxResumePubInFlight(1) // after a reconnection, the oldest message goes first and alone
	if o.Will != nil {
		opts.SetBinaryWill(o.Will.Topic, o.Will.Payload, o.Will.QoS, o.Will.Retained)
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		p.log.Info("connected to MQTT broker", "broker", p.broker, "client_id", cfg.ClientID)
		p.connected()
		conn := p.upSince.Load()
		var toks []paho.Token
		for topic, handle := range o.Subscriptions {
			handle := handle
			toks = append(toks, c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { handle(m.Payload()) }))
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
				if want := p.echoWant.Load(); want != nil && bytes.Equal(*want, m.Payload()) {
					select {
					case p.echo <- conn:
					default:
					}
				}
			}))
		}
		for _, m := range msgs {
			c.Publish(m.Topic, m.QoS, m.Retained, m.Payload) // tracked by paho; never wait in a handler
		}
		select {
		case p.subs <- subCheck{toks: toks, conn: conn, echo: echo}:
		default:
		}
		p.poke()
	})
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
	p.client = paho.NewClient(opts)
	p.client.Connect() // with ConnectRetry the token completes only once connected; do not wait
	p.wg.Add(4)
	go p.live()
	go p.acks()
	go p.drain()
	go p.watchSubscriptions(cfg.PublishTimeout)
	return p, nil
}

// ClientOptions builds paho's options from the MQTT config: identity, persistent session,
// timeouts, reconnect backoff, credentials and TLS. Other MQTT clients of cvedge (the
// collector) use it too.
func ClientOptions(cfg configs.MQTT) (*paho.ClientOptions, error) {
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.PublishTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(2*time.Second, cfg.MaxReconnectInterval)).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetOrderMatters(false)
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username)
	}
	password := cfg.Password
	if cfg.PasswordFile != "" {
		raw, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		password = strings.TrimRight(string(raw), "\r\n")
	}
	if password != "" {
		opts.SetPassword(password)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, configs.RedactError(fmt.Errorf("mqtt.broker: %w", err)) // url.Error repeats the URL
	}
	t := cfg.TLS
	secure := map[string]bool{"ssl": true, "tls": true, "mqtts": true, "wss": true, "tcps": true}[u.Scheme]
	if secure || t.CAFile != "" || t.CertFile != "" {
		tc, err := tlsConfig(t)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	return opts, nil
}

func tlsConfig(t configs.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert_file / key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
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
		p.flights <- flight{m: m, tok: p.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload), sent: time.Now()}
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

var errInterrupted = errors.New("interrupted")

// drain delivers the spool, oldest first, with up to Window messages in flight while the
// broker answers, and one at a time after a failure until one gets through. Messages over
// MaxPayload, and those connectionLost set aside, are acknowledged without sending.
func (p *Publisher) drain() {
	defer p.wg.Done()
	if p.spool == nil {
		<-p.stop
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timer := stoppedTimer()
	pend := make([]pending, 0, p.window)
	probe, rewind := false, false
	idle := func() bool {
		select {
		case <-p.stop:
			return false
		case <-p.wake:
		case <-tick.C:
		}
		return true
	}
	for {
		limit := p.window
		if probe || p.stalled.Load() {
			limit = 1
		}
		for len(pend) < limit && !rewind && !p.down() {
			tk, rec, ok, err := p.spool.Next()
			if err != nil {
				p.log.Error("reading the spool", "err", err)
				break
			}
			if !ok {
				break
			}
			if p.isPoison(rec) { // set aside when paho gave up resending it
				if len(pend) > 0 {
					rewind = true
					break
				}
				p.ack(tk)
				continue
			}
			if p.maxPayload > 0 && len(rec.Payload) > p.maxPayload {
				if len(pend) > 0 { // set it aside once it is the oldest
					rewind = true
					break
				}
				p.putAside(rec, tk.Class, fmt.Sprintf("payload of %d bytes is over mqtt.max_payload_kb (%d KiB)", len(rec.Payload), p.maxPayload>>10))
				p.ack(tk)
				continue
			}
			pend = append(pend, pending{tk: tk, tok: p.client.Publish(rec.Topic, rec.QoS, rec.Retained, rec.Payload), sent: time.Now(), qos: rec.QoS})
		}
		if len(pend) == 0 {
			if rewind {
				rewind = false
				p.spool.Rewind()
				continue
			}
			if !idle() {
				return
			}
			continue
		}
		f := pend[0]
		alarm := p.alarm.wait()
		var err error
		if p.down() {
			err = errInterrupted
		} else {
			timer.Reset(time.Until(f.sent.Add(p.stallAfter)))
			select {
			case <-f.tok.Done():
				err = f.tok.Error()
			case <-timer.C:
				p.stall()
				err = errInterrupted
			case <-alarm:
				timer.Stop()
				continue
			case <-p.stop:
				timer.Stop()
				return
			}
			timer.Stop()
		}
		if err == nil {
			p.ack(f.tk)
			p.drained.Add(1)
			p.sent.Add(1)
			if f.qos > 0 {
				p.unstall()
			}
			pend = append(pend[:0], pend[1:]...)
			probe = false
			continue
		}
		// Everything not acknowledged is handed out again, one at a time until one gets
		// through. (A message the broker keeps closing the connection over is found by
		// connectionLost, and skipped here by isPoison.)
		pend = pend[:0]
		p.spool.Rewind()
		probe = true
		if !idle() {
			return
		}
	}
}

func (p *Publisher) ack(tk spool.Ticket) {
	if err := p.spool.Ack(tk); err != nil {
		p.log.Error("updating the spool", "err", err)
	}
}

// isPoison reports whether r was set aside as a message the broker drops the connection
// over, and forgets it: the spool's copy is then acknowledged without sending it.
func (p *Publisher) isPoison(r spool.Record) bool {
	if p.poison.Load() == 0 {
		return false
	}
	p.poisonMu.Lock()
	defer p.poisonMu.Unlock()
	k := poisonKey(r.Topic, r.Payload)
	if !p.poisonSet[k] {
		return false
	}
	delete(p.poisonSet, k)
	p.poison.Add(-1)
	return true
}

// connectionLost is called when the connection drops. When the broker closed a connection
// that lasted only a little, the oldest message paho keeps for resending (the one it sends
// first, alone, after each reconnection) counts the loss; one that reaches poisonAfter
// such losses in a row is set aside and removed from paho's session, so that it is not
// sent again and the messages behind it flow.
func (p *Publisher) connectionLost(err error) {
	up := time.Since(time.Unix(0, p.upSince.Load()))
	if up > shortConnection || !closedByBroker(err) {
		p.session.forgive()
		return
	}
	pub := p.session.countLoss()
	if pub == nil {
		return
	}
	p.poisonMu.Lock()
	if p.poisonSet == nil {
		p.poisonSet = map[uint64]bool{}
	}
	k := poisonKey(pub.TopicName, pub.Payload)
	known := p.poisonSet[k]
	if !known {
		p.poisonSet[k] = true
		p.poison.Add(1)
	}
	p.poisonMu.Unlock()
	if !known {
		p.putAside(spool.Record{Topic: pub.TopicName, QoS: pub.Qos, Retained: pub.Retain, Created: time.Now(), Payload: pub.Payload}, spool.Predictions,
			fmt.Sprintf("the broker closed the connection each of the %d times this message was sent (over its message size limit, or refused by its policy)", poisonAfter))
	}
}

// closedByBroker tells a connection the broker closed (reset, end of stream) from one that
// timed out, as a frozen broker or a bad network does.
func closedByBroker(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF"))
}

// shortConnection is how long a connection may last and still count as closed over the
// message paho sent first on it.
const shortConnection = 10 * time.Second

func poisonKey(topic string, payload []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum64()
}

// sessionStore is paho's in-memory session store, which keeps the messages in flight to
// send them again after a reconnection. It hands them back oldest first (paho's own store
// has no order), so that with one message at a time in flight while resuming, the first
// message after a reconnection is the oldest one not acknowledged. It counts the losses of
// that message.
type sessionStore struct {
	*paho.MemoryStore
	mu    sync.Mutex
	seq   uint64
	order map[string]stored
	// first and losses: the oldest message at the last loss, and the losses in a row it
	// was the oldest at.
	first  *packets.PublishPacket
	losses int
}

type stored struct {
	pub *packets.PublishPacket
	seq uint64
}

func newSessionStore() *sessionStore {
	return &sessionStore{MemoryStore: paho.NewMemoryStore(), order: map[string]stored{}}
}

func (s *sessionStore) Put(key string, m packets.ControlPacket) {
	s.MemoryStore.Put(key, m)
	pub, ok := m.(*packets.PublishPacket)
	if !ok || !strings.HasPrefix(key, "o.") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.order[key]; !ok || st.pub != pub {
		s.seq++
		s.order[key] = stored{pub, s.seq}
	}
}

func (s *sessionStore) Del(key string) {
	s.MemoryStore.Del(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.order, key)
}

func (s *sessionStore) Reset() {
	s.MemoryStore.Reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.order)
}

// All returns the keys, outgoing messages oldest first after the rest.
func (s *sessionStore) All() []string {
	keys := s.MemoryStore.All()
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.SliceStable(keys, func(i, j int) bool { return s.order[keys[i]].seq < s.order[keys[j]].seq })
	return keys
}

// countLoss counts a loss against the oldest outgoing message kept; once it has been the
// oldest at poisonAfter losses in a row, it is removed and returned.
func (s *sessionStore) countLoss() *packets.PublishPacket {
	s.mu.Lock()
	var key string
	var oldest stored
	for k, st := range s.order {
		if oldest.pub == nil || st.seq < oldest.seq {
			key, oldest = k, st
		}
	}
	if oldest.pub == nil {
		s.first, s.losses = nil, 0
		s.mu.Unlock()
		return nil
	}
	if oldest.pub != s.first {
		s.first, s.losses = oldest.pub, 0
	}
	s.losses++
	poison := s.losses >= poisonAfter
	if poison {
		s.first, s.losses = nil, 0
	}
	var copies []string // the same message sent again from the spool
	for k, st := range s.order {
		if poison && st.pub.TopicName == oldest.pub.TopicName && bytes.Equal(st.pub.Payload, oldest.pub.Payload) {
			copies = append(copies, k)
		}
	}
	s.mu.Unlock()
	if !poison {
		return nil
	}
	for _, k := range append(copies, key) {
		s.Del(k)
	}
	return oldest.pub
}

// forgive clears the count after a connection that lasted, or one that was not closed by
// the broker.
func (s *sessionStore) forgive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.first, s.losses = nil, 0
}

// subCheck is what one connection asked of the broker: its subscriptions, and the topic its
// own message should come back on.
type subCheck struct {
	toks []paho.Token
	conn int64
	echo string
}

// echoWait is how long the publisher waits for its own message to come back.
const echoWait = 10 * time.Second

// watchSubscriptions checks the broker's answers to each connection's subscriptions, and
// that the connection's own message comes back, and reports a refusal (the broker's access
// rules), since commands would never arrive and messages could be dropped.
func (p *Publisher) watchSubscriptions(timeout time.Duration) {
	defer p.wg.Done()
	timer := stoppedTimer()
	wait := func(d time.Duration, ch <-chan struct{}) bool {
		timer.Reset(d)
		defer timer.Stop()
		select {
		case <-p.stop:
			return false
		case <-timer.C:
			return false
		case <-ch:
			return true
		}
	}
	for {
		var sc subCheck
		select {
		case <-p.stop:
			return
		case sc = <-p.subs:
		}
		for _, t := range sc.toks {
			if !wait(timeout, t.Done()) {
				continue
			}
			st, ok := t.(*paho.SubscribeToken)
			if t.Error() != nil || !ok {
				continue
			}
			for topic, code := range st.Result() {
				if code == 0x80 {
					p.failed("subscription refused", fmt.Errorf("the broker refused the subscription to %s, so commands and feedback on it will not arrive: allow this client to read it in the broker's access rules (ACL)", topic))
				}
			}
		}
		if sc.echo == "" {
			continue
		}
		timer.Reset(echoWait)
		select {
		case <-p.stop:
			timer.Stop()
			return
		case c := <-p.echo:
			timer.Stop()
			if c != sc.conn {
				continue
			}
		case <-timer.C:
			if p.client.IsConnectionOpen() && p.upSince.Load() == sc.conn {
				p.failed("access refused", fmt.Errorf("the broker took this agent's message on %s but did not deliver it back within %s: its access rules (ACL) do not let this client publish or subscribe under its topic prefix, so messages may be dropped and commands will not arrive", sc.echo, echoWait))
			}
		}
	}
}

// connected clears the connection failure and the stall.
func (p *Publisher) connected() {
	p.upSince.Store(time.Now().UnixNano())
	p.stalled.Store(false)
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn.reason != "" && p.conn.attempts > 1 {
		p.log.Info("connected after failed attempts", "broker", p.broker, "attempts", p.conn.attempts, "since", p.conn.since.Format(time.RFC3339))
	}
	p.conn = connState{}
}

// failed records why a connection attempt failed or the connection was lost. Each kind of
// failure is logged once, with what to fix, and again only every five minutes while it
// goes on (attempts alternating between two kinds log each once).
func (p *Publisher) failed(what string, err error) {
	if err == nil {
		return
	}
	hint, detail := Explain(err), configs.Redact(err.Error())
	key, reason := what+": "+hint, what+": "+hint+" ("+detail+")"
	if hint == "" {
		key, reason = what+": "+detail, what+": "+detail
	}
	now := time.Now()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn.reason == "" {
		p.conn.since = now
	}
	p.conn.reason = reason
	p.conn.attempts++
	if p.conn.logged == nil {
		p.conn.logged = map[string]time.Time{}
	}
	last, seen := p.conn.logged[key]
	if what == "connection lost" || (seen && now.Sub(last) < 5*time.Minute) || len(p.conn.logged) > 64 {
		return // a loss is logged by its handler
	}
	p.conn.logged[key] = now
	if !seen {
		p.log.Error("MQTT broker: "+what, "broker", p.broker, "reason", reason)
		return
	}
	p.log.Error("MQTT broker: still "+what, "broker", p.broker, "reason", reason, "attempts", p.conn.attempts,
		"since", p.conn.since.Format(time.RFC3339))
}

// Explain says what a connection error means and what to check; "" when it has no
// explanation beyond its own text.
func Explain(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var netErr net.Error
	msg := err.Error()
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return "the broker refused this client's credentials: check mqtt.username and mqtt.password (or mqtt.password_file), and that the broker knows this user"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker rejected the client id: check mqtt.client_id"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return "the broker says it is unavailable: check the broker"
	case errors.As(err, &unknownCA):
		return "the broker's certificate is signed by an authority this agent does not trust: set mqtt.tls.ca_file to the CA that signed it"
	case errors.As(err, &hostErr):
		return "the broker's certificate is not for the host name in mqtt.broker: use a name it lists, or set mqtt.tls.server_name"
	case errors.As(err, &invalid):
		return "the broker's certificate is not valid (expired, or not for a server): renew it"
	case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "certificate required"),
		strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "certificate unknown"), strings.Contains(msg, "expired certificate"):
		return "the broker rejected this agent's client certificate: check mqtt.tls.cert_file and mqtt.tls.key_file, and that the broker trusts their CA"
	case errors.As(err, &dnsErr):
		return "the broker's host name does not resolve: check mqtt.broker and DNS"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "the broker closed the connection while it was being set up: it may refuse this client (with TLS, its client certificate: mqtt.tls.cert_file), or accept no more connections"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing accepts connections at mqtt.broker: is the broker running, and are the host and port right?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the broker: check mqtt.broker and the network"
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return "the broker does not answer in time: check mqtt.broker, the network and firewalls"
	}
	return ""
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

// Close delivers what is queued in memory until ctx ends, then spools the rest; it publishes
// last (such as a retained "offline" status), disconnects and stops its goroutines. The
// spool stays open: it belongs to the caller.
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
	close(p.stop)
	p.wg.Wait()
	close(done)
	var err error
	if p.client.IsConnectionOpen() && !p.hurry.Load() {
		wait := stoppedTimer()
		for _, m := range last {
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
