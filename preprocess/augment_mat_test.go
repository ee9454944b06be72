//go:build matprofile

package preprocess

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// TestAugmentImageFreesEveryMat: every way through AugmentImage, failing ones too, frees the
// Mats it made.
func TestAugmentImageFreesEveryMat(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 24, 16))
	mask := image.NewGray(image.Rect(0, 0, 24, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 24; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 10), uint8(y * 15), 90, 255})
			if x > 8 {
				mask.SetGray(x, y, color.Gray{255})
			}
		}
	}
	enc := func(i image.Image) []byte {
		var b bytes.Buffer
		png.Encode(&b, i)
		return b.Bytes()
	}
	raw, rawMask, otherMask := enc(img), enc(mask), enc(image.NewGray(image.Rect(0, 0, 5, 5)))
	all := Augmentation{Background: true, FlipH: true, Degrees: 10, Scale: 1.1, ShiftX: 0.1, Brightness: 0.1, Contrast: 1.2,
		Saturation: 0.5, Noise: 5, Blur: 3, Cutout: [4]float64{0.1, 0.1, 0.3, 0.3}}
	before := LiveMats()
	for _, c := range []struct {
		img, mask, bg []byte
		a             Augmentation
		err           string
	}{
		{raw, nil, nil, Augmentation{}, ""},
		{raw, rawMask, raw, all, ""},
		{raw, rawMask, raw, Augmentation{Grey: true, Background: true}, ""},
		{[]byte("not an image"), nil, nil, all, "image: not an image"},
		{raw, []byte("junk"), raw, all, "mask: not an image"},
		{raw, rawMask, []byte("junk"), all, "background: not an image"},
		{raw, otherMask, raw, all, "the mask is 5x5"},
	} {
		out, err := AugmentImage(c.img, c.mask, c.bg, c.a, 90)
		if c.err == "" && (err != nil || len(out) == 0) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%+v: %d bytes, %v; want %q", c.a, len(out), err, c.err)
		}
		if n := LiveMats() - before; n != 0 {
			t.Fatalf("%+v: %d Mats left", c.a, n)
		}
	}
}
