package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// cvedge runs the command line in-process and returns exit code, stdout and stderr.
func cvedge(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := cvedge(t, "version")
	if code != 0 || !strings.HasPrefix(out, "cvedge ") || !strings.Contains(out, "commit") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestConfigCheck(t *testing.T) {
	demo := testenv.Path("configs", "demo.yaml")
	if code, out, errs := cvedge(t, "config", "check", "--config", demo); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("demo config: %d %q %q", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("agent: {id: x}\nmqtt: {qos: 5}\ncameras: []\n"), 0o600)
	code, _, errs := cvedge(t, "config", "check", "--config", bad)
	if code == 0 || !strings.Contains(errs, "mqtt.qos: 5 must be 0, 1 or 2") || !strings.Contains(errs, "cameras: no camera configured") {
		t.Fatalf("bad config: exit %d, stderr %q", code, errs)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	code, _, errs := cvedge(t, "run", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code == 0 || !strings.Contains(errs, "missing.yaml") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}
