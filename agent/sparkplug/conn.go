package sparkplug

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/configs"
)

// BrokerConfig is the MQTT connection of the edge node: the mqtt section's, with client id
// <mqtt.client_id>-spb, and sparkplug.broker with its own credentials and TLS when set.
func BrokerConfig(cfg *configs.Config) configs.MQTT {
	m := cfg.MQTT
	m.ClientID += "-spb"
	if s := cfg.Sparkplug; s.Broker != "" {
		m.Broker, m.Username, m.Password, m.PasswordFile, m.TLS = s.Broker, s.Username, s.Password, s.PasswordFile, s.TLS
	}
	return m
}

// Start starts the edge node of cfg (cfg.Sparkplug) and returns at once: it connects, and
// connects again after a loss, in the background. It fails only on settings that can never
// work (unreadable TLS files or password file). Close it to end the session cleanly.
func Start(cfg *configs.Config, log *slog.Logger) (*Node, error) {
	m := BrokerConfig(cfg)
	if _, err := publish.ClientOptions(m); err != nil {
		return nil, fmt.Errorf("sparkplug: %w", err)
	}
	s := cfg.Sparkplug
	n := newNode(s.GroupID, s.EdgeNodeID, s.DataInterval, log)
	if s.Broker != "" { // the hints name the keys of the broker in use
		n.keys = strings.NewReplacer("mqtt.broker", "sparkplug.broker", "mqtt.username", "sparkplug.username",
			"mqtt.password", "sparkplug.password", "mqtt.tls", "sparkplug.tls")
	}
	go n.run(m)
	return n, nil
}

// conn is one MQTT connection: one CONNECT, with its will.
type conn struct {
	client  paho.Client
	lost    chan error
	timeout time.Duration
}

func (c *conn) publish(topic string, qos byte, body []byte) error {
	tok := c.client.Publish(topic, qos, false, body)
	if !tok.WaitTimeout(c.timeout) {
		return fmt.Errorf("the broker did not take it within %s", c.timeout)
	}
	return tok.Error()
}

// run connects, holds the session, and connects again after a loss with backoff, each
// CONNECT with the next bdSeq, until Close.
func (n *Node) run(m configs.MQTT) {
	defer close(n.done)
	first := min(2*time.Second, m.MaxReconnectInterval)
	backoff := first
	var bdSeq int64
	failed := map[string]bool{}
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		n.edge.bdSeq = bdSeq
		bdSeq = (bdSeq + 1) % 256
		c, err := n.connect(m)
		if err != nil {
			reason := publish.Explain(err)
			if reason == "" {
				reason = configs.Redact(err.Error())
			}
			if n.keys != nil {
				reason = n.keys.Replace(reason)
			}
			if !failed[reason] && len(failed) < 16 {
				failed[reason] = true
				n.log.Warn("Sparkplug: cannot connect to the broker; retrying", "broker", configs.Redact(m.Broker), "reason", reason, "err", configs.Redact(err.Error()))
			} else {
				n.log.Debug("Sparkplug: cannot connect to the broker; retrying", "broker", configs.Redact(m.Broker), "err", configs.Redact(err.Error()))
			}
			t := time.NewTimer(backoff)
			select {
			case <-n.stop:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, m.MaxReconnectInterval)
			continue
		}
		if c == nil { // stopped while connecting
			return
		}
		if len(failed) > 0 {
			n.log.Info("Sparkplug: connected after failed attempts", "broker", configs.Redact(m.Broker))
		}
		failed, backoff = map[string]bool{}, first
		if stopped := n.session(c); stopped {
			return
		}
	}
}

// connect makes one connection with the NDEATH of the edge's bdSeq as its will, and
// subscribes to the node's NCMD and DCMD topics. It returns nil, nil when Close came first
// (after ending a connection that was made meanwhile).
func (n *Node) connect(m configs.MQTT) (*conn, error) {
	opts, err := publish.ClientOptions(m)
	if err != nil {
		return nil, err
	}
	e := n.edge
	c := &conn{lost: make(chan error, 1), timeout: m.PublishTimeout}
	opts.SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetBinaryWill(e.topic("NDEATH", ""), deathPayload(e.bdSeq, n.now()), 1, false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		})
	c.client = paho.NewClient(opts)
	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-n.stop:
		<-tok.Done() // bounded by mqtt.connect_timeout
		if tok.Error() == nil {
			_ = e.deaths(c, n.now())
			c.client.Disconnect(250)
		}
		return nil, nil
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	var warned atomic.Bool
	handle := func(kind string) paho.MessageHandler {
		return func(_ paho.Client, msg paho.Message) {
			cmd, err := parseCommand(msg.Payload())
			switch {
			case err != nil && !warned.Swap(true):
				n.log.Warn("Sparkplug: a "+kind+" was not understood and is ignored (said once per connection)", "topic", msg.Topic(), "err", err)
			case err != nil:
				n.log.Debug("Sparkplug: a "+kind+" was not understood and is ignored", "topic", msg.Topic(), "err", err)
			case cmd.Rebirth && kind == "NCMD":
				n.log.Info("Sparkplug: rebirth requested by a host application (NCMD Node Control/Rebirth)")
				n.requestRebirth()
			default:
				n.log.Debug("Sparkplug: command metrics ignored: this edge node acts only on the NCMD Node Control/Rebirth", "topic", msg.Topic(), "metrics", cmd.Ignored)
			}
		}
	}
	subs := map[string]paho.MessageHandler{e.topic("NCMD", ""): handle("NCMD"), e.topic("DCMD", "+"): handle("DCMD")}
	for topic, h := range subs {
		st := c.client.Subscribe(topic, 1, h)
		if !st.WaitTimeout(m.PublishTimeout) || st.Error() != nil {
			n.log.Warn("Sparkplug: subscribing to commands failed: rebirth requests will not arrive until the next connection", "topic", topic, "err", st.Error())
			continue
		}
		if s, ok := st.(*paho.SubscribeToken); ok && s.Result()[topic] == 0x80 {
			n.log.Warn("Sparkplug: the broker refused the subscription to commands, so rebirth requests will not arrive: allow this client to read it in the broker's access rules (ACL)", "topic", topic)
		}
	}
	return c, nil
}

// session sends the birth sequence and then the changes every interval, a new birth
// sequence on a rebirth request, until the connection is lost (false) or Close (true: the
// deaths are sent and the client disconnects).
func (n *Node) session(c *conn) bool {
	select { // a request from the last session is answered by this birth
	case <-n.rebirth:
	default:
	}
	e := n.edge
	n.log.Info("Sparkplug: edge node online", "group", e.group, "edge_node", e.node, "bdSeq", e.bdSeq)
	n.publishOrRebirth(e.births(c, n.snapshot(), n.now()))
	t := time.NewTicker(n.interval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			if err := e.deaths(c, n.now()); err != nil {
				n.log.Warn("Sparkplug: the clean stop's DDEATH and NDEATH did not all go out; the broker sends the NDEATH (will) when the connection closes", "err", err)
				c.client.Disconnect(0)
				return true
			}
			c.client.Disconnect(250)
			n.log.Info("Sparkplug: edge node offline (NDEATH sent)", "bdSeq", e.bdSeq)
			return true
		case err := <-c.lost:
			n.log.Warn("Sparkplug: connection lost; the broker sends the NDEATH (will), and the edge node is born again on reconnection", "bdSeq", e.bdSeq, "err", errString(err))
			e.nodeSent = nil
			return false
		case <-n.rebirth:
			n.publishOrRebirth(e.births(c, n.snapshot(), n.now()))
		case <-t.C:
			n.publishOrRebirth(e.flush(c, n.snapshot(), n.now()))
		}
	}
}

// publishOrRebirth logs a failed publication and makes the next flush send the birth
// sequence again, since a host may have missed part of what was sent.
func (n *Node) publishOrRebirth(err error) {
	if err == nil {
		return
	}
	n.log.Debug("Sparkplug: publishing failed; the next flush sends the births again", "err", err)
	n.edge.nodeSent = nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return configs.Redact(err.Error())
}
