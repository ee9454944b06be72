package preprocess

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"

	"gocv.io/x/gocv"
)

// TestAnnotateLeavesTheFrame: the box is drawn on a copy (the frame the steps share keeps
// its pixels), its lines lie on the box's own outer pixels, and a box outside the frame is an
// error rather than a crash.
func TestAnnotateLeavesTheFrame(t *testing.T) {
	m := halves(200, 100, [3]uint8{90, 90, 90}, [3]uint8{90, 90, 90})
	defer m.Close()
	box := image.Rect(50, 30, 150, 80)
	out, err := EncodeAnnotatedJPEG(m, box, "steel 0.93", 95, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.GetUCharAt(30, 50*3+1); v != 90 {
		t.Fatalf("the frame itself was drawn on: green %d at the box's corner", v)
	}
	img, err := jpeg.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []image.Point{{50, 55}, {149, 55}, {100, 79}} { // left, right, bottom: the box's last pixels
		if r, g, b, _ := img.At(p.X, p.Y).RGBA(); g>>8 < 200 || r>>8 > 60 || b>>8 > 60 {
			t.Errorf("pixel %v on the box's edge is %d,%d,%d: want the box's green", p, r>>8, g>>8, b>>8)
		}
	}
	if _, g, _, _ := img.At(100, 55).RGBA(); g>>8 > 120 {
		t.Errorf("the box's inside is drawn over: green %d", g>>8)
	}
	if _, err := EncodeAnnotatedJPEG(m, image.Rect(300, 300, 400, 400), "x", 90, 0); err == nil {
		t.Fatal("a box outside the frame was drawn")
	}
}

// green reports whether the pixel at p of img is the boxes' green (within JPEG's error).
func green(img image.Image, p image.Point) bool {
	r, g, b, _ := img.At(p.X, p.Y).RGBA()
	return g>>8 > 200 && r>>8 < 80 && b>>8 < 80
}

// greenIn counts the green pixels of img in r.
func greenIn(img image.Image, r image.Rectangle) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if green(img, image.Pt(x, y)) {
				n++
			}
		}
	}
	return n
}

func decode(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	return img
}

// TestMarkedJPEGDrawsEveryMark: each mark's box is drawn on its own edge pixels, with its
// label on a band above it; a mark partly outside the frame is clipped, one wholly outside
// skipped; nothing else is green, and the frame itself is left as it was.
func TestMarkedJPEGDrawsEveryMark(t *testing.T) {
	m := halves(320, 240, [3]uint8{90, 90, 90}, [3]uint8{90, 90, 90})
	defer m.Close()
	marks := []Mark{
		{Box: image.Rect(20, 60, 100, 120), Label: "brass 93% #12"},
		{Box: image.Rect(200, 150, 300, 230)},                         // no label
		{Box: image.Rect(400, 400, 500, 500), Label: "outside"},       // wholly outside: skipped
		{Box: image.Rect(280, -20, 360, 40), Label: "clipped 50% #3"}, // partly outside
	}
	out, err := EncodeMarkedJPEG(m, marks, 0, 95, 0)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, out)
	if img.Bounds() != image.Rect(0, 0, 320, 240) {
		t.Fatalf("size %v, want the frame's 320x240", img.Bounds())
	}
	for _, p := range []image.Point{
		{20, 90}, {99, 90}, {60, 119}, // the first box: left, right, bottom
		{200, 190}, {299, 190}, {250, 150}, {250, 229}, // the second
		{280, 30}, {319, 30}, {320 - 10, 39}, // the clipped one: left, the frame's edge, bottom
	} {
		if !green(img, p) {
			r, g, b, _ := img.At(p.X, p.Y).RGBA()
			t.Errorf("pixel %v on a box's edge is %d,%d,%d: want the box's green", p, r>>8, g>>8, b>>8)
		}
	}
	if n := greenIn(img, image.Rect(20, 60-14, 60, 60-4)); n < 50 {
		t.Errorf("%d green pixels above the first box: want its label's band", n)
	}
	for _, r := range []image.Rectangle{
		image.Rect(30, 70, 90, 110),    // inside the first box
		image.Rect(210, 160, 290, 220), // inside the second
		image.Rect(120, 130, 180, 230), // between them, away from every label
		image.Rect(150, 200, 190, 240),
	} {
		if n := greenIn(img, r); n > 0 {
			t.Errorf("%d green pixels in %v, where nothing was drawn", n, r)
		}
	}
	if v := m.GetUCharAt(60, 20*3+1); v != 90 {
		t.Fatalf("the frame itself was drawn on: green %d at the first box's corner", v)
	}
	// no marks, or none in the frame: the frame alone, as EncodeJPEG makes it
	plain, err := EncodeJPEG(m, image.Rectangle{}, 95, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ms := range [][]Mark{nil, {{Box: image.Rect(-50, -50, -1, -1), Label: "gone"}}} {
		out, err := EncodeMarkedJPEG(m, ms, 0, 95, 0)
		if err != nil || !bytes.Equal(out, plain) {
			t.Errorf("marks %v: %d bytes, %v; want the frame alone (%d bytes)", ms, len(out), err, len(plain))
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := EncodeMarkedJPEG(empty, marks, 0, 90, 0); err == nil {
		t.Error("an empty frame was encoded")
	}
}

// TestMarkedJPEGScales: maxWidth scales the frame down (never up) and the boxes with it, on
// the scaled pixels.
func TestMarkedJPEGScales(t *testing.T) {
	m := halves(1920, 1080, [3]uint8{90, 90, 90}, [3]uint8{60, 60, 60})
	defer m.Close()
	marks := []Mark{{Box: image.Rect(200, 300, 800, 900), Label: "steel 88% #4"}}
	for _, c := range []struct {
		maxWidth, w, h int
	}{{960, 960, 540}, {0, 1920, 1080}, {1920, 1920, 1080}, {4000, 1920, 1080}, {1000, 1000, 562}} {
		out, err := EncodeMarkedJPEG(m, marks, c.maxWidth, 90, 0)
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, out)
		if img.Bounds().Dx() != c.w || img.Bounds().Dy() != c.h {
			t.Errorf("maxWidth %d: %v, want %dx%d", c.maxWidth, img.Bounds(), c.w, c.h)
			continue
		}
		s := float64(c.w) / 1920
		left, right, mid := int(200*s), int(800*s)-1, int(600*s)
		for _, p := range []image.Point{{left + 1, mid}, {right - 1, mid}} {
			if !green(img, p) {
				t.Errorf("maxWidth %d: pixel %v on the scaled box's edge is not green", c.maxWidth, p)
			}
		}
		if n := greenIn(img, image.Rect(int(300*s), int(400*s), int(700*s), int(800*s))); n > 0 {
			t.Errorf("maxWidth %d: %d green pixels inside the box", c.maxWidth, n)
		}
	}
}

// TestMarkedJPEGFitsMaxBytes: a frame whose JPEG is too large is scaled down further until it
// fits, marks and all.
func TestMarkedJPEGFitsMaxBytes(t *testing.T) {
	m := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer m.Close()
	gocv.RandU(&m, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0)) // noise: a large JPEG
	marks := []Mark{{Box: image.Rect(100, 100, 600, 600), Label: "a"}}
	whole, err := EncodeMarkedJPEG(m, marks, 960, 90, 0)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 60 << 10
	if len(whole) <= limit {
		t.Fatalf("the noise frame's JPEG is only %d bytes: the test needs one above %d", len(whole), limit)
	}
	out, err := EncodeMarkedJPEG(m, marks, 960, 90, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > limit {
		t.Fatalf("%d bytes, over maxBytes %d", len(out), limit)
	}
	if w := decode(t, out).Bounds().Dx(); w >= 960 {
		t.Fatalf("%d pixels wide: not scaled down to fit", w)
	}
	if _, err := EncodeMarkedJPEG(m, marks, 0, 90, 100); err == nil {
		t.Fatal("a JPEG was made within 100 bytes")
	}
}

// TestMarkedJPEGGrey: on a one-channel frame the boxes are still green.
func TestMarkedJPEGGrey(t *testing.T) {
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 0, 0, 0), 200, 400, gocv.MatTypeCV8UC1)
	defer m.Close()
	for _, maxWidth := range []int{0, 200} {
		out, err := EncodeMarkedJPEG(m, []Mark{{Box: image.Rect(100, 50, 300, 150), Label: "x"}}, maxWidth, 95, 0)
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, out)
		s := float64(img.Bounds().Dx()) / 400
		if p := image.Pt(int(100*s)+1, int(100*s)); !green(img, p) {
			t.Errorf("maxWidth %d: pixel %v on the box's edge is not green", maxWidth, p)
		}
	}
}

// BenchmarkMarkedJPEG: a 1080p frame with five marks, as the live view (scaled to 960) and
// as captured.
func BenchmarkMarkedJPEG(b *testing.B) {
	m := halves(1920, 1080, [3]uint8{90, 90, 90}, [3]uint8{60, 60, 60})
	defer m.Close()
	var marks []Mark
	for i := range 5 {
		marks = append(marks, Mark{Box: image.Rect(100+i*350, 300, 400+i*350, 700), Label: "brass 93% #12"})
	}
	for _, w := range []int{960, 800, 0} {
		b.Run(map[int]string{960: "width960", 800: "width800", 0: "full"}[w], func(b *testing.B) {
			for b.Loop() {
				if _, err := EncodeMarkedJPEG(m, marks, w, 80, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
