package preprocess

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
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
