// Package testenv finds what tests need outside the Go code (the repository root, the shared
// real-data folder, the onnxruntime library, a mosquitto binary) and applies one rule when
// something is missing: skip on a developer machine, fail under CI=true.
//
// It is imported by tests only, and imports nothing of cvedge.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// CI reports whether tests run under CI=true, where a missing dependency is a failure.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI=true, saying what is missing and how to get it.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if CI() {
		tb.Fatalf("CI=true and a test dependency is missing: "+format, args...)
	}
	tb.Skipf("skipped, dependency missing: "+format, args...)
}

// Root returns the repository root (the folder holding go.mod).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path joins elements under the repository root.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Root()}, elem...)...)
}

// RealData returns ../shared/realdata/customvision/<elem...> beside the repository, or
// reports it missing.
func RealData(tb testing.TB, elem ...string) string {
	tb.Helper()
	dir := filepath.Join(append([]string{Root(), "..", "shared", "realdata", "customvision"}, elem...)...)
	if _, err := os.Stat(dir); err != nil {
		Missing(tb, "real Custom Vision exports at %s (the shared data folder beside the repository)", dir)
	}
	return dir
}

// Mosquitto returns the path of the mosquitto broker binary, or reports it missing.
func Mosquitto(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	Missing(tb, "mosquitto (run scripts/setup.sh, or apt-get install mosquitto)")
	return ""
}
