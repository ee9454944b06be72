package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netnsMarker marks a test binary that InOwnNetns started inside a network namespace.
const netnsMarker = "CVEDGE_TEST_NETNS"

// InOwnNetns runs the calling test again inside a network namespace of its own (unshare -n)
// that has only loopback, brought up with ip. Use it for tests whose traffic must stay off
// the host's networks and must not depend on its interfaces: GigE Vision discovery
// broadcasts, and Aravis streaming to the interface it reached a camera by. It reports true
// in the namespace (run the test there), false in the parent, which has checked the run
// there passed. It needs root, unshare (util-linux) and ip (iproute2): without them the test
// is skipped, or fails under CI=true.
func InOwnNetns(tb testing.TB) bool {
	tb.Helper()
	if os.Getenv(netnsMarker) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			tb.Fatalf("ip link set lo up in the test's network namespace: %v %s", err, out)
		}
		return true
	}
	if os.Geteuid() != 0 {
		Missing(tb, "root, for a network namespace of its own (unshare -n)")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(tb, "%s (apt-get install util-linux iproute2)", tool)
		}
	}
	cmd := exec.Command("unshare", "-n", "--", os.Args[0], "-test.run=^"+tb.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=120s")
	cmd.Env = append(os.Environ(), netnsMarker+"=1")
	out, err := cmd.CombinedOutput()
	tb.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		tb.Fatalf("the test in its own network namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+tb.Name()) {
		tb.Fatalf("the test in its own network namespace did not pass")
	}
	return false
}
