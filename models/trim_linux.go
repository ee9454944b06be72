//go:build linux

package models

// #include <malloc.h>
import "C"

// ReleaseMemory hands the memory that freed sessions and tensors left in the C allocator's
// free lists back to the system (glibc's malloc_trim). onnxruntime and OpenCV allocate from
// whichever of glibc's per-thread arenas the calling thread has, so after models are
// closed the freed blocks stay spread over many arenas and the resident memory does not
// drop; without this, every reload that loads a model again adds to it. It is cheap next
// to loading a model; call it after closing models, not per frame.
func ReleaseMemory() { C.malloc_trim(0) }
