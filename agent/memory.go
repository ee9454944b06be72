package agent

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// GCPercent is the Go collector's GOGC in cvedge run and cvedge bench: the Go heap grows by
// this share of what is live before the next collection. Go's default of 100 lets it double:
// with 4 cameras at 1080p the Go heap (the detector's inputs, the models' batches, messages)
// has 33 MB live and grew to 66 MB between collections, one every 50 s. At 25 it grows to
// about 42 MB, and the collector runs about four times as often, estimated from the live heap
// (each collection took 2–10 ms of CPU at the default); the private memory was 20–25 MB lower
// and the CPU the same (docs/benchmarks.md, "Cameras at 1080p").
const GCPercent = 25

// TuneMemory sets the process up for a long run of frames: glibc keeps frame memory for reuse
// (camera.KeepFrameMemory), and the Go collector runs at GCPercent. GOGC in the environment
// wins. It returns what holds, for the record (cvedge bench's machine table).
func TuneMemory() string {
	held := camera.KeepFrameMemory()
	if v := os.Getenv("GOGC"); v != "" {
		return held + ", GOGC=" + v + " (environment)"
	}
	debug.SetGCPercent(GCPercent)
	return held + ", GOGC=" + strconv.Itoa(GCPercent) + " (cvedge)"
}

// ReleaseMemoryEvery is how often the running agent hands the memory that the C allocator holds
// free back to the system (models.ReleaseMemory). Each frame's decoded pictures (6.2 MB at
// 1080p), views, crops and tensors come and go through glibc, which keeps what is freed for
// reuse (camera.KeepFrameMemory) and, with frames of several sizes from several threads,
// keeps more of it as time goes on: with 4 cameras at 1080p the private memory rose from
// 273 to 371 MB in 14 minutes, and one malloc_trim brought it back to 270 MB
// (docs/benchmarks.md, "Memory with 4 cameras at 1080p, for an hour"). A trim costs a walk
// of the heap's free lists and the faults of the pages given back as they are used again:
// little, once every half minute (BenchmarkReleaseMemory).
const ReleaseMemoryEvery = 30 * time.Second

// releaseMemory trims the C heap every interval until ctx ends.
func releaseMemory(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			models.ReleaseMemory()
		}
	}
}
