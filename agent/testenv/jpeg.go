package testenv

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// JPEG is a w x h JPEG whose red is shade and whose green and blue follow x and y, so two
// shades or sizes never give the same image.
func JPEG(tb testing.TB, w, h int, shade uint8) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{shade, uint8(x), uint8(y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
