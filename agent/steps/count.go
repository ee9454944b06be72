package steps

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
)

// queueKept is how many recent queue latencies a camera keeps, for cvedge bench.
const queueKept = 1000

// counter counts one camera's frames: processed, failed (logged, the first and every 100th),
// skipped by the quality gate and by the motion gate, the model time and the recent queue
// latencies.
type counter struct {
	camera string
	log    *slog.Logger

	mu                       sync.Mutex
	processed, failed, gated uint64
	unchanged                uint64
	inferUs                  uint64
	queue                    []float64
}

// NewCount returns the counting step of camera.
func NewCount(camera string, log *slog.Logger) pipeline.Step {
	return &counter{camera: camera, log: log}
}

func (c *counter) Name() string { return "count" }

func (c *counter) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(f.Err, pipeline.ErrGated):
		c.gated++
	case errors.Is(f.Err, pipeline.ErrUnchanged):
		c.unchanged++
	case f.Err != nil:
		c.failed++
		if n := c.failed; n == 1 || n%100 == 0 {
			c.log.Error("frame not processed", "camera", c.camera, "err", f.Err, "failures", n)
		}
	default:
		if len(c.queue) >= queueKept {
			c.queue = c.queue[1:]
		}
		c.queue = append(c.queue, msg.LatencyMs.Queue)
		c.processed++
		c.inferUs += uint64(math.Round((msg.LatencyMs.Detect + msg.LatencyMs.Classify) * 1000))
	}
}

// Count implements pipeline.Counter.
func (c *counter) Count(n *pipeline.Counts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n.Processed += c.processed
	n.Failed += c.failed
	n.Gated += c.gated
	n.Unchanged += c.unchanged
	n.InferUs += c.inferUs
	n.QueueMs = append(n.QueueMs, c.queue...)
}
