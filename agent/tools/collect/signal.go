package collect

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// UntilSignal returns a context that ends at the first SIGINT (Ctrl-C) or SIGTERM. By the
// time it ends the two signals are Go's again: a second Ctrl-C ends the process at once,
// whatever the collector is still waiting for. stop ends the context and releases the
// signals earlier; call it when done.
func UntilSignal(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
		}
		signal.Stop(sig) // before the context ends, so that no second signal is swallowed
		cancel()
	}()
	return ctx, cancel
}
