package configs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// goLine is go.mod's go version.
func goLine(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile(testenv.Path("go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// TestReadmeGoVersion: the Go version the README asks for is go.mod's.
func TestReadmeGoVersion(t *testing.T) {
	want := goLine(t)
	readme, err := os.ReadFile(testenv.Path("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	said := regexp.MustCompile(`\[Go (\d+\.\d+(?:\.\d+)?) or newer\]`).FindSubmatch(readme)
	if said == nil {
		t.Fatal("README.md does not say which Go it needs ([Go X.Y or newer])")
	}
	if got := string(said[1]); strings.TrimSuffix(want, ".0") != strings.TrimSuffix(got, ".0") {
		t.Errorf("README.md asks for Go %s, go.mod's go line is %s", got, want)
	}
	mk, err := os.ReadFile(testenv.Path("Makefile"))
	if err != nil || !regexp.MustCompile(`(?m)^GOTOOLCHAIN \?= local$`).Match(mk) {
		t.Errorf("the Makefile does not keep the Go on PATH (GOTOOLCHAIN ?= local): %v", err)
	}
}

// TestSetupRefusesAnOldGo: scripts/setup.sh, on a box whose Go is older than go.mod's, stops
// with the versions and what to do, and never lets go try to download a newer toolchain.
func TestSetupRefusesAnOldGo(t *testing.T) {
	want := goLine(t)
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	fake := `#!/bin/sh
echo "GOTOOLCHAIN=$GOTOOLCHAIN $*" >> ` + calls + `
[ "$*" = "env GOVERSION" ] && echo go1.22.5
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", testenv.Path("scripts", "setup.sh"), "--check")
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "GOTOOLCHAIN=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("setup.sh accepted Go 1.22.5:\n%s", out)
	}
	if msg := "Go 1.22.5 is too old: cvedge needs Go " + want + " or newer"; !strings.Contains(string(out), msg) || !strings.Contains(string(out), "https://go.dev/dl/") {
		t.Errorf("setup.sh said:\n%s\nwant %q and where to get Go", out, msg)
	}
	log, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("setup.sh never asked go for its version: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if !strings.HasPrefix(line, "GOTOOLCHAIN=local ") {
			t.Errorf("go ran without GOTOOLCHAIN=local, so it could try to download a toolchain: %s", line)
		}
	}
}
