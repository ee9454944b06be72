//go:build soak

// The soak: `make soak` runs the real agent for SOAK_DURATION (default 30m) on the demo video
// against a mosquitto on loopback, and injects the faults a plant has, one at a time: broker
// outages and freezes, reloads, hot swaps and a full spool disk. It prints its figures,
// writes them to .cache/soak/, and fails on a frame id gap no counted loss explains, a spool
// that does not drain, memory or goroutine growth, or an agent that does not stop cleanly.
// It is kept out of `make test` by its build tag.

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// Bounds the soak holds the agent to.
const (
	soakMaxRSSGrowthMB   = 50              // resident memory after warm-up to the end
	soakMaxGoroutineGrow = 50              // goroutines after warm-up to the end
	soakMaxFDGrowth      = 20              // open files after warm-up to the end
	soakSpoolEmptyBytes  = 64 << 10        // the spool's files once drained: "about 0"
	soakDrainBound       = 3 * time.Minute // a backlog delivered after a fault
	soakStopBound        = 30 * time.Second
	soakTmpfsMB          = 16
	soakAgentID          = "soak"
	soakSecondIteration  = "c0ffee00-50a4-4e00-9000-000000000002" // the demo classifier under another id
)

// soakEnv reads a duration from the environment, or def.
func soakEnv(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q is not a duration: give one like 30m or 90s", name, v)
	}
	return d
}

// soakPrediction is what the soak keeps of each prediction it receives.
type soakPrediction struct {
	Boot, Camera, ID string
	FrameID          uint64
	Created, Recv    time.Time
}

// soakRecorder is the plant dashboard of the soak: a persistent MQTT session that keeps every
// prediction (boot, camera, frameId), the latest stats and the command results.
type soakRecorder struct {
	c       paho.Client
	mu      sync.Mutex
	preds   []soakPrediction
	stats   payload.Stats
	nStats  int
	results map[string]payload.Result
	bad     int // messages that did not parse
}

func (r *soakRecorder) keep(_ paho.Client, m paho.Message) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch t := m.Topic(); {
	case strings.HasSuffix(t, "/predictions"):
		var p payload.Prediction
		if json.Unmarshal(m.Payload(), &p) != nil {
			r.bad++
			return
		}
		r.preds = append(r.preds, soakPrediction{Boot: p.Boot, Camera: p.Camera, ID: p.ID, FrameID: p.FrameID, Created: p.Created, Recv: now})
	case strings.HasSuffix(t, "/stats"):
		var s payload.Stats
		if json.Unmarshal(m.Payload(), &s) != nil {
			r.bad++
			return
		}
		if s.Time.After(r.stats.Time) {
			r.stats = s
		}
		r.nStats++
	case strings.HasSuffix(t, "/commands/results"):
		var res payload.Result
		if json.Unmarshal(m.Payload(), &res) != nil {
			r.bad++
			return
		}
		r.results[res.ID] = res
	}
}

func startRecorder(t *testing.T, brokerURL string) *soakRecorder {
	r := &soakRecorder{results: map[string]payload.Result{}}
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID("soak-dashboard").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetMaxReconnectInterval(time.Second).
		SetConnectRetryInterval(500 * time.Millisecond).SetDefaultPublishHandler(r.keep)
	opts.SetOnConnectHandler(func(c paho.Client) { c.Subscribe("cvedge/"+soakAgentID+"/#", 1, r.keep) })
	r.c = paho.NewClient(opts)
	if tok := r.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("the soak's dashboard did not connect to %s: %v", brokerURL, tok.Error())
	}
	testenv.WaitFor(t, "the dashboard's connection", 10*time.Second, r.c.IsConnectionOpen)
	time.Sleep(300 * time.Millisecond) // the subscription is made in the connect handler
	t.Cleanup(func() { r.c.Disconnect(100) })
	return r
}

func (r *soakRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.preds)
}

func (r *soakRecorder) lastStats() payload.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// command sends a command and waits (bounded) for its result.
func (r *soakRecorder) command(id, body string) (payload.Result, error) {
	if tok := r.c.Publish("cvedge/"+soakAgentID+"/commands", 1, false, body); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return payload.Result{}, fmt.Errorf("publishing command %s: %v", id, tok.Error())
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		res, ok := r.results[id]
		r.mu.Unlock()
		if ok {
			return res, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return payload.Result{}, fmt.Errorf("no result for command %s within 90s", id)
}

// metrics are the agent's Prometheus metrics, by series ("name{labels}") and summed by name.
type metrics map[string]float64

func scrape(url string) (metrics, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// sum adds the series of name whose labels contain every one of labels (`outcome="lost"`).
func (m metrics) sum(name string, labels ...string) float64 {
	var total float64
	for k, v := range m {
		base, lab, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(lab, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// processSample is the agent's footprint at one moment.
type processSample struct {
	What       string  `json:"what"`
	AtS        float64 `json:"atS"`
	RSSKB      int64   `json:"rssKB"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
}

// episode is one injected fault.
type episode struct {
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	// Restored is when the fault ended (broker back, disk freed, command answered).
	Restored time.Time `json:"restored"`
	// DrainS is from Restored until the spool was empty again.
	DrainS float64 `json:"drainS,omitempty"`
	// WorstLagS is the longest time from a prediction's creation to its arrival, over the
	// predictions made during the fault.
	WorstLagS float64 `json:"worstLagS,omitempty"`
	// Lost and Dropped are the losses the agent counted during the fault (mqtt lost, spool
	// bounds drops of predictions); Missing the frame ids that never arrived from it.
	Lost    int `json:"lost"`
	Dropped int `json:"dropped"`
	Missing int `json:"missing"`
	// Duplicates counts the predictions made during the fault that arrived twice or more.
	Duplicates int `json:"duplicates"`
	// Restarts counts frame counters that began again at 1 during the fault.
	Restarts int    `json:"frameIdRestarts"`
	ReadyZ   int    `json:"readyzDuring,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Failed   string `json:"failed,omitempty"`
}

// soakFigures is what the soak prints and writes.
type soakFigures struct {
	Duration               string             `json:"duration"`
	Faults                 map[string]int     `json:"faults"`
	FaultsFailed           int                `json:"faultsFailed"`
	FramesPublished        int64              `json:"framesPublished"`
	Received               int                `json:"predictionsReceived"`
	Distinct               map[string]int     `json:"distinctFrameIds"`       // "boot/camera"
	DistinctInRuns         map[string]int     `json:"distinctFrameIdsInRuns"` // summed over the runs of a restarting counter
	Runs                   map[string]int     `json:"counterRuns"`
	Missing                int                `json:"missingFrameIds"`
	MissingExplained       int                `json:"missingExplained"`
	FrameIDRestarts        int                `json:"frameIdRestarts"` // the frame counter began again at 1 within a boot
	FrameIDReused          int                `json:"frameIdReused"`   // two predictions with one frame id in one run of the counter
	RestartsOutsideFaults  int                `json:"frameIdRestartsOutsideFaults"`
	MissingOutsideDiskFull int                `json:"missingOutsideDiskFull"`
	CounterResets          int                `json:"framesProcessedResets"` // cvedge_frames_processed_total went down
	MaxGoroutines          int                `json:"maxGoroutines"`
	Duplicates             int                `json:"duplicates"`
	Lost                   int64              `json:"lost"`
	SpoolDropped           int64              `json:"spoolDropped"`
	SetAside               int64              `json:"setAside"`
	DeadLetterFiles        int                `json:"deadLetterFiles"`
	WorstLagS              map[string]float64 `json:"worstLagS"` // per kind of fault
	WorstDrainS            map[string]float64 `json:"worstDrainS"`
	Samples                []processSample    `json:"samples"`
	RSSGrowthMBPerH        float64            `json:"rssGrowthMBPerHour"`
	SpoolDiskBytesEnd      int64              `json:"spoolDiskBytesEnd"`
	TmpfsUsedBytesEnd      int64              `json:"tmpfsUsedBytesEnd"`
	ExitStatus             string             `json:"exitStatus"`
	StopS                  float64            `json:"stopS"`
	Episodes               []*episode         `json:"episodes"`
	Failures               []string           `json:"failures"`
}

// soak holds the run's parts.
type soak struct {
	t        *testing.T
	start    time.Time
	broker   *testenv.Broker
	rec      *soakRecorder
	agent    *exec.Cmd
	exited   chan struct{}
	exitErr  error
	cfgPath  string
	cfg      string // the config as first written
	logPath  string
	httpURL  string
	spoolFS  string
	spoolDir string
	outage   time.Duration
	episodes []*episode
	reloads  int
	swaps    int
}

func (s *soak) logf(format string, args ...any) {
	fmt.Printf("soak %7.1fs  %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// TestSoak is `make soak`.
func TestSoak(t *testing.T) {
	duration := soakEnv(t, "SOAK_DURATION", 30*time.Minute)
	outage := soakEnv(t, "SOAK_OUTAGE", 20*time.Second)
	pause := soakEnv(t, "SOAK_PAUSE", 20*time.Second)
	warmup := min(max(duration/10, 30*time.Second), 2*time.Minute)

	if os.Geteuid() != 0 {
		t.Fatal("the soak mounts a small tmpfs for the spool to fill it: run make soak as root (sudo make soak)")
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Fatal("mosquitto not found: run scripts/setup.sh (or apt-get install mosquitto)")
		}
	}
	bin := os.Getenv("SOAK_BIN")
	if bin == "" {
		bin = testenv.Path("bin", "cvedge")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the agent binary %s is missing: run make build (or make soak, which builds it)", bin)
	}
	outDir := os.Getenv("SOAK_OUT")
	if outDir == "" {
		outDir = testenv.Path(".cache", "soak")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatalf("the soak's output folder %s: %v", outDir, err)
	}

	s := &soak{t: t, start: time.Now(), outage: outage, exited: make(chan struct{})}
	// The hard bound: whatever hangs, the soak ends.
	hard := time.AfterFunc(duration+warmup+15*time.Minute, func() {
		fmt.Println("soak: FAIL: over its time bound, stopping everything")
		if s.agent != nil && s.agent.Process != nil {
			s.agent.Process.Kill()
		}
		if s.spoolFS != "" {
			exec.Command("umount", "-l", s.spoolFS).Run()
		}
		os.Exit(2)
	})
	defer hard.Stop()

	// The spool on a small tmpfs of its own, so that the soak can fill it.
	s.spoolFS = filepath.Join(t.TempDir(), "spoolfs")
	os.MkdirAll(s.spoolFS, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", soakTmpfsMB), "tmpfs", s.spoolFS).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs for the spool at %s: %v: %s (the soak needs root and mount(8))", s.spoolFS, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", s.spoolFS).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", s.spoolFS, err, out)
		}
	})
	s.spoolDir = filepath.Join(s.spoolFS, "spool")

	// A broker that keeps the dashboard's session and its queued messages across a restart.
	s.broker = testenv.StartMosquitto(t, append(testenv.Persistent(t.TempDir()), "max_queued_messages 0")...)
	s.rec = startRecorder(t, s.broker.URL)

	// The model store: the demo classifier, and the same export under a second iteration id.
	storeDir := filepath.Join(t.TempDir(), "models")
	second := filepath.Join(t.TempDir(), "classifier-b")
	copyExportDir(t, testenv.Path("testdata", "demo", "classifier"), second, soakSecondIteration)
	for _, src := range []string{testenv.Path("testdata", "demo", "classifier"), second} {
		if out, err := exec.Command(bin, "models", "add", "--store", storeDir, "--model", "colour", src).CombinedOutput(); err != nil {
			t.Fatalf("cvedge models add %s: %v\n%s", src, err, out)
		}
	}

	port := testenv.FreePort(t)
	s.httpURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.cfg = soakConfig(s.broker.URL, s.spoolDir, storeDir, fmt.Sprintf("127.0.0.1:%d", port))
	s.cfgPath = filepath.Join(t.TempDir(), "cvedge.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(s.cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.logPath = filepath.Join(outDir, "agent.log")
	s.startAgent(t, bin)

	s.logf("started: %s for %s (warm-up %s, faults of %s, %s between), agent log %s", bin, duration, warmup, outage, pause, s.logPath)
	s.waitFor("the first predictions", 90*time.Second, func() bool { return s.rec.count() > 20 })
	end := s.start.Add(duration)
	var fig soakFigures
	fig.Faults = map[string]int{}
	fig.Samples = append(fig.Samples, s.sample("start"))
	s.sleep(time.Until(s.start.Add(warmup)))
	warm := s.sample("warm-up")
	mon := s.monitor()
	fig.Samples = append(fig.Samples, warm)

	kinds := []string{"outage", "disk-full", "reload", "freeze", "hotswap", "reload-changed"}
	for i := 0; ; i++ {
		kind := kinds[i%len(kinds)]
		need := pause + 45*time.Second
		if kind == "outage" || kind == "freeze" || kind == "disk-full" {
			need += outage + 15*time.Second
		}
		if time.Until(end) < need {
			break
		}
		e := s.inject(kind)
		fig.Faults[kind]++
		if e.Failed != "" {
			fig.FaultsFailed++
			s.logf("%s FAILED: %s", kind, e.Failed)
		}
		s.checkAlive()
		fig.Samples = append(fig.Samples, s.sample("after "+kind))
		s.sleep(pause)
	}
	s.sleep(time.Until(end))

	// The end: the broker up, the backlog delivered, the spool's space given back.
	final := &episode{Kind: "final drain", Start: time.Now(), Restored: time.Now()}
	s.episodes = append(s.episodes, final)
	s.drain(final)
	var st payload.Stats
	spoolOK := false
	for deadline := time.Now().Add(soakDrainBound); time.Now().Before(deadline); time.Sleep(time.Second) {
		st = s.rec.lastStats()
		if st.Time.After(final.Restored) && st.Spool.Messages == 0 && st.Spool.DiskBytes <= soakSpoolEmptyBytes {
			spoolOK = true
			break
		}
	}
	fig.SpoolDiskBytesEnd = st.Spool.DiskBytes
	fig.TmpfsUsedBytesEnd = tmpfsUsed(s.spoolFS)
	endSample := s.sample("end")
	fig.Samples = append(fig.Samples, endSample)
	last, err := scrape(s.httpURL)
	if err != nil {
		t.Errorf("the last /metrics: %v", err)
	}
	mon.stop()
	if err == nil {
		mon.add(last)
	}
	fig.FramesPublished, fig.CounterResets, fig.MaxGoroutines = mon.totals()
	fig.Lost = int64(last.sum("cvedge_mqtt_messages_total", `outcome="lost"`))
	fig.SetAside = int64(last.sum("cvedge_mqtt_messages_total", `outcome="set_aside"`))
	fig.SpoolDropped = int64(last.sum("cvedge_spool_dropped_total"))

	// SIGTERM: the agent must stop cleanly, within the bound.
	stopAt := time.Now()
	s.agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		fig.StopS = time.Since(stopAt).Seconds()
		if s.exitErr != nil {
			fig.ExitStatus = s.exitErr.Error()
		} else {
			fig.ExitStatus = "0"
		}
	case <-time.After(soakStopBound):
		fig.ExitStatus = fmt.Sprintf("still running %s after SIGTERM; killed", soakStopBound)
		s.agent.Process.Kill()
		<-s.exited
	}
	time.Sleep(3 * time.Second) // the last messages reach the dashboard
	if entries, err := os.ReadDir(filepath.Join(s.spoolDir, "deadletter")); err == nil {
		fig.DeadLetterFiles = len(entries)
	}

	fig.Duration = time.Since(s.start).Round(time.Second).String()
	s.analyse(&fig)
	s.judge(&fig, warm, endSample, spoolOK, st)

	md := fig.markdown()
	fmt.Print("\n" + md)
	js, _ := json.MarshalIndent(fig, "", "  ")
	os.WriteFile(filepath.Join(outDir, "soak.json"), js, 0o644)
	os.WriteFile(filepath.Join(outDir, "soak.md"), []byte(md), 0o644)
	fmt.Printf("figures written to %s and %s\n", filepath.Join(outDir, "soak.md"), filepath.Join(outDir, "soak.json"))
	if len(fig.Failures) > 0 {
		t.Fatalf("the soak failed:\n- %s\n(agent log: %s)", strings.Join(fig.Failures, "\n- "), s.logPath)
	}
}

// soakConfig is the demo's pipeline, looped at the video's own rate, on the soak's broker,
// spool, store and HTTP port.
func soakConfig(brokerURL, spoolDir, storeDir, listen string) string {
	demo := testenv.Path("testdata", "demo")
	return fmt.Sprintf(`
agent: {id: %s, log_level: info, log_format: text}
mqtt:
  broker: %s
  client_id: cvedge-soak
  keepalive: 5s
  publish_timeout: 5s
  max_reconnect_interval: 2s
  stats_interval: 2s
spool: {dir: %s}
store: {dir: %s}
samples: {store: {dir: %s}}  # off the spool's tmpfs, which the soak fills
http: {listen: "%s"}
models:
  parts: {path: %s, threshold: 0.5}
  colour: {path: ""}  # the model store's active iteration serves
cameras:
  - name: conveyor
    source: %s
    loop: true
    realtime: true
    pipeline: {detector: parts, classifier: colour}
`, soakAgentID, brokerURL, spoolDir, storeDir, filepath.Join(filepath.Dir(storeDir), "samples"), listen, filepath.Join(demo, "detector"), filepath.Join(demo, "conveyor.avi"))
}

// copyExportDir copies an export folder and gives it another iteration id in its manifest.
func copyExportDir(t *testing.T, from, to, iteration string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "cvexport.manifest" {
			var man map[string]any
			if err := json.Unmarshal(raw, &man); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			man["IterationId"] = iteration
			raw, _ = json.MarshalIndent(man, "", "  ")
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *soak) startAgent(t *testing.T, bin string) {
	log, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	s.agent = exec.Command(bin, "run", "--config", s.cfgPath)
	s.agent.Env = append(os.Environ(), "MALLOC_ARENA_MAX=2") // as the systemd unit runs it
	s.agent.Stdout, s.agent.Stderr = log, log
	if err := s.agent.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		s.exitErr = s.agent.Wait()
		log.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.agent.Process.Kill()
			<-s.exited
		}
	})
}

// checkAlive fails the soak at once when the agent has exited.
func (s *soak) checkAlive() {
	select {
	case <-s.exited:
		s.t.Fatalf("the agent exited during the soak (%v); see %s", s.exitErr, s.logPath)
	default:
	}
}

// sleep waits d, watching that the agent stays up.
func (s *soak) sleep(d time.Duration) {
	select {
	case <-s.exited:
		s.checkAlive()
	case <-time.After(max(d, 0)):
	}
}

func (s *soak) waitFor(what string, bound time.Duration, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		s.checkAlive()
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s; see %s", bound, what, s.logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *soak) sample(what string) processSample {
	p := processSample{What: what, AtS: time.Since(s.start).Seconds()}
	pid := s.agent.Process.Pid
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				p.RSSKB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		p.FDs = len(fds)
	}
	if m, err := scrape(s.httpURL); err == nil {
		p.Goroutines = int(m.sum("go_goroutines"))
	}
	s.logf("%s: RSS %.1f MB, %d fds, %d goroutines, %d predictions received", what, float64(p.RSSKB)/1024, p.FDs, p.Goroutines, s.rec.count())
	return p
}

// monitor scrapes /metrics every second: the frames published (summed across resets of the
// counter) and the most goroutines seen.
type monitor struct {
	done, stopped chan struct{}
	mu            sync.Mutex
	frames        int64
	last          float64
	resets, maxG  int
}

func (s *soak) monitor() *monitor {
	m := &monitor{done: make(chan struct{}), stopped: make(chan struct{})}
	if first, err := scrape(s.httpURL); err == nil {
		m.last = first.sum("cvedge_frames_processed_total")
		m.frames = int64(m.last)
	}
	go func() {
		defer close(m.stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-tick.C:
			}
			if got, err := scrape(s.httpURL); err == nil {
				m.add(got)
			}
		}
	}()
	return m
}

func (m *monitor) add(got metrics) {
	v := got.sum("cvedge_frames_processed_total")
	m.mu.Lock()
	defer m.mu.Unlock()
	if v < m.last {
		m.resets++
		m.frames += int64(v)
	} else {
		m.frames += int64(v - m.last)
	}
	m.last = v
	m.maxG = max(m.maxG, int(got.sum("go_goroutines")))
}

func (m *monitor) stop() { close(m.done); <-m.stopped }

func (m *monitor) totals() (frames int64, resets, maxGoroutines int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frames, m.resets, m.maxG
}

// counted returns the losses the agent counts: mqtt lost, and predictions the spool bounds
// dropped.
func (s *soak) counted() (lost, dropped int, err error) {
	m, err := scrape(s.httpURL)
	if err != nil {
		return 0, 0, err
	}
	return int(m.sum("cvedge_mqtt_messages_total", `outcome="lost"`)), int(m.sum("cvedge_spool_dropped_total", `class="predictions"`)), nil
}

// drain waits until the broker is connected and the spool is empty, and records how long
// that took from the episode's end.
func (s *soak) drain(e *episode) {
	deadline := time.Now().Add(soakDrainBound)
	for {
		s.checkAlive()
		m, err := scrape(s.httpURL)
		if err == nil && m.sum("cvedge_mqtt_connected") == 1 && m.sum("cvedge_spool_messages") == 0 {
			e.DrainS = time.Since(e.Restored).Seconds()
			return
		}
		if time.Now().After(deadline) {
			e.Failed = fmt.Sprintf("the spool did not drain within %s of the end of the fault (metrics: %v; connected %v, spool messages %v)",
				soakDrainBound, err, m.sum("cvedge_mqtt_connected"), m.sum("cvedge_spool_messages"))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// reloaded counts "config reloaded" in the agent's log.
func (s *soak) reloaded() int {
	raw, _ := os.ReadFile(s.logPath)
	return bytes.Count(raw, []byte("config reloaded"))
}

func readyz(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// inject runs one fault and waits until the agent has recovered from it.
func (s *soak) inject(kind string) *episode {
	e := &episode{Kind: kind, Start: time.Now()}
	s.episodes = append(s.episodes, e)
	lost0, drop0, err := s.counted()
	if err != nil {
		e.Failed = fmt.Sprintf("/metrics before the fault: %v", err)
		return e
	}
	s.logf("%s: start", kind)
	switch kind {
	case "outage":
		s.broker.Stop()
		s.sleep(s.outage)
		s.broker.Start(s.t)
		e.Restored = time.Now()
		s.drain(e)
	case "freeze":
		s.broker.Freeze(s.t)
		s.sleep(s.outage)
		s.broker.Thaw(s.t)
		e.Restored = time.Now()
		s.drain(e)
	case "reload", "reload-changed":
		s.reloads++
		cfg := s.cfg
		if kind == "reload-changed" {
			th := []string{"0.55", "0.45"}[s.reloads%2]
			cfg = strings.Replace(cfg, "threshold: 0.5}", "threshold: "+th+"}", 1)
			e.Detail = "models.parts.threshold " + th
		} else {
			// the file as it is now, unchanged
			raw, _ := os.ReadFile(s.cfgPath)
			cfg = string(raw)
			e.Detail = "unchanged"
		}
		if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
			e.Failed = err.Error()
			return e
		}
		before, n := s.reloaded(), s.rec.count()
		s.agent.Process.Signal(syscall.SIGHUP)
		for deadline := time.Now().Add(90 * time.Second); s.reloaded() == before; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				e.Failed = "no \"config reloaded\" in the log within 90s of SIGHUP"
				return e
			}
		}
		for deadline := time.Now().Add(60 * time.Second); s.rec.count() < n+20; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				e.Failed = "fewer than 20 predictions within 60s of the reload"
				break
			}
		}
		e.Restored = time.Now()
	case "hotswap":
		s.swaps++
		act := fmt.Sprintf(`{"id":"soak-activate-%d","command":"activate","model":"colour","iteration":"%s"}`, s.swaps, soakSecondIteration)
		res, err := s.rec.command(fmt.Sprintf("soak-activate-%d", s.swaps), act)
		switch {
		case err != nil:
			e.Failed = err.Error()
		case !res.OK:
			e.Failed = "activate refused: " + res.Error
		default:
			s.sleep(5 * time.Second)
			rb := fmt.Sprintf(`{"id":"soak-rollback-%d","command":"rollback","model":"colour"}`, s.swaps)
			res, err = s.rec.command(fmt.Sprintf("soak-rollback-%d", s.swaps), rb)
			if err != nil {
				e.Failed = err.Error()
			} else if !res.OK {
				e.Failed = "rollback refused: " + res.Error
			}
		}
		e.Detail = "activate " + soakSecondIteration + ", rollback"
		e.Restored = time.Now()
	case "disk-full":
		// The broker goes away, the agent spools, the spool's disk fills up, is freed, and
		// the broker comes back.
		s.broker.Stop()
		s.sleep(3 * time.Second)
		ballast := filepath.Join(s.spoolFS, "ballast")
		n, err := fill(ballast)
		if !errors.Is(err, syscall.ENOSPC) {
			e.Failed = fmt.Sprintf("filling the spool's tmpfs did not end in ENOSPC: %v", err)
		}
		e.Detail = fmt.Sprintf("ballast %.1f MB", float64(n)/(1<<20))
		s.sleep(s.outage / 2)
		e.ReadyZ = readyz(s.httpURL)
		s.sleep(s.outage / 2)
		os.Remove(ballast)
		s.sleep(3 * time.Second)
		s.broker.Start(s.t)
		e.Restored = time.Now()
		s.drain(e)
	}
	lost1, drop1, err := s.counted()
	if err == nil {
		e.Lost, e.Dropped = lost1-lost0, drop1-drop0
	}
	s.logf("%s: recovered (drain %.1fs, lost %d, dropped %d) %s", kind, e.DrainS, e.Lost, e.Dropped, e.Detail)
	return e
}

// fill writes a file until the file system is full.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			return n, err
		}
		if n > (soakTmpfsMB+1)<<20 {
			return n, errors.New("wrote more than the tmpfs holds")
		}
	}
}

func tmpfsUsed(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// analyse counts frame ids per (boot, camera): gaps, restarts, duplicates; and the lag of
// the predictions made during each fault. A camera's predictions, in the order they were made,
// must number 1, 2, 3, ... for the whole boot; a 1 again is a restart of the counter, and the
// ids after it are checked as a run of their own, so that a restart does not hide a gap.
func (s *soak) analyse(fig *soakFigures) {
	s.rec.mu.Lock()
	preds := append([]soakPrediction(nil), s.rec.preds...)
	s.rec.mu.Unlock()
	fig.Received = len(preds)
	fig.Distinct, fig.DistinctInRuns, fig.Runs = map[string]int{}, map[string]int{}, map[string]int{}
	fig.Episodes = s.episodes
	fig.WorstLagS, fig.WorstDrainS = map[string]float64{}, map[string]float64{}

	// the episode a moment belongs to: from its start until slack after it ended
	during := func(t time.Time, kind string, slack time.Duration) *episode {
		for _, e := range s.episodes {
			if (kind == "" || e.Kind == kind) && !t.Before(e.Start) && !t.After(e.Restored.Add(slack)) {
				return e
			}
		}
		return nil
	}

	type key struct{ boot, camera string }
	byKey := map[key][]soakPrediction{}
	seen := map[string]bool{}
	for _, p := range preds {
		if seen[p.ID] {
			fig.Duplicates++
			if e := during(p.Created, "", 0); e != nil {
				e.Duplicates++
			}
			continue
		}
		seen[p.ID] = true
		k := key{p.Boot, p.Camera}
		byKey[k] = append(byKey[k], p)
	}
	for k, ps := range byKey {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Created.Before(ps[j].Created) })
		distinct := map[uint64]bool{}
		var runs [][]soakPrediction
		for _, p := range ps {
			distinct[p.FrameID] = true
			if p.FrameID == 1 && len(runs) > 0 {
				fig.FrameIDRestarts++
				if e := during(p.Created, "", 10*time.Second); e != nil {
					e.Restarts++
				} else {
					fig.RestartsOutsideFaults++
				}
			}
			if p.FrameID == 1 || len(runs) == 0 {
				runs = append(runs, nil)
			}
			runs[len(runs)-1] = append(runs[len(runs)-1], p)
		}
		fig.Distinct[k.boot+"/"+k.camera] = len(distinct)
		fig.Runs[k.boot+"/"+k.camera] = len(runs)
		for _, run := range runs {
			ids := map[uint64]soakPrediction{}
			var top uint64
			for _, p := range run {
				if _, dup := ids[p.FrameID]; dup {
					fig.FrameIDReused++
				}
				ids[p.FrameID] = p
				top = max(top, p.FrameID)
			}
			fig.DistinctInRuns[k.boot+"/"+k.camera] += len(ids)
			// the creation times around each missing id tell which fault it belongs to
			for id := uint64(1); id <= top; id++ {
				if _, ok := ids[id]; ok {
					continue
				}
				fig.Missing++
				var before, after time.Time
				for b := id - 1; b >= 1 && before.IsZero(); b-- {
					if p, ok := ids[b]; ok {
						before = p.Created
					}
				}
				for a := id + 1; a <= top && after.IsZero(); a++ {
					if p, ok := ids[a]; ok {
						after = p.Created
					}
				}
				found := false
				for _, e := range s.episodes {
					if e.Kind == "disk-full" && !before.After(e.Restored) && !after.Before(e.Start) {
						e.Missing++
						found = true
						break
					}
				}
				if !found {
					fig.MissingOutsideDiskFull++
				}
			}
		}
	}
	for _, e := range s.episodes {
		if e.Kind == "disk-full" {
			fig.MissingExplained += min(e.Missing, e.Lost+e.Dropped)
		}
		for _, p := range preds {
			if !p.Created.Before(e.Start) && !p.Created.After(e.Restored) {
				e.WorstLagS = max(e.WorstLagS, p.Recv.Sub(p.Created).Seconds())
			}
		}
		fig.WorstLagS[e.Kind] = max(fig.WorstLagS[e.Kind], e.WorstLagS)
		fig.WorstDrainS[e.Kind] = max(fig.WorstDrainS[e.Kind], e.DrainS)
	}
}

// judge lists what fails the soak.
func (s *soak) judge(fig *soakFigures, warm, end processSample, spoolOK bool, st payload.Stats) {
	fail := func(format string, args ...any) { fig.Failures = append(fig.Failures, fmt.Sprintf(format, args...)) }
	if n := fig.Missing - fig.MissingExplained; n > 0 {
		fail("%d frame ids missing that no counted loss explains (%d missing in all, %d explained by losses counted during disk-full episodes)", n, fig.Missing, fig.MissingExplained)
	}
	if fig.FrameIDRestarts > 0 || fig.FrameIDReused > 0 {
		by := []string{}
		for _, e := range fig.Episodes {
			if e.Restarts > 0 {
				by = append(by, fmt.Sprintf("%s at %s", e.Kind, e.Start.Format("15:04:05")))
			}
		}
		if fig.RestartsOutsideFaults > 0 {
			by = append(by, fmt.Sprintf("%d outside any fault", fig.RestartsOutsideFaults))
		}
		fail("the frame counter began again at 1 %d times within one boot (%s), and %d frame ids were used twice in one run: frame ids must go on across reloads and swaps", fig.FrameIDRestarts, strings.Join(by, ", "), fig.FrameIDReused)
	}
	if len(fig.Distinct) != 1 {
		fail("%d (boot, camera) pairs, want 1: the agent restarted or a camera appeared", len(fig.Distinct))
	}
	if !spoolOK {
		fail("the spool did not drain and give its space back within %s at the end: %d messages, %d disk bytes in the last stats", soakDrainBound, st.Spool.Messages, st.Spool.DiskBytes)
	}
	if g := float64(end.RSSKB-warm.RSSKB) / 1024; g > soakMaxRSSGrowthMB {
		fail("RSS grew by %.1f MB after warm-up (%.1f -> %.1f MB), over the bound of %d MB", g, float64(warm.RSSKB)/1024, float64(end.RSSKB)/1024, soakMaxRSSGrowthMB)
	}
	if h := (end.AtS - warm.AtS) / 3600; h > 0 {
		fig.RSSGrowthMBPerH = float64(end.RSSKB-warm.RSSKB) / 1024 / h
	}
	if g := end.Goroutines - warm.Goroutines; g > soakMaxGoroutineGrow || end.Goroutines == 0 {
		fail("goroutines grew from %d to %d after warm-up (bound: +%d)", warm.Goroutines, end.Goroutines, soakMaxGoroutineGrow)
	}
	if g := end.FDs - warm.FDs; g > soakMaxFDGrowth {
		fail("open files grew from %d to %d after warm-up (bound: +%d)", warm.FDs, end.FDs, soakMaxFDGrowth)
	}
	if fig.ExitStatus != "0" {
		fail("the agent did not stop cleanly on SIGTERM: %s", fig.ExitStatus)
	}
	for _, e := range fig.Episodes {
		if e.Failed != "" {
			fail("%s at %s: %s", e.Kind, e.Start.Format("15:04:05"), e.Failed)
		}
	}
	if fig.SetAside > 0 || fig.DeadLetterFiles > 0 {
		fail("%d messages set aside, %d files in the dead-letter folder: nothing in the soak is undeliverable", fig.SetAside, fig.DeadLetterFiles)
	}
}

func (fig *soakFigures) markdown() string {
	var b strings.Builder
	kinds := make([]string, 0, len(fig.Faults))
	for k := range fig.Faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	faults := []string{}
	for _, k := range kinds {
		faults = append(faults, fmt.Sprintf("%s %d", k, fig.Faults[k]))
	}
	distinct := []string{}
	for k, n := range fig.Distinct {
		distinct = append(distinct, fmt.Sprintf("%s: %d", k, n))
		if fig.Runs[k] > 1 {
			distinct[len(distinct)-1] += fmt.Sprintf(" (%d over %d runs of the counter)", fig.DistinctInRuns[k], fig.Runs[k])
		}
	}
	sort.Strings(distinct)
	lags := []string{}
	for _, k := range []string{"outage", "freeze", "disk-full"} {
		if _, ok := fig.WorstDrainS[k]; ok {
			lags = append(lags, fmt.Sprintf("%s %.1f s (drained %.1f s after)", k, fig.WorstLagS[k], fig.WorstDrainS[k]))
		}
	}
	sample := func(i int) processSample {
		if i < 0 {
			i += len(fig.Samples)
		}
		if i < 0 || i >= len(fig.Samples) {
			return processSample{}
		}
		return fig.Samples[i]
	}
	start, warm, end := sample(0), sample(1), sample(-1)
	verdict := "PASS"
	if len(fig.Failures) > 0 {
		verdict = "FAIL"
	}
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	b.WriteString("| figure | value |\n|---|---|\n")
	row("duration", fig.Duration)
	row("faults injected", strings.Join(faults, ", ")+fmt.Sprintf(" (failed: %d)", fig.FaultsFailed))
	row("frames published (cvedge_frames_processed_total, across its resets)", fmt.Sprintf("%d (%d resets)", fig.FramesPublished, fig.CounterResets))
	row("predictions received", fmt.Sprint(fig.Received))
	row("distinct frame ids per boot/camera", strings.Join(distinct, ", "))
	row("missing frame ids (explained by counted losses; outside disk-full episodes)", fmt.Sprintf("%d (%d; %d)", fig.Missing, fig.MissingExplained, fig.MissingOutsideDiskFull))
	row("frame counter restarts within a boot (ids reused in one run)", fmt.Sprintf("%d (%d)", fig.FrameIDRestarts, fig.FrameIDReused))
	row("duplicates received", fmt.Sprint(fig.Duplicates))
	row("counted losses: mqtt lost, spool dropped", fmt.Sprintf("%d, %d", fig.Lost, fig.SpoolDropped))
	row("worst delivery lag of a fault's predictions", strings.Join(lags, "; "))
	row("RSS start / after warm-up / end", fmt.Sprintf("%.1f / %.1f / %.1f MB", float64(start.RSSKB)/1024, float64(warm.RSSKB)/1024, float64(end.RSSKB)/1024))
	row("RSS growth after warm-up", fmt.Sprintf("%+.1f MB/hour", fig.RSSGrowthMBPerH))
	row("open fds warm-up / end", fmt.Sprintf("%d / %d", warm.FDs, end.FDs))
	row("goroutines warm-up / end (most seen)", fmt.Sprintf("%d / %d (%d)", warm.Goroutines, end.Goroutines, fig.MaxGoroutines))
	row("spool disk bytes at the end (tmpfs used)", fmt.Sprintf("%d (%d)", fig.SpoolDiskBytesEnd, fig.TmpfsUsedBytesEnd))
	row("set aside, dead-letter files", fmt.Sprintf("%d, %d", fig.SetAside, fig.DeadLetterFiles))
	row("exit status on SIGTERM", fmt.Sprintf("%s, in %.1f s", fig.ExitStatus, fig.StopS))
	row("verdict", verdict)
	if len(fig.Failures) > 0 {
		b.WriteString("\nFailures:\n")
		for _, f := range fig.Failures {
			b.WriteString("- " + f + "\n")
		}
	}
	b.WriteString("\n| fault | start | restored after | drain | worst lag | lost | dropped | missing | duplicates | detail |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, e := range fig.Episodes {
		detail := e.Detail
		if e.ReadyZ != 0 {
			detail += fmt.Sprintf("; /readyz %d while full", e.ReadyZ)
		}
		if e.Failed != "" {
			detail += "; FAILED: " + e.Failed
		}
		if e.Restarts > 0 {
			detail += fmt.Sprintf("; frame counter restarted %d time(s)", e.Restarts)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f s | %.1f s | %.1f s | %d | %d | %d | %d | %s |\n", e.Kind, e.Start.Format("15:04:05"),
			e.Restored.Sub(e.Start).Seconds(), e.DrainS, e.WorstLagS, e.Lost, e.Dropped, e.Missing, e.Duplicates, detail)
	}
	return b.String()
}

// TestSoakJudge holds the soak's own checks to what they must catch, on made-up deliveries: a
// gap during a disk-full episode that the agent counted as lost passes; the same gap outside
// it, a gap larger than the losses, and a counter that begins again at 1 fail.
func TestSoakJudge(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	at := func(id int) time.Time { return t0.Add(time.Duration(id) * 100 * time.Millisecond) }
	deliveries := func(ids ...int) []soakPrediction {
		var out []soakPrediction
		for i, id := range ids {
			out = append(out, soakPrediction{Boot: "b1", Camera: "conveyor", ID: fmt.Sprintf("p%d", i), FrameID: uint64(id), Created: at(i + 1), Recv: at(i + 2)})
		}
		return out
	}
	seq := func(from, to int) []int {
		var ids []int
		for id := from; id <= to; id++ {
			ids = append(ids, id)
		}
		return ids
	}
	ok := processSample{RSSKB: 200 << 10, FDs: 16, Goroutines: 29}
	for _, c := range []struct {
		name      string
		ids       []int
		fullFrom  int // the disk-full episode, by the position of the predictions made in it
		fullTo    int
		lost      int
		wantFails string // "" for a pass
	}{
		{"no gap", seq(1, 100), 40, 60, 0, ""},
		{"a gap the counted losses explain", append(seq(1, 45), seq(51, 100)...), 40, 60, 5, ""},
		{"more missing than lost", append(seq(1, 45), seq(51, 100)...), 40, 60, 3, "2 frame ids missing"},
		{"a gap outside the disk-full episode", append(seq(1, 15), seq(21, 100)...), 40, 60, 5, "5 frame ids missing"},
		{"the counter begins again", append(seq(1, 50), seq(1, 50)...), 40, 60, 0, "began again at 1"},
		{"a gap after a restart", append(seq(1, 50), append(seq(1, 10), seq(20, 50)...)...), 70, 80, 0, "9 frame ids missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &episode{Kind: "disk-full", Start: at(c.fullFrom), Restored: at(c.fullTo), Lost: c.lost}
			s := &soak{rec: &soakRecorder{preds: deliveries(c.ids...)}, episodes: []*episode{e}}
			fig := &soakFigures{ExitStatus: "0"}
			s.analyse(fig)
			s.judge(fig, ok, ok, true, payload.Stats{})
			got := strings.Join(fig.Failures, "\n")
			if c.wantFails == "" && got != "" || c.wantFails != "" && !strings.Contains(got, c.wantFails) {
				t.Fatalf("failures %q, want one with %q", got, c.wantFails)
			}
		})
	}
}
