package agent_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestGenICamCameraClassified runs the agent on Aravis's fake GigE Vision camera (real GVCP
// and GVSP over loopback, in a network namespace of the test's own) as a type: genicam
// camera with the demo's colour classifier: predictions arrive over MQTT, valid against their
// schema, and the retained status shows the camera online, of kind genicam.
func TestGenICamCameraClassified(t *testing.T) {
	const fakeGV = "arv-fake-gv-camera-0.8"
	if os.Getenv("CVEDGE_TEST_NETNS") != "1" {
		// the agent reads the camera through libaravis, which aravis-tools depends on
		if _, err := exec.LookPath(fakeGV); err != nil {
			testenv.Missing(t, "%s (apt-get install aravis-tools)", fakeGV)
		}
	}
	if !testenv.InOwnNetns(t) {
		return
	}
	fake := exec.Command(fakeGV, "-i", "127.0.0.1", "-s", "GV01")
	fake.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Process.Kill(); fake.Wait() })

	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, `
  - name: gige
    type: genicam
    source: Aravis-Fake-GV01
    genicam:
      pixel_format: RGB8
      frame_rate: 10
      features: [Width=320, Height=240]
    pipeline:
      classifier: colour
`)
	cfg.Cameras = cfg.Cameras[1:] // the genicam camera alone
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	const topic = "cvedge/e2e/cameras/gige/predictions"
	testenv.WaitFor(t, "three predictions from the GenICam camera", 30*time.Second, func() bool { return len(col.Get(topic)) >= 3 })
	stop()

	schemas := testenv.LoadSchemas(t)
	for _, raw := range col.Get(topic) {
		if err := schemas.Validate("prediction", raw); err != nil {
			t.Fatalf("prediction %s: %v", raw, err)
		}
		var p payload.Prediction
		if err := json.Unmarshal(raw, &p); err != nil || p.Camera != "gige" || len(p.Predictions) == 0 {
			t.Errorf("prediction %s: %v", raw, err)
		}
	}
	online := false
	for _, raw := range col.Get("cvedge/e2e/status") {
		if err := schemas.Validate("status", raw); err != nil {
			t.Fatalf("status %s: %v", raw, err)
		}
		var st payload.Status
		json.Unmarshal(raw, &st)
		for _, c := range st.Cameras {
			if c.Name == "gige" && c.Kind == "genicam" && c.State == "online" {
				online = true
			}
		}
	}
	if !online {
		t.Errorf("no status showed the GenICam camera online with kind genicam: %q", col.Get("cvedge/e2e/status"))
	}
}
