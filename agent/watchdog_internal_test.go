package agent

import (
	"context"
	"image"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
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
	// a detector that does not answer until told: the frame is stuck in it
	release := make(chan struct{})
	det := &pipeline.FakeStage{Model: "det", Finds: true, Answer: func(*camera.Frame, image.Rectangle) []models.Prediction {
		<-release
		return nil
	}}
	r := &cameraRun{cam: cam, pl: pipeline.New(pipeline.Options{Camera: "line", Detector: det})}
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
	// stuck runs work, which hangs until release is closed, and checks that the pings stop
	// while it hangs and come back once it is done.
	stuck := func(what string, work func(), release chan struct{}) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			work()
		}()
		time.Sleep(100 * time.Millisecond) // stuck for more than half the interval before the pings are counted
		n := pings(200 * time.Millisecond)
		close(release)
		<-done
		if n != 0 {
			t.Fatalf("a stuck %s still fed the watchdog %d times", what, n)
		}
		if n := pings(200 * time.Millisecond); n < 3 {
			t.Fatalf("once the %s was done, the agent sent %d pings in 200ms", what, n)
		}
	}
	frame := func() *camera.Frame {
		f, err := camera.FrameOf(image.NewRGBA(image.Rect(0, 0, 32, 24)))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := frame()
	defer f.Close()
	stuck("pipeline", func() { r.pl.Process(f) }, release)
	// a step after the models (a shadow candidate, say) that hangs stops the pings too
	unblock := make(chan struct{})
	r.steps = pipeline.Steps{stuckStep(unblock)}
	stuck("step", func() { r.handle(context.Background(), &pipeline.Frame{Frame: frame()}, nil) }, unblock)
}

// stuckStep is a step that does not return until release is closed.
type stuckStep chan struct{}

func (s stuckStep) Name() string { return "stuck" }

func (s stuckStep) Handle(context.Context, *pipeline.Frame, *payload.Prediction) { <-s }
