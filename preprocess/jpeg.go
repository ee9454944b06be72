package preprocess

import (
	"errors"
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// EncodeJPEG encodes region roi of img (the whole image when roi is empty) as a JPEG of the
// given quality (1-100). When maxBytes > 0 and the JPEG is larger, the image is scaled down
// until it fits; it fails only when even a tiny image does not.
func EncodeJPEG(img gocv.Mat, roi image.Rectangle, quality, maxBytes int) ([]byte, error) {
	if img.Empty() {
		return nil, errors.New("preprocess: empty frame")
	}
	bounds := image.Rect(0, 0, img.Cols(), img.Rows())
	if roi.Empty() {
		roi = bounds
	}
	roi = roi.Intersect(bounds)
	if roi.Empty() {
		return nil, errors.New("preprocess: region lies outside the frame")
	}
	quality = min(max(quality, 1), 100)
	region := img.Region(roi)
	defer region.Close()
	scaled := gocv.NewMat()
	defer scaled.Close()
	src := region
	for w := roi.Dx(); ; {
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, quality})
		if err != nil {
			return nil, fmt.Errorf("preprocess: JPEG: %w", err)
		}
		out := append([]byte(nil), buf.GetBytes()...)
		buf.Close()
		if maxBytes <= 0 || len(out) <= maxBytes {
			return out, nil
		}
		if w <= 16 {
			return nil, fmt.Errorf("preprocess: a JPEG of this image does not fit in %d bytes", maxBytes)
		}
		w = w * 7 / 10
		h := max(1, roi.Dy()*w/roi.Dx())
		gocv.Resize(region, &scaled, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
		src = scaled
	}
}

// Hasher computes difference hashes of image regions, for finding near-identical crops. It
// keeps scratch Mats, is not safe for concurrent use, and must be closed.
type Hasher struct{ small, gray gocv.Mat }

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{small: gocv.NewMat(), gray: gocv.NewMat()} }

// DHash returns the 64-bit difference hash of region roi of img: the region shrunk to 9x8
// grey pixels, one bit per pair of horizontal neighbours (left brighter than right). Near
// identical images differ in few bits.
func (h *Hasher) DHash(img gocv.Mat, roi image.Rectangle) uint64 {
	bounds := image.Rect(0, 0, img.Cols(), img.Rows())
	if roi.Empty() {
		roi = bounds
	}
	roi = roi.Intersect(bounds)
	if roi.Empty() || img.Empty() {
		return 0
	}
	region := img.Region(roi)
	gocv.Resize(region, &h.small, image.Pt(9, 8), 0, 0, gocv.InterpolationArea)
	region.Close()
	if h.small.Channels() == 3 {
		gocv.CvtColor(h.small, &h.gray, gocv.ColorBGRToGray)
	} else {
		h.small.CopyTo(&h.gray)
	}
	px, err := h.gray.DataPtrUint8()
	if err != nil || len(px) < 72 {
		return 0
	}
	var hash uint64
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			if px[y*9+x] > px[y*9+x+1] {
				hash |= 1 << (y*8 + x)
			}
		}
	}
	return hash
}

// Close frees the scratch Mats.
func (h *Hasher) Close() error {
	h.small.Close()
	h.gray.Close()
	return nil
}

// Thumbnail encodes img shrunk so that its longer side is at most side pixels (never
// enlarged) as a JPEG of the given quality (1-100), for galleries in reports: the marked
// JPEG of the live view without marks, its width bounded so that the height is too.
func Thumbnail(img gocv.Mat, side, quality int) ([]byte, error) {
	width := side
	if w, h := img.Cols(), img.Rows(); side > 0 && h > w {
		width = max(1, w*side/h)
	}
	return EncodeMarkedJPEG(img, nil, width, quality, 0)
}
