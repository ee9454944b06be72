package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// TestMain lets a test start this binary as the cvedge agent: with CVEDGE_TEST_MAIN=1 it runs
// the command line instead of the tests, so a test can kill -9 a real agent process.
func TestMain(m *testing.M) {
	if os.Getenv("CVEDGE_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// agentProcess starts `cvedge run --config cfg` as a child process.
func agentProcess(t *testing.T, cfg string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "CVEDGE_TEST_MAIN=1")
	log, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("agent log:\n%s", out)
		}
	})
	return cmd
}

// agentConfig writes a config for the demo video, looping, every frame.
func agentConfig(t *testing.T, brokerURL, spoolDir string) string {
	t.Helper()
	demo := testenv.Path("testdata", "demo")
	yaml := fmt.Sprintf(`
agent: {id: proc, log_level: info, log_format: text}
mqtt:
  broker: %s
  client_id: cvedge-proc
  keepalive: 2s
  publish_timeout: 2s
  max_reconnect_interval: 1s
  stats_interval: 500ms
spool: {dir: %s}
store: {dir: %s}
http: {listen: ""}
models:
  parts: {path: %s, threshold: 0.5}
  colour: {path: %s}
cameras:
  - name: conveyor
    source: %s
    loop: true
    realtime: false
    pipeline: {detector: parts, classifier: colour}
`, brokerURL, spoolDir, filepath.Join(filepath.Dir(spoolDir), "models"), filepath.Join(demo, "detector"), filepath.Join(demo, "classifier"), filepath.Join(demo, "conveyor.avi"))
	p := filepath.Join(t.TempDir(), "cvedge.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// frames returns the frame ids received per boot.
func frames(t *testing.T, in *testenv.Inbox) map[string]map[uint64]bool {
	out := map[string]map[uint64]bool{}
	for _, raw := range in.Get("cvedge/proc/cameras/conveyor/predictions") {
		var p payload.Prediction
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if out[p.Boot] == nil {
			out[p.Boot] = map[uint64]bool{}
		}
		out[p.Boot][p.FrameID] = true
	}
	return out
}

// TestCrashDuringOutage: the agent is killed with kill -9 while the broker is away and
// started again; what it spooled before dying still arrives.
func TestCrashDuringOutage(t *testing.T) {
	needRuntime(t)
	broker := testenv.StartMosquitto(t, testenv.Persistent(t.TempDir())...)
	in := testenv.Dashboard(t, broker.URL, "cvedge/proc/#")
	cfg := agentConfig(t, broker.URL, filepath.Join(t.TempDir(), "spool"))

	first := agentProcess(t, cfg)
	var boot string
	testenv.WaitFor(t, "30 predictions from the first run", 60*time.Second, func() bool {
		for b, ids := range frames(t, in) {
			boot = b
			return len(ids) >= 30
		}
		return false
	})
	before := len(frames(t, in)[boot])
	broker.Stop()
	time.Sleep(4 * time.Second) // the agent spools
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()

	second := agentProcess(t, cfg)
	time.Sleep(time.Second)
	broker.Start(t)
	testenv.WaitFor(t, "the first run's spooled predictions", 60*time.Second, func() bool {
		return len(frames(t, in)[boot]) >= before+20 // at least 5 a second during the 4 s outage
	})
	for n := 0; n != len(frames(t, in)[boot]); { // until the first run's messages stop coming
		n = len(frames(t, in)[boot])
		time.Sleep(2 * time.Second)
	}
	ids := frames(t, in)[boot]
	var max uint64
	for id := range ids {
		max = max2(max, id)
	}
	for id := uint64(1); id <= max; id++ {
		if !ids[id] {
			t.Fatalf("first run: frame %d of %d missing", id, max)
		}
	}
	others := 0
	for b, ids := range frames(t, in) {
		if b != boot {
			others += len(ids)
		}
	}
	t.Logf("first run: %d frames before the outage, %d in all after the crash, no gap; second run: %d frames", before, max, others)
	second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Fatalf("second run did not stop cleanly on SIGTERM: %v", err)
	}
}

func max2(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestLastWill: when the agent dies without disconnecting, the broker publishes its last
// will, a retained status that says offline.
func TestLastWill(t *testing.T) {
	needRuntime(t)
	broker := testenv.StartMosquitto(t)
	in := testenv.Dashboard(t, broker.URL, "cvedge/proc/status")
	agent := agentProcess(t, agentConfig(t, broker.URL, filepath.Join(t.TempDir(), "spool")))
	status := func() payload.Status {
		msgs := in.Get("cvedge/proc/status")
		var s payload.Status
		if len(msgs) > 0 {
			json.Unmarshal(msgs[len(msgs)-1], &s)
		}
		return s
	}
	testenv.WaitFor(t, "the birth status", 60*time.Second, func() bool { return status().State == "online" })
	agent.Process.Signal(syscall.SIGKILL)
	agent.Wait()
	testenv.WaitFor(t, "the last will", 10*time.Second, func() bool {
		s := status()
		return s.State == "offline" && s.Reason == "connection lost"
	})
	// a new subscriber gets it too: it is retained
	late := testenv.Dashboard(t, broker.URL, "cvedge/proc/status")
	testenv.WaitFor(t, "the retained status", 5*time.Second, func() bool { return len(late.Get("cvedge/proc/status")) > 0 })
	var s payload.Status
	json.Unmarshal(late.Get("cvedge/proc/status")[0], &s)
	if s.State != "offline" {
		t.Fatalf("retained status %+v", s)
	}
}

// TestGracefulShutdown: SIGTERM while frames flow; every frame made is delivered, with no
// gap, and the retained status says offline, stopped.
func TestGracefulShutdown(t *testing.T) {
	needRuntime(t)
	broker := testenv.StartMosquitto(t)
	in := testenv.Dashboard(t, broker.URL, "cvedge/proc/#")
	agent := agentProcess(t, agentConfig(t, broker.URL, filepath.Join(t.TempDir(), "spool")))
	testenv.WaitFor(t, "50 predictions", 60*time.Second, func() bool {
		for _, ids := range frames(t, in) {
			return len(ids) >= 50
		}
		return false
	})
	agent.Process.Signal(syscall.SIGTERM)
	if err := agent.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	for boot, ids := range frames(t, in) {
		var max uint64
		for id := range ids {
			max = max2(max, id)
		}
		for id := uint64(1); id <= max; id++ {
			if !ids[id] {
				t.Fatalf("boot %s: frame %d of %d lost in the shutdown", boot, id, max)
			}
		}
	}
	// the dashboard handles messages concurrently: the newest status is the latest updated
	var last payload.Status
	for _, raw := range in.Get("cvedge/proc/status") {
		var s payload.Status
		json.Unmarshal(raw, &s)
		if s.Updated.After(last.Updated) {
			last = s
		}
	}
	if last.State != "offline" || last.Reason != "stopped" {
		t.Fatalf("last status %+v", last)
	}
}

// TestReloadOnSIGHUP: a good config adds a camera without a restart; a broken one (unknown
// key, missing model) is refused and the running config stays. The reload command over MQTT
// does the same and answers with the outcome.
func TestReloadOnSIGHUP(t *testing.T) {
	needRuntime(t)
	broker := testenv.StartMosquitto(t)
	in := testenv.Dashboard(t, broker.URL, "cvedge/proc/#")
	cfgPath := agentConfig(t, broker.URL, filepath.Join(t.TempDir(), "spool"))
	orig, _ := os.ReadFile(cfgPath)
	agent := agentProcess(t, cfgPath)
	count := func(cam string) int { return len(in.Get("cvedge/proc/cameras/" + cam + "/predictions")) }
	testenv.WaitFor(t, "predictions", 60*time.Second, func() bool { return count("conveyor") > 20 })

	second := strings.Replace(string(orig), "  - name: conveyor\n", "  - name: conveyor2\n    source: "+testenv.Path("testdata", "demo", "conveyor.avi")+
		"\n    loop: true\n    realtime: false\n    pipeline: {detector: parts, classifier: colour}\n  - name: conveyor\n", 1)
	os.WriteFile(cfgPath, []byte(second), 0o600)
	agent.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the new camera's predictions", 60*time.Second, func() bool { return count("conveyor2") > 20 })
	var st payload.Status
	msgs := in.Get("cvedge/proc/status")
	json.Unmarshal(msgs[len(msgs)-1], &st)
	if len(st.Cameras) != 2 {
		t.Fatalf("status after reload: %+v", st.Cameras)
	}

	for _, broken := range []string{
		second + "bogus_key: 1\n",
		strings.Replace(second, filepath.Join(testenv.Path("testdata", "demo"), "classifier"), "/nonexistent/classifier", 1),
	} {
		os.WriteFile(cfgPath, []byte(broken), 0o600)
		agent.Process.Signal(syscall.SIGHUP)
		before := count("conveyor2")
		testenv.WaitFor(t, "frames after a refused reload", 30*time.Second, func() bool { return count("conveyor2") > before+20 })
	}

	// the same over MQTT: the reload command answers with what happened
	reloadCmd := func(id string) payload.Result {
		t.Helper()
		in.Publish(t, "cvedge/proc/commands", `{"id":"`+id+`","command":"reload"}`)
		var res payload.Result
		testenv.WaitFor(t, "the reload result", 60*time.Second, func() bool {
			for _, raw := range in.Get("cvedge/proc/commands/results") {
				if json.Unmarshal(raw, &res) == nil && res.ID == id {
					return true
				}
			}
			return false
		})
		return res
	}
	os.WriteFile(cfgPath, []byte(strings.Replace(second, "threshold: 0.5", "threshold: 2", 1)), 0o600)
	if res := reloadCmd("r1"); res.OK || !strings.Contains(res.Error, "threshold") {
		t.Fatalf("reload of a broken config: %+v", res)
	}
	os.WriteFile(cfgPath, []byte(strings.Replace(string(orig), "keepalive: 2s", "keepalive: 3s", 1)), 0o600)
	if res := reloadCmd("r2"); !res.OK || res.Detail["cameras"] != "1" || res.Detail["restartNeeded"] != "mqtt" {
		t.Fatalf("reload back to one camera: %+v", res)
	}
	before := count("conveyor")
	testenv.WaitFor(t, "frames after the reload command", 30*time.Second, func() bool { return count("conveyor") > before+20 })

	// a new source that cannot be opened: the camera keeps its old one, and the log says why
	notVideo := filepath.Join(t.TempDir(), "notes.avi")
	os.WriteFile(notVideo, []byte("not a video"), 0o600)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(orig), testenv.Path("testdata", "demo", "conveyor.avi"), notVideo, 1)), 0o600)
	agent.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the reload that keeps the old source", 30*time.Second, func() bool {
		log, _ := os.ReadFile(agent.Stdout.(*os.File).Name())
		return strings.Contains(string(log), "reload: the camera keeps its old settings, its new source cannot be opened") &&
			strings.Contains(string(log), "cannot open file "+notVideo) && strings.Count(string(log), "config reloaded") >= 3
	})
	before = count("conveyor")
	testenv.WaitFor(t, "frames on the old source", 30*time.Second, func() bool { return count("conveyor") > before+20 })

	agent.Process.Signal(syscall.SIGTERM)
	if err := agent.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	log, _ := os.ReadFile(agent.Stdout.(*os.File).Name())
	if n := strings.Count(string(log), "reload refused"); n != 3 {
		t.Fatalf("%d refused reloads logged, want 3:\n%s", n, log)
	}
	if !strings.Contains(string(log), "config reloaded") {
		t.Fatalf("no reload logged:\n%s", log)
	}
}

// TestCrashLosesNothingOnDisk: kill -9 of an agent, (1) while the broker is frozen
// (SIGSTOP: connection open, nothing answers) once the stall is noticed, and (2) with
// mqtt.spool_first and the broker up. Every prediction the agent logged as published must
// arrive after the restart: in (2) none may be missing, in (1) at most the few being
// written at the instant of the kill. (Before, 50 s into a frozen broker kill -9 lost every
// message queued in memory: hundreds.)
func TestCrashLosesNothingOnDisk(t *testing.T) {
	needRuntime(t)
	for _, c := range []struct {
		name       string
		spoolFirst bool
		maxLost    int
	}{{"frozen broker", false, 3}, {"spool_first", true, 0}} {
		t.Run(c.name, func(t *testing.T) {
			broker := testenv.StartMosquitto(t, testenv.Persistent(t.TempDir())...)
			in := testenv.Dashboard(t, broker.URL, "cvedge/proc/#")
			cfg := agentConfig(t, broker.URL, filepath.Join(t.TempDir(), "spool"))
			raw, _ := os.ReadFile(cfg)
			yaml := strings.Replace(string(raw), "log_level: info,", "log_level: info, log_predictions: true,", 1)
			if c.spoolFirst {
				yaml = strings.Replace(yaml, "  stats_interval: 500ms\n", "  stats_interval: 500ms\n  spool_first: true\n", 1)
			}
			os.WriteFile(cfg, []byte(yaml), 0o600)

			first := agentProcess(t, cfg)
			testenv.WaitFor(t, "30 predictions from the first run", 60*time.Second, func() bool {
				for _, ids := range frames(t, in) {
					return len(ids) >= 30
				}
				return false
			})
			var boot string
			for b := range frames(t, in) {
				boot = b
			}
			if c.spoolFirst {
				time.Sleep(1500 * time.Millisecond)
			} else {
				broker.Freeze(t)
				time.Sleep(5 * time.Second) // past the stall time (2 s): everything goes to disk
			}
			first.Process.Signal(syscall.SIGKILL)
			first.Wait()
			logged := loggedFrames(t, first.Stdout.(*os.File).Name())
			broker.Thaw(t)

			second := agentProcess(t, cfg)
			defer func() {
				second.Process.Signal(syscall.SIGTERM)
				second.Wait()
			}()
			// the quiet window below starts once the second run is connected: on a loaded
			// machine its start alone (loading OpenCV and the models) can take longer
			testenv.WaitFor(t, "the second run connected", 60*time.Second, func() bool {
				raw, _ := os.ReadFile(second.Stdout.(*os.File).Name())
				return strings.Contains(string(raw), `msg="connected to MQTT broker"`)
			})
			missing := func() []uint64 {
				got := frames(t, in)[boot]
				var m []uint64
				for id := uint64(1); id <= logged; id++ {
					if !got[id] {
						m = append(m, id)
					}
				}
				return m
			}
			for n, last := -1, time.Now(); time.Since(last) < 4*time.Second; { // until the first run's messages stop coming
				if k := len(frames(t, in)[boot]); k != n {
					n, last = k, time.Now()
				}
				if len(missing()) == 0 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			m := missing()
			t.Logf("first run logged %d predictions as published before kill -9; %d missing after the restart %v", logged, len(m), m)
			if len(m) > c.maxLost {
				t.Fatalf("%d of %d predictions lost (at most %d allowed): %v", len(m), logged, c.maxLost, m)
			}
		})
	}
}

// loggedFrames is the highest frame id an agent's log says it published.
func loggedFrames(t *testing.T, logPath string) uint64 {
	t.Helper()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, "msg=prediction") {
			continue
		}
		var id uint64
		if i := strings.Index(line, " frame="); i >= 0 {
			fmt.Sscanf(line[i+len(" frame="):], "%d", &id)
		}
		last = max2(last, id)
	}
	if last == 0 {
		t.Fatalf("no prediction logged in %s", logPath)
	}
	return last
}
