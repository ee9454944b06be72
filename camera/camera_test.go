package camera

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestParseSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clip.avi")
	os.WriteFile(file, []byte("x"), 0o600)
	cases := []struct {
		source, kind string
		want         Kind
		index        int
		err          string
	}{
		{"0", "auto", KindUSB, 0, ""},
		{"3", "", KindUSB, 3, ""},
		{"/dev/video2", "auto", KindUSB, -1, ""},
		{"/dev/v4l/by-id/usb-046d_C920-video-index0", "auto", KindUSB, -1, ""},
		{"rtsp://user:pw@10.0.0.5:554/stream1", "auto", KindStream, -1, ""},
		{"http://10.0.0.6/mjpeg", "auto", KindStream, -1, ""},
		{"aravissrc camera-name=Basler-1 ! videoconvert ! appsink", "auto", KindGStreamer, -1, ""},
		{file, "auto", KindFile, -1, ""},
		{"file://" + file, "auto", KindFile, -1, ""},
		{dir, "auto", KindFolder, -1, ""},
		{"", "auto", "", 0, "source is empty"},
		{"999", "usb", "", 0, "out of range"},
		{"camera0", "usb", "", 0, "must be an index"},
		{"rtsp://", "stream", "", 0, "must be a URL"},
		{"ftp://host/x", "stream", "", 0, "must be a URL"},
		{"videotestsrc ! videoconvert", "auto", "", 0, "must end in appsink"},
		{filepath.Join(dir, "missing.avi"), "auto", "", 0, "no such file"},
		{dir, "file", "", 0, "is a folder"},
		{file, "folder", "", 0, "is not a folder"},
		{"0", "webcam", "", 0, `type "webcam"`},
	}
	for _, c := range cases {
		got, err := ParseSource(c.source, c.kind)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseSource(%q, %q): error %v, want %q", c.source, c.kind, err, c.err)
			}
			continue
		}
		if err != nil || got.Kind != c.want || got.Index != c.index {
			t.Errorf("ParseSource(%q, %q) = %+v, %v; want kind %s index %d", c.source, c.kind, got, err, c.want, c.index)
		}
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	_, err := ParseSource("rtsp://admin:s3cret@", "stream")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error must not show the password: %v", err)
	}
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"0", "/dev/video0", "rtsp://u:p@h/x", "a ! appsink", "file:///tmp", "", "-1", "http://[::1", "\x00"} {
		f.Add(s, "auto")
	}
	f.Add("x", "stream")
	f.Fuzz(func(t *testing.T, source, kind string) {
		src, err := ParseSource(source, kind)
		if err == nil && src.Target == "" {
			t.Fatalf("accepted %q with an empty target", source)
		}
	})
}

func cameraFor(t *testing.T, cfg configs.Camera) *Camera {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	c, err := New(cfg, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFileEveryFrame reads the demo video with realtime off: every frame, in order, then EOF.
func TestFileEveryFrame(t *testing.T) {
	cam := cameraFor(t, configs.Camera{Source: testenv.Path("testdata", "demo", "conveyor.avi"), Type: "auto"})
	cam.Start(context.Background())
	defer cam.Close()
	n := 0
	for {
		f, err := cam.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Pos != int64(n) || f.Seq != uint64(n+1) || f.Bounds().Dx() != 640 || f.Bounds().Dy() != 360 {
			t.Fatalf("frame %d: pos %d seq %d size %v", n, f.Pos, f.Seq, f.Bounds())
		}
		f.Close()
		n++
	}
	if n != 158 {
		t.Fatalf("read %d frames, the video has 158", n)
	}
	if st := cam.Status(); st.State != StateEnded || st.Dropped != 0 || st.Read != 158 {
		t.Fatalf("status %+v", st)
	}
}

// TestRealtimeKeepsLatest: a slow consumer of a realtime replay gets fresh frames and the
// stale ones are dropped and counted.
func TestRealtimeKeepsLatest(t *testing.T) {
	cam := cameraFor(t, configs.Camera{Source: testenv.Path("testdata", "demo", "conveyor.avi"), Realtime: true, FPS: 200})
	cam.Start(context.Background())
	defer cam.Close()
	var last int64 = -1
	for i := 0; i < 5; i++ {
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Pos <= last {
			t.Fatalf("frame went back: %d after %d", f.Pos, last)
		}
		last = f.Pos
		f.Close()
		time.Sleep(30 * time.Millisecond) // about 6 frames arrive meanwhile
	}
	if st := cam.Status(); st.Dropped == 0 || st.Skipped != 0 || st.Overflow != 0 {
		t.Fatalf("a slow consumer of a continuous camera should cause drops, and only drops: %+v", st)
	}
}

// TestWaitingByDesignSkips: a camera that waits by design (trigger interval or mqtt, or
// max_fps) counts the frames it does not take as skipped, not dropped: dropped would set off
// the alert on a pipeline slower than its camera.
func TestWaitingByDesignSkips(t *testing.T) {
	for _, cfg := range []configs.Camera{{Trigger: "interval", Interval: time.Second}, {Trigger: "mqtt"}, {Trigger: "continuous", MaxFPS: 5}} {
		cfg.Source, cfg.Realtime, cfg.FPS = testenv.Path("testdata", "demo", "conveyor.avi"), true, 200
		cam := cameraFor(t, cfg)
		cam.Start(context.Background())
		for range 3 {
			f, err := cam.NextAfter(context.Background(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			time.Sleep(30 * time.Millisecond) // waiting for the next trigger
		}
		st := cam.Status()
		cam.Close()
		if st.Skipped == 0 || st.Dropped != 0 || st.Overflow != 0 {
			t.Errorf("trigger %s, max_fps %v: %+v, want skipped frames and no dropped ones", cfg.Trigger, cfg.MaxFPS, st)
		}
	}
}

// TestHardwareTriggerKeepsEveryFrame: with trigger hardware every frame the camera delivers
// reaches the pipeline, in order, while the queue has room; beyond it, a frame is an
// overflow, counted, and never replaces one that waits.
func TestHardwareTriggerKeepsEveryFrame(t *testing.T) {
	src := testenv.Path("testdata", "demo", "conveyor.avi")
	cam := cameraFor(t, configs.Camera{Source: src, Realtime: true, FPS: 100, Trigger: "hardware", TriggerQueue: 200})
	cam.Start(context.Background())
	for want := int64(0); want < 60; want++ { // a consumer that keeps up: every frame, in order
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Pos != want {
			t.Fatalf("frame %d, want %d: a triggered frame was lost", f.Pos, want)
		}
		f.Close()
	}
	if st := cam.Status(); st.Dropped != 0 || st.Skipped != 0 || st.Overflow != 0 {
		t.Errorf("a consumer that keeps up: %+v", st)
	}
	cam.Close()

	cam = cameraFor(t, configs.Camera{Source: src, Realtime: true, FPS: 200, Trigger: "hardware", TriggerQueue: 3})
	cam.Start(context.Background())
	defer cam.Close()
	last := int64(-1)
	for range 8 { // a slow consumer: the queue fills, and what comes then overflows
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Pos <= last {
			t.Fatalf("frame %d after %d", f.Pos, last)
		}
		last = f.Pos
		f.Close()
		time.Sleep(30 * time.Millisecond)
	}
	if st := cam.Status(); st.Overflow == 0 || st.Dropped != 0 || st.Skipped != 0 {
		t.Errorf("a slow consumer of a hardware trigger: %+v, want overflow and nothing dropped", st)
	}
}

func TestFolderLoops(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(50*i), 0, 0, 0), 8, 8, gocv.MatTypeCV8UC3)
		gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("img%d.png", i)), m)
		m.Close()
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o600)
	cam := cameraFor(t, configs.Camera{Source: dir, Loop: true})
	cam.Start(context.Background())
	defer cam.Close()
	var pos []int64
	for len(pos) < 7 {
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		mat := f.Mat()
		if want := uint8(50 * (len(pos) % 3)); mat.GetUCharAt(0, 0) != want {
			t.Fatalf("frame %d has blue %d, want %d (name order)", len(pos), mat.GetUCharAt(0, 0), want)
		}
		pos = append(pos, f.Pos)
		f.Close()
	}
	if fmt.Sprint(pos) != "[0 1 2 0 1 2 0]" {
		t.Fatalf("positions %v", pos)
	}
}

// TestLoopOfNothingBacksOff: a looping folder whose only picture is unreadable is reopened
// with the backoff, reconnecting with the reason, not at once and for ever with the camera
// said to be online.
func TestLoopOfNothingBacksOff(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.jpg"), []byte("x"), 0o600)
	cam := cameraFor(t, configs.Camera{Source: dir, Loop: true})
	cam.MinBackoff, cam.MaxBackoff = 100*time.Millisecond, 100*time.Millisecond
	var opens openLog
	cam.open = opens.wrap(cam.open)
	cam.Start(context.Background())
	defer cam.Close()
	time.Sleep(500 * time.Millisecond)
	if n := opens.count(); n > 8 {
		t.Errorf("%d opens in 0.5 s with a backoff of 0.1 s", n)
	}
	// each reopen is online for a moment before it reads nothing: look until the backoff shows
	testenv.WaitFor(t, "reconnecting with the reason", 5*time.Second, func() bool {
		st := cam.Status()
		return st.State == StateReconnecting && strings.Contains(st.Reason, "without one frame the agent could read")
	})
}

// flaky fails to open a number of times, then delivers frames.
type flaky struct {
	mu    sync.Mutex
	fails int
}

type solid struct{}

func (solid) read(m *gocv.Mat) error {
	m.Close()
	*m = gocv.NewMatWithSize(4, 4, gocv.MatTypeCV8UC3)
	time.Sleep(time.Millisecond)
	return nil
}
func (solid) fps() float64 { return 0 }
func (solid) close()       {}

func (f *flaky) open() (grabber, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return nil, errors.New("device unplugged")
	}
	return solid{}, nil
}

func TestReconnectsWithBackoff(t *testing.T) {
	cam := cameraFor(t, configs.Camera{Source: "0"})
	fl := &flaky{fails: 3}
	cam.open = fl.open
	cam.MinBackoff, cam.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	var mu sync.Mutex
	var states []string
	cam.OnStatus(func(s Status) {
		mu.Lock()
		states = append(states, string(s.State)+":"+s.Reason)
		mu.Unlock()
	})
	start := time.Now()
	cam.Start(context.Background())
	f, err := cam.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	waited := time.Since(start)
	cam.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 3 || states[0] != "reconnecting:device unplugged" || states[1] != "online:" || states[len(states)-1] != "stopped:" {
		t.Fatalf("states %v", states)
	}
	if waited < 10*time.Millisecond+20*time.Millisecond+40*time.Millisecond {
		t.Fatalf("three failures should back off 10+20+40 ms, came back after %v", waited)
	}
}

// oneImage writes a w x h PNG whose pixel (x, y) has blue x*10, green y*10, red 7.
func oneImage(t *testing.T, w, h int) string {
	t.Helper()
	dir := t.TempDir()
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetUCharAt(y, 3*x, uint8(x*10))
			m.SetUCharAt(y, 3*x+1, uint8(y*10))
			m.SetUCharAt(y, 3*x+2, 7)
		}
	}
	gocv.IMWrite(filepath.Join(dir, "a.png"), m)
	return dir
}

// TestRotateAndROI checks on pixels that frames are turned, then cut to the ROI.
func TestRotateAndROI(t *testing.T) {
	dir := oneImage(t, 4, 3) // pixel (x, y) = blue 10x, green 10y
	cases := []struct {
		rotate   int
		roi      []int
		w, h     int
		origin   [2]int // source (x, y) of the output's top-left pixel
		topRight [2]int // source (x, y) of the output's top-right pixel
	}{
		{0, nil, 4, 3, [2]int{0, 0}, [2]int{3, 0}},
		{90, nil, 3, 4, [2]int{0, 2}, [2]int{0, 0}}, // clockwise: the bottom-left corner comes to the top-left
		{180, nil, 4, 3, [2]int{3, 2}, [2]int{0, 2}},
		{270, nil, 3, 4, [2]int{3, 0}, [2]int{3, 2}},
		{0, []int{1, 1, 2, 2}, 2, 2, [2]int{1, 1}, [2]int{2, 1}},
		{90, []int{1, 0, 2, 2}, 2, 2, [2]int{0, 1}, [2]int{0, 0}},
	}
	for _, c := range cases {
		cam := cameraFor(t, configs.Camera{Source: dir, Rotate: c.rotate, ROI: c.roi})
		cam.Start(context.Background())
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := f.Mat()
		px := func(x, y int) [2]int { return [2]int{int(m.GetUCharAt(y, 3*x)) / 10, int(m.GetUCharAt(y, 3*x+1)) / 10} }
		if f.Bounds().Dx() != c.w || f.Bounds().Dy() != c.h || px(0, 0) != c.origin || px(c.w-1, 0) != c.topRight {
			t.Errorf("rotate %d roi %v: %dx%d, top-left from %v, top-right from %v; want %dx%d, %v, %v",
				c.rotate, c.roi, f.Bounds().Dx(), f.Bounds().Dy(), px(0, 0), px(c.w-1, 0), c.w, c.h, c.origin, c.topRight)
		}
		f.Close()
		cam.Close()
	}
}

func TestROIOutsideTheFrame(t *testing.T) {
	cam := cameraFor(t, configs.Camera{Source: oneImage(t, 4, 3), ROI: []int{2, 2, 10, 10}})
	cam.MinBackoff, cam.MaxBackoff = time.Hour, time.Hour
	cam.Start(context.Background())
	defer cam.Close()
	deadline := time.Now().Add(5 * time.Second)
	for cam.Status().State != StateEnded && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := cam.Status(); st.State != StateEnded || !strings.Contains(st.Reason, "lies outside the 4x3 frame: fix cameras[].roi") {
		t.Fatalf("status %+v", st)
	}
}

// TestROIOutsideTheFrameEndsOnce: an ROI that does not fit the frame is a config error that
// reopening the source does not fix. The camera says so once, naming the key and the frame
// size, and ends, instead of going online, reconnecting, online, ... for ever.
func TestROIOutsideTheFrameEndsOnce(t *testing.T) {
	var logs testenv.LogBuffer
	cam, err := New(configs.Camera{Name: "belt", Source: testenv.Path("testdata", "demo", "conveyor.avi"), Loop: true, ROI: []int{600, 300, 100, 100}},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cam.Key = "cameras[2]"
	cam.MinBackoff, cam.MaxBackoff = time.Millisecond, time.Millisecond // a loop, if there is one, turns fast
	var mu sync.Mutex
	var states []string
	cam.OnStatus(func(s Status) {
		mu.Lock()
		states = append(states, string(s.State))
		mu.Unlock()
	})
	changes := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), states...)
	}
	cam.Start(context.Background())
	defer cam.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f, err := cam.Next(ctx); !errors.Is(err, io.EOF) {
		f.Close()
		t.Fatalf("Next gave %v; want io.EOF: the camera ends (status %+v, %d status changes)", err, cam.Status(), len(changes()))
	}
	st := cam.Status()
	if st.State != StateEnded || !strings.Contains(st.Reason, "cameras[2].roi") || !strings.Contains(st.Reason, "640x360") || st.Read != 0 {
		t.Fatalf("status %+v: want ended, with cameras[2].roi and the 640x360 frame in the reason, no frame delivered", st)
	}
	if got := changes(); strings.Join(got, ",") != "online,ended" {
		t.Errorf("status changes %v, want online,ended", got)
	}
	if n := logs.Count("camera ended: its settings do not fit"); n != 1 || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the ROI error logged %d times at error level, want once:\n%s", n, logs.String())
	}
}

// fakeDevice keeps what is set, except the properties it ignores.
type fakeDevice struct {
	props   map[gocv.VideoCaptureProperties]float64
	ignores map[gocv.VideoCaptureProperties]bool
	order   []gocv.VideoCaptureProperties
}

func (d *fakeDevice) Set(p gocv.VideoCaptureProperties, v float64) {
	d.order = append(d.order, p)
	if !d.ignores[p] {
		d.props[p] = v
	}
}
func (d *fakeDevice) Get(p gocv.VideoCaptureProperties) float64 { return d.props[p] }

func TestApplyDeviceReportsIgnoredSettings(t *testing.T) {
	w, h, fps, exp, gain := 1280, 720, 30.0, 150.0, 4.0
	no := false
	dev := &fakeDevice{props: map[gocv.VideoCaptureProperties]float64{gocv.VideoCaptureFrameWidth: 640, gocv.VideoCaptureFrameHeight: 480, gocv.VideoCaptureFPS: 15},
		ignores: map[gocv.VideoCaptureProperties]bool{gocv.VideoCaptureFPS: true, gocv.VideoCaptureGain: true}}
	ignored := applyDevice(dev, configs.Device{Width: &w, Height: &h, FPS: &fps, FourCC: "MJPG", AutoExposure: &no, Exposure: &exp, Gain: &gain})
	want := []string{"fps: asked 30, device has 15", "gain: asked 4, device has 0"}
	if strings.Join(ignored, "|") != strings.Join(want, "|") {
		t.Fatalf("ignored %q, want %q", ignored, want)
	}
	if dev.props[gocv.VideoCaptureFOURCC] != fourcc("MJPG") || fourccString(fourcc("MJPG")) != "MJPG" {
		t.Fatalf("fourcc %v", dev.props[gocv.VideoCaptureFOURCC])
	}
	if dev.props[gocv.VideoCaptureAutoExposure] != v4l2ExposureManual {
		t.Fatalf("auto exposure off must write the V4L2 manual value, got %v", dev.props[gocv.VideoCaptureAutoExposure])
	}
	if dev.order[0] != gocv.VideoCaptureFOURCC || dev.order[1] != gocv.VideoCaptureFrameWidth {
		t.Fatalf("format must be set before size: %v", dev.order)
	}
}

// stalling delivers one frame, then blocks in read as a hung stream does.
type stalling struct{ reads int }

func (s *stalling) read(m *gocv.Mat) error {
	s.reads++
	if s.reads > 1 {
		time.Sleep(300 * time.Millisecond)
	}
	m.Close()
	*m = gocv.NewMatWithSize(2, 2, gocv.MatTypeCV8UC3)
	return nil
}
func (s *stalling) fps() float64 { return 0 }
func (s *stalling) close()       {}

func TestWatchdogMarksAStalledSource(t *testing.T) {
	cam := cameraFor(t, configs.Camera{Source: "0"})
	cam.NoFrame, cam.MinBackoff, cam.MaxBackoff = 100*time.Millisecond, 10*time.Millisecond, 10*time.Millisecond
	opens := 0
	cam.open = func() (grabber, error) { opens++; return &stalling{}, nil }
	var mu sync.Mutex
	var reasons []string
	cam.OnStatus(func(s Status) { mu.Lock(); reasons = append(reasons, string(s.State)+":"+s.Reason); mu.Unlock() })
	cam.Start(context.Background())
	go func() {
		for {
			f, err := cam.Next(context.Background())
			if err != nil {
				return
			}
			f.Close()
		}
	}()
	time.Sleep(700 * time.Millisecond)
	cam.Close()
	mu.Lock()
	defer mu.Unlock()
	if !slicesContains(reasons, "reconnecting:no frame for 100ms") || opens < 2 {
		t.Fatalf("states %v after %d opens", reasons, opens)
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestGStreamerPipeline reads frames from a GStreamer pipeline (videotestsrc, from Debian's
// gstreamer1.0-plugins-base).
func TestGStreamerPipeline(t *testing.T) {
	if _, err := exec.LookPath("gst-inspect-1.0"); err != nil {
		if out, err := exec.Command("sh", "-c", "ls /usr/lib/*/gstreamer-1.0/libgstvideotestsrc.so").CombinedOutput(); err != nil {
			testenv.Missing(t, "GStreamer videotestsrc (apt-get install gstreamer1.0-plugins-base): %s", out)
		}
	}
	cam := cameraFor(t, configs.Camera{Source: "videotestsrc ! video/x-raw,width=320,height=240,format=BGR ! appsink"})
	cam.Start(context.Background())
	defer cam.Close()
	for i := 0; i < 3; i++ {
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Bounds().Dx() != 320 || f.Bounds().Dy() != 240 || f.Pos != -1 {
			t.Fatalf("frame %v pos %d", f.Bounds(), f.Pos)
		}
		f.Close()
	}
	if cam.Source().Kind != KindGStreamer {
		t.Fatalf("kind %s", cam.Source().Kind)
	}
}

// mjpegServer serves an endless multipart MJPEG stream, as IP cameras do, until stopped.
func mjpegServer(t *testing.T) (url string, stop func()) {
	t.Helper()
	frame := orangeJPEG(t)
	return mjpegServerOf(func(int32, int) []byte { return frame })
}

// orangeJPEG is a 160 x 120 orange picture, encoded by OpenCV.
func orangeJPEG(t *testing.T) []byte {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 160, 220, 0), 120, 160, gocv.MatTypeCV8UC3)
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// mjpegServerOf serves an MJPEG stream, 50 frames a second: frame i of connection conn (from
// 1) is frame(conn, i).
func mjpegServerOf(frame func(conn int32, i int) []byte) (url string, stop func()) {
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := conns.Add(1)
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
		for i := 0; r.Context().Err() == nil; i++ {
			f := frame(conn, i)
			fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(f))
			w.Write(f)
			w.Write([]byte("\r\n"))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}))
	return srv.URL + "/mjpeg", func() { srv.CloseClientConnections(); srv.Close() }
}

// TestHTTPStreamReconnects reads an MJPEG IP camera stream (its JPEG handed on undecoded),
// loses it, and reports it.
func TestHTTPStreamReconnects(t *testing.T) {
	url, stop := mjpegServer(t)
	cam := cameraFor(t, configs.Camera{Source: url})
	cam.MinBackoff, cam.MaxBackoff = 50*time.Millisecond, 100*time.Millisecond
	cam.Start(context.Background())
	defer cam.Close()
	for i := 0; i < 3; i++ {
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		mat := f.Mat()
		if f.Bounds().Dx() != 160 || mat.GetUCharAt(60, 80*3+2) < 200 || !f.Encoded() {
			t.Fatalf("frame %v red %d, handed on as JPEG %v", f.Bounds(), mat.GetUCharAt(60, 80*3+2), f.Encoded())
		}
		f.Close()
	}
	stop()
	deadline := time.Now().Add(10 * time.Second)
	for cam.Status().State != StateReconnecting && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := cam.Status(); st.State != StateReconnecting || st.Reason == "" {
		t.Fatalf("after the stream went away: %+v", st)
	}
}

// TestFrameClone: a clone has pixels of its own: it outlives the frame it was made from, and
// shows what that frame showed.
func TestFrameClone(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 6))
	img.Set(3, 2, color.RGBA{10, 200, 30, 255})
	f, err := FrameOf(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Seq = 7
	c := f.Clone()
	defer c.Close()
	f.Close()
	if c.Closed() || c.Seq != 7 || c.Bounds() != image.Rect(0, 0, 8, 6) {
		t.Fatalf("clone %+v, closed %v", c, c.Closed())
	}
	m := c.Mat()
	if g := m.GetUCharAt(2, 3*3+1); g != 200 {
		t.Fatalf("the clone's pixel is %d, want 200", g)
	}
	// a region: only its pixels, the marked one at its place in the region
	r := c.CloneRegion(image.Rect(2, 1, 6, 4))
	defer r.Close()
	m = r.Mat()
	if r.Bounds() != image.Rect(0, 0, 4, 3) || m.GetUCharAt(1, 1*3+1) != 200 {
		t.Fatalf("region clone %v, pixel %d", r.Bounds(), m.GetUCharAt(1, 1*3+1))
	}
	if w := c.CloneRegion(image.Rect(20, 20, 30, 30)); w.Bounds() != c.Bounds() {
		t.Fatalf("a region outside the frame gave %v, want the whole frame", w.Bounds())
	} else {
		w.Close()
	}
}
