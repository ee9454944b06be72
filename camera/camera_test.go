package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	if st := cam.Status(); st.Dropped == 0 {
		t.Fatalf("a slow consumer should cause drops: %+v", st)
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
