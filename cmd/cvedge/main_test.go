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

// TestConfigCommandsMaskSecrets: config print, and the errors of config check and run, show
// camera and broker URLs with their passwords masked.
func TestConfigCommandsMaskSecrets(t *testing.T) {
	const pw = "CamPa55word"
	dir := t.TempDir()
	cameras := "cameras:\n" +
		"  - {name: dock, source: 'rtsp://viewer:" + pw + "@10.0.0.5:554/stream1', pipeline: {detector: m}}\n" +
		"  - {name: gate, source: 'souphttpsrc location=http://10.0.0.6/x user-id=viewer user-pw=" + pw + " ! jpegdec ! videoconvert ! appsink', pipeline: {detector: m}}\n"
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("agent: {id: x}\nmqtt: {broker: 'tcp://agent:"+pw+"@127.0.0.1:1883'}\nmodels: {m: {path: /nonexistent}}\n"+cameras), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("agent: {id: x}\nmqtt: {broker: 'tcp://agent:"+pw+"@'}\nmodels: {m: {path: /nonexistent}}\n"+cameras), 0o600)

	code, out, errs := cvedge(t, "config", "print", "--config", good)
	if code != 0 || strings.Contains(out+errs, pw) || !strings.Contains(out, "rtsp://viewer:***@10.0.0.5:554/stream1") ||
		!strings.Contains(out, "user-pw=***") || !strings.Contains(out, "tcp://agent:***@127.0.0.1:1883") {
		t.Errorf("config print: exit %d\n%s\n%s", code, out, errs)
	}
	for _, args := range [][]string{{"config", "check", "--config", bad}, {"config", "print", "--config", bad}, {"run", "--config", bad}} {
		code, out, errs := cvedge(t, args...)
		if code == 0 || strings.Contains(out+errs, pw) || !strings.Contains(errs, `mqtt.broker: "tcp://agent:***@" has no host`) {
			t.Errorf("%v: exit %d\nstdout %s\nstderr %s", args, code, out, errs)
		}
	}
}
