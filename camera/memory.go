package camera

/*
#include <malloc.h>
*/
import "C"

import (
	"os"
	"strconv"
	"strings"
)

// Frame memory: glibc and the frames' buffers.
//
// A decoded frame is a large buffer (6.2 MB at 1080p) that comes and goes with every frame.
// By default glibc maps such a buffer on its own, or trims its heap once it is freed, so the
// next frame's pixels are fresh pages the kernel must fault in and zero. With 4 cameras at
// 1080p that cost 15 % more CPU (docs/benchmarks.md, "Cameras at 1080p").

// KeepFrameMemory makes glibc serve buffers under 32 MB from its heap and keep up to 128 MB
// free at the heap's top, so that a frame's pixels reuse the memory of the frame before. A
// setting given in the environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) wins. It
// returns what holds now, for the record (cvedge bench's machine table).
func KeepFrameMemory() string {
	var held []string
	for _, s := range []struct {
		env   string
		param C.int
		value C.int
	}{{"MALLOC_MMAP_THRESHOLD_", C.M_MMAP_THRESHOLD, 32 << 20}, {"MALLOC_TRIM_THRESHOLD_", C.M_TRIM_THRESHOLD, 128 << 20}} {
		if v := os.Getenv(s.env); v != "" {
			held = append(held, s.env+"="+v+" (environment)")
			continue
		}
		C.mallopt(s.param, s.value)
		held = append(held, s.env+"="+strconv.Itoa(int(s.value))+" (cvedge)")
	}
	return strings.Join(held, ", ")
}
