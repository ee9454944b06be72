package preprocess

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/x448/float16"
	"gocv.io/x/gocv"
)

// halves returns a w x h BGR image: left half bgrL, right half bgrR.
func halves(w, h int, bgrL, bgrR [3]uint8) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := bgrL
			if x >= w/2 {
				c = bgrR
			}
			for ch := 0; ch < 3; ch++ {
				m.SetUCharAt(y, x*3+ch, c[ch])
			}
		}
	}
	return m
}

func TestFillLayoutOrderAndRange(t *testing.T) {
	img := halves(40, 20, [3]uint8{10, 20, 30}, [3]uint8{200, 100, 50})
	defer img.Close()
	cases := []struct {
		name          string
		spec          Spec
		left, right   [3]float32 // planes 0,1,2 at a left and a right pixel
		leftX, rightX int
	}{
		{"bgr raw", Spec{Width: 4, Height: 2, Scale: 1}, [3]float32{10, 20, 30}, [3]float32{200, 100, 50}, 0, 3},
		{"rgb raw", Spec{Width: 4, Height: 2, SwapRB: true, Scale: 1}, [3]float32{30, 20, 10}, [3]float32{50, 100, 200}, 0, 3},
		{"bgr 0-1", Spec{Width: 4, Height: 2, Scale: 1.0 / 255}, [3]float32{10.0 / 255, 20.0 / 255, 30.0 / 255}, [3]float32{200.0 / 255, 100.0 / 255, 50.0 / 255}, 0, 3},
		{"bgr -1..1", Spec{Width: 4, Height: 2, Scale: 2.0 / 255, Offset: -1}, [3]float32{10*2.0/255 - 1, 20*2.0/255 - 1, 30*2.0/255 - 1}, [3]float32{200*2.0/255 - 1, 100*2.0/255 - 1, 50*2.0/255 - 1}, 0, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tz, err := NewTensorizer(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			defer tz.Close()
			n := c.spec.Width * c.spec.Height
			dst := make([]float32, 3*n)
			if err := tz.Fill(img, image.Rectangle{}, dst, nil); err != nil {
				t.Fatal(err)
			}
			for ch := 0; ch < 3; ch++ {
				for _, px := range []struct {
					x    int
					want float32
				}{{c.leftX, c.left[ch]}, {c.rightX, c.right[ch]}} {
					for y := 0; y < c.spec.Height; y++ {
						got := dst[ch*n+y*c.spec.Width+px.x]
						if math.Abs(float64(got-px.want)) > 1e-5 {
							t.Errorf("plane %d pixel (%d,%d) = %v, want %v", ch, px.x, y, got, px.want)
						}
					}
				}
			}
		})
	}
}

func TestFillFloat16AndRegion(t *testing.T) {
	img := halves(40, 20, [3]uint8{10, 20, 30}, [3]uint8{200, 100, 50})
	defer img.Close()
	tz, _ := NewTensorizer(Spec{Width: 2, Height: 2, Scale: 1})
	defer tz.Close()
	dst := make([]uint16, 12)
	// the right half only: every value is the right colour
	if err := tz.Fill(img, image.Rect(20, 0, 40, 20), nil, dst); err != nil {
		t.Fatal(err)
	}
	want := []float32{200, 100, 50}
	for i, v := range dst {
		if got := float16.Frombits(v).Float32(); got != want[i/4] {
			t.Fatalf("value %d = %v, want %v", i, got, want[i/4])
		}
	}
	if err := tz.Fill(img, image.Rect(100, 100, 120, 120), nil, dst); err == nil {
		t.Fatal("a region outside the frame was accepted")
	}
	if err := tz.Fill(img, image.Rectangle{}, nil, make([]uint16, 3)); err == nil {
		t.Fatal("a short destination was accepted")
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if err := tz.Fill(empty, image.Rectangle{}, nil, dst); err == nil {
		t.Fatal("an empty frame was accepted")
	}
}

func TestCenterCropKeepsAspect(t *testing.T) {
	cases := []struct {
		r    image.Rectangle
		w, h int
		want image.Rectangle
	}{
		{image.Rect(0, 0, 640, 360), 224, 224, image.Rect(140, 0, 500, 360)},
		{image.Rect(0, 0, 360, 640), 224, 224, image.Rect(0, 140, 360, 500)},
		{image.Rect(10, 10, 110, 60), 2, 1, image.Rect(10, 10, 110, 60)},
	}
	for _, c := range cases {
		if got := centerCrop(c.r, c.w, c.h); got != c.want {
			t.Errorf("centerCrop(%v, %dx%d) = %v, want %v", c.r, c.w, c.h, got, c.want)
		}
	}
}

func TestCropRect(t *testing.T) {
	full := image.Rect(0, 0, 640, 360)
	cases := []struct {
		name                     string
		left, top, width, height float32
		pad                      float32
		want                     image.Rectangle
	}{
		{"no padding", 0.25, 0.5, 0.25, 0.25, 0, image.Rect(160, 180, 320, 270)},
		{"padding grows each side", 0.25, 0.5, 0.25, 0.25, 0.1, image.Rect(144, 171, 336, 279)},
		{"clamped at the edges", -0.05, 0.9, 0.2, 0.2, 0.1, image.Rect(0, 317, 109, 360)},
		{"outside", 1.2, 1.2, 0.1, 0.1, 0, image.Rectangle{}},
		{"NaN", float32(math.NaN()), 0, 0.1, 0.1, 0, image.Rectangle{}},
	}
	for _, c := range cases {
		got := CropRect(full, 640, 360, c.left, c.top, c.width, c.height, c.pad)
		if got != c.want && !(got.Empty() && c.want.Empty()) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestQuality(t *testing.T) {
	m := NewMeter()
	defer m.Close()
	sharp := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	defer sharp.Close()
	for y := 0; y < 240; y++ { // hard black and white stripes, 8 px each
		for x := 0; x < 320; x++ {
			v := uint8(0)
			if x%16 < 8 {
				v = 255
			}
			for ch := 0; ch < 3; ch++ {
				sharp.SetUCharAt(y, 3*x+ch, v)
			}
		}
	}
	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.GaussianBlur(sharp, &blurred, image.Pt(15, 15), 0, 0, gocv.BorderDefault)
	qs, qb := m.Measure(sharp, image.Rectangle{}), m.Measure(blurred, image.Rectangle{})
	if qs.Sharpness <= 4*qb.Sharpness {
		t.Errorf("sharp %.1f should be far above blurred %.1f", qs.Sharpness, qb.Sharpness)
	}
	if math.Abs(qs.Brightness-127.5) > 2 || math.Abs(qs.Overexposed-0.5) > 0.02 || math.Abs(qs.Underexposed-0.5) > 0.02 {
		t.Errorf("stripes: %+v; want brightness 127.5 and half over, half under", qs)
	}
	grey := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(100, 100, 100, 0), 100, 100, gocv.MatTypeCV8UC3)
	defer grey.Close()
	if q := m.Measure(grey, image.Rectangle{}); q.Sharpness != 0 || q.Brightness != 100 || q.Overexposed != 0 {
		t.Errorf("flat grey: %+v", q)
	}
}

func BenchmarkFill1080pTo416(b *testing.B) {
	img := halves(1920, 1080, [3]uint8{10, 20, 30}, [3]uint8{200, 100, 50})
	defer img.Close()
	tz, _ := NewTensorizer(Spec{Width: 416, Height: 416, Scale: 1})
	defer tz.Close()
	dst := make([]float32, 3*416*416)
	b.ReportAllocs()
	for b.Loop() {
		if err := tz.Fill(img, image.Rectangle{}, dst, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestThumbnail: a 400x100 image shrinks to 160x40 and keeps its colours (left blue, right
// red); a 40x20 one keeps its size; an empty Mat is an error.
func TestThumbnail(t *testing.T) {
	img := halves(400, 100, [3]uint8{200, 0, 0}, [3]uint8{0, 0, 200})
	defer img.Close()
	jpg, err := Thumbnail(img, 160, 80)
	if err != nil {
		t.Fatal(err)
	}
	back, err := gocv.IMDecode(jpg, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.Cols() != 160 || back.Rows() != 40 {
		t.Fatalf("thumbnail %dx%d, want 160x40", back.Cols(), back.Rows())
	}
	if b, r := back.GetVecbAt(20, 10), back.GetVecbAt(20, 150); b[0] < 150 || b[2] > 60 || r[2] < 150 || r[0] > 60 {
		t.Errorf("colours left %v right %v", b, r)
	}
	portrait := halves(100, 400, [3]uint8{200, 0, 0}, [3]uint8{0, 0, 200})
	defer portrait.Close()
	if jpg, err = Thumbnail(portrait, 160, 80); err != nil {
		t.Fatal(err)
	}
	upright, _ := gocv.IMDecode(jpg, gocv.IMReadColor)
	defer upright.Close()
	if upright.Cols() != 40 || upright.Rows() != 160 {
		t.Errorf("a 100x400 image became %dx%d, want 40x160 (the longer side bounded)", upright.Cols(), upright.Rows())
	}
	tall := halves(40, 20, [3]uint8{1, 2, 3}, [3]uint8{4, 5, 6})
	defer tall.Close()
	jpg, err = Thumbnail(tall, 160, 80)
	if err != nil {
		t.Fatal(err)
	}
	small, _ := gocv.IMDecode(jpg, gocv.IMReadColor)
	defer small.Close()
	if small.Cols() != 40 || small.Rows() != 20 {
		t.Errorf("small image became %dx%d", small.Cols(), small.Rows())
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := Thumbnail(empty, 160, 80); err == nil {
		t.Error("empty Mat: no error")
	}
}

// areaThenGrey is how the meter shrank a picture before shrink: one area average of the
// colour picture to w×h, then grey.
func areaThenGrey(img gocv.Mat, w, h int, small, grey *gocv.Mat) {
	gocv.Resize(img, small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	gocv.CvtColor(*small, grey, gocv.ColorBGRToGray)
}

// demo1080p is a still of the demo belt scaled to 1920×1080.
func demo1080p(tb testing.TB) gocv.Mat {
	tb.Helper()
	still := gocv.IMRead(filepath.Join("..", "testdata", "demo", "stills", "frame_080.jpg"), gocv.IMReadColor)
	if still.Empty() {
		tb.Fatal("testdata/demo/stills/frame_080.jpg cannot be read")
	}
	defer still.Close()
	big := gocv.NewMat()
	gocv.Resize(still, &big, image.Pt(1920, 1080), 0, 0, gocv.InterpolationCubic)
	return big
}

// TestQualityOfLargePictures: a 1080p picture, halved before it is averaged to the meter's
// width, measures as the one area average of it did: brightness and exposure to a grey
// level's rounding, sharpness within 2 %. So do a 1280×720 and a 4K one, and an odd-sized
// region (not halved).
func TestQualityOfLargePictures(t *testing.T) {
	big := demo1080p(t)
	defer big.Close()
	// a blown-out patch and a black one, for the exposure shares
	gocv.Rectangle(&big, image.Rect(100, 100, 500, 400), color.RGBA{255, 255, 255, 0}, -1)
	gocv.Rectangle(&big, image.Rect(1300, 600, 1700, 1000), color.RGBA{0, 0, 0, 0}, -1)
	m := NewMeter()
	defer m.Close()
	small, grey, lap, mean, std := gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer func() {
		for _, x := range []gocv.Mat{small, grey, lap, mean, std} {
			x.Close()
		}
	}()
	for _, size := range []image.Point{{1920, 1080}, {1280, 720}, {3840, 2160}, {1001, 777}} {
		img := gocv.NewMat()
		gocv.Resize(big, &img, size, 0, 0, gocv.InterpolationLinear)
		got := m.Measure(img, image.Rectangle{})
		w := MeasureWidth
		areaThenGrey(img, w, size.Y*w/size.X, &small, &grey)
		gocv.Laplacian(grey, &lap, gocv.MatTypeCV64F, 1, 1, 0, gocv.BorderDefault)
		gocv.MeanStdDev(lap, &mean, &std)
		want := std.GetDoubleAt(0, 0) * std.GetDoubleAt(0, 0)
		b := grey.Mean().Val1
		over, under := shares(t, grey)
		if over < 0.03 || under < 0.03 {
			t.Fatalf("%v: the patches make %.3f of the picture blown out and %.3f black, want 0.03 or more", size, over, under)
		}
		img.Close()
		if math.Abs(got.Sharpness-want) > 0.02*want || math.Abs(got.Brightness-b) > 1 {
			t.Errorf("%v: sharpness %.1f, brightness %.2f; one area average gives %.1f, %.2f", size, got.Sharpness, got.Brightness, want, b)
		}
		if math.Abs(got.Overexposed-over) > 0.01 || math.Abs(got.Underexposed-under) > 0.01 {
			t.Errorf("%v: overexposed %.4f, underexposed %.4f; one area average gives %.4f, %.4f", size, got.Overexposed, got.Underexposed, over, under)
		}
	}
}

// shares are the shares of a grey picture's pixels at or above 250 and at or below 5.
func shares(t *testing.T, grey gocv.Mat) (over, under float64) {
	data, err := grey.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range data {
		if v >= 250 {
			over++
		} else if v <= 5 {
			under++
		}
	}
	return over / float64(len(data)), under / float64(len(data))
}

// BenchmarkMeasure1080p: the quality figures of a 1080p frame, against one area average of
// the colour picture (the meter before shrink).
func BenchmarkMeasure1080p(b *testing.B) {
	big := demo1080p(b)
	defer big.Close()
	b.Run("meter", func(b *testing.B) {
		m := NewMeter()
		defer m.Close()
		for b.Loop() {
			m.Measure(big, image.Rectangle{})
		}
	})
	b.Run("area-then-grey", func(b *testing.B) {
		small, grey := gocv.NewMat(), gocv.NewMat()
		defer small.Close()
		defer grey.Close()
		for b.Loop() {
			areaThenGrey(big, MeasureWidth, 180, &small, &grey)
		}
	})
}
