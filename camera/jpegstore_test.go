package camera

import (
	"bytes"
	"os"
	"testing"

	"gocv.io/x/gocv"
)

// storedFrame makes a JPEG frame of b and moves its JPEG into s, failing the test if it did
// not move.
func storedFrame(t *testing.T, s *JPEGStore, b []byte) *Frame {
	t.Helper()
	f, err := FrameOfJPEG(b)
	if err != nil {
		t.Fatal(err)
	}
	f.StoreJPEG(s)
	if f.jpeg.held == nil {
		f.Close()
		t.Fatal("the JPEG did not move into the store")
	}
	return f
}

// jpegBytes is the JPEG a frame holds now.
func jpegBytes(t *testing.T, f *Frame) []byte {
	t.Helper()
	b, err := f.jpeg.data.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJPEGStoreKeepsFramesWhole(t *testing.T) {
	b := jpegOf(t, 320, 240)
	want, err := FrameOfJPEG(b)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	s := new(JPEGStore)
	defer s.Close()
	f := storedFrame(t, s, b)
	defer f.Close()

	if !bytes.Equal(jpegBytes(t, f), b) {
		t.Fatal("the stored JPEG differs from the frame's")
	}
	if got := f.Bytes(); got != int64(len(b)) {
		t.Errorf("Bytes = %d, want the JPEG's %d", got, len(b))
	}
	if d := maxDiff(f.Mat(), want.Mat()); d != 0 {
		t.Errorf("the stored frame decodes %v levels away from the same frame unstored", d)
	}
	view, _ := f.View(f.Bounds(), 80, 60)
	wview, _ := want.View(want.Bounds(), 80, 60)
	if d := maxDiff(view, wview); d != 0 {
		t.Errorf("its reduced view differs by %v levels", d)
	}
	c := f.Clone() // a copy of its own, valid after the stored frame goes
	f.StoreJPEG(s) // a second move does nothing
	f.Close()
	defer c.Close()
	if d := maxDiff(c.Mat(), want.Mat()); d != 0 {
		t.Errorf("a clone of the stored frame decodes %v levels away", d)
	}
}

// noiseJPEG encodes a w×h picture of noise, which JPEG cannot make small.
func noiseJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer img.Close()
	gocv.RandU(&img, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	return encodeJPEG(t, img, gocv.IMWriteJpegQuality, 90)
}

// TestJPEGStoreGivesMemoryBack keeps frames as a ring does (the newest in, the oldest out) and
// checks that the store maps no more than the frames hold, a third more and two blocks, and
// nothing once they and the store are gone.
func TestJPEGStoreGivesMemoryBack(t *testing.T) {
	jpegs := [][]byte{noiseJPEG(t, 480, 270), noiseJPEG(t, 320, 240), jpegOf(t, 640, 360)}
	s := new(JPEGStore)
	var ring []*Frame
	var held, stored int
	for i := range 400 {
		b := jpegs[i%len(jpegs)]
		ring = append(ring, storedFrame(t, s, b))
		held += len(b)
		stored += len(b)
		if len(ring) > 40 {
			held -= int(ring[0].Bytes())
			ring[0].Close()
			ring = ring[1:]
		}
		if m := s.Mapped(); m > held+held/3+2*jpegBlockBytes {
			t.Fatalf("frame %d: the store maps %d bytes for %d held: blocks the ring let go stay mapped", i, m, held)
		}
	}
	if stored < 10*jpegBlockBytes {
		t.Fatalf("the frames filled only %d bytes, not the many blocks this test needs", stored)
	}
	for i, f := range ring {
		if !bytes.Equal(jpegBytes(t, f), jpegs[(400-len(ring)+i)%len(jpegs)]) {
			t.Fatalf("kept frame %d of %d holds other bytes: a block was filled over", i, len(ring))
		}
		f.Close()
	}
	if m := s.Mapped(); m > jpegBlockBytes {
		t.Errorf("with no frame held the store maps %d bytes, more than the block being filled", m)
	}
	s.Close()
	if m := s.Mapped(); m != 0 {
		t.Errorf("closed, with no frame held, the store still maps %d bytes", m)
	}
}

func TestJPEGStoreLargeAndClosed(t *testing.T) {
	s := new(JPEGStore)
	small := storedFrame(t, s, jpegOf(t, 320, 240))
	big := noiseJPEG(t, 3840, 2160) // larger than a block
	if len(big) <= jpegBlockBytes {
		t.Fatalf("the large JPEG is %d bytes, not over a block", len(big))
	}
	large := storedFrame(t, s, big)
	if !bytes.Equal(jpegBytes(t, large), big) {
		t.Fatal("the large JPEG differs once stored")
	}
	if m := s.Mapped(); m < len(big)+jpegBlockBytes {
		t.Fatalf("the store maps %d bytes: the large JPEG did not get a block of its own", m)
	}
	large.Close()
	medium := noiseJPEG(t, 1024, 768) // over a quarter of a block: a mapping of its own, not a block
	if len(medium) <= jpegBlockBytes/4 || len(medium) >= jpegBlockBytes {
		t.Fatalf("the medium JPEG is %d bytes, not between a quarter of a block and a block", len(medium))
	}
	mid := storedFrame(t, s, medium)
	if m, want := s.Mapped(), jpegBlockBytes+(len(medium)+os.Getpagesize()-1)&^(os.Getpagesize()-1); m != want {
		t.Errorf("with a %d-byte JPEG the store maps %d bytes, want %d: the block and the JPEG's pages", len(medium), m, want)
	}
	mid.Close()
	if m := s.Mapped(); m != jpegBlockBytes {
		t.Errorf("the large and medium JPEGs closed, the store maps %d bytes, want the one block %d", m, jpegBlockBytes)
	}

	s.Close()
	if m := small.Mat(); small.Closed() || m.Empty() {
		t.Fatal("a frame held by the store went with its Close")
	}
	later, err := FrameOfJPEG(jpegOf(t, 320, 240))
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	later.StoreJPEG(s)
	if later.jpeg.held != nil {
		t.Error("a closed store took a JPEG")
	}
	if m := later.Mat(); m.Empty() {
		t.Error("a frame a closed store refused lost its pixels")
	}
	small.Close()
	small.Close() // twice is safe
	if m := s.Mapped(); m != 0 {
		t.Errorf("the last frame closed after the store, it still maps %d bytes", m)
	}
}
