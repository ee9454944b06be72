//go:build matprofile

package preprocess

import (
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// TestMarkedJPEGFreesEveryMat: every way through EncodeMarkedJPEG (nothing to draw, drawn as
// captured, scaled, grey, scaled further to fit, failing) frees the Mats it made.
func TestMarkedJPEGFreesEveryMat(t *testing.T) {
	colour := halves(640, 360, [3]uint8{90, 90, 90}, [3]uint8{60, 60, 60})
	defer colour.Close()
	grey := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 0, 0, 0), 360, 640, gocv.MatTypeCV8UC1)
	defer grey.Close()
	marks := []Mark{{Box: image.Rect(10, 10, 200, 200), Label: "a 90%"}, {Box: image.Rect(600, 300, 700, 400)}}
	before := LiveMats()
	for _, img := range []gocv.Mat{colour, grey} {
		for _, c := range []struct {
			marks              []Mark
			maxWidth, maxBytes int
		}{{nil, 0, 0}, {marks, 0, 0}, {marks, 320, 0}, {nil, 320, 0}, {marks, 0, 3000}, {marks, 320, 10}} {
			EncodeMarkedJPEG(img, c.marks, c.maxWidth, 90, c.maxBytes)
			if n := LiveMats() - before; n != 0 {
				t.Fatalf("%d channels, %d marks, maxWidth %d, maxBytes %d: %d Mats left", img.Channels(), len(c.marks), c.maxWidth, c.maxBytes, n)
			}
		}
	}
	EncodeAnnotatedJPEG(colour, image.Rect(1000, 1000, 1100, 1100), "outside", 90, 0)
	if n := LiveMats() - before; n != 0 {
		t.Fatalf("a box outside the frame: %d Mats left", n)
	}
}
