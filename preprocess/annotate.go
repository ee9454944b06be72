package preprocess

import (
	"errors"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// BoxColor is the colour of the boxes and labels drawn by EncodeMarkedJPEG and
// EncodeAnnotatedJPEG: pure green, which no part on a grey belt is mistaken for.
var BoxColor = color.RGBA{R: 0, G: 255, B: 0, A: 255}

// Mark is one box to draw, with its label (empty: the box alone).
type Mark struct {
	Box   image.Rectangle // in the pixels of the frame given
	Label string
}

// EncodeAnnotatedJPEG encodes the whole of img as a JPEG (as EncodeJPEG: scaled down until it
// fits in maxBytes when that is above 0) with box (pixels) drawn on it in BoxColor and label
// written on a BoxColor band above the box (inside its top when the box touches the frame's
// top). img is not changed: the drawing is made on a copy, freed before it returns. A box
// wholly outside the frame is an error.
func EncodeAnnotatedJPEG(img gocv.Mat, box image.Rectangle, label string, quality, maxBytes int) ([]byte, error) {
	if img.Empty() {
		return nil, errors.New("preprocess: empty frame")
	}
	if box.Intersect(image.Rect(0, 0, img.Cols(), img.Rows())).Empty() {
		return nil, errors.New("preprocess: the box lies outside the frame")
	}
	return EncodeMarkedJPEG(img, []Mark{{Box: box, Label: label}}, 0, quality, maxBytes)
}

// EncodeMarkedJPEG encodes img, scaled down to at most maxWidth pixels wide (0: as captured;
// never scaled up), with every mark drawn (box and a label band, as EncodeAnnotatedJPEG draws
// one), as a JPEG of quality, scaled further until it fits maxBytes (0: no bound, as
// EncodeJPEG). img is not changed; every Mat made is freed.
//
// Marks are clipped to the frame; a mark wholly outside it is skipped. The frame is scaled
// first and the marks drawn on that one copy, their boxes scaled, so a live view of a large
// frame costs one resize and no full-size copy. Lines and text are in proportion to the image
// drawn on, so they stay visible at any width.
func EncodeMarkedJPEG(img gocv.Mat, marks []Mark, maxWidth, quality, maxBytes int) ([]byte, error) {
	if img.Empty() {
		return nil, errors.New("preprocess: empty frame")
	}
	bounds := image.Rect(0, 0, img.Cols(), img.Rows())
	w, h := bounds.Dx(), bounds.Dy()
	if maxWidth > 0 && w > maxWidth {
		w, h = maxWidth, max(1, bounds.Dy()*maxWidth/bounds.Dx())
	}
	visible := 0
	for _, m := range marks {
		if !m.Box.Intersect(bounds).Empty() {
			visible++
		}
	}
	scaled := w != bounds.Dx()
	if !scaled && visible == 0 {
		return EncodeJPEG(img, bounds, quality, maxBytes) // nothing to draw: no copy
	}
	drawn := gocv.NewMat()
	defer drawn.Close()
	switch {
	case scaled:
		// area averaging is the better and, at a whole factor (1920 to 960), the fast one;
		// at any other factor it costs several times more than bilinear, too much for a live view
		interp := gocv.InterpolationLinear
		if bounds.Dx()%w == 0 && bounds.Dy()%h == 0 {
			interp = gocv.InterpolationArea
		}
		gocv.Resize(img, &drawn, image.Pt(w, h), 0, 0, interp)
	case img.Channels() != 1:
		img.CopyTo(&drawn)
	}
	if visible > 0 && img.Channels() == 1 { // green on grey needs colour
		if scaled {
			gocv.CvtColor(drawn, &drawn, gocv.ColorGrayToBGR)
		} else {
			gocv.CvtColor(img, &drawn, gocv.ColorGrayToBGR)
		}
	}
	if visible > 0 {
		drawMarks(&drawn, marks, bounds, float64(w)/float64(bounds.Dx()), float64(h)/float64(bounds.Dy()))
	}
	return EncodeJPEG(drawn, image.Rectangle{}, quality, maxBytes)
}

// drawMarks draws marks (in the pixels of a frame of bounds) on img, that frame scaled by sx,
// sy: the boxes first, then the labels over them.
func drawMarks(img *gocv.Mat, marks []Mark, bounds image.Rectangle, sx, sy float64) {
	out := image.Rect(0, 0, img.Cols(), img.Rows())
	short := min(out.Dx(), out.Dy())
	thick := max(3, short/120)
	boxes := make([]image.Rectangle, len(marks))
	for i, m := range marks {
		b := m.Box.Intersect(bounds)
		if b.Empty() {
			continue
		}
		// the box's pixels scaled, rounded outwards so that a thin box stays one pixel wide
		b = image.Rect(int(float64(b.Min.X)*sx), int(float64(b.Min.Y)*sy),
			int(math.Ceil(float64(b.Max.X)*sx)), int(math.Ceil(float64(b.Max.Y)*sy))).Intersect(out)
		if b.Empty() {
			continue
		}
		boxes[i] = b
		// OpenCV's corners are pixels on the lines: the last pixels of the box, as Max is past it
		gocv.Rectangle(img, image.Rect(b.Min.X, b.Min.Y, b.Max.X-1, b.Max.Y-1), BoxColor, thick)
	}
	scale := max(0.4, float64(short)/600)
	textThick := max(1, thick/2)
	pad := thick
	for i, m := range marks {
		b := boxes[i]
		if m.Label == "" || b.Empty() {
			continue
		}
		size, base := gocv.GetTextSizeWithBaseline(m.Label, gocv.FontHersheySimplex, scale, textThick)
		bh, bw := size.Y+base+2*pad, size.X+2*pad
		top := b.Min.Y - bh
		if top < 0 { // no room above: inside the box's top
			top = b.Min.Y
		}
		left := max(0, min(b.Min.X, out.Dx()-bw)) // moved left rather than cut by the frame's edge
		band := image.Rect(left, top, left+bw, top+bh).Intersect(out)
		gocv.Rectangle(img, band, BoxColor, -1)
		gocv.PutText(img, m.Label, image.Pt(left+pad, top+pad+size.Y), gocv.FontHersheySimplex, scale, color.RGBA{A: 255}, textThick)
	}
}
