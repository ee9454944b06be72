package preprocess

import (
	"errors"
	"image"
	"image/color"

	"gocv.io/x/gocv"
)

// BoxColor is the colour of the boxes and labels drawn by EncodeAnnotatedJPEG: pure green,
// which no part on a grey belt is mistaken for.
var BoxColor = color.RGBA{R: 0, G: 255, B: 0, A: 255}

// EncodeAnnotatedJPEG encodes the whole of img as a JPEG (as EncodeJPEG: scaled down until it
// fits in maxBytes when that is above 0) with box (pixels) drawn on it in BoxColor and label
// written on a BoxColor band above the box (inside its top when the box touches the frame's
// top). img is not changed: the drawing is made on a copy, freed before it returns.
func EncodeAnnotatedJPEG(img gocv.Mat, box image.Rectangle, label string, quality, maxBytes int) ([]byte, error) {
	if img.Empty() {
		return nil, errors.New("preprocess: empty frame")
	}
	bounds := image.Rect(0, 0, img.Cols(), img.Rows())
	box = box.Intersect(bounds)
	if box.Empty() {
		return nil, errors.New("preprocess: the box lies outside the frame")
	}
	drawn := img.Clone()
	defer drawn.Close()
	// lines and text in proportion to the frame, so that they stay visible when the JPEG is
	// scaled down to fit
	short := min(bounds.Dx(), bounds.Dy())
	thick := max(3, short/120)
	// OpenCV's corners are pixels on the lines: the last pixels of the box, as Max is past it
	gocv.Rectangle(&drawn, image.Rect(box.Min.X, box.Min.Y, box.Max.X-1, box.Max.Y-1), BoxColor, thick)
	if label != "" {
		scale := max(0.4, float64(short)/600)
		textThick := max(1, thick/2)
		size, base := gocv.GetTextSizeWithBaseline(label, gocv.FontHersheySimplex, scale, textThick)
		pad := thick
		h := size.Y + base + 2*pad
		top := box.Min.Y - h
		if top < 0 { // no room above: inside the box's top
			top = box.Min.Y
		}
		band := image.Rect(box.Min.X, top, box.Min.X+size.X+2*pad, top+h).Intersect(bounds)
		gocv.Rectangle(&drawn, band, BoxColor, -1)
		gocv.PutText(&drawn, label, image.Pt(band.Min.X+pad, top+pad+size.Y), gocv.FontHersheySimplex, scale, color.RGBA{A: 255}, textThick)
	}
	return EncodeJPEG(drawn, bounds, quality, maxBytes)
}
