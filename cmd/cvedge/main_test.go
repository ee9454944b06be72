package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/models"
)

// cvedge runs the command line in-process and returns exit code, stdout and stderr.
func cvedge(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// needRuntime skips (or fails under CI=true) when onnxruntime cannot be found.
func needRuntime(t *testing.T) {
	t.Helper()
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
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

// checkConfig writes a config of the demo models and video with the given model path and
// camera source, and returns its path.
func checkConfig(t *testing.T, modelPath, source string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
agent: {id: check}
store: {dir: %q}
spool: {dir: %q}
models:
  parts: {path: %q}
  colour: {path: %q}
cameras:
  - name: conveyor
    source: %q
    pipeline: {detector: parts, classifier: colour}
`, filepath.Join(dir, "models"), filepath.Join(dir, "spool"), modelPath, testenv.Path("testdata", "demo", "classifier"), source)
	path := filepath.Join(dir, "cvedge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigCheckLoadsModelsAndOpensCameras: config check loads every model through
// onnxruntime and opens every camera; --offline still parses the sources and checks their
// files. Each error names its key.
func TestConfigCheckLoadsModelsAndOpensCameras(t *testing.T) {
	needRuntime(t)
	detector, video := testenv.Path("testdata", "demo", "detector"), testenv.Path("testdata", "demo", "conveyor.avi")
	notONNX := filepath.Join(t.TempDir(), "model.onnx")
	os.WriteFile(notONNX, []byte("this is not an ONNX model"), 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(notONNX), "labels.txt"), []byte("part\n"), 0o600)
	notVideo := filepath.Join(t.TempDir(), "notes.avi")
	os.WriteFile(notVideo, []byte("not a video"), 0o600)
	cases := []struct {
		name, model, source string
		offline             bool
		want                string // "" : exit 0
	}{
		{"good", detector, video, false, ""},
		{"good offline", detector, video, true, ""},
		{"missing model", "/nonexistent/detector.zip", video, false, "models.parts.path: stat /nonexistent/detector.zip: no such file or directory: give the Custom Vision export"},
		{"missing model offline", "/nonexistent/detector.zip", video, true, "models.parts.path: stat /nonexistent/detector.zip"},
		{"not an onnx model", notONNX, video, true, "models.parts.path: model \"parts\""},
		{"classifier as detector", testenv.Path("testdata", "demo", "classifier"), video, true, `cameras[0].pipeline.detector: model "parts" does not do this job`},
		{"missing video", detector, "/nonexistent/video.avi", true, `cameras[0].source: camera "conveyor": file "/nonexistent/video.avi"`},
		{"pipeline without appsink", detector, "videotestsrc ! videoconvert", true, "cameras[0].source: camera \"conveyor\": GStreamer pipeline \"videotestsrc ! videoconvert\" must end in appsink"},
		{"bad url", detector, "rtsp://", true, "cameras[0].source: camera \"conveyor\": stream \"rtsp://\" must be a URL"},
		{"not a video", detector, notVideo, false, "cameras[0].source: cannot open file " + notVideo},
		{"not a video offline", detector, notVideo, true, ""}, // it exists; opening it is what --offline skips
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"config", "check", "--config", checkConfig(t, c.model, c.source)}
			if c.offline {
				args = append(args, "--offline")
			}
			code, out, errs := cvedge(t, args...)
			if c.want == "" {
				if code != 0 || !strings.Contains(out, ": ok: 2 models loaded") {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
				}
				return
			}
			if code == 0 || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, stderr %q\nwant it to contain %q", code, errs, c.want)
			}
		})
	}

	// a shadow that does not load is named too
	raw, err := os.ReadFile(checkConfig(t, detector, video))
	if err != nil {
		t.Fatal(err)
	}
	shadow := strings.Replace(string(raw), "  colour: {path: ", "  colour: {shadow: {path: /nonexistent/candidate.zip}, path: ", 1)
	shadowCfg := filepath.Join(t.TempDir(), "shadow.yaml")
	os.WriteFile(shadowCfg, []byte(shadow), 0o600)
	if code, _, errs := cvedge(t, "config", "check", "--offline", "--config", shadowCfg); code == 0 || !strings.Contains(errs, "models.colour.shadow.path: model \"colour\" (/nonexistent/candidate.zip)") {
		t.Fatalf("a shadow that does not load: exit %d, stderr %q", code, errs)
	}

	// a model the store has an active iteration of counts as present, whatever its path says
	cfg := checkConfig(t, "/nonexistent/detector.zip", video)
	store := filepath.Join(filepath.Dir(cfg), "models")
	if code, _, errs := cvedge(t, "models", "--store", store, "add", "--model", "parts", "--activate", detector); code != 0 {
		t.Fatalf("models add: exit %d, %s", code, errs)
	}
	if code, out, errs := cvedge(t, "config", "check", "--offline", "--config", cfg); code != 0 || !strings.Contains(out, ": ok: 2 models loaded") {
		t.Fatalf("a model in the store: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestRunNamesTheKey: `cvedge run` refuses a model that does not load, naming its key.
func TestRunNamesTheKey(t *testing.T) {
	needRuntime(t)
	code, _, errs := cvedge(t, "run", "--config", checkConfig(t, "/nonexistent/detector.zip", testenv.Path("testdata", "demo", "conveyor.avi")))
	if code == 0 || !strings.Contains(errs, "models.parts: ") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	code, _, errs = cvedge(t, "run", "--config", checkConfig(t, testenv.Path("testdata", "demo", "detector"), "/nonexistent/video.avi"))
	if code == 0 || !strings.Contains(errs, "cameras[0].source: ") {
		t.Fatalf("exit %d, stderr %q", code, errs)
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
