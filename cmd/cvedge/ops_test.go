package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// TestUnitVerifies: systemd-analyze verify accepts configs/cvedge.service.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze (apt-get install systemd)")
	}
	raw, err := os.ReadFile(testenv.Path("configs", "cvedge.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=cvedge", "SupplementaryGroups=video",
		"StateDirectory=cvedge", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// verify checks that ExecStart exists: point it at this binary
	unit = strings.Replace(unit, "ExecStart=/usr/bin/cvedge", "ExecStart="+os.Args[0], 1)
	path := filepath.Join(t.TempDir(), "cvedge.service")
	os.WriteFile(path, []byte(unit), 0o644)
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestInstallScript stages an install twice: the second run changes nothing, and a config
// the user edited is kept.
func TestInstallScript(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libonnxruntime.so.1.24.1")
	os.WriteFile(lib, []byte("library"), 0o644)
	dest := t.TempDir()
	run := func() string {
		cmd := exec.Command("bash", testenv.Path("scripts", "install.sh"))
		cmd.Env = append(os.Environ(), "DESTDIR="+dest, "BIN="+os.Args[0], "CVEDGE_ONNXRUNTIME_LIBRARY="+lib)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	first := run()
	for _, f := range []string{"usr/local/bin/cvedge", "usr/local/lib/cvedge/libonnxruntime.so.1.24.1", "etc/systemd/system/cvedge.service", "etc/cvedge/cvedge.yaml", "usr/local/share/cvedge/cvedge.yaml"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("%s not installed: %v\n%s", f, err, first)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/cvedge.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/cvedge run") {
		t.Errorf("the unit does not start the installed binary:\n%s", unit)
	}
	os.WriteFile(filepath.Join(dest, "etc/cvedge/cvedge.yaml"), []byte("# mine\n"), 0o640)
	second := run()
	if strings.Contains(second, "installed /usr") || !strings.Contains(second, "unchanged /usr/local/bin/cvedge") || !strings.Contains(second, "kept /etc/cvedge/cvedge.yaml") {
		t.Fatalf("second run:\n%s", second)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "etc/cvedge/cvedge.yaml")); string(b) != "# mine\n" {
		t.Fatal("the user's config was overwritten")
	}
}
