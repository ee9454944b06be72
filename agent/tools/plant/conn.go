package plant

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/configs"
)

// sampleBacklog is how many samples wait for the review queue (which writes them to disk)
// while the next messages are read; beyond, reading waits, and the broker keeps the rest.
const sampleBacklog = 8

// conn is the MQTT connection of a started Plant, and the goroutine that hands its samples
// to the review queue.
type conn struct {
	cl      paho.Client
	timeout time.Duration
	samples chan message
	done    chan struct{} // closed when the sample goroutine has returned

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup // message handlers running
}

type message struct {
	topic string
	raw   []byte
}

// Start connects to the broker of cfg (its connection settings, from agent/publish, as every
// MQTT client of cvedge) and subscribes, at QoS 1, to filters (see Filters) on every
// (re)connection, with a persistent session under cfg.ClientID: samples sent while the
// station is away wait for it on the broker. It returns at once: the connection is made,
// and remade, in the background. Close stops it.
func (p *Plant) Start(cfg configs.MQTT, filters []string) error {
	if len(filters) == 0 {
		return errors.New("no topic filter to subscribe to")
	}
	opts, err := publish.ClientOptions(cfg)
	if err != nil {
		return err
	}
	c := &conn{timeout: cfg.PublishTimeout, samples: make(chan message, sampleBacklog), done: make(chan struct{})}
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	// in order, from one goroutine: a status and the will that follows it, and the decisions
	// of a camera, are taken as they were sent
	opts.SetOrderMatters(true)
	broker := configs.Redact(cfg.Broker)
	// one handler, set before connecting: the broker hands over what the session kept as it
	// accepts the connection, before the subscriptions below are made again. A message is
	// taken once, however many filters it matches; one on another topic (an old
	// subscription the session still has) is acknowledged and dropped.
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		if slices.ContainsFunc(filters, func(f string) bool { return matches(f, m.Topic()) }) {
			c.handle(p, m)
		}
	})
	opts.SetOnConnectHandler(func(cl paho.Client) {
		p.log.Info("connected; subscribing", "broker", broker, "filters", filters)
		tok := cl.SubscribeMultiple(subs, nil)
		if !tok.WaitTimeout(max(cfg.ConnectTimeout, time.Second)) {
			p.log.Warn("the broker did not answer the subscription in time; it is made again on the next connection", "broker", broker)
		} else if err := tok.Error(); err != nil {
			p.log.Error("subscription refused by the broker: check its access rules (acl) for this user", "broker", broker, "filters", filters, "err", err)
		}
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		p.log.Warn("lost the broker; reconnecting", "broker", broker, "err", err)
	})
	c.cl = paho.NewClient(opts)
	go func() {
		defer close(c.done)
		for m := range c.samples {
			p.Handle(m.topic, m.raw)
		}
	}()
	p.mu.Lock()
	if p.conn != nil {
		p.mu.Unlock()
		close(c.samples)
		return errors.New("plant: started twice")
	}
	p.conn, p.pub = c, c.publish
	p.mu.Unlock()
	c.cl.Connect() // retries in the background (ConnectRetry)
	return nil
}

// handle is the MQTT message handler: samples go to the sample goroutine (waiting while
// its backlog is full), the rest is taken at once.
func (c *conn) handle(p *Plant, m paho.Message) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.handlers.Add(1)
	c.mu.Unlock()
	defer c.handlers.Done()
	if t, err := ParseTopic(m.Topic()); err == nil && t.Kind == Samples {
		c.samples <- message{m.Topic(), m.Payload()}
		return
	}
	p.Handle(m.Topic(), m.Payload())
}

// publish sends body on topic at QoS 1 and waits for the broker to take it.
func (c *conn) publish(topic string, body []byte) error {
	if !c.cl.IsConnectionOpen() {
		return errors.New("not connected to the broker now: try again when it is back")
	}
	tok := c.cl.Publish(topic, 1, false, body)
	if !tok.WaitTimeout(c.timeout) {
		return fmt.Errorf("the broker did not take it within %v (mqtt.publish_timeout)", c.timeout)
	}
	return tok.Error()
}

// Connected reports whether the Plant is connected to the broker now.
func (p *Plant) Connected() bool {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	return c != nil && c.cl.IsConnectionOpen()
}

// Close disconnects from the broker and waits for the messages being handled; the samples
// waiting for the review queue are queued first. Feedback fails after it. It may be called
// more than once, and on a Plant never started.
func (p *Plant) Close() {
	p.mu.Lock()
	c := p.conn
	p.pub = p.o.Publish
	p.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.cl.Disconnect(250)
	c.handlers.Wait() // the handlers that started before closed was set
	close(c.samples)
	<-c.done
}
