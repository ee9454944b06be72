// Package preprocess turns camera frames (gocv Mats, BGR) into model input tensors, crops
// detected regions for the next stage, and measures capture quality.
//
// It owns the pixel work: resizing, channel order, value range, NCHW layout and float16. It
// writes into buffers it is given (the model's bound tensors) and allocates nothing per frame
// once warm. It knows nothing of onnxruntime or MQTT; the tensor layout it fills is described
// by Spec, which the caller builds from the model's input.
package preprocess

import (
	"errors"
	"fmt"
	"image"

	"github.com/x448/float16"
	"gocv.io/x/gocv"
)

// Spec describes a model input: Width x Height, 3 planes (NCHW) holding
// pixel*Scale + Offset, in BGR order unless SwapRB.
type Spec struct {
	Width, Height int
	SwapRB        bool // RGB planes instead of BGR
	Scale, Offset float32
	// CenterCrop takes the largest centred region with the input's aspect ratio before
	// resizing (customvision-tfjs); false stretches the region to the input (the ONNX samples).
	CenterCrop bool
}

// Tensorizer fills input tensors from frames. It keeps scratch Mats between calls and is
// not safe for concurrent use; Close frees them.
type Tensorizer struct {
	spec    Spec
	resized gocv.Mat
	bgr     gocv.Mat
}

// NewTensorizer returns a Tensorizer for spec.
func NewTensorizer(spec Spec) (*Tensorizer, error) {
	if spec.Width <= 0 || spec.Height <= 0 {
		return nil, fmt.Errorf("preprocess: input size %dx%d must be positive", spec.Width, spec.Height)
	}
	if spec.Scale == 0 {
		spec.Scale = 1
	}
	return &Tensorizer{spec: spec, resized: gocv.NewMat(), bgr: gocv.NewMat()}, nil
}

// Spec returns the input description.
func (t *Tensorizer) Spec() Spec { return t.spec }

// Fill writes region roi of img into dst (3*Width*Height values). Exactly one of f32 and f16
// (IEEE half-precision bits) must be non-nil. An empty roi means the whole image.
func (t *Tensorizer) Fill(img gocv.Mat, roi image.Rectangle, f32 []float32, f16 []uint16) error {
	if img.Empty() {
		return errors.New("preprocess: empty frame")
	}
	src := img
	switch img.Channels() {
	case 3:
	case 1:
		gocv.CvtColor(img, &t.bgr, gocv.ColorGrayToBGR)
		src = t.bgr
	case 4:
		gocv.CvtColor(img, &t.bgr, gocv.ColorBGRAToBGR)
		src = t.bgr
	default:
		return fmt.Errorf("preprocess: frame has %d channels; expected 1, 3 or 4", img.Channels())
	}
	if src.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("preprocess: frame type %v; expected 8-bit pixels", src.Type())
	}
	bounds := image.Rect(0, 0, src.Cols(), src.Rows())
	if roi.Empty() {
		roi = bounds
	}
	roi = roi.Intersect(bounds)
	if roi.Empty() {
		return errors.New("preprocess: region lies outside the frame")
	}
	if t.spec.CenterCrop {
		roi = centerCrop(roi, t.spec.Width, t.spec.Height)
	}
	region := src.Region(roi)
	gocv.Resize(region, &t.resized, image.Pt(t.spec.Width, t.spec.Height), 0, 0, gocv.InterpolationLinear)
	region.Close()
	data, err := t.resized.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	n := t.spec.Width * t.spec.Height
	if (f32 != nil && len(f32) < 3*n) || (f16 != nil && len(f16) < 3*n) || (f32 == nil && f16 == nil) {
		return fmt.Errorf("preprocess: destination holds %d/%d values; need %d", len(f32), len(f16), 3*n)
	}
	b, r := 0, 2 // plane index of each channel
	if t.spec.SwapRB {
		b, r = 2, 0
	}
	scale, off := t.spec.Scale, t.spec.Offset
	if f32 != nil {
		pb, pg, pr := f32[b*n:b*n+n], f32[n:2*n], f32[r*n:r*n+n]
		for i := 0; i < n; i++ {
			px := data[3*i : 3*i+3 : 3*i+3]
			pb[i] = float32(px[0])*scale + off
			pg[i] = float32(px[1])*scale + off
			pr[i] = float32(px[2])*scale + off
		}
		return nil
	}
	pb, pg, pr := f16[b*n:b*n+n], f16[n:2*n], f16[r*n:r*n+n]
	for i := 0; i < n; i++ {
		px := data[3*i : 3*i+3 : 3*i+3]
		pb[i] = float16.Fromfloat32(float32(px[0])*scale + off).Bits()
		pg[i] = float16.Fromfloat32(float32(px[1])*scale + off).Bits()
		pr[i] = float16.Fromfloat32(float32(px[2])*scale + off).Bits()
	}
	return nil
}

// Close frees the scratch Mats.
func (t *Tensorizer) Close() error {
	t.resized.Close()
	t.bgr.Close()
	return nil
}

// centerCrop returns the largest region centred in r with the aspect ratio w:h.
func centerCrop(r image.Rectangle, w, h int) image.Rectangle {
	rw, rh := r.Dx(), r.Dy()
	if rw*h > rh*w { // too wide
		cw := max(1, rh*w/h)
		x := r.Min.X + (rw-cw)/2
		return image.Rect(x, r.Min.Y, x+cw, r.Max.Y)
	}
	ch := max(1, rw*h/w)
	y := r.Min.Y + (rh-ch)/2
	return image.Rect(r.Min.X, y, r.Max.X, y+ch)
}

// CropRect turns a normalized box (0..1 of a region) into the pixel rectangle to crop from
// the frame: the box is placed in region, grown by padding times its width and height on
// every side, and clamped to the frame of size fw x fh. It is empty when nothing is left.
func CropRect(region image.Rectangle, fw, fh int, left, top, width, height, padding float32) image.Rectangle {
	for _, v := range []float32{left, top, width, height, padding} {
		if v != v || v > 1e6 || v < -1e6 { // NaN or absurd: nothing to crop
			return image.Rectangle{}
		}
	}
	rw, rh := float32(region.Dx()), float32(region.Dy())
	x1 := float32(region.Min.X) + (left-width*padding)*rw
	y1 := float32(region.Min.Y) + (top-height*padding)*rh
	x2 := float32(region.Min.X) + (left+width*(1+padding))*rw
	y2 := float32(region.Min.Y) + (top+height*(1+padding))*rh
	r := image.Rect(int(x1+0.5), int(y1+0.5), int(x2+0.5), int(y2+0.5))
	return r.Intersect(image.Rect(0, 0, fw, fh))
}
