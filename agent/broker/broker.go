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

// Close disconnects every client and stops listening.
func (b *Broker) Close() error { return b.server.Close() }
