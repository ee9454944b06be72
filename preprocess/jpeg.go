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
