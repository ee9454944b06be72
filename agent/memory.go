package agent

import (
	"context"
	"time"

	"github.com/cvedge/cvedge/models"
)

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
