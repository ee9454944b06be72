package preprocess

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// Augmentation is what one augmented copy of an image goes through, with every parameter
// already drawn (cvedge collect augment draws them, and records them in its manifest). The
// zero value changes nothing. The steps run in this order: background swap, flips, rotation
// with scale and shift, brightness and contrast, saturation, greyscale, noise, blur, cut-out.
type Augmentation struct {
	// Background: put the part (the white of the mask) on the background image, scaled to
	// the image's size. Needs a mask and a background; ignored without them.
	Background bool
	// FlipH mirrors left to right, FlipV top to bottom.
	FlipH, FlipV bool
	// Degrees rotates about the centre, counter-clockwise; Scale zooms about the centre (0 or
	// 1: none); ShiftX and ShiftY move the image by these fractions of its width and height.
	// The corners the image leaves are filled by reflecting it.
	Degrees, Scale, ShiftX, ShiftY float64
	// Brightness is added to every channel, as a fraction of full scale (-1..1: 0.1 adds 25.5).
	Brightness float64
	// Contrast multiplies the distance of every channel from mid-grey (128); 0 or 1: none.
	Contrast float64
	// Saturation blends the image with its grey version: 0 or 1: none, under 1 paler, over 1
	// more colourful.
	Saturation float64
	// Grey makes the image greyscale (B = G = R), kept as three channels.
	Grey bool
	// Noise is the standard deviation, in grey levels (0-255), of Gaussian noise added to every
	// channel; NoiseSeed draws it.
	Noise     float64
	NoiseSeed uint64
	// Blur is the size of a Gaussian blur kernel (odd, 3 or more; 0: none).
	Blur int
	// Cutout is a block filled with grey level CutoutFill, as fractions of the image (left,
	// top, width, height); empty: none.
	Cutout     [4]float64
	CutoutFill uint8
}

// AugmentImage decodes an image (any format OpenCV reads), applies a and encodes the result
// as a JPEG of the given quality. mask (a PNG or any image, the image's size, white = the
// part) and background (any size) are used only when a.Background is set; nil for none.
func AugmentImage(img, mask, background []byte, a Augmentation, quality int) ([]byte, error) {
	src, err := decodeImage(img, gocv.IMReadColor)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer src.Close()
	swap := a.Background && mask != nil && background != nil
	if !swap {
		mask, background = nil, nil
	}
	m, err := decodeOrEmpty(mask, gocv.IMReadGrayScale)
	if err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	defer m.Close()
	bg, err := decodeOrEmpty(background, gocv.IMReadColor)
	if err != nil {
		return nil, fmt.Errorf("background: %w", err)
	}
	defer bg.Close()
	out, err := Augment(src, m, bg, a)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	return EncodeJPEG(out, image.Rectangle{}, quality, 0)
}

// decodeOrEmpty decodes raw, or returns an empty Mat for nil.
func decodeOrEmpty(raw []byte, flags gocv.IMReadFlag) (gocv.Mat, error) {
	if raw == nil {
		return gocv.NewMat(), nil
	}
	return decodeImage(raw, flags)
}

// decodeImage reads an encoded image; an empty result is an error (OpenCV returns an empty Mat
// for bytes it cannot read).
func decodeImage(raw []byte, flags gocv.IMReadFlag) (gocv.Mat, error) {
	m, err := gocv.IMDecode(raw, flags)
	if err == nil && m.Empty() {
		err = errors.New("not an image OpenCV can read (JPEG, PNG, BMP, TIFF, WebP)")
	}
	if err != nil {
		m.Close()
		return gocv.Mat{}, err
	}
	return m, nil
}

// Augment returns src (8-bit BGR) after a; the caller closes the result (there is none to
// close on an error). mask (8-bit, one
// channel, src's size; non-zero = the part) and background (8-bit BGR, any size) may be
// empty Mats; the swap is done only when a.Background is set and both are there.
func Augment(src, mask, background gocv.Mat, a Augmentation) (gocv.Mat, error) {
	if src.Empty() || src.Type() != gocv.MatTypeCV8UC3 {
		return gocv.Mat{}, errors.New("preprocess: augment needs an 8-bit BGR image")
	}
	w, h := src.Cols(), src.Rows()
	cur := src.Clone()
	tmp := gocv.NewMat()
	defer tmp.Close()
	step := func() { cur, tmp = tmp, cur } // the result of a step, written to tmp, becomes cur

	if a.Background && !mask.Empty() && !background.Empty() {
		if mask.Cols() != w || mask.Rows() != h {
			cur.Close()
			return gocv.Mat{}, fmt.Errorf("the mask is %dx%d but the image is %dx%d: a mask must have the image's size", mask.Cols(), mask.Rows(), w, h)
		}
		part := gocv.NewMat()
		gocv.Threshold(mask, &part, 127, 255, gocv.ThresholdBinary)
		gocv.Resize(background, &tmp, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
		cur.CopyToWithMask(&tmp, part)
		part.Close()
		step()
	}
	switch {
	case a.FlipH && a.FlipV:
		gocv.Flip(cur, &tmp, -1)
		step()
	case a.FlipH:
		gocv.Flip(cur, &tmp, 1)
		step()
	case a.FlipV:
		gocv.Flip(cur, &tmp, 0)
		step()
	}
	scale := a.Scale
	if scale == 0 {
		scale = 1
	}
	if a.Degrees != 0 || scale != 1 || a.ShiftX != 0 || a.ShiftY != 0 {
		// the rotation about the centre, scaled, then moved (as OpenCV's getRotationMatrix2D)
		cx, cy := float64(w-1)/2, float64(h-1)/2
		rad := a.Degrees * math.Pi / 180
		al, be := scale*math.Cos(rad), scale*math.Sin(rad)
		m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
		for i, v := range []float64{al, be, (1-al)*cx - be*cy + a.ShiftX*float64(w), -be, al, be*cx + (1-al)*cy + a.ShiftY*float64(h)} {
			m.SetDoubleAt(i/3, i%3, v)
		}
		gocv.WarpAffineWithParams(cur, &tmp, m, image.Pt(w, h), gocv.InterpolationLinear, gocv.BorderReflect101, color.RGBA{})
		m.Close()
		step()
	}
	contrast := a.Contrast
	if contrast == 0 {
		contrast = 1
	}
	if a.Brightness != 0 || contrast != 1 {
		// out = (in - 128) * contrast + 128 + brightness * 255, rounded and clipped to 0..255
		cur.ConvertToWithParams(&tmp, gocv.MatTypeCV8UC3, float32(contrast), float32(128*(1-contrast)+a.Brightness*255))
		step()
	}
	if a.Saturation != 0 && a.Saturation != 1 || a.Grey {
		grey, grey3 := gocv.NewMat(), gocv.NewMat()
		gocv.CvtColor(cur, &grey, gocv.ColorBGRToGray)
		gocv.CvtColor(grey, &grey3, gocv.ColorGrayToBGR)
		if a.Grey {
			grey3.CopyTo(&tmp)
		} else {
			gocv.AddWeighted(cur, a.Saturation, grey3, 1-a.Saturation, 0, &tmp)
		}
		grey.Close()
		grey3.Close()
		step()
	}
	if a.Noise > 0 {
		if !cur.IsContinuous() {
			cur.CopyTo(&tmp)
			step()
		}
		px, err := cur.DataPtrUint8()
		if err != nil {
			cur.Close()
			return gocv.Mat{}, fmt.Errorf("preprocess: noise: %w", err)
		}
		rng := rand.New(rand.NewPCG(a.NoiseSeed, 0x6e6f697365))
		for i, v := range px {
			px[i] = uint8(math.Round(min(255, max(0, float64(v)+rng.NormFloat64()*a.Noise))))
		}
	}
	if a.Blur >= 3 {
		k := a.Blur | 1
		gocv.GaussianBlur(cur, &tmp, image.Pt(k, k), 0, 0, gocv.BorderReflect101)
		step()
	}
	if r := CutoutRect(a, w, h); !r.Empty() {
		block := cur.Region(r)
		f := float64(a.CutoutFill)
		block.SetTo(gocv.NewScalar(f, f, f, 0))
		block.Close()
	}
	return cur, nil
}

// CutoutRect is the block of pixels a.Cutout covers in a w x h image (empty: none), as
// Augment fills it.
func CutoutRect(a Augmentation, w, h int) image.Rectangle {
	c := a.Cutout
	if c[2] <= 0 || c[3] <= 0 {
		return image.Rectangle{}
	}
	r := image.Rect(int(c[0]*float64(w)), int(c[1]*float64(h)), int((c[0]+c[2])*float64(w)+0.5), int((c[1]+c[3])*float64(h)+0.5))
	return r.Intersect(image.Rect(0, 0, w, h))
}
