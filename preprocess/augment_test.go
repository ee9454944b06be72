package preprocess

import (
	"image"
	"math"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// pattern returns a w x h BGR image whose every pixel differs from its neighbours, with
// values in lo..lo+span.
func pattern(w, h int, lo, span int) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for ch := 0; ch < 3; ch++ {
				m.SetUCharAt(y, x*3+ch, uint8(lo+(x*7+y*13+ch*29+x*y)%span))
			}
		}
	}
	return m
}

func px(m gocv.Mat, x, y int) [3]uint8 {
	return [3]uint8{m.GetUCharAt(y, x*3), m.GetUCharAt(y, x*3+1), m.GetUCharAt(y, x*3+2)}
}

func augmented(t *testing.T, src gocv.Mat, a Augmentation) gocv.Mat {
	t.Helper()
	none := gocv.NewMat()
	defer none.Close()
	out, err := Augment(src, none, none, a)
	if err != nil {
		t.Fatal(err)
	}
	if out.Cols() != src.Cols() || out.Rows() != src.Rows() || out.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("out %dx%d type %v, want the source's size, BGR", out.Cols(), out.Rows(), out.Type())
	}
	return out
}

func meanOf(m gocv.Mat) float64 {
	var sum float64
	for y := 0; y < m.Rows(); y++ {
		for x := 0; x < m.Cols()*3; x++ {
			sum += float64(m.GetUCharAt(y, x))
		}
	}
	return sum / float64(m.Rows()*m.Cols()*3)
}

func TestAugmentFlips(t *testing.T) {
	src := pattern(17, 11, 0, 256)
	defer src.Close()
	w, h := src.Cols(), src.Rows()
	for _, c := range []struct {
		a    Augmentation
		from func(x, y int) (int, int)
	}{
		{Augmentation{FlipH: true}, func(x, y int) (int, int) { return w - 1 - x, y }},
		{Augmentation{FlipV: true}, func(x, y int) (int, int) { return x, h - 1 - y }},
		{Augmentation{FlipH: true, FlipV: true}, func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }},
		// a half turn about the centre is both flips
		{Augmentation{Degrees: 180}, func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }},
		// a shift of a quarter of the width moves every pixel right by 4.25 -> checked where whole
		{Augmentation{ShiftX: 4.0 / 17, ShiftY: 2.0 / 11}, func(x, y int) (int, int) { return x - 4, y - 2 }},
	} {
		out := augmented(t, src, c.a)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				sx, sy := c.from(x, y)
				if sx < 0 || sy < 0 {
					continue // the corner the shift left, filled by reflection
				}
				if got, want := px(out, x, y), px(src, sx, sy); got != want {
					t.Fatalf("%+v: pixel (%d,%d) = %v, want the source's (%d,%d) %v", c.a, x, y, got, sx, sy, want)
				}
			}
		}
		out.Close()
	}
}

func TestAugmentScaleKeepsTheCentre(t *testing.T) {
	src := pattern(21, 21, 0, 256)
	defer src.Close()
	out := augmented(t, src, Augmentation{Scale: 2})
	defer out.Close()
	if got, want := px(out, 10, 10), px(src, 10, 10); got != want {
		t.Fatalf("centre %v, want %v", got, want)
	}
	// zoomed in twice: (12,10) shows the source's (11,10)
	if got, want := px(out, 12, 10), px(src, 11, 10); got != want {
		t.Fatalf("(12,10) %v, want the source's (11,10) %v", got, want)
	}
}

func TestAugmentGreyAndSaturation(t *testing.T) {
	src := pattern(16, 12, 0, 256)
	defer src.Close()
	grey := augmented(t, src, Augmentation{Grey: true})
	defer grey.Close()
	for y := 0; y < 12; y++ {
		for x := 0; x < 16; x++ {
			if p := px(grey, x, y); p[0] != p[1] || p[1] != p[2] {
				t.Fatalf("greyscale pixel (%d,%d) = %v, want B = G = R", x, y, p)
			}
		}
	}
	pale := augmented(t, src, Augmentation{Saturation: 0.5})
	defer pale.Close()
	// half way between each channel and the pixel's grey level
	for y := 0; y < 12; y++ {
		for x := 0; x < 16; x++ {
			s, g, p := px(src, x, y), px(grey, x, y), px(pale, x, y)
			for ch := 0; ch < 3; ch++ {
				if want := (float64(s[ch]) + float64(g[ch])) / 2; math.Abs(float64(p[ch])-want) > 1 {
					t.Fatalf("saturation 0.5 at (%d,%d): %v, want half way between %v and grey %v", x, y, p, s, g)
				}
			}
		}
	}
}

func TestAugmentBrightnessAndContrast(t *testing.T) {
	src := pattern(32, 24, 60, 130) // 60..189: nothing clips
	defer src.Close()
	for _, b := range []float64{0.1, -0.2} {
		out := augmented(t, src, Augmentation{Brightness: b})
		if d := meanOf(out) - meanOf(src); math.Abs(d-b*255) > 0.5 {
			t.Errorf("brightness %v: the mean moved by %.2f, want %.2f", b, d, b*255)
		}
		out.Close()
	}
	out := augmented(t, src, Augmentation{Contrast: 1.5})
	defer out.Close()
	for y := 0; y < 24; y++ {
		for x := 0; x < 32; x++ {
			s, p := px(src, x, y), px(out, x, y)
			for ch := 0; ch < 3; ch++ {
				if want := (float64(s[ch])-128)*1.5 + 128; math.Abs(float64(p[ch])-min(255, max(0, want))) > 0.5 {
					t.Fatalf("contrast 1.5 at (%d,%d): %v from %v", x, y, p, s)
				}
			}
		}
	}
}

func TestAugmentNoiseIsSeeded(t *testing.T) {
	src := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 64, 64, gocv.MatTypeCV8UC3)
	defer src.Close()
	a := Augmentation{Noise: 10, NoiseSeed: 7}
	one, two := augmented(t, src, a), augmented(t, src, a)
	defer one.Close()
	defer two.Close()
	a.NoiseSeed = 8
	other := augmented(t, src, a)
	defer other.Close()
	same, differ := true, false
	var sq float64
	for y := 0; y < 64; y++ {
		for x := 0; x < 64*3; x++ {
			v := one.GetUCharAt(y, x)
			same = same && v == two.GetUCharAt(y, x)
			differ = differ || v != other.GetUCharAt(y, x)
			sq += (float64(v) - 128) * (float64(v) - 128)
		}
	}
	if !same || !differ {
		t.Fatalf("the same seed gave the same noise: %v; another seed gave other noise: %v", same, differ)
	}
	if sd := math.Sqrt(sq / (64 * 64 * 3)); math.Abs(sd-10) > 1 {
		t.Fatalf("noise of standard deviation %.2f, want 10", sd)
	}
}

func TestAugmentBlurAndCutout(t *testing.T) {
	src := halves(20, 10, [3]uint8{0, 0, 0}, [3]uint8{200, 200, 200})
	defer src.Close()
	out := augmented(t, src, Augmentation{Blur: 5})
	defer out.Close()
	if p := px(out, 10, 5); p[0] == 0 || p[0] == 200 {
		t.Fatalf("blur left the edge sharp: %v", p)
	}
	if p := px(out, 0, 5); p[0] != 0 {
		t.Fatalf("blur changed a flat area: %v", p)
	}
	pat := pattern(20, 10, 0, 256)
	defer pat.Close()
	a := Augmentation{Cutout: [4]float64{0.25, 0.2, 0.5, 0.5}, CutoutFill: 77}
	cut := augmented(t, pat, a)
	defer cut.Close()
	r := CutoutRect(a, 20, 10)
	if r != image.Rect(5, 2, 15, 7) {
		t.Fatalf("cut-out block %v", r)
	}
	for y := 0; y < 10; y++ {
		for x := 0; x < 20; x++ {
			got := px(cut, x, y)
			if image.Pt(x, y).In(r) {
				if got != [3]uint8{77, 77, 77} {
					t.Fatalf("(%d,%d) in the cut-out is %v, want the fill 77", x, y, got)
				}
			} else if got != px(pat, x, y) {
				t.Fatalf("(%d,%d) outside the cut-out changed", x, y)
			}
		}
	}
}

func TestAugmentBackgroundSwap(t *testing.T) {
	src := pattern(20, 10, 0, 256)
	defer src.Close()
	bg := pattern(20, 10, 100, 50)
	defer bg.Close()
	mask := gocv.NewMatWithSize(10, 20, gocv.MatTypeCV8UC1)
	defer mask.Close()
	part := image.Rect(4, 2, 12, 8)
	for y := 0; y < 10; y++ {
		for x := 0; x < 20; x++ {
			if image.Pt(x, y).In(part) {
				mask.SetUCharAt(y, x, 255)
			}
		}
	}
	out, err := Augment(src, mask, bg, Augmentation{Background: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for y := 0; y < 10; y++ {
		for x := 0; x < 20; x++ {
			want := px(bg, x, y)
			if image.Pt(x, y).In(part) {
				want = px(src, x, y)
			}
			if got := px(out, x, y); got != want {
				t.Fatalf("(%d,%d) = %v, want %v (inside the mask the part, outside the background)", x, y, got, want)
			}
		}
	}
	small := gocv.NewMatWithSize(5, 10, gocv.MatTypeCV8UC1)
	defer small.Close()
	if _, err := Augment(src, small, bg, Augmentation{Background: true}); err == nil || !strings.Contains(err.Error(), "the mask is 10x5 but the image is 20x10") {
		t.Fatalf("a mask of another size: %v", err)
	}
}
