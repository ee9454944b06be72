package camera

import "testing"

// TestKeepFrameMemory: cvedge makes both glibc settings, and leaves one given in the
// environment, saying which is which.
func TestKeepFrameMemory(t *testing.T) {
	t.Setenv("MALLOC_MMAP_THRESHOLD_", "") // empty is unset here
	t.Setenv("MALLOC_TRIM_THRESHOLD_", "")
	if got, want := KeepFrameMemory(), "MALLOC_MMAP_THRESHOLD_=33554432 (cvedge), MALLOC_TRIM_THRESHOLD_=134217728 (cvedge)"; got != want {
		t.Errorf("no environment: %q, want %q", got, want)
	}
	t.Setenv("MALLOC_TRIM_THRESHOLD_", "1000")
	if got, want := KeepFrameMemory(), "MALLOC_MMAP_THRESHOLD_=33554432 (cvedge), MALLOC_TRIM_THRESHOLD_=1000 (environment)"; got != want {
		t.Errorf("trim threshold in the environment: %q, want %q", got, want)
	}
}
