// Package publish sends the agent's messages to an MQTT broker with paho. Cameras never wait
// for the network: Send queues a message and one goroutine owned by the Publisher delivers
// the queue in order. Every wait on paho has a timeout.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/configs"
)

// Message is one MQTT publication.
type Message struct {
	Topic    string
	QoS      byte
	Retained bool
	Payload  []byte
}

// Options configure a Publisher beyond the MQTT config.
type Options struct {
	// Will is published by the broker if the agent vanishes without disconnecting.
	Will *Message
	// OnConnect returns messages to publish after every (re)connection, such as the retained
	// birth status.
	OnConnect func() []Message
	// QueueSize bounds the messages waiting for the broker.
	QueueSize int
}

// Stats are the publisher's counters.
type Stats struct {
	Connected bool
	Queued    int
	Sent      uint64
	Failed    uint64
	Dropped   uint64
}

// Publisher delivers messages to one broker.
type Publisher struct {
	client  paho.Client
	log     *slog.Logger
	timeout time.Duration
	queue   chan Message
	done    chan struct{}
	closeMu sync.Mutex
	closed  bool

	sent, failed, dropped atomic.Uint64
}

// Connect starts a client for cfg. It returns at once; the connection is made, and remade
// after a loss, in the background with backoff, and messages queue meanwhile.
func Connect(cfg configs.MQTT, o Options, log *slog.Logger) (*Publisher, error) {
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	p := &Publisher{log: log.With("component", "mqtt"), timeout: cfg.PublishTimeout, queue: make(chan Message, o.QueueSize), done: make(chan struct{})}
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.PublishTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetOrderMatters(false)
	if o.Will != nil {
		opts.SetBinaryWill(o.Will.Topic, o.Will.Payload, o.Will.QoS, o.Will.Retained)
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		p.log.Info("connected to MQTT broker", "broker", cfg.Broker, "client_id", cfg.ClientID)
		if o.OnConnect == nil {
			return
		}
		for _, m := range o.OnConnect() {
			c.Publish(m.Topic, m.QoS, m.Retained, m.Payload) // delivery tracked by paho; never wait in a handler
		}
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		p.log.Warn("lost the MQTT broker; reconnecting", "broker", cfg.Broker, "err", err)
	})
	p.client = paho.NewClient(opts)
	p.client.Connect() // with ConnectRetry the token completes only once connected; do not wait
	go p.run()
	return p, nil
}

// Send queues m. It never blocks: when the queue is full the message is dropped, counted and
// logged, and Send reports false.
func (p *Publisher) Send(m Message) bool {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		p.dropped.Add(1)
		return false
	}
	select {
	case p.queue <- m:
		return true
	default:
		n := p.dropped.Add(1)
		if n == 1 || n%100 == 0 {
			p.log.Warn("MQTT queue full: message dropped", "topic", m.Topic, "dropped_total", n)
		}
		return false
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	for m := range p.queue {
		if err := p.publish(m); err != nil {
			n := p.failed.Add(1)
			if n == 1 || n%100 == 0 {
				p.log.Warn("MQTT publish not confirmed", "topic", m.Topic, "err", err, "failed_total", n)
			}
			continue
		}
		p.sent.Add(1)
	}
}

func (p *Publisher) publish(m Message) error {
	t := p.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	if !t.WaitTimeout(p.timeout) {
		return fmt.Errorf("no acknowledgement within %s", p.timeout)
	}
	return t.Error()
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	return Stats{Connected: p.client.IsConnectionOpen(), Queued: len(p.queue), Sent: p.sent.Load(), Failed: p.failed.Load(), Dropped: p.dropped.Load()}
}

// Close delivers what is queued (until ctx ends), publishes last (such as a retained
// "offline" status) and disconnects.
func (p *Publisher) Close(ctx context.Context, last ...Message) error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	close(p.queue)
	p.closeMu.Unlock()
	var err error
	select {
	case <-p.done:
	case <-ctx.Done():
		err = fmt.Errorf("mqtt: %d messages not delivered before shutdown deadline", len(p.queue))
	}
	if p.client.IsConnectionOpen() {
		for _, m := range last {
			if perr := p.publish(m); perr != nil {
				err = errors.Join(err, perr)
			}
		}
	}
	p.client.Disconnect(250)
	<-p.done // after Disconnect, what is left fails at once
	return err
}
