package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample named by line (metric name and labels).
func metric(t *testing.T, body, line string) float64 {
	t.Helper()
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(line) + " ([0-9.e+-]+)$")
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no metric %s in\n%.3000s", line, body)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestMetricsAndHealth scrapes /metrics during and after a demo run, and checks /healthz
// and /readyz (not ready once the video has ended and no camera is online).
func TestMetricsAndHealth(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	runAgent(t, cfg)
	base := "http://" + cfg.HTTP.Listen
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	testenv.WaitFor(t, "the camera to end", 10*time.Second, func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `cvedge_camera_state{camera="conveyor",state="ended"} 1`)
	})
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	if v := metric(t, body, `cvedge_frames_processed_total{camera="conveyor"}`); v != float64(len(tr.Frames)) {
		t.Errorf("processed %v, the video has %d frames", v, len(tr.Frames))
	}
	if v := metric(t, body, `cvedge_stage_seconds_count{camera="conveyor",stage="detect"}`); v != float64(len(tr.Frames)) {
		t.Errorf("detect latency samples %v", v)
	}
	if v := metric(t, body, `cvedge_stage_seconds_count{camera="conveyor",stage="publish"}`); v < 100 {
		t.Errorf("publish latency samples %v", v)
	}
	var perTag float64
	for _, c := range []string{"blue", "green", "red", "yellow"} {
		perTag += metric(t, body, fmt.Sprintf(`cvedge_predictions_total{camera="conveyor",model="colour",tag=%q}`, c))
	}
	if perTag < 288 {
		t.Errorf("%v colour predictions counted; 288 parts are fully visible", perTag)
	}
	if metric(t, body, "cvedge_mqtt_connected") != 1 || metric(t, body, `cvedge_model_info{format="detector-yolo",iteration="b43331db-0554-52bc-9c48-3c8a25250027",model="parts",sha256="5e026559dbd6bffc1e4a1dae7857510894b83842e66e77644fa4d02fec24bd62"}`) != 1 {
		t.Errorf("mqtt or model info wrong")
	}
	if metric(t, body, "cvedge_spool_messages") != 0 || metric(t, body, `cvedge_detections_per_frame_count{camera="conveyor"}`) != float64(len(tr.Frames)) {
		t.Errorf("spool or detections histogram wrong")
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz %d %q", code, body)
	}
	code, body = get(t, base+"/readyz")
	var ready struct {
		Ready   bool
		Reasons []string
	}
	json.Unmarshal([]byte(body), &ready)
	if code != 503 || ready.Ready || strings.Join(ready.Reasons, ";") != "no camera is online" {
		t.Errorf("/readyz after the video ended: %d %s", code, body)
	}
}

// TestReadyWhileRunning: /readyz is 200 while a camera is online and the broker connected.
func TestReadyWhileRunning(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	runAgent(t, cfg)
	testenv.WaitFor(t, "ready", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + cfg.HTTP.Listen + "/readyz")
		if err != nil {
			return false // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// notifySocket listens where systemd would, and keeps what the agent sends.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) count(msg string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if m == msg {
			c++
		}
	}
	return c
}

// TestSystemdNotify: READY=1 once running, WATCHDOG=1 while the frame loops are healthy,
// STOPPING=1 on shutdown, against a fake NOTIFY_SOCKET.
func TestSystemdNotify(t *testing.T) {
	n := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	broker := testenv.StartMosquitto(t)
	stop := runAgent(t, demoConfig(t, broker.URL, "    loop: true\n"))
	testenv.WaitFor(t, "READY=1", 20*time.Second, func() bool { return n.count("READY=1") == 1 })
	testenv.WaitFor(t, "watchdog pings", 5*time.Second, func() bool { return n.count("WATCHDOG=1") >= 5 })
	stop()
	if n.count("STOPPING=1") != 1 {
		t.Fatalf("notifications %v", n.msgs)
	}
}

// TestNotReadyWithReason: /readyz says not ready, with the reason, while the broker refuses
// the agent's password, and while the spool's disk is full; and ready again once each is
// fixed. Before, neither was noticed: no log line, and /readyz said ready.
func TestNotReadyWithReason(t *testing.T) {
	dir := t.TempDir()
	pwfile := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pwfile, "line3", "Right-Pa55").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	broker := testenv.StartMosquitto(t, "allow_anonymous false", "password_file "+pwfile)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.MQTT.Username, cfg.MQTT.Password = "line3", "Wrong-Pa55"
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	spoolDisk := filepath.Join(dir, "disk")
	os.MkdirAll(spoolDisk, 0o750)
	if err := syscall.Mount("tmpfs", spoolDisk, "tmpfs", 0, "size=2m"); err != nil {
		testenv.Missing(t, "a tmpfs for the spool (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(spoolDisk, syscall.MNT_DETACH) })
	cfg.Spool.Dir = filepath.Join(spoolDisk, "spool")
	runAgent(t, cfg)
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + cfg.HTTP.Listen + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var body string
	testenv.WaitFor(t, "not ready: the broker refuses the password", 20*time.Second, func() bool {
		code, b := readyz()
		body = b
		return code == 503 && strings.Contains(b, "mqtt.username and mqtt.password")
	})
	// the messages go to the spool; a ballast file fills its disk
	os.WriteFile(filepath.Join(spoolDisk, "ballast"), make([]byte, 2<<20), 0o640)
	testenv.WaitFor(t, "not ready: the spool cannot write", 20*time.Second, func() bool {
		code, b := readyz()
		body = b
		return code == 503 && strings.Contains(b, "the spool cannot write") && strings.Contains(b, "no space left")
	})
	if strings.Contains(body, "Wrong-Pa55") {
		t.Fatal("/readyz shows the password")
	}
	os.Remove(filepath.Join(spoolDisk, "ballast"))
	testenv.WaitFor(t, "the spool writable again", 20*time.Second, func() bool {
		_, b := readyz()
		return !strings.Contains(b, "the spool cannot write")
	})
	t.Logf("last /readyz while failing: %s", body)
}
