package preprocess

import (
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// belt draws a w x h textured grey belt (a checker of two greys, 7 px squares) with a
// part of colour bgr over rectangle r (nothing when r is empty).
func belt(w, h int, r image.Rectangle, bgr [3]uint8) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := [3]uint8{90, 90, 90}
			if (x/7+y/7)%2 == 0 {
				v = [3]uint8{110, 110, 110}
			}
			if image.Pt(x, y).In(r) {
				v = bgr
			}
			for ch := 0; ch < 3; ch++ {
				m.SetUCharAt(y, x*3+ch, v[ch])
			}
		}
	}
	return m
}

// TestMotionStillAndPart: a still picture is unchanged against its reference; a part a tenth
// of the frame high, of which only 8 pixels have come in at the left edge, is change on a
// 640 x 360 frame and on a 1080p one, and so is a part of the belt's grey level in another
// hue; with no reference, or a picture of another shape,
// everything is change.
func TestMotionStillAndPart(t *testing.T) {
	for _, size := range []image.Point{{640, 360}, {1920, 1080}} {
		m := NewMotion()
		empty := belt(size.X, size.Y, image.Rectangle{}, [3]uint8{})
		if got := m.Changed(empty, 10); got != 1 {
			t.Errorf("%v: no reference: changed %.3f, want 1", size, got)
		}
		m.Keep()
		if got := m.Changed(empty, 10); got != 0 {
			t.Errorf("%v: the reference again: changed %.4f, want 0", size, got)
		}
		px := 8 * size.X / 640 // 8 pixels of a 640-wide frame
		part := belt(size.X, size.Y, image.Rect(0, size.Y/2, px, size.Y/2+size.Y/10), [3]uint8{200, 40, 20})
		// a tenth of the frame high over 64 x 36 cells: at least 3 cells of one column
		if got := m.Changed(part, 10); got < 3.0/(64*36) {
			t.Errorf("%v: a part's edge came in: changed %.4f, want at least 3 cells", size, got)
		}
		// a part of the belt's grey level in another hue: blue, whose grey (0.114 B + 0.587 G
		// + 0.299 R) is the belt's 100
		hue := belt(size.X, size.Y, image.Rect(size.X/2, size.Y/2, size.X/2+size.X/10, size.Y/2+size.Y/10), [3]uint8{255, 75, 76})
		if got := m.Changed(hue, 10); got < 20.0/(64*36) {
			t.Errorf("%v: a part of the belt's grey in another hue: changed %.4f, want its cells", size, got)
		}
		half := gocv.NewMat() // a reduced view of the empty belt
		gocv.Resize(empty, &half, image.Pt(size.X/2, size.Y/2), 0, 0, gocv.InterpolationArea)
		if got := m.Changed(half, 10); got != 0 {
			t.Errorf("%v: the reference at half size: changed %.3f, want 0", size, got)
		}
		other := belt(size.X, size.X, image.Rectangle{}, [3]uint8{})
		if got := m.Changed(other, 10); got != 1 {
			t.Errorf("%v: another shape: changed %.3f, want 1", size, got)
		}
		for _, mat := range []gocv.Mat{empty, part, hue, half, other} {
			mat.Close()
		}
		m.Close()
	}
}

// TestMotionCreepAddsUp: a part creeping in 1 pixel a frame changes too little between two
// frames to show, but its change against the reference (the last frame kept) grows until it
// does; against the previous frame it would never have.
func TestMotionCreepAddsUp(t *testing.T) {
	m := NewMotion()
	defer m.Close()
	const w, h, threshold = 640, 360, 0.002
	first := belt(w, h, image.Rectangle{}, [3]uint8{})
	m.Changed(first, 10)
	m.Keep()
	first.Close()
	caught := 0
	for x := 1; x <= 40 && caught == 0; x++ {
		img := belt(w, h, image.Rect(0, 100, x, 200), [3]uint8{200, 40, 20})
		prev := belt(w, h, image.Rect(0, 100, x-1, 200), [3]uint8{200, 40, 20})
		step := NewMotion()
		step.Changed(prev, 10)
		step.Keep()
		if s := step.Changed(img, 10); s >= threshold {
			t.Errorf("at %d px, 1 px against the previous frame changed %.4f: the creep is not slow enough to test", x, s)
		}
		step.Close()
		prev.Close()
		if m.Changed(img, 10) >= threshold {
			caught = x
		}
		img.Close()
	}
	if caught == 0 {
		t.Fatal("a part crept in 40 px and the change never showed")
	}
	t.Logf("the creep showed at %d px", caught)
}

// BenchmarkMotion360p: the same on a frame of the demo's size, 640 x 360.
func BenchmarkMotion360p(b *testing.B) { benchMotion(b, 640, 360, image.Rect(0, 150, 70, 230)) }

// BenchmarkMotion1080p: the cost of the gate's comparison on a 1080p frame, and its Go
// allocations (none in steady state).
func BenchmarkMotion1080p(b *testing.B) { benchMotion(b, 1920, 1080, image.Rect(0, 500, 200, 600)) }

// benchMotion compares a w x h belt with a part at r against itself, after a first compare.
func benchMotion(b *testing.B, w, h int, r image.Rectangle) {
	img := belt(w, h, r, [3]uint8{200, 40, 20})
	defer img.Close()
	m := NewMotion()
	defer m.Close()
	m.Changed(img, 10)
	m.Keep()
	b.ReportAllocs()
	for b.Loop() {
		m.Changed(img, 10)
	}
}
