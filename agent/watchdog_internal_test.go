package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// TestWatchdogStopsForAStuckPipeline: a camera loop inside one frame for longer than half
// the watchdog interval stops the pings, so systemd restarts the service.
func TestWatchdogStopsForAStuckPipeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	cam, err := camera.New(configs.Camera{Name: "line", Source: "0", Type: "usb"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r := &cameraRun{cam: cam, pl: NewPipeline("a", "b", "line", nil, nil, 0)}
	defer r.pl.Close()
	a := &Agent{log: slog.New(slog.NewTextHandler(io.Discard, nil)), runs: []*cameraRun{r}}
	pings := func(d time.Duration) int {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		go a.watchdog(ctx, ops.NewNotifier(), 40*time.Millisecond)
		n := 0
		buf := make([]byte, 64)
		for {
			conn.SetReadDeadline(time.Now().Add(d))
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return n
			}
			if string(buf[:k]) == "WATCHDOG=1" {
				n++
			}
		}
	}
	if n := pings(200 * time.Millisecond); n < 3 {
		t.Fatalf("an idle agent sent %d pings in 200ms at a 40ms watchdog", n)
	}
	r.pl.busy[stepDetect].Store(time.Now().Add(-time.Second).UnixNano()) // stuck in a frame for a second
	if n := pings(200 * time.Millisecond); n != 0 {
		t.Fatalf("a stuck pipeline still fed the watchdog %d times", n)
	}
}
