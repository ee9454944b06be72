package agent

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// TestFreedFrameMemoryGoesBack: pictures freed between pictures still in use stay in glibc's
// heap as holes, which no trim of its top returns (camera.KeepFrameMemory keeps even the
// top); the running agent's trim gives their pages back to the system.
func TestFreedFrameMemoryGoesBack(t *testing.T) {
	if os.Getenv("MALLOC_MMAP_THRESHOLD_") != "" || os.Getenv("MALLOC_TRIM_THRESHOLD_") != "" {
		t.Skip("glibc's thresholds are set in the environment: the heap may not keep what is freed, which this test needs")
	}
	camera.KeepFrameMemory()
	const n, size = 96, 1 << 20 // 96 MB of 1 MB pictures, each followed by a small one kept
	big, small := make([]gocv.Mat, n), make([]gocv.Mat, n)
	for i := range n {
		big[i] = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(1, 0, 0, 0), size/1024, 1024, gocv.MatTypeCV8U) // written: resident
		small[i] = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(2, 0, 0, 0), 1, 64, gocv.MatTypeCV8U)
	}
	defer func() {
		for i := range small {
			small[i].Close()
		}
	}()
	runtime.GC() // the Go heap still for the readings below
	debug.FreeOSMemory()
	held := privateMB(t)
	for i := range big {
		big[i].Close()
	}
	freed := privateMB(t)
	if held-freed > n/4 {
		t.Fatalf("glibc returned the freed pictures itself (%d → %d MB): camera.KeepFrameMemory did not hold", held, freed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { releaseMemory(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for privateMB(t) > freed-n/2 {
		if time.Now().After(deadline) {
			t.Fatalf("private memory %d MB with the pictures, %d MB once freed, %d MB after the trims: the freed pages were not given back", held, freed, privateMB(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkReleaseMemory is one trim of the C heap: after 40 decoded 1080p pictures (248 MB)
// were freed between small blocks kept in use, as frames leave it, and with nothing to give
// back.
func BenchmarkReleaseMemory(b *testing.B) {
	camera.KeepFrameMemory()
	var keep []gocv.Mat
	defer func() {
		for i := range keep {
			keep[i].Close()
		}
	}()
	b.Run("after 40 frames freed", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			big := make([]gocv.Mat, 40)
			for i := range big {
				big[i] = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(1, 0, 0, 0), 1080, 1920*3, gocv.MatTypeCV8U)
				keep = append(keep, gocv.NewMatWithSizeFromScalar(gocv.NewScalar(2, 0, 0, 0), 1, 64, gocv.MatTypeCV8U))
			}
			for i := range big {
				big[i].Close()
			}
			b.StartTimer()
			models.ReleaseMemory()
		}
	})
	b.Run("nothing to give back", func(b *testing.B) {
		models.ReleaseMemory()
		for b.Loop() {
			models.ReleaseMemory()
		}
	})
}

// privateMB is the process's private resident memory (RssAnon), in MB.
func privateMB(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb >> 10
		}
	}
	t.Fatal("no RssAnon in /proc/self/status")
	return 0
}

// TestTuneMemorySetsTheCollector: the agent runs the Go collector at GCPercent, unless GOGC is
// set in the environment, which wins.
func TestTuneMemorySetsTheCollector(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	t.Setenv("GOGC", "")
	if got := TuneMemory(); !strings.Contains(got, "GOGC=25 (cvedge)") {
		t.Errorf("TuneMemory says %q", got)
	}
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("the collector runs at GOGC=%d, want %d", got, GCPercent)
	}
	t.Setenv("GOGC", "80")
	if got := TuneMemory(); !strings.Contains(got, "GOGC=80 (environment)") {
		t.Errorf("with GOGC in the environment TuneMemory says %q", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC in the environment the collector was set to %d", got)
	}
}
