package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// TestProgress: Run tells Progress of every phase in order, each counting up to its total
// once; without Progress it runs silent (nil is allowed).
func TestProgress(t *testing.T) {
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	type call struct {
		phase    string
		n, total int
	}
	var calls []call
	o := Options{Detector: testenv.Path("testdata", "demo", "detector"), Classifier: testenv.Path("testdata", "demo", "classifier"),
		Source: testenv.Path("testdata", "demo", "conveyor.avi"), Frames: 4, Cameras: 1, FPS: 5, Seconds: 1.5,
		Runtime: configs.Default().ONNXRuntime, Progress: func(phase string, n, total int) { calls = append(calls, call{phase, n, total}) }}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var phases []string
	for i, c := range calls {
		if i == 0 || calls[i-1].phase != c.phase {
			phases = append(phases, c.phase)
			if c.n != 1 {
				t.Errorf("%s starts at %d", c.phase, c.n)
			}
		} else if c.n != calls[i-1].n+1 || c.total != calls[i-1].total {
			t.Errorf("%s: %d/%d after %d/%d", c.phase, c.n, c.total, calls[i-1].n, calls[i-1].total)
		}
		if i == len(calls)-1 || calls[i+1].phase != c.phase {
			if c.n != c.total {
				t.Errorf("%s ends at %d of %d", c.phase, c.n, c.total)
			}
		}
	}
	want := []string{PhasePipeline, PhaseModels, PhaseEndToEnd, PhaseModelsAgain, PhaseCameras}
	if fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Fatalf("phases %q, want %q", phases, want)
	}
	totals := map[string]int{}
	for _, c := range calls {
		totals[c.phase] = c.total
	}
	// 10 warm-up frames; the detector and the classifier's batch sizes; 2 whole seconds
	if totals[PhasePipeline] != 14 || totals[PhaseEndToEnd] != 4 || totals[PhaseCameras] != 2 || totals[PhaseModels] < 2 || totals[PhaseModelsAgain] != totals[PhaseModels] {
		t.Errorf("totals %v", totals)
	}

	o.Progress, o.Cameras = nil, 0
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// TestTrackingCost: with a detector, the report has the time and the allocations per frame of
// the track and parts steps on the pipeline's frames, over enough passes, as a share of the
// detector's own time, and the tables show them; a classifier alone has nothing to track.
func TestTrackingCost(t *testing.T) {
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	o := Options{Detector: testenv.Path("testdata", "demo", "detector"), Classifier: testenv.Path("testdata", "demo", "classifier"),
		Source: testenv.Path("testdata", "demo", "conveyor.avi"), Frames: 30, Runtime: configs.Default().ONNXRuntime}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tracking
	if tr == nil {
		t.Fatal("no tracking figures with a detector")
	}
	if tr.Passes != 100 || tr.TrackMs <= 0 || tr.PartsMs <= 0 || tr.TrackAllocsPerFrame < 0 || tr.PartsAllocsPerFrame <= 0 {
		t.Errorf("tracking %+v", tr)
	}
	det := rep.Raw[0].MeanMs
	for name, c := range map[string][2]float64{"track": {tr.TrackMs, tr.TrackOfDetector}, "parts": {tr.PartsMs, tr.PartsOfDetector}} {
		if want := c[0] / det; math.Abs(c[1]-want) > want/50+1e-6 {
			t.Errorf("%s: %v ms a frame is %v of the detector's %v ms, not %v", name, c[0], c[1], det, want)
		}
	}
	md := rep.Markdown()
	for _, row := range []string{"| tracking (track step) per frame", "| parts (decisions, events) per frame", "track step, parts step |"} {
		if !strings.Contains(md, row) {
			t.Errorf("no %q row in\n%s", row, md)
		}
	}

	o.Detector, o.Frames = "", 4
	if rep, err = Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if rep.Tracking != nil || strings.Contains(rep.Markdown(), "tracking") {
		t.Errorf("tracking figures without a detector: %+v", rep.Tracking)
	}
}

// TestDecisionLatency: the multi-camera run decides the demo's parts at the line across the
// middle of the frame, and reports how long after the last frame each decision reached a
// subscriber.
func TestDecisionLatency(t *testing.T) {
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	o := Options{Detector: testenv.Path("testdata", "demo", "detector"), Classifier: testenv.Path("testdata", "demo", "classifier"),
		Source: testenv.Path("testdata", "demo", "conveyor.avi"), Frames: 2, Cameras: 1, FPS: 25, Seconds: 3, Runtime: configs.Default().ONNXRuntime}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var line *DecisionBench
	for i, d := range rep.Decisions {
		if d.By == "line" {
			line = &rep.Decisions[i]
		}
	}
	if line == nil || line.Parts < 2 || line.Ms.P50 <= 0 || line.Ms.P99 < line.Ms.P50 {
		t.Fatalf("decisions at the line: %+v (all: %+v)", line, rep.Decisions)
	}
	if md := rep.Markdown(); !strings.Contains(md, "| line | ") {
		t.Errorf("the report does not show them:\n%s", md)
	}
	t.Logf("%d parts decided at the line, latency p50 %.1f ms, p99 %.1f ms", line.Parts, line.Ms.P50, line.Ms.P99)
}

// TestMotionGateRun: with Motion, the cameras of the multi-camera run keep the frames of a
// still, empty picture from the models and count them as unchanged; without it, none. Either
// way the report has the process's memory over the run, read each second.
func TestMotionGateRun(t *testing.T) {
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	dir := testenv.StillBelt(t, 3, 320, 180)
	for _, motion := range []bool{false, true} {
		o := Options{Detector: testenv.Path("testdata", "demo", "detector"), Classifier: testenv.Path("testdata", "demo", "classifier"),
			Source: dir, Frames: 2, Cameras: 1, FPS: 10, Seconds: 1.5, Runtime: configs.Default().ONNXRuntime, Motion: motion}
		rep, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Cameras) != 1 {
			t.Fatalf("cameras: %+v", rep.Cameras)
		}
		c := rep.Cameras[0]
		if motion != (c.Unchanged > 0) {
			t.Errorf("motion %v: %d frames unchanged, %v fps through the models", motion, c.Unchanged, c.FPS)
		}
		if md := rep.Markdown(); motion != strings.Contains(md, "Motion gate: cam1 kept") || !strings.Contains(md, "Its memory: private") {
			t.Errorf("motion %v: the report's tables:\n%s", motion, md)
		}
		// the cameras run's memory: read each second, the whole process's
		m := rep.CamerasMemory
		if m == nil {
			t.Fatalf("motion %v: no memory of the cameras run", motion)
		}
		for name, s := range map[string]Span{"private": m.PrivateMB, "resident": m.RSSMB} {
			if s.Min <= 0 || s.Min > s.First || s.First > s.Max || s.Min > s.Last || s.Last > s.Max {
				t.Errorf("motion %v: %s memory %+v", motion, name, s)
			}
		}
		if m.RSSMB.First < m.PrivateMB.First || m.RSSMB.Last < m.PrivateMB.Last || m.PeakRSSMB < m.RSSMB.Max-0.2 || m.GoHeapMB <= 0 || m.GoHeapMB > m.PrivateMB.Last {
			t.Errorf("motion %v: memory %+v", motion, m)
		}
		if want := m.PrivateMB.Last/m.PrivateMB.First - 1; math.Abs(m.Growth-want) > 0.001 {
			t.Errorf("motion %v: growth %v, want %v", motion, m.Growth, want)
		}
		// 1.5 s: two reads, too few for the settled figures
		if len(m.PrivateTenthsMB) != 2 || m.SettledGrowth != 0 || m.SettledSpread != 0 {
			t.Errorf("motion %v: tenths %v, settled growth %v, spread %v", motion, m.PrivateTenthsMB, m.SettledGrowth, m.SettledSpread)
		}
	}
}

// The settled figures are of the tenths of the run after the first: a start far below the
// level the run holds is not growth, a creep after it is, and reads that do not split evenly
// each count once.
func TestMemorySettles(t *testing.T) {
	// 60 reads: 6 of the start at 100 MB, then 200 MB rising by 1 MB each 6 reads
	var reads []float64
	for i := range 60 {
		v := 100.0
		if i >= 6 {
			v = 200 + float64(i/6-1)
		}
		reads = append(reads, v)
	}
	var m MemoryBench
	m.settle(reads)
	if want := []float64{100, 200, 201, 202, 203, 204, 205, 206, 207, 208}; fmt.Sprint(m.PrivateTenthsMB) != fmt.Sprint(want) {
		t.Errorf("tenths %v, want %v", m.PrivateTenthsMB, want)
	}
	if want := math.Round(1000*(208.0/200-1)) / 1000; m.SettledGrowth != want || m.SettledSpread != want {
		t.Errorf("settled growth %v, spread %v, want %v both", m.SettledGrowth, m.SettledSpread, want)
	}
	rep := &Report{Cameras: []CameraBench{{Name: "cam1"}}, CamerasMemory: &m}
	if md := rep.Markdown(); !strings.Contains(md, "(means, MB): 100.0, 200.0, 201.0,") || !strings.Contains(md, "it grew +4.0 % and stayed within 4.0 % (a run under 100 s:") {
		t.Errorf("the report's tables:\n%s", md)
	}
	long := MemoryBench{}
	long.settle(slices.Repeat([]float64{300}, 100))
	rep.CamerasMemory = &long
	if md := rep.Markdown(); !strings.Contains(md, "it grew +0.0 % and stayed within 0.0 %.\n") {
		t.Errorf("a run of 100 s, the report's tables:\n%s", md)
	}
	// flat after a dip: no growth, but a spread
	reads = reads[:0]
	for i := range 25 {
		v := 300.0
		if i >= 10 && i < 15 {
			v = 270
		}
		reads = append(reads, v)
	}
	m = MemoryBench{}
	m.settle(reads)
	var sum float64
	for i, v := range m.PrivateTenthsMB {
		n := (i+1)*25/10 - i*25/10
		sum += v * float64(n)
	}
	if len(m.PrivateTenthsMB) != 10 || sum != 300*20+270*5 {
		t.Errorf("tenths %v: %v MB·reads in all, want %v", m.PrivateTenthsMB, sum, 300*20+270*5)
	}
	if m.SettledGrowth != 0 || m.SettledSpread != payload.Round(300.0/270-1, 3) {
		t.Errorf("settled growth %v, spread %v", m.SettledGrowth, m.SettledSpread)
	}
	// three reads, a tenth each: the third over the second
	m = MemoryBench{}
	m.settle([]float64{50, 60, 66})
	if fmt.Sprint(m.PrivateTenthsMB) != "[50 60 66]" || m.SettledGrowth != 0.1 || m.SettledSpread != 0.1 {
		t.Errorf("three reads: %+v", m)
	}
	// 15 reads rising by 1 MB: tenths of 1 and 2 reads, in the order 1,2,1,2,... (i*15/10)
	reads = reads[:0]
	for i := range 15 {
		reads = append(reads, float64(100+i))
	}
	m = MemoryBench{}
	m.settle(reads)
	if want := "[100 101.5 103 104.5 106 107.5 109 110.5 112 113.5]"; fmt.Sprint(m.PrivateTenthsMB) != want {
		t.Errorf("15 reads: tenths %v, want %v", m.PrivateTenthsMB, want)
	}
	// no figure from a tenth that is nothing but failed reads
	m = MemoryBench{}
	m.settle([]float64{200, 0, 210})
	if m.SettledGrowth != 0 || m.SettledSpread != 0 {
		t.Errorf("a read of 0: %+v", m)
	}
	m = MemoryBench{}
	m.settle([]float64{50, 60})
	if fmt.Sprint(m.PrivateTenthsMB) != "[50 60]" || m.SettledGrowth != 0 || m.SettledSpread != 0 {
		t.Errorf("two reads: %+v", m)
	}
}

// Reading the memory allocates next to nothing: the cameras run reads it each second, and its
// allocations per frame are the whole process's.
func TestMemoryReadAllocatesLittle(t *testing.T) {
	peak, anon, file := memoryMB()
	if peak <= 0 || anon <= 0 || file <= 0 || anon+file > peak+1 {
		t.Fatalf("peak %v, private %v, file-backed %v MB", peak, anon, file)
	}
	if n := testing.AllocsPerRun(20, func() { memoryMB() }); n > 5 {
		t.Errorf("a read of the memory made %v allocations", n)
	}
	for in, want := range map[string]float64{"\t  1234 kB": 1234, " 0 kB": 0, "7 kB": 7} {
		if kb, ok := kilobytes([]byte(in)); !ok || kb != want {
			t.Errorf("kilobytes(%q) = %v, %v; want %v", in, kb, ok, want)
		}
	}
	for _, in := range []string{"", " kB", "12", "1.5 kB", "-3 kB", "\t12 MB", "0x10 kB"} {
		if kb, ok := kilobytes([]byte(in)); ok {
			t.Errorf("kilobytes(%q) = %v, want no figure", in, kb)
		}
	}
}

// TestOutsideBroker: with Broker set, the end-to-end run and the cameras publish to that
// broker, and the report says so and no longer counts an embedded one.
func TestOutsideBroker(t *testing.T) {
	if _, err := models.FindLibrary(""); err != nil {
		testenv.Missing(t, "onnxruntime: %v", err)
	}
	b := testenv.StartMosquitto(t)
	in := testenv.Subscribe(t, b.URL, "cvedge/bench/#")
	o := Options{Detector: testenv.Path("testdata", "demo", "detector"), Classifier: testenv.Path("testdata", "demo", "classifier"),
		Source: testenv.Path("testdata", "demo", "conveyor.avi"), Frames: 4, Cameras: 1, FPS: 5, Seconds: 1.5,
		Runtime: configs.Default().ONNXRuntime, Broker: b.URL}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the end-to-end run's predictions at the broker", 5*time.Second, func() bool {
		return len(in.Get("cvedge/bench/cameras/bench/predictions")) >= o.Frames
	})
	testenv.WaitFor(t, "the camera's predictions at the broker", 5*time.Second, func() bool {
		return len(in.Get("cvedge/bench/cameras/cam1/predictions")) > 0
	})
	if rep.Broker != b.URL || !strings.Contains(rep.Machine["broker"], b.URL+", outside the process") {
		t.Errorf("broker %q, machine's %q", rep.Broker, rep.Machine["broker"])
	}
	if md := rep.Markdown(); strings.Contains(md, "embedded") || !strings.Contains(md, "QoS 1 to the broker at "+b.URL) {
		t.Errorf("the tables do not name the outside broker:\n%s", md)
	}
}

// TestCamerasConfig: the cameras run's agent embeds a broker on loopback only when no outside
// broker is given, and publishes to the one it has.
func TestCamerasConfig(t *testing.T) {
	o := Options{Detector: "d", Classifier: "c", Source: "s.avi", Cameras: 2, FPS: 10, Runtime: configs.Default().ONNXRuntime}
	cfg, err := camerasConfig(o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.MQTT.Embedded
	if !e.Enabled || cfg.MQTT.Broker != "tcp://"+e.Listen || !strings.HasPrefix(e.Listen, "127.0.0.1:") || len(cfg.Cameras) != 2 {
		t.Errorf("without a broker: embedded %+v, broker %q, %d cameras", e, cfg.MQTT.Broker, len(cfg.Cameras))
	}
	o.Broker = "tcp://127.0.0.1:1883"
	if cfg, err = camerasConfig(o, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.Embedded.Enabled || cfg.MQTT.Broker != o.Broker {
		t.Errorf("with a broker: embedded %+v, broker %q", cfg.MQTT.Embedded, cfg.MQTT.Broker)
	}
	if url, stop, err := o.startBroker(); err != nil || url != o.Broker {
		t.Errorf("the end-to-end run's broker: %q, %v", url, err)
	} else {
		stop()
	}
}

// TestBrokerChecked: a broker that is no tcp://HOST:PORT, or where nothing answers, is refused
// before the run, naming it and what to give instead.
func TestBrokerChecked(t *testing.T) {
	closed := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	for _, bad := range []string{"127.0.0.1:1883", "ssl://127.0.0.1:8883", "tcp://127.0.0.1", "tcp://user:pw@127.0.0.1:1883", "tcp://:1883", "tcp://h:1/x", "tcp://[::1",
		"tcp://127.0.0.1:1883?x", "tcp://127.0.0.1:1883?", "tcp://127.0.0.1:1883#x", "tcp:127.0.0.1:1883", closed} {
		o := Options{Detector: "nowhere", Source: "nowhere", Broker: bad}
		_, err := Run(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), withoutUser(bad)) || !strings.Contains(err.Error(), "embedded in the process") {
			t.Errorf("broker %q: %v", bad, err)
		}
	}
	// a user and password given by mistake never reach the message
	for _, bad := range []string{"tcp://user:Pa55w0rd@127.0.0.1:1883", "tcp://user:Pa55w0rd@[::1", "user:Pa55w0rd@host:1883/x", "tcp://user:Pa5/5w0rd@h:1", "tcp://user:1234#Pa55w0rd@127.0.0.1:1", "tcp://user:1234?Pa55w0rd@127.0.0.1:1"} {
		_, err := Run(context.Background(), Options{Detector: "nowhere", Source: "nowhere", Broker: bad})
		if err == nil || strings.Contains(err.Error(), "Pa55w0rd") || strings.Contains(err.Error(), "Pa5/") || strings.Contains(err.Error(), "user") || !strings.Contains(err.Error(), "…@") {
			t.Errorf("broker %q: %v", bad, err)
		}
	}
}
