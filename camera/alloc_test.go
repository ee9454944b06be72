package camera

import (
	"errors"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// Reading an MJPEG frame and decoding it cost the Go heap only the frame's own structs: a
// frame is read and decoded at every camera's rate, for months.
func TestReadAndDecodeAllocations(t *testing.T) {
	if matProfile {
		t.Skip("allocations not counted: with the matprofile tag gocv allocates to record each Mat (make test counts them in a run without it)")
	}
	cam := cameraFor(t, configs.Camera{Source: testenv.Path("testdata", "demo", "conveyor.avi")})
	g, err := cam.open()
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	g.(*capture).passJPEG(cam.src) // as the camera's run does for a source it hands on as JPEG
	var readErr error
	n := testing.AllocsPerRun(30, func() {
		f := &Frame{Camera: "test", Pos: -1}
		if err := readFrame(g, f); err != nil {
			readErr = err
		} else if !f.Encoded() {
			t.Error("the demo's MJPEG frame was not handed on as JPEG")
		}
		f.Close()
	})
	if readErr != nil {
		t.Fatal(readErr)
	}
	t.Logf("reading a frame: %v allocations", n)
	// the Frame and its jpegFrame
	if n != 2 {
		t.Errorf("reading a frame made %v allocations; want 2 (the frame and its JPEG part)", n)
	}

	b := jpegOf(t, 640, 360)
	size, err := JPEGSize(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, div := range []int{1, 2, 4, 8} {
		n := testing.AllocsPerRun(20, func() {
			m, err := turboDecode(b, size, div)
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
		})
		if n != 0 {
			t.Errorf("a decode at 1/%d made %v allocations; want none", div, n)
		}
	}
	// the message, returned by value, still comes back: a picture cut short is repaired, and
	// libjpeg says why
	m, err := turboDecode(b[:len(b)/2], size, 1)
	if err == nil {
		m.Close()
		t.Fatal("half a JPEG decoded clean")
	}
	if m.Ptr() != nil {
		m.Close()
	}
	if _, why, _ := strings.Cut(err.Error(), "\n"); !errors.Is(err, errJPEGRepaired) && !errors.Is(err, errTurboJPEG) || strings.TrimSpace(why) == "" {
		t.Errorf("half a JPEG: %q; want TurboJPEG's reason after the kind of failure", err)
	}
}
