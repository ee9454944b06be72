package testenv

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/cvedge/cvedge/agent/broker"
)

// Embedded is the agent's in-process broker (agent/broker) started for one test: for tests
// that need a broker but none of mosquitto's (freezing it, its limits, TLS). It needs no
// binary, so such tests run under -short.
type Embedded struct {
	// Addr is host:port; URL is tcp://host:port.
	Addr, URL string
	b         *broker.Broker
}

// StartEmbedded starts the in-process broker on a free loopback port, stopped when the test
// ends.
func StartEmbedded(tb testing.TB) *Embedded {
	tb.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	e := &Embedded{Addr: addr, URL: "tcp://" + addr}
	e.Start(tb)
	tb.Cleanup(e.Stop)
	return e
}

// Start starts it (again) on its address.
func (e *Embedded) Start(tb testing.TB) {
	tb.Helper()
	b, err := broker.Start(e.Addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatalf("embedded broker on %s: %v", e.Addr, err)
	}
	e.b = b
}

// Stop stops it; the clients lose their connection.
func (e *Embedded) Stop() {
	if e.b != nil {
		e.b.Close()
		e.b = nil
	}
}
