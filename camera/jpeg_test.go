package camera

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
	"gocv.io/x/gocv"
)

// jpegOf encodes a w×h picture: left half dark, right half bright, a red square at (x, y).
func jpegOf(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(40)
			if x >= w/2 {
				v = 220
			}
			img.Set(x, y, color.RGBA{v, v, v, 255})
		}
	}
	for y := h / 4; y < h/4+h/8; y++ {
		for x := w / 8; x < w/8+h/8; x++ {
			img.Set(x, y, color.RGBA{230, 20, 20, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestJPEGSize(t *testing.T) {
	b := jpegOf(t, 1920, 1080)
	if got, err := JPEGSize(b); err != nil || got != image.Pt(1920, 1080) {
		t.Fatalf("JPEGSize = %v, %v; want 1920x1080", got, err)
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"png":       {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A},
		"truncated": b[:20],
		"no SOF":    {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02},
		"zero size": {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0, 0, 0, 0, 3, 1, 0x11, 0},
		"long seg":  {0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 0},
	} {
		if _, err := JPEGSize(bad); !errors.Is(err, errNotJPEG) {
			t.Errorf("%s: err %v, want errNotJPEG", name, err)
		}
	}
}

func FuzzJPEGSize(f *testing.F) {
	f.Add(jpegOf(f, 64, 48))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0, 16, 0, 32, 3, 1, 0x11, 0})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xFF, 0xD0, 0xFF, 0xC2, 0x00, 0x08, 8, 0, 1, 0, 1})
	f.Add([]byte{0xFF, 0xD8})
	f.Fuzz(func(t *testing.T, b []byte) {
		size, err := JPEGSize(b)
		if err == nil && (size.X <= 0 || size.Y <= 0) {
			t.Fatalf("size %v without an error", size)
		}
	})
}

// FuzzJPEGFrame: whatever bytes a stream delivers as a JPEG, a frame made of them is
// refused with an error, or decodes at each scale to a picture of the size its header says:
// the same pixels as imdecode's when the decode was clean; the same pixels every time when
// libjpeg repaired it (no pixel left unwritten); black and marked bad when neither TurboJPEG
// nor imdecode could decode it. Nothing panics.
func FuzzJPEGFrame(f *testing.F) {
	for _, b := range corruptJPEGs(f) {
		f.Add(b)
	}
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0, 16, 0, 32, 3, 1, 0x11, 0}) // a header alone
	f.Fuzz(func(t *testing.T, b []byte) {
		if size, err := JPEGSize(b); err != nil || size.X*size.Y > 2048*2048 {
			return // refused; or a valid header of a huge picture: slow to decode, not wrong
		}
		for _, div := range []int{1, 2, 4, 8} {
			checkDecode(t, b, div)
		}
	})
}

// corruptJPEGs are pictures a stream may deliver broken: whole, cut short in its scan, with bits
// flipped, with stray bytes before a marker (which libjpeg repairs with a warning), and a
// progressive picture cut inside its first scan and followed by a whole picture (a spliced
// stream: TurboJPEG 2.1 reports its fatal error as a warning).
func corruptJPEGs(tb testing.TB) map[string][]byte {
	good := jpegOf(tb, 64, 48)
	flipped := append([]byte(nil), good...)
	for i := len(flipped) / 3; i < len(flipped)-2; i += 97 {
		flipped[i] ^= 0x5A
	}
	sos0 := bytes.Index(good, []byte{0xFF, 0xDA})
	if sos0 < 0 {
		tb.Fatal("no start of scan in the picture")
	}
	stray := append(append(append([]byte(nil), good[:sos0]...), 0x00, 0x00), good[sos0:]...)
	img, err := gocv.IMDecode(good, gocv.IMReadColor)
	if err != nil {
		tb.Fatal(err)
	}
	defer img.Close()
	prog := encodeJPEG(tb, img, gocv.IMWriteJpegQuality, 90, gocv.IMWriteJpegProgressive, 1)
	sos := bytes.Index(prog, []byte{0xFF, 0xDA})
	if sos < 0 {
		tb.Fatal("no start of scan in the progressive picture")
	}
	spliced := append(append([]byte(nil), prog[:sos+30]...), good...)
	return map[string][]byte{"whole": good, "cut short": good[:sos0+(len(good)-sos0)/2], "bits flipped": flipped,
		"stray bytes": stray, "spliced": spliced}
}

// decoded is what became of a frame's picture at one scale.
type decoded struct {
	clean, imdecoded, bad bool
	// same: the pixels are imdecode's at that scale; black: all 0
	same, black bool
}

// checkDecode decodes a frame of b viewed at 1/div (View's choice: the coarsest scale that
// keeps the frame's size divided by div), checks what FuzzJPEGFrame says, and returns what
// became of it.
func checkDecode(t *testing.T, b []byte, div int) decoded {
	t.Helper()
	view := func() (gocv.Mat, *Frame, bool) {
		fr, err := FrameOfJPEG(b)
		if err != nil {
			t.Fatal(err)
		}
		clean := true
		fr.jpeg.onFlawed = func(error) { clean = false }
		size := fr.jpeg.size
		m, _ := fr.View(image.Rect(0, 0, size.X, size.Y), size.X/div, size.Y/div)
		return m, fr, clean
	}
	got, fr, clean := view()
	defer fr.Close()
	size := fr.jpeg.size
	d := 8 // the scale of the view: the coarsest that keeps size/div (for a tiny picture, coarser than div)
	for d > 1 && (size.X/d < size.X/div || size.Y/d < size.Y/div) {
		d /= 2
	}
	if got.Cols() != (size.X+d-1)/d || got.Rows() != (size.Y+d-1)/d || got.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("%v picture viewed at 1/%d: %dx%d type %v", size, div, got.Cols(), got.Rows(), got.Type())
	}
	r := decoded{clean: clean && !fr.jpeg.imdecoded, imdecoded: fr.jpeg.imdecoded, bad: fr.jpeg.bad}
	grey := got.Reshape(1, 0)
	r.black = gocv.CountNonZero(grey) == 0
	grey.Close()
	want, err := gocv.IMDecode(b, reducedFlags[log2(d)])
	ok := err == nil && !want.Empty() && want.Cols() == got.Cols() && want.Rows() == got.Rows() && want.Type() == gocv.MatTypeCV8UC3
	if ok {
		r.same = maxDiff(got, want) == 0
	}
	if err == nil {
		want.Close()
	}
	switch {
	case r.clean && (!r.same || r.bad):
		t.Fatalf("%v picture at 1/%d decoded clean, but its pixels are not imdecode's (bad %v)", size, d, r.bad)
	case r.imdecoded && !ok && (!r.bad || !r.black):
		t.Fatalf("%v picture at 1/%d: neither decoder could decode it, yet the frame is not black and bad (bad %v)", size, d, r.bad)
	case r.imdecoded && ok && !r.same:
		t.Fatalf("%v picture at 1/%d went to imdecode, but its pixels are not imdecode's", size, d)
	case !r.imdecoded: // decoded again into pixels filled black, then white: every pixel written
		t.Cleanup(func() { decodeFill = -1 })
		for _, fill := range []int{0x00, 0xFF} {
			decodeFill = fill
			again, fr2, _ := view()
			n := maxDiff(got, again)
			fr2.Close()
			if n != 0 {
				t.Fatalf("%v picture at 1/%d: decoded into pixels filled with %#x, it differs by up to %v: pixels left unwritten", size, d, fill, n)
			}
		}
		decodeFill = -1
	}
	return r
}

// TestCorruptJPEGs: broken pictures decode as libjpeg repairs them, at each scale, the same
// every time; one it cannot decode (a spliced stream) is black and marked bad; the frame
// tells its camera of each flawed decode.
func TestCorruptJPEGs(t *testing.T) {
	want := map[string]func(decoded) bool{
		"whole":        func(r decoded) bool { return r.clean && r.same },
		"stray bytes":  func(r decoded) bool { return !r.clean && !r.imdecoded && r.same && !r.bad },
		"cut short":    func(r decoded) bool { return !r.clean && !r.imdecoded && !r.bad && !r.black },
		"bits flipped": func(r decoded) bool { return !r.clean && !r.imdecoded && !r.bad },
		"spliced":      func(r decoded) bool { return !r.clean && r.imdecoded && r.bad && r.black },
	}
	for name, b := range corruptJPEGs(t) {
		t.Run(name, func(t *testing.T) {
			for _, div := range []int{1, 2, 4, 8} {
				if r := checkDecode(t, b, div); !want[name](r) {
					t.Errorf("at 1/%d: %+v", div, r)
				}
			}
		})
	}
}

// TestJPEGFrameViews: a JPEG frame decodes the coarsest view that keeps the asked size, reuses
// a finer one, maps regions into it, and decodes the full picture only when Mat is called.
func TestJPEGFrameViews(t *testing.T) {
	f, err := FrameOfJPEG(jpegOf(t, 1920, 1080))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.Encoded() || f.Bounds() != image.Rect(0, 0, 1920, 1080) {
		t.Fatalf("encoded %v bounds %v", f.Encoded(), f.Bounds())
	}
	full := f.Bounds()
	v, r := f.View(full, 416, 416) // 1080/2 = 540 >= 416, 1080/4 = 270 < 416
	if v.Cols() != 960 || v.Rows() != 540 || r != image.Rect(0, 0, 960, 540) {
		t.Fatalf("view for 416x416: %dx%d, region %v; want 960x540", v.Cols(), v.Rows(), r)
	}
	if f.mat.Ptr() != nil {
		t.Fatal("a view decoded the full frame")
	}
	// the picture is right: dark left, bright right, the red square at its place
	if l, rt := v.GetUCharAt(270, 3*100), v.GetUCharAt(270, 3*900); l > 80 || rt < 180 {
		t.Fatalf("view pixels: left %d right %d", l, rt)
	}
	if red := v.GetUCharAt(1080/4/2+10, 3*(1920/8/2+10)+2); red < 180 {
		t.Fatalf("the red square is not in the view (red %d)", red)
	}
	// a coarser request reuses the finer view; a region maps by the view's divisor
	v2, r2 := f.View(image.Rect(100, 51, 901, 500), 64, 64)
	if v2.Ptr() != v.Ptr() || r2 != image.Rect(50, 25, 451, 250) {
		t.Fatalf("coarser view: same Mat %v, region %v; want the 1/2 view, (50,25)-(451,250)", v2.Ptr() == v.Ptr(), r2)
	}
	// a finer request than any reduction: the full frame
	m, r3 := f.View(image.Rect(0, 0, 500, 500), 300, 300)
	if m.Cols() != 1920 || r3 != image.Rect(0, 0, 500, 500) {
		t.Fatalf("a 300x300 view of a 500x500 region: %dx%d %v; want the full frame", m.Cols(), m.Rows(), r3)
	}
	if again := f.Mat(); again.Ptr() != m.Ptr() {
		t.Fatal("Mat decoded the frame again")
	}
	decoded := f.Bytes()
	f.Compact()
	if f.Bytes() >= decoded/20 || f.mat.Ptr() != nil {
		t.Fatalf("compacted frame holds %d bytes (decoded %d)", f.Bytes(), decoded)
	}
	if m := f.Mat(); m.Cols() != 1920 || m.GetUCharAt(540, 3*1800) < 180 {
		t.Fatal("a compacted frame does not decode again")
	}
}

// TestJPEGFrameCloneAndBadData: a clone copies the JPEG (outliving its original); a JPEG whose
// body libjpeg cannot decode gives black pixels of its size, never an empty Mat.
func TestJPEGFrameCloneAndBadData(t *testing.T) {
	f, err := FrameOfJPEG(jpegOf(t, 320, 240))
	if err != nil {
		t.Fatal(err)
	}
	f.Seq = 9
	c := f.Clone()
	defer c.Close()
	f.Close()
	if !f.Closed() || c.Closed() || !c.Encoded() || c.Seq != 9 {
		t.Fatalf("closed %v/%v encoded %v seq %d", f.Closed(), c.Closed(), c.Encoded(), c.Seq)
	}
	if m := c.Mat(); m.Cols() != 320 || m.GetUCharAt(120, 3*300) < 180 {
		t.Fatal("the clone's pixels are wrong")
	}
	region := c.CloneRegion(image.Rect(160, 0, 320, 240))
	defer region.Close()
	if region.Encoded() || region.Bounds().Dx() != 160 {
		t.Fatalf("a region clone: encoded %v size %v", region.Encoded(), region.Bounds())
	}

	// a header that parses, then garbage where the scan should be
	b := jpegOf(t, 320, 240)
	bad := append([]byte(nil), b[:200]...)
	bad = append(bad, 0xFF, 0xD9)
	g, err := FrameOfJPEG(bad)
	if err != nil {
		t.Fatalf("a parsable header: %v", err)
	}
	defer g.Close()
	told := 0
	g.jpeg.onBad = func() { told++ }
	if v, _ := g.View(g.Bounds(), 100, 100); v.Empty() || v.Cols() != 160 {
		t.Fatalf("undecodable frame's view: %dx%d", v.Cols(), v.Rows())
	}
	if m := g.Mat(); m.Empty() || m.Cols() != 320 || m.Rows() != 240 {
		t.Fatalf("undecodable frame: %dx%d", m.Cols(), m.Rows())
	}
	if told != 1 {
		t.Fatalf("the camera was told of %d bad decodes of one frame, want 1", told)
	}
	giant := append([]byte(nil), b...)
	sof := bytes.Index(giant, []byte{0xFF, 0xC0})
	giant[sof+5], giant[sof+6], giant[sof+7], giant[sof+8] = 0xEA, 0x60, 0xEA, 0x60 // 60000 x 60000
	if _, err := FrameOfJPEG(giant); !errors.Is(err, errNotJPEG) {
		t.Fatalf("a header saying 60000x60000: %v; want it refused", err)
	}
	if _, err := FrameOfJPEG([]byte("GIF89a")); !errors.Is(err, errNotJPEG) {
		t.Fatalf("a GIF: %v", err)
	}
}

// TestMJPEGFileHandsOnJPEG: an MJPEG video is read as its JPEG packets, the pixels the same
// as OpenCV's own decoding; a rotated camera decodes as before.
func TestMJPEGFileHandsOnJPEG(t *testing.T) {
	src := testenv.Path("testdata", "demo", "conveyor.avi")
	vc, err := gocv.VideoCaptureFile(src)
	if err != nil {
		t.Fatal(err)
	}
	want := gocv.NewMat()
	defer want.Close()
	for i := 0; i < 30; i++ { // a frame with a part in it
		vc.Read(&want)
	}
	vc.Close()

	cam := cameraFor(t, configs.Camera{Source: src})
	cam.Start(context.Background())
	defer cam.Close()
	var f *Frame
	for i := 0; i < 30; i++ {
		if f != nil {
			f.Close()
		}
		if f, err = cam.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	defer f.Close()
	if !f.Encoded() || f.Pos != 29 {
		t.Fatalf("frame 30: encoded %v pos %d; want an MJPEG file handed on as JPEG", f.Encoded(), f.Pos)
	}
	got := f.Mat()
	diff := gocv.NewMat()
	defer diff.Close()
	gocv.AbsDiff(got, want, &diff)
	if mean := diff.Mean(); mean.Val1+mean.Val2+mean.Val3 > 3 {
		t.Fatalf("the decoded JPEG differs from OpenCV's frame by %v on average", mean)
	}

	if r := firstFrame(t, configs.Camera{Source: src, Rotate: 180}); r.Encoded() || r.Bounds() != image.Rect(0, 0, 640, 360) {
		t.Fatalf("a rotated camera: encoded %v bounds %v; want decoded frames", r.Encoded(), r.Bounds())
	}
}

// TestGStreamerJPEGPipeline: a GStreamer pipeline whose appsink takes image/jpeg (a USB
// camera's MJPEG as v4l2src delivers it) hands on JPEG frames that the agent decodes, with the
// colour the pipeline made; a rotated camera decodes them whole; the probe reads the
// picture's size, not the row of bytes OpenCV returns for such a sample.
func TestGStreamerJPEGPipeline(t *testing.T) {
	if err := checkPipeline("videotestsrc ! jpegenc ! appsink"); err != nil || gstWhy != "" {
		testenv.Missing(t, "GStreamer's videotestsrc and jpegenc (apt-get install gstreamer1.0-plugins-base gstreamer1.0-plugins-good): %v %s", err, gstWhy)
	}
	// foreground-color is ARGB: B 200, G 120, R 60, which the round trip through YUV and
	// JPEG moves a little: the want is what GStreamer's own decoder makes of the same JPEG
	pattern := "videotestsrc pattern=solid-color foreground-color=0xff3c78c8 ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc quality=95 ! "
	src := pattern + "appsink"
	rf := firstFrame(t, configs.Camera{Source: pattern + "jpegdec ! videoconvert ! video/x-raw,format=BGR ! appsink"})
	if rf.Encoded() {
		t.Fatal("a pipeline that decodes its JPEG: frames handed on encoded")
	}
	rm := rf.Mat()
	want := rm.Mean()
	cam := cameraFor(t, configs.Camera{Source: src})
	if err := cam.Probe(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	cam.Start(context.Background())
	defer cam.Close()
	for i := 0; i < 3; i++ {
		f, err := cam.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !f.Encoded() || f.Bounds() != image.Rect(0, 0, 320, 240) {
			t.Fatalf("frame %d: encoded %v bounds %v; want a 320x240 JPEG frame", i, f.Encoded(), f.Bounds())
		}
		m := f.Mat()
		if mean := m.Mean(); m.Channels() != 3 || absf(mean.Val1-want.Val1) > 2 || absf(mean.Val2-want.Val2) > 2 || absf(mean.Val3-want.Val3) > 2 {
			t.Fatalf("frame %d: %d channels, mean BGR %.1f %.1f %.1f; want %.1f %.1f %.1f as jpegdec decodes it", i, m.Channels(), mean.Val1, mean.Val2, mean.Val3, want.Val1, want.Val2, want.Val3)
		}
		f.Close()
	}

	if r := firstFrame(t, configs.Camera{Source: src, Rotate: 90}); r.Encoded() || r.Bounds() != image.Rect(0, 0, 240, 320) {
		t.Fatalf("a rotated camera: encoded %v bounds %v; want decoded 240x320 frames", r.Encoded(), r.Bounds())
	}

	wide := cameraFor(t, configs.Camera{Source: src, ROI: []int{0, 0, 400, 100}})
	if err := wide.Probe(10 * time.Second); err == nil || !strings.Contains(err.Error(), "320x240") {
		t.Fatalf("an roi wider than the picture: probe says %v; want it outside the 320x240 frame", err)
	}
}

// firstFrame starts a camera on cfg and returns its first frame; the frame and the camera
// are closed when the test ends.
func firstFrame(t *testing.T, cfg configs.Camera) *Frame {
	t.Helper()
	cam := cameraFor(t, cfg)
	cam.Start(context.Background())
	t.Cleanup(func() { cam.Close() })
	f, err := cam.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func absf(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestJPEGStreamBadFrames: an MJPEG stream whose frame says another size than the stream's is
// dropped (a corrupt or hostile header never becomes a frame of its size), and after three
// frames libjpeg cannot decode, the camera reads the stream decoded by FFmpeg instead.
func TestJPEGStreamBadFrames(t *testing.T) {
	good := orangeJPEG(t)
	sos := bytes.Index(good, []byte{0xFF, 0xDA})
	sof := bytes.Index(good, []byte{0xFF, 0xC0})
	if sos < 0 || sof < 0 {
		t.Fatal("no SOF or SOS in OpenCV's JPEG")
	}
	noScan := append(append([]byte(nil), good[:sos]...), 0xFF, 0xD9) // header, no picture
	huge := append([]byte(nil), good...)
	huge[sof+5], huge[sof+6], huge[sof+7], huge[sof+8] = 0x04, 0xB0, 0x06, 0x40 // 1600 x 1200
	var conns atomic.Int32
	url, stop := mjpegServerOf(func(conn int32, i int) []byte {
		conns.Store(conn)
		if conn == 1 && i >= 3 && i < 6 {
			return [][]byte{huge, noScan, noScan}[i-3]
		}
		return good
	})
	defer stop()
	cam := cameraFor(t, configs.Camera{Source: url, Type: "stream"})
	cam.MinBackoff, cam.MaxBackoff = 50*time.Millisecond, 100*time.Millisecond
	cam.Start(context.Background())
	defer cam.Close()
	if encoded := untilDecoded(t, cam, image.Pt(160, 120)); encoded == 0 || conns.Load() < 2 {
		t.Fatalf("%d JPEG frames, %d connections: want the stream handed on as JPEG first, then reopened decoded", encoded, conns.Load())
	}
}

// untilDecoded reads the camera's frames, each of size, decoding each as the pipeline would,
// until three came decoded; it returns how many came as JPEG before.
func untilDecoded(t *testing.T, cam *Camera, size image.Point) (encoded int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for decoded := 0; decoded < 3; {
		f, err := cam.Next(ctx)
		if err != nil {
			t.Fatalf("after %d JPEG and %d decoded frames: %v", encoded, decoded, err)
		}
		if b := f.Bounds(); b != (image.Rectangle{Max: size}) {
			t.Fatalf("a frame of %v from a %dx%d source", b, size.X, size.Y)
		}
		if f.Encoded() {
			encoded++
		} else {
			decoded++
		}
		f.Mat()
		f.Close()
	}
	return encoded
}

// TestJPEGStreamStrayBytes: a camera whose every frame carries stray bytes before a marker
// (libjpeg repairs them, with a warning) still hands on its frames as JPEG; they decode as
// imdecode decodes them, and the log says once, not per frame, that the frames are flawed.
func TestJPEGStreamStrayBytes(t *testing.T) {
	good := orangeJPEG(t)
	sos := bytes.Index(good, []byte{0xFF, 0xDA})
	if sos < 0 {
		t.Fatal("no SOS in OpenCV's JPEG")
	}
	stray := append(append(append([]byte(nil), good[:sos]...), 0x00, 0x00), good[sos:]...)
	want, err := gocv.IMDecode(stray, jpegFlags)
	if err != nil || want.Empty() {
		t.Fatalf("imdecode of the stray bytes picture: %v", err)
	}
	defer want.Close()
	url, stop := mjpegServerOf(func(int32, int) []byte { return stray })
	defer stop()
	var logs testenv.LogBuffer
	cam, err := New(configs.Camera{Name: "stray", Source: url, Type: "stream"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cam.Start(context.Background())
	defer cam.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		f, err := cam.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Encoded() {
			t.Fatalf("frame %d was not handed on as JPEG", i)
		}
		if n := maxDiff(f.Mat(), want); n != 0 || f.jpeg.bad {
			t.Fatalf("frame %d differs from imdecode's picture by up to %v (bad %v)", i, n, f.jpeg.bad)
		}
		f.Close()
	}
	if n := logs.Count("is a flawed JPEG"); n != 1 {
		t.Fatalf("the log says %d times that a frame was flawed, want once:\n%s", n, logs.String())
	}
}

// BenchmarkJPEGDecode1080p decodes a frame of the demo video upscaled to 1920×1080 and encoded
// at quality 85 (as scripts/video-1080p.sh makes them) whole and at each reduced scale that
// View chooses. Every scale reads the whole entropy-coded stream; what the scales save is the
// inverse DCT, the upsampling and the colour conversion of the pixels they do not make. The
// 1/8 scale, which keeps only each block's DC, is about the floor any decoding of the frame
// costs. Each scale runs twice: by TurboJPEG, and by OpenCV's imdecode (/imdecode), the
// frame's path the same but for the decoder.
func BenchmarkJPEGDecode1080p(b *testing.B) {
	vc, err := gocv.VideoCaptureFile(testenv.Path("testdata", "demo", "conveyor.avi"))
	if err != nil {
		b.Fatal(err)
	}
	src := gocv.NewMat()
	defer src.Close()
	for range 20 { // a frame with parts in view
		if !vc.Read(&src) {
			b.Fatal("the demo video has fewer than 20 frames")
		}
	}
	vc.Close()
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(src, &big, image.Pt(1920, 1080), 0, 0, gocv.InterpolationLinear)
	data := encodeJPEG(b, big, gocv.IMWriteJpegQuality, 85)
	full := image.Rect(0, 0, 1920, 1080)
	turbo := decodeTurbo
	defer func() { decodeTurbo = turbo }()
	refuse := func([]byte, image.Point, int) (gocv.Mat, error) { return gocv.Mat{}, errTurboJPEG }
	for _, c := range []struct {
		name string
		w    int // the least width View must keep
	}{{"whole", 1920}, {"half", 960}, {"quarter", 480}, {"eighth", 240}} {
		// TurboJPEG, and OpenCV's imdecode (as frames were decoded before TurboJPEG)
		for _, d := range []struct {
			name   string
			decode func([]byte, image.Point, int) (gocv.Mat, error)
		}{{"", turbo}, {"/imdecode", refuse}} {
			b.Run(c.name+d.name, func(b *testing.B) {
				decodeTurbo = d.decode
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					f, err := FrameOfJPEG(data)
					if err != nil {
						b.Fatal(err)
					}
					if m, _ := f.View(full, c.w, 1); m.Cols() < c.w {
						b.Fatalf("a view %d wide, want %d", m.Cols(), c.w)
					}
					f.Close()
				}
			})
		}
	}
}

// TestTurboJPEGDecodesAsIMDecode: a JPEG frame's pixels, decoded by TurboJPEG, are those
// OpenCV's imdecode gives (at each scale, for 4:2:0 and 4:4:4 colour, grey, progressive, odd
// sizes, and real photos with EXIF orientation, which a video frame ignores): the detector,
// the classifier and the quality figures see what they saw before.
func TestTurboJPEGDecodesAsIMDecode(t *testing.T) {
	enc := func(img gocv.Mat, params ...int) []byte { return encodeJPEG(t, img, params...) }
	belt, err := gocv.IMDecode(jpegOf(t, 1001, 777), gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer belt.Close()
	gocv.GaussianBlur(belt, &belt, image.Pt(0, 0), 3, 3, gocv.BorderDefault) // gradients, not flat halves
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(belt, &grey, gocv.ColorBGRToGray)
	pictures := map[string][]byte{
		"4:2:0 odd size":      enc(belt, gocv.IMWriteJpegQuality, 85),
		"4:4:4":               enc(belt, gocv.IMWriteJpegQuality, 85, 7 /* IMWRITE_JPEG_SAMPLING_FACTOR */, 0x111111),
		"4:2:2":               enc(belt, gocv.IMWriteJpegQuality, 85, 7, 0x221111),
		"progressive":         enc(belt, gocv.IMWriteJpegQuality, 90, gocv.IMWriteJpegProgressive, 1),
		"grey":                enc(grey, gocv.IMWriteJpegQuality, 90),
		"restart intervals":   enc(belt, gocv.IMWriteJpegQuality, 90, gocv.IMWriteJpegRstInterval, 4),
		"Go's encoder, 1080p": jpegOf(t, 1920, 1080),
	}
	photos, _ := filepath.Glob(filepath.Join(testenv.RealData(t, "hemlock-cherry-onnx12", "images"), "*", "*.jpg"))
	if len(photos) == 0 {
		t.Fatal("no photos under the hemlock-cherry-onnx12 images")
	}
	for _, p := range photos[:min(4, len(photos))] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pictures[filepath.Base(p)] = b
	}
	for name, b := range pictures {
		size, err := JPEGSize(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, div := range []int{1, 2, 4, 8} {
			got, err := turboDecode(b, size, div)
			if err != nil {
				t.Fatalf("%s at 1/%d: %v", name, div, err)
			}
			want, err := gocv.IMDecode(b, reducedFlags[i])
			if err != nil {
				t.Fatal(err)
			}
			if got.Cols() != want.Cols() || got.Rows() != want.Rows() || got.Type() != want.Type() {
				t.Errorf("%s at 1/%d: %dx%d type %v, imdecode %dx%d type %v", name, div, got.Cols(), got.Rows(), got.Type(), want.Cols(), want.Rows(), want.Type())
			} else if n := maxDiff(got, want); n != 0 {
				t.Errorf("%s at 1/%d: pixels differ from imdecode's by up to %v", name, div, n)
			}
			got.Close()
			want.Close()
		}
	}
}

// TestJPEGFrameFallsBackToIMDecode: a picture TurboJPEG refuses (a CMYK JPEG, say) is decoded
// by imdecode as before, not made black.
func TestJPEGFrameFallsBackToIMDecode(t *testing.T) {
	b := jpegOf(t, 640, 360)
	refused := 0
	turbo := decodeTurbo
	decodeTurbo = func([]byte, image.Point, int) (gocv.Mat, error) { refused++; return gocv.Mat{}, errTurboJPEG }
	t.Cleanup(func() { decodeTurbo = turbo })
	f, err := FrameOfJPEG(b)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := gocv.IMDecode(b, jpegFlags)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if n := maxDiff(f.Mat(), want); refused != 1 || n != 0 || f.jpeg.bad {
		t.Fatalf("TurboJPEG asked %d times; pixels differ from imdecode's by %v; bad %v", refused, n, f.jpeg.bad)
	}
}

// encodeJPEG encodes img as a JPEG picture with OpenCV's encoder, with the IMWrite params given
// (at least one: gocv 0.32 cannot take none).
func encodeJPEG(tb testing.TB, img gocv.Mat, params ...int) []byte {
	tb.Helper()
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, params)
	if err != nil {
		tb.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// maxDiff is the largest difference between two pictures of one size and type.
func maxDiff(a, b gocv.Mat) float64 {
	d := gocv.NewMat()
	defer d.Close()
	gocv.AbsDiff(a, b, &d)
	return gocv.Norm(d, gocv.NormInf)
}

// fakeV4L2 stands for a USB camera read through OpenCV 4.6's V4L2 backend, which this
// machine cannot open (no /dev/video*). It behaves as that backend's source does: it reports
// backend 200 and the camera's pixel format; with CAP_PROP_CONVERT_RGB on (the default) a
// read decodes the MJPEG buffer to BGR (imdecode), and with it off a read returns the
// driver's buffer as one row of bytes. frame(i) is the camera's i-th JPEG (from 0).
type fakeV4L2 struct {
	fakeDevice
	frame func(i int) []byte
	reads int
}

func newFakeV4L2(pixfmt string, w, h int, frame func(int) []byte) *fakeV4L2 {
	return &fakeV4L2{fakeDevice: fakeDevice{props: map[gocv.VideoCaptureProperties]float64{
		gocv.VideoCaptureBackend: backendV4L2, gocv.VideoCaptureFOURCC: fourcc(pixfmt), gocv.VideoCaptureConvertRGB: 1,
		gocv.VideoCaptureFrameWidth: float64(w), gocv.VideoCaptureFrameHeight: float64(h)}}, frame: frame}
}

func (v *fakeV4L2) Read(m *gocv.Mat) bool {
	b := v.frame(v.reads)
	v.reads++
	m.Close()
	if v.props[gocv.VideoCaptureConvertRGB] == 0 {
		raw, err := gocv.NewMatFromBytes(1, len(b), gocv.MatTypeCV8U, b)
		*m = raw
		return err == nil
	}
	dec, err := gocv.IMDecode(b, gocv.IMReadColor)
	*m = dec
	return err == nil && !dec.Empty()
}
func (v *fakeV4L2) CodecString() string { return "" }
func (v *fakeV4L2) Close() error        { return nil }

// TestUSBCameraHandsOnMJPEG: a USB camera that delivers MJPEG is read as its JPEG buffers
// (the backend told not to convert), decoded as imdecode decodes them; one that delivers YUYV,
// or a backend that will not stop converting, is read decoded as before; and after three
// buffers libjpeg cannot decode, the camera reopens with the backend decoding.
func TestUSBCameraHandsOnMJPEG(t *testing.T) {
	good := jpegOf(t, 320, 240)
	want, err := gocv.IMDecode(good, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	for _, tc := range []struct {
		name    string
		pixfmt  string
		refuses bool
		jpeg    bool
	}{{"MJPG", "MJPG", false, true}, {"JPEG", "JPEG", false, true}, {"YUYV", "YUYV", false, false}, {"converts regardless", "MJPG", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			v := newFakeV4L2(tc.pixfmt, 320, 240, func(int) []byte { return good })
			if tc.refuses {
				v.ignores = map[gocv.VideoCaptureProperties]bool{gocv.VideoCaptureConvertRGB: true}
			}
			c := &capture{vc: v}
			c.passJPEG(Source{Kind: KindUSB, Target: "/dev/video0", Index: -1})
			if c.jpeg != tc.jpeg {
				t.Fatalf("handed on as JPEG: %v, want %v", c.jpeg, tc.jpeg)
			}
			f := &Frame{Pos: -1}
			defer f.Close()
			if err := readFrame(c, f); err != nil {
				t.Fatal(err)
			}
			if f.Encoded() != tc.jpeg || f.Bounds() != image.Rect(0, 0, 320, 240) {
				t.Fatalf("encoded %v bounds %v", f.Encoded(), f.Bounds())
			}
			if d := maxDiff(f.Mat(), want); d != 0 {
				t.Fatalf("the frame differs from imdecode's picture by up to %v", d)
			}
		})
	}

	t.Run("undecodable", func(t *testing.T) {
		sos := bytes.Index(good, []byte{0xFF, 0xDA})
		noScan := append(append([]byte(nil), good[:sos]...), 0xFF, 0xD9) // header, no picture
		cam := cameraFor(t, configs.Camera{Source: "/dev/video0", Type: "usb"})
		cam.MinBackoff, cam.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
		var opens atomic.Int32
		cam.open = func() (grabber, error) {
			n := opens.Add(1)
			return &capture{vc: newFakeV4L2("MJPG", 320, 240, func(i int) []byte {
				if n == 1 && i >= 2 {
					return noScan // the backend's imdecode cannot decode it either
				}
				return good
			})}, nil
		}
		cam.Start(context.Background())
		defer cam.Close()
		if encoded := untilDecoded(t, cam, image.Pt(320, 240)); encoded < 2 || opens.Load() != 2 {
			t.Fatalf("%d JPEG frames, %d opens: want MJPEG handed on first, then one reopen decoded by the backend", encoded, opens.Load())
		}
	})
}

// TestMotionJPEGWithoutHuffmanTables: many USB cameras send MJPEG frames without Huffman
// tables (DHT), leaving the standard ones of the JPEG specification implied, as AVI's MJPEG
// does. Such a frame decodes clean, at every scale, as the same picture with its tables does.
func TestMotionJPEGWithoutHuffmanTables(t *testing.T) {
	whole := jpegOf(t, 320, 240) // Go's encoder writes the standard tables
	bare := []byte{0xFF, 0xD8}
	for i := 2; ; {
		if i+4 > len(whole) || whole[i] != 0xFF {
			t.Fatalf("no marker at %d", i)
		}
		if whole[i+1] == 0xDA { // the scan, and the rest, as they are
			bare = append(bare, whole[i:]...)
			break
		}
		n := 2 + (int(whole[i+2])<<8 | int(whole[i+3]))
		if whole[i+1] != 0xC4 {
			bare = append(bare, whole[i:i+n]...)
		}
		i += n
	}
	if bytes.Contains(bare[:bytes.Index(bare, []byte{0xFF, 0xDA})], []byte{0xFF, 0xC4}) || len(bare) >= len(whole) {
		t.Fatalf("the DHT segments were not taken out (%d of %d bytes)", len(bare), len(whole))
	}
	view := func(b []byte, div int) (gocv.Mat, *Frame) {
		f, err := FrameOfJPEG(b)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := f.View(f.Bounds(), 320/div, 240/div)
		return m, f
	}
	for _, div := range []int{1, 2, 4, 8} {
		if r := checkDecode(t, bare, div); !r.clean || !r.same || r.bad {
			t.Fatalf("1/%d: a frame without DHT decoded %+v; want clean, as imdecode decodes it", div, r)
		}
		got, fg := view(bare, div)
		want, fw := view(whole, div)
		if d := maxDiff(got, want); d != 0 {
			t.Fatalf("1/%d: without DHT the picture differs by up to %v", div, d)
		}
		fg.Close()
		fw.Close()
	}
}

// TestSniffedJPEGDropped: a GStreamer pipeline's sample that is not a JPEG picture of the
// caps' size (a header without a size, another size, bytes that are not a JPEG) is dropped
// and counted, and the next good one is the frame; three in a row end the read with an error
// that says what to do. A line-scan camera's row of pixels, the caps' size, is pixels.
func TestSniffedJPEGDropped(t *testing.T) {
	good := jpegOf(t, 64, 48)
	junk := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xD9} // no frame header
	small := jpegOf(t, 32, 24)
	notJPEG := bytes.Repeat([]byte{7}, 300)
	frames := [][]byte{junk, good, small, notJPEG, good, junk, small, notJPEG}
	v := newFakeV4L2("MJPG", 64, 48, func(i int) []byte { return frames[i%len(frames)] })
	v.props[gocv.VideoCaptureConvertRGB] = 0 // samples as OpenCV's GStreamer backend gives image/jpeg: one row of bytes
	var dropped []error
	c := &capture{vc: v, sniff: true, size: image.Pt(64, 48), dropped: func(err error) { dropped = append(dropped, err) }}
	for i, want := range []int{1, 3} {
		f := &Frame{Pos: -1}
		if err := readFrame(c, f); err != nil {
			t.Fatal(err)
		}
		if !f.Encoded() || f.Bounds() != image.Rect(0, 0, 64, 48) || len(dropped) != want {
			t.Fatalf("read %d: encoded %v bounds %v, %d dropped; want the good frame after %d dropped", i, f.Encoded(), f.Bounds(), len(dropped), want)
		}
		f.Close()
	}
	f := &Frame{Pos: -1}
	err := readFrame(c, f)
	f.Close()
	if err == nil || !strings.Contains(err.Error(), "3 samples in a row") || !strings.Contains(err.Error(), "64x48") || !strings.Contains(err.Error(), "jpegdec") {
		t.Fatalf("three bad samples in a row: %v", err)
	}

	line := newFakeV4L2("GREY", 300, 1, func(int) []byte { return notJPEG })
	line.props[gocv.VideoCaptureConvertRGB] = 0
	lc := &capture{vc: line, sniff: true, size: image.Pt(300, 1)}
	f = &Frame{Pos: -1}
	defer f.Close()
	if err := readFrame(lc, f); err != nil || f.Encoded() || f.Bounds() != image.Rect(0, 0, 300, 1) {
		t.Fatalf("a line-scan row: %v, encoded %v bounds %v; want pixels", err, f.Encoded(), f.Bounds())
	}
}

// TestUSBBadBuffersDropped: a USB camera's buffer that is not a JPEG picture (a glitch on the
// bus) is dropped, not taken for a sign that the camera sends no MJPEG; three in a row are.
func TestUSBBadBuffersDropped(t *testing.T) {
	good := jpegOf(t, 64, 48)
	frames := [][]byte{{1, 2, 3, 4, 5}, good, {1, 2, 3}, {4, 5, 6}, {7, 8, 9}}
	v := newFakeV4L2("MJPG", 64, 48, func(i int) []byte { return frames[i%len(frames)] })
	dropped := 0
	c := &capture{vc: v, dropped: func(error) { dropped++ }}
	c.passJPEG(Source{Kind: KindUSB, Target: "/dev/video0", Index: -1})
	f := &Frame{Pos: -1}
	if err := readFrame(c, f); err != nil || !f.Encoded() || dropped != 1 {
		t.Fatalf("%v, encoded %v, %d dropped; want the good frame after one dropped", err, f.Encoded(), dropped)
	}
	f.Close()
	f = &Frame{Pos: -1}
	err := readFrame(c, f)
	f.Close()
	if !errors.Is(err, errNotJPEG) || !strings.Contains(err.Error(), "3 frames in a row") {
		t.Fatalf("three bad buffers in a row: %v; want errNotJPEG, to read the camera decoded", err)
	}
}

// TestUndecodableWithinAMinute: three JPEG frames libjpeg cannot decode within a minute make
// the camera read its source decoded; three spread over more than a minute (a glitch now and
// then, in a run of months) do not.
func TestUndecodableWithinAMinute(t *testing.T) {
	cam := cameraFor(t, configs.Camera{Source: "/dev/video0", Type: "usb"})
	cam.undecodableJPEG()
	cam.undecodableJPEG()
	for i := range cam.badAt {
		if !cam.badAt[i].IsZero() {
			cam.badAt[i] = cam.badAt[i].Add(-2 * undecodableWindow)
		}
	}
	cam.droppedJPEG(errNotJPEG)
	if cam.undecoded.Load() {
		t.Fatal("three bad frames over more than a minute switched the camera to decoding")
	}
	cam.undecodableJPEG()
	if cam.undecoded.Load() {
		t.Fatal("two bad frames within a minute (and two before it) switched the camera to decoding")
	}
	cam.undecodableJPEG()
	if !cam.undecoded.Load() {
		t.Fatal("three bad frames within a minute did not switch the camera to decoding")
	}
}
