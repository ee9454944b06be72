// Package publish sends the agent's messages to an MQTT broker with paho, and keeps them in
// the on-disk spool while the broker is unreachable.
//
// Cameras never wait for the network: Send queues a message in memory. The live goroutine
// publishes the queue while the broker is there; a message it cannot deliver (no
// connection, or no acknowledgement within the publish timeout) goes to the spool. The drain
// goroutine delivers the spool, oldest first, whenever the broker is there, beside the live
// messages. Both goroutines belong to the Publisher and stop in Close. Every wait on paho has
// a timeout.
package publish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
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
	// Subscriptions are topics to subscribe to (QoS 1, again on every reconnection), with the
	// function that takes each message. Handlers run on paho's goroutines: keep them short.
	Subscriptions map[string]func(payload []byte)
	// Observe, when set, hears how long each live message took from Send to the broker's
	// acknowledgement.
	Observe func(m Message, d time.Duration)
}

// Stats are the publisher's counters.
type Stats struct {
	Connected bool
	// Queued is the number of messages waiting in memory.
	Queued int
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
}

// Publisher delivers messages to one broker.
type Publisher struct {
	client  paho.Client
	log     *slog.Logger
	timeout time.Duration
	spool   *spool.Store
	queue   chan Message
	wake    chan struct{} // the drain goroutine has something to do
	stop    chan struct{} // closed by Close
	hurry   atomic.Bool   // shutdown deadline passed: spool instead of publishing

	closeMu sync.Mutex
	closed  bool
	wg      sync.WaitGroup

	sent, spooled, drained, skipped, lost atomic.Uint64
	observe                               func(Message, time.Duration)
}

// Connect starts a client for cfg. It returns at once; the connection is made, and remade
// after a loss, in the background with backoff. It fails only on settings that can never
// work (unreadable TLS files or password file).
func Connect(cfg configs.MQTT, o Options, log *slog.Logger) (*Publisher, error) {
	opts, err := ClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		log: log.With("component", "mqtt"), timeout: cfg.PublishTimeout, spool: o.Spool,
		queue: make(chan Message, cfg.QueueSize), wake: make(chan struct{}, 1), stop: make(chan struct{}), observe: o.Observe,
	}
	if o.Will != nil {
		opts.SetBinaryWill(o.Will.Topic, o.Will.Payload, o.Will.QoS, o.Will.Retained)
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		p.log.Info("connected to MQTT broker", "broker", configs.Redact(cfg.Broker), "client_id", cfg.ClientID)
		if o.OnConnect != nil {
			for _, m := range o.OnConnect() {
				c.Publish(m.Topic, m.QoS, m.Retained, m.Payload) // tracked by paho; never wait in a handler
			}
		}
		for topic, handle := range o.Subscriptions {
			handle := handle
			c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { handle(m.Payload()) })
		}
		p.poke()
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		p.log.Warn("lost the MQTT broker; spooling until it is back", "broker", configs.Redact(cfg.Broker), "err", configs.RedactError(err))
	})
	p.client = paho.NewClient(opts)
	p.client.Connect() // with ConnectRetry the token completes only once connected; do not wait
	p.wg.Add(2)
	go p.live()
	go p.drain()
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
// with a Class goes straight to the spool, and any other is dropped and counted.
func (p *Publisher) Send(m Message) {
	m.queued = time.Now()
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

// live publishes the memory queue, spooling what the broker does not take.
func (p *Publisher) live() {
	defer p.wg.Done()
	wait := stoppedTimer()
	for m := range p.queue {
		if !p.hurry.Load() && p.client.IsConnectionOpen() {
			if err := p.publish(m, wait); err == nil {
				p.sent.Add(1)
				if p.observe != nil {
					p.observe(m, time.Since(m.queued))
				}
				continue
			} else {
				p.log.Debug("publish not confirmed; spooling", "topic", m.Topic, "err", err)
			}
		}
		p.toSpool(m)
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

func (p *Publisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// drain delivers the spool, oldest first, whenever the broker is there.
func (p *Publisher) drain() {
	defer p.wg.Done()
	if p.spool == nil {
		<-p.stop
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	wait := stoppedTimer()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-tick.C:
		}
		for p.client.IsConnectionOpen() && !p.hurry.Load() {
			tk, rec, ok, err := p.spool.Next()
			if err != nil {
				p.log.Error("reading the spool", "err", err)
				break
			}
			if !ok {
				break
			}
			if err := p.publish(Message{Topic: rec.Topic, QoS: rec.QoS, Retained: rec.Retained, Payload: rec.Payload}, wait); err != nil {
				break // try again on the next tick
			}
			if err := p.spool.Ack(tk); err != nil {
				p.log.Error("updating the spool", "err", err)
				break
			}
			p.drained.Add(1)
			p.sent.Add(1)
			select {
			case <-p.stop:
				return
			default:
			}
		}
	}
}

// publish sends m and waits for the broker's acknowledgement, up to the timeout, on wait: a
// timer that belongs to the calling goroutine (token.WaitTimeout makes one per message).
func (p *Publisher) publish(m Message, wait *time.Timer) error {
	t := p.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	wait.Reset(p.timeout)
	defer wait.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-wait.C:
		return fmt.Errorf("no acknowledgement within %s", p.timeout)
	}
}

// stoppedTimer returns a timer for publish to reset.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{Connected: p.client.IsConnectionOpen(), Queued: len(p.queue), Sent: p.sent.Load(),
		Spooled: p.spooled.Load(), Drained: p.drained.Load(), Skipped: p.skipped.Load(), Lost: p.lost.Load()}
}

// Connected reports whether the broker is connected now.
func (p *Publisher) Connected() bool { return p.client.IsConnectionOpen() }

// Close delivers what is queued in memory until ctx ends, then spools the rest; it publishes
// last (such as a retained "offline" status), disconnects and stops both goroutines. The
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
			err = errors.Join(err, p.publish(m, wait))
		}
	}
	p.client.Disconnect(250)
	return err
}
