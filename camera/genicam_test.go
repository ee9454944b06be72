package camera

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

func ptr[T any](v T) *T { return &v }

// TestCheckGenICam: every pixel format the config allows is one the agent converts to BGR,
// and a format it does not convert is refused with the list.
func TestCheckGenICam(t *testing.T) {
	pfnc := map[string]uint32{"Mono8": pfMono8, "Mono16": pfMono16, "RGB8": pfRGB8,
		"BayerRG8": pfBayerRG8, "BayerGR8": pfBayerGR8, "BayerGB8": pfBayerGB8, "BayerBG8": pfBayerBG8}
	m := gocv.NewMat()
	defer m.Close()
	for _, pf := range configs.GenICamPixelFormats {
		cfg := configs.Camera{Source: "Basler-21987654", GenICam: configs.GenICam{PixelFormat: pf}}
		if err := checkGenICam(cfg); err != nil {
			t.Errorf("pixel format %s: %v", pf, err)
		}
		v, ok := pfnc[pf]
		if !ok {
			t.Errorf("pixel format %s is allowed by the config but has no PFNC value here", pf)
			continue
		}
		if err := arvToBGR(make([]byte, 4*4*3), 4, 4, v, &m); err != nil {
			t.Errorf("pixel format %s is allowed by the config but not converted: %v", pf, err)
		}
	}
	err := checkGenICam(configs.Camera{Source: "Basler-21987654", GenICam: configs.GenICam{PixelFormat: "Mono10"}})
	if err == nil || !strings.Contains(err.Error(), "genicam.pixel_format") || !strings.Contains(err.Error(), "BayerRG8") {
		t.Errorf("pixel format Mono10: %v", err)
	}
}

// TestGenICamSettingsTrigger checks the trigger features: on with the source for trigger:
// hardware, turned off (where the camera has the feature) otherwise.
func TestGenICamSettingsTrigger(t *testing.T) {
	find := func(list []genicamSetting, name string) *genicamSetting {
		for i := range list {
			if list[i].name == name {
				return &list[i]
			}
		}
		return nil
	}
	cfg := configs.Camera{Trigger: "hardware", GenICam: configs.GenICam{PixelFormat: "Mono8", TriggerSource: "Line1", Features: []string{"BalanceWhiteAuto=Continuous"}}}
	list := genicamSettings(cfg)
	if s := find(list, "TriggerMode"); s == nil || s.value != "On" || s.optional {
		t.Errorf("trigger: hardware set TriggerMode %+v, want On and reported when missing", s)
	}
	if s := find(list, "TriggerSource"); s == nil || s.value != "Line1" {
		t.Errorf("TriggerSource %+v, want Line1", s)
	}
	if s := list[len(list)-1]; s.name != "BalanceWhiteAuto" || s.value != "Continuous" {
		t.Errorf("the free features come last: %+v", s)
	}
	cfg.Trigger = "continuous"
	list = genicamSettings(cfg)
	if s := find(list, "TriggerMode"); s == nil || s.value != "Off" || !s.optional {
		t.Errorf("a free-running camera set TriggerMode %+v, want Off, optional", s)
	}
	if find(list, "TriggerSource") != nil {
		t.Error("a free-running camera got a TriggerSource")
	}
}

// FuzzGenICamConfig: any camera name and feature the config accepts, the camera opens with:
// the name passes checkGenICam, whole (no NUL to cut it short where Aravis reads it), and the
// feature parses into the name and value the camera is given.
func FuzzGenICamConfig(f *testing.F) {
	for _, s := range [][2]string{{"Basler-21987654", "BalanceWhiteAuto=Continuous"}, {"Aravis-Fake-GV01", "Width=320"}, {"192.168.10.5", "R[0x30c]=1"},
		{"The Imaging Source Europe GmbH-12345678", "TriggerSoftware"}, {`x" location=/etc/passwd ! filesink`, `A="b c"`}, {"a ! b", "A=1 B=2"},
		{`a\" b`, "A='x'"}, {"x\nappsink", "A=1\" ! fakesink"}, {"Basler-1 exposure=5", " Gain = 3 "}, {"Basler\x00-1", "A=1\x00"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, feature string) {
		cfg := configs.DefaultCamera()
		cfg.Name, cfg.Type, cfg.Source = "c", "genicam", name
		cfg.GenICam.Features = []string{feature}
		if genicamProblems(cfg) != "" {
			return // refused by the config
		}
		if _, _, err := configs.ParseGenICamFeature(feature); err != nil {
			t.Fatalf("the config accepts feature %q, the parser does not: %v", feature, err)
		}
		if err := checkGenICam(cfg); err != nil {
			t.Fatalf("the config accepts camera %q but opening it refuses it: %v", name, err)
		}
		if strings.ContainsRune(cfg.GenICamCamera(), 0) {
			t.Fatalf("the config accepts camera %q, which holds a NUL", name)
		}
	})
}

// genicamProblems returns what the config's validation says about a camera's type and
// genicam keys ("" when nothing).
func genicamProblems(cam configs.Camera) string {
	c := configs.Default()
	c.Cameras = []configs.Camera{cam}
	err := c.Validate()
	if err == nil {
		return ""
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, "cameras[0].genicam") || strings.Contains(line, "cameras[0].type") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// The fake GigE Vision camera the tests run.
const (
	fakeGV     = "arv-fake-gv-camera-0.8"
	fakeGVName = "Aravis-Fake-GV01" // the id of the fake camera with serial GV01
)

// inNetns runs the test again inside a network namespace of its own, where only loopback
// exists (testenv.InOwnNetns): Aravis streams from a camera to the interface it reached it
// by, so on a host with other interfaces the fake camera's stream could go elsewhere, and
// the namespace keeps the GigE Vision discovery broadcasts off the host's networks. It
// reports true in the namespace (run the test), false in the parent (done).
func inNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("CVEDGE_TEST_NETNS") != "1" {
		if _, err := exec.LookPath(fakeGV); err != nil {
			testenv.Missing(t, "%s (apt-get install aravis-tools)", fakeGV)
		}
		if err := loadAravis(fakeGVName); err != nil {
			testenv.Missing(t, "libaravis-0.8.so.0: %v", err)
		}
	}
	return testenv.InOwnNetns(t)
}

// fakeCamera runs arv-fake-gv-camera-0.8 on loopback until stopped.
type fakeCamera struct {
	t   *testing.T
	cmd *exec.Cmd
}

func startFake(t *testing.T) *fakeCamera {
	t.Helper()
	cmd := exec.Command(fakeGV, "-i", "127.0.0.1", "-s", "GV01")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", fakeGV, err)
	}
	fc := &fakeCamera{t: t, cmd: cmd}
	t.Cleanup(fc.kill)
	return fc
}

func (fc *fakeCamera) kill() {
	if fc.cmd.Process != nil && fc.cmd.ProcessState == nil {
		fc.cmd.Process.Kill()
		fc.cmd.Wait()
	}
}

// waitState waits for the camera to report state s (the states come from OnStatus, in
// order), failing after a long bound that only a broken camera reaches.
func waitState(t *testing.T, states <-chan Status, s State) Status {
	t.Helper()
	bound := time.After(30 * time.Second)
	for {
		select {
		case st := <-states:
			if st.State == s {
				return st
			}
		case <-bound:
			t.Fatalf("the camera never reported %s", s)
		}
	}
}

// nextFrame takes frames until one arrives, checking its size and that it is BGR.
func nextFrame(t *testing.T, cam *Camera, w, h int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := cam.Next(ctx)
	if err != nil {
		t.Fatalf("no frame from the GenICam camera: %v (state %+v)", err, cam.Status())
	}
	defer f.Close()
	m := f.Mat()
	if b := f.Bounds(); b.Dx() != w || b.Dy() != h || m.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("frame %dx%d type %v, want %dx%d BGR", b.Dx(), b.Dy(), m.Type(), w, h)
	}
}

// cameraLog is a logger for a camera under test, and what it wrote, shown when the test fails.
func cameraLog(t *testing.T) (*testenv.LogBuffer, *slog.Logger) {
	logs := &testenv.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the camera's log:\n%s", logs.String())
		}
	})
	return logs, slog.New(slog.NewTextHandler(logs, nil))
}

// TestGenICamFakeCamera opens Aravis's fake GigE Vision camera, which speaks the real
// protocol (GVCP control, GVSP stream), as a type: genicam camera: its settings are set and
// read back, a feature it lacks is reported, frames of the size asked arrive as BGR from
// its Bayer stream, and the camera reports online, reconnecting when the fake camera dies,
// and online again (with its settings applied again) when it comes back; closing returns,
// and no Mat is left (matprofile).
func TestGenICamFakeCamera(t *testing.T) {
	if !inNetns(t) {
		return
	}
	fake := startFake(t)
	logs, log := cameraLog(t)
	cfg := configs.DefaultCamera()
	cfg.Name, cfg.Type = "gige", "genicam"
	cfg.GenICam = configs.GenICam{Camera: fakeGVName, PixelFormat: "BayerRG8", ExposureUS: ptr(2000.0), GainDB: ptr(3.0), FrameRate: ptr(20.0),
		Features: []string{"Width=320", "Height=240", "NoSuchFeature=1"}}
	cfg.Reconnect = configs.Reconnect{MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, NoFrameTimeout: time.Second}
	if p := genicamProblems(cfg); p != "" {
		t.Fatalf("the test's camera config: %s", p)
	}
	cam, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan Status, 64)
	cam.OnStatus(func(s Status) {
		select {
		case states <- s:
		default:
		}
	})
	cam.Start(context.Background())
	closed := false
	defer func() {
		if !closed {
			cam.Close()
		}
	}()
	waitState(t, states, StateOnline)
	for range 3 {
		nextFrame(t, cam, 320, 240)
	}
	// every setting was taken but the feature the fake camera lacks
	const lacks = `ignored="features[2] NoSuchFeature: the camera has no such feature"`
	if n := logs.Count("the camera ignored settings"); n != 1 || logs.Count(lacks) != 1 {
		t.Errorf("want one warning, naming only NoSuchFeature:\n%s", logs.String())
	}

	// the fake camera dies: the camera says so, then comes back with its settings applied
	// again (a restarted fake camera starts at 512x512 Mono8)
	fake.kill()
	for {
		st := waitState(t, states, StateReconnecting)
		t.Logf("fake camera killed: %s", st.Reason)
		// the stream finds the camera silent (it does not answer), or the watch found no
		// frame first and the reopen does not find the camera
		if strings.Contains(st.Reason, `GenICam camera "`+fakeGVName+`" stopped streaming`) ||
			strings.Contains(st.Reason, `GenICam camera "`+fakeGVName+`" cannot be opened`) {
			break
		}
		if st.Reason != "no frame for 1s" {
			t.Fatalf("reason %q does not say the camera stopped, naming it", st.Reason)
		}
	}
	fake = startFake(t)
	waitState(t, states, StateOnline)
	nextFrame(t, cam, 320, 240)

	done := make(chan error, 1)
	go func() { done <- cam.Close() }()
	select {
	case err := <-done:
		closed = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("closing the GenICam camera hangs")
	}

	if logs.Count("the camera ignored settings") != 2 || logs.Count(lacks) != 2 {
		t.Errorf("the settings were not applied again, or more was ignored, after the restart:\n%s", logs.String())
	}

	// read back from the camera itself what the stream ran with
	rep, err := applyGenICam(configs.Camera{GenICam: configs.GenICam{Camera: fakeGVName, PixelFormat: "BayerRG8"}, Trigger: "continuous"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.width != 320 || rep.height != 240 {
		t.Errorf("the camera streams %dx%d after the restart, want 320x240", rep.width, rep.height)
	}
	got, err := readGenICam(fakeGVName, []string{"ExposureTimeAbs", "GainRaw", "AcquisitionFrameRate", "PixelFormat", "TriggerMode"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"ExposureTimeAbs": "2000", "GainRaw": "3", "AcquisitionFrameRate": "20", "PixelFormat": "BayerRG8", "TriggerMode": "Off"} {
		if !sameSetting(genicamSetting{value: want, numeric: isNumber(want)}, got[name]) {
			t.Errorf("%s reads %q from the camera, want %s", name, got[name], want)
		}
	}

	// a value the camera changes is reported with what it has: a frame rate below its 0.1
	// (Aravis sets the nearest it can)
	low := configs.Camera{Trigger: "continuous", GenICam: configs.GenICam{Camera: fakeGVName, PixelFormat: "Mono8", FrameRate: ptr(0.05)}}
	if rep, err := applyGenICam(low); err != nil || len(rep.ignored) != 1 || rep.ignored[0] != "frame_rate: asked 0.05, camera has 0.1" {
		t.Errorf("a frame rate below the camera's range: %v, ignored %q", err, rep.ignored)
	}
	low.GenICam.FrameRate = ptr(20.0)
	if rep, err := applyGenICam(low); err != nil || len(rep.ignored) != 0 {
		t.Errorf("frame rate 20: %v, ignored %q", err, rep.ignored)
	}

	// a camera that is not there: the error names it and says what to check
	if _, err := applyGenICam(configs.Camera{GenICam: configs.GenICam{Camera: "Aravis-Fake-NOPE", PixelFormat: "Mono8"}}); err == nil ||
		!strings.Contains(err.Error(), `GenICam camera "Aravis-Fake-NOPE" cannot be opened`) || !strings.Contains(err.Error(), "arv-tool-0.8") {
		t.Errorf("opening a camera that does not exist: %v", err)
	}

	// trigger: hardware with a source the camera has: TriggerMode=On, TriggerSource set
	trig := configs.Camera{Trigger: "hardware", GenICam: configs.GenICam{Camera: fakeGVName, PixelFormat: "Mono8", TriggerSource: "Software"}}
	if rep, err := applyGenICam(trig); err != nil || len(rep.ignored) != 0 {
		t.Errorf("trigger source Software: %v, ignored %q", err, rep.ignored)
	}
	got, err = readGenICam(fakeGVName, []string{"TriggerMode", "TriggerSource"})
	if err != nil || got["TriggerMode"] != "On" || got["TriggerSource"] != "Software" {
		t.Errorf("after trigger source Software the camera has %v (%v), want TriggerMode On, TriggerSource Software", got, err)
	}
	// a source the camera lacks (the fake camera has Line0 and Software) is reported
	trig.GenICam.TriggerSource = "Line1"
	if rep, err := applyGenICam(trig); err != nil || len(rep.ignored) != 1 || !strings.Contains(rep.ignored[0], "trigger_source (TriggerSource): asked Line1, refused") {
		t.Errorf("trigger source Line1 on a camera without it: %v, ignored %q", err, rep.ignored)
	}
}

// TestGenICamTrigger runs the fake GigE Vision camera with TriggerMode=On and
// TriggerSource=Software as a trigger: hardware camera and fires software triggers through
// the session that controls it, with idle gaps longer than the 2 s after which aravissrc
// (Aravis 0.8) ended such a stream: every pulse gives exactly one frame, in order, and the
// camera stays online through the gaps. Then the fake camera dies on an idle line: the camera
// goes reconnecting, naming it; it comes back online when the fake camera does, and closing it
// while it waits on its idle line returns.
func TestGenICamTrigger(t *testing.T) {
	if !inNetns(t) {
		return
	}
	fake := startFake(t)
	logs, log := cameraLog(t)
	cfg := configs.DefaultCamera()
	cfg.Name, cfg.Type, cfg.Trigger = "trig", "genicam", "hardware"
	cfg.GenICam = configs.GenICam{Camera: fakeGVName, PixelFormat: "Mono8", TriggerSource: "Software", Features: []string{"Width=160", "Height=120"}}
	// a no-frame timeout far below the idle gaps: it must not count on a line that waits
	cfg.Reconnect = configs.Reconnect{MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, NoFrameTimeout: 500 * time.Millisecond}
	if p := genicamProblems(cfg); p != "" {
		t.Fatalf("the test's camera config: %s", p)
	}
	cam, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		states []Status
	)
	cam.OnStatus(func(s Status) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	})
	cam.Start(context.Background())
	closed := false
	defer func() {
		if !closed {
			cam.Close()
		}
	}()
	bound := time.Now().Add(30 * time.Second)
	for cam.Status().State != StateOnline {
		if time.Now().After(bound) {
			t.Fatalf("the triggered camera never came online: %+v", cam.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	online := len(states) // the states from here on: through the pulses and the gaps
	mu.Unlock()

	// bursts of pulses (100 ms apart: the fake camera looks for a trigger every 40 ms), with
	// idle gaps of 2.5 s between them
	bursts := []int{3, 2, 1, 4}
	pulses := 0
	var seqs []uint64
	take := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f, err := cam.Next(ctx)
		if err != nil {
			t.Fatalf("pulse %d gave no frame: %v (state %+v)", len(seqs)+1, err, cam.Status())
		}
		defer f.Close()
		m := f.Mat()
		if b := f.Bounds(); b.Dx() != 160 || b.Dy() != 120 || m.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %dx%d type %v, want 160x120 BGR", b.Dx(), b.Dy(), m.Type())
		}
		seqs = append(seqs, f.Seq)
	}
	for i, n := range bursts {
		if i > 0 {
			time.Sleep(2500 * time.Millisecond)
		}
		if st := cam.Status(); st.State != StateOnline || st.Read != uint64(pulses) {
			t.Fatalf("after %d pulses and an idle gap: %+v, want online with %d frames read", pulses, st, pulses)
		}
		for range n {
			if err := softwareTrigger(fakeGVName); err != nil {
				t.Fatal(err)
			}
			pulses++
			time.Sleep(100 * time.Millisecond)
		}
		for len(seqs) < pulses {
			take()
		}
	}
	// no frame without a pulse: after the last pulse's frame, none more
	time.Sleep(500 * time.Millisecond)
	if st := cam.Status(); st.Read != uint64(pulses) || st.Overflow != 0 || st.Dropped != 0 {
		t.Errorf("%d pulses, status %+v: want as many frames read, none dropped or overflowed", pulses, st)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("frames %v: want 1 to %d in order", seqs, pulses)
		}
	}
	mu.Lock()
	for _, s := range states[online:] {
		if s.State != StateOnline {
			t.Errorf("the triggered camera left online on an idle line: %+v", s)
		}
	}
	mu.Unlock()
	if n := logs.Count("GenICam frame lost"); n != 0 {
		t.Errorf("%d frames lost", n)
	}

	// the camera dies while its line is idle: the stream finds it silent
	fake.kill()
	killed := time.Now()
	bound = time.Now().Add(30 * time.Second)
	for st := cam.Status(); st.State != StateReconnecting; st = cam.Status() {
		if time.Now().After(bound) {
			t.Fatalf("the killed triggered camera still reports %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("killed on an idle line: reconnecting after %s", time.Since(killed).Round(time.Millisecond))
	if st := cam.Status(); !strings.Contains(st.Reason, `GenICam camera "`+fakeGVName+`" stopped streaming`) {
		t.Errorf("the killed camera's reason does not name it: %+v", st)
	}

	// back, it is reopened and waits on its idle line; closing it then returns (the read
	// waits in bounded slices)
	startFake(t)
	bound = time.Now().Add(30 * time.Second)
	for st := cam.Status(); st.State != StateOnline; st = cam.Status() {
		if time.Now().After(bound) {
			t.Fatalf("the restarted triggered camera never came back online: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // past a register check of the idle camera
	done := make(chan error, 1)
	go func() { done <- cam.Close() }()
	select {
	case err := <-done:
		closed = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("closing the triggered GenICam camera hangs")
	}
}

// TestGenICamSource: a genicam camera's source is the camera it names (genicam.camera over
// source), live and exclusive (a reload does not open it beside the running camera); a name
// that would reach into the pipeline is refused.
func TestGenICamSource(t *testing.T) {
	cfg := configs.DefaultCamera()
	cfg.Name, cfg.Type, cfg.Source = "gige", "genicam", "Basler-1"
	cfg.GenICam.Camera = "Basler-21987654"
	cam, err := New(cfg, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	if s := cam.Source(); s.Kind != KindGenICam || s.Target != "Basler-21987654" || !s.Live() || !s.Exclusive() {
		t.Errorf("source %+v, live %v, exclusive %v", s, s.Live(), s.Exclusive())
	}
	if s, _ := ParseSource("/dev/video0", ""); !s.Exclusive() {
		t.Error("a USB camera is exclusive")
	}
	if s, _ := ParseSource("videotestsrc ! appsink", ""); s.Exclusive() {
		t.Error("a GStreamer pipeline is not exclusive")
	}
	cfg.GenICam.Camera = `x" ! filesink location=/tmp/x`
	if _, err := New(cfg, quietLog); err == nil || !strings.Contains(err.Error(), `camera "gige"`) || !strings.Contains(err.Error(), "genicam.camera") {
		t.Errorf("a camera name with a quote: %v", err)
	}
}
