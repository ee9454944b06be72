// Package broker runs an MQTT broker inside the agent (mochi-mqtt), for a single-box kiosk
// where dashboards connect to the box directly, and for the demo. The agent publishes to it
// over loopback like to any other broker.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// ErrAddressInUse is returned by Start when something already listens on the address.
var ErrAddressInUse = errors.New("address already in use")

// Broker is a running embedded broker.
type Broker struct {
	server *mqtt.Server
	addr   string
}

// Start listens on addr (host:port) and serves MQTT 3.1.1 and 5 to any client.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	// probe first, so "in use" is told apart from other failures
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("embedded broker on %s: %w", addr, ErrAddressInUse)
		}
		return nil, fmt.Errorf("embedded broker on %s: %w", addr, err)
	}
	ln.Close()
	s := mqtt.New(&mqtt.Options{Logger: log.With("component", "broker"), InlineClient: false})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", addr, err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded broker on %s: %w", addr, err)
	}
	log.Info("embedded MQTT broker listening", "component", "broker", "address", addr)
	return &Broker{server: s, addr: addr}, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// Close disconnects every client and stops listening. A client whose DISCONNECT the broker
// has not read yet is then cut off and its last will is sent: call Settle first.
func (b *Broker) Close() error { return b.server.Close() }

// Settle waits, up to timeout, until the broker has read the DISCONNECT of client clientID
// and the clients still connected have acknowledged the messages in flight to them (QoS 1
// and 2), so that a Close that follows neither sends clientID's last will nor loses the last
// messages it published (a clean stop's status) on their way to the dashboards. It reports
// whether everything settled in time.
func (b *Broker) Settle(clientID string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if b.settled(clientID) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *Broker) settled(clientID string) bool {
	for id, cl := range b.server.Clients.GetAll() {
		if cl.Closed() {
			continue
		}
		if id == clientID || cl.State.Inflight.Len() > 0 {
			return false
		}
	}
	return true
}
