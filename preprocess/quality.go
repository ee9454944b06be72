package preprocess

import (
	"image"

	"gocv.io/x/gocv"
)

// Quality holds cheap capture-quality figures of one frame, answering the shooting
// guidelines: in focus, evenly and sufficiently lit.
type Quality struct {
	// Sharpness is the variance of the Laplacian of the grey image: higher is sharper.
	Sharpness float64 `json:"sharpness"`
	// Brightness is the mean grey level, 0-255.
	Brightness float64 `json:"brightness"`
	// Overexposed and Underexposed are the shares (0..1) of pixels at or above 250 and at or
	// below 5.
	Overexposed  float64 `json:"overexposed"`
	Underexposed float64 `json:"underexposed"`
}

// MeasureWidth is the width frames are scaled to before measuring, so the cost does not grow
// with the camera resolution; a picture at least this wide measures the same.
const MeasureWidth = 320

// Meter measures Quality. It keeps scratch Mats, is not safe for concurrent use, and must be
// closed.
type Meter struct {
	small, gray, lap, mean, std gocv.Mat
	half                        [2]gocv.Mat // halvings of a large picture (shrink)
}

// NewMeter returns a Meter.
func NewMeter() *Meter {
	return &Meter{small: gocv.NewMat(), gray: gocv.NewMat(), lap: gocv.NewMat(), mean: gocv.NewMat(), std: gocv.NewMat(),
		half: [2]gocv.Mat{gocv.NewMat(), gocv.NewMat()}}
}

// Measure computes the quality of region roi of img (the whole image when roi is empty).
func (m *Meter) Measure(img gocv.Mat, roi image.Rectangle) Quality {
	if img.Empty() {
		return Quality{}
	}
	bounds := image.Rect(0, 0, img.Cols(), img.Rows())
	if roi.Empty() {
		roi = bounds
	}
	roi = roi.Intersect(bounds)
	if roi.Empty() {
		return Quality{}
	}
	region := img.Region(roi)
	defer region.Close()
	w := min(MeasureWidth, roi.Dx())
	h := max(1, roi.Dy()*w/roi.Dx())
	m.shrink(region, w, h)
	gocv.Laplacian(m.gray, &m.lap, gocv.MatTypeCV64F, 1, 1, 0, gocv.BorderDefault)
	gocv.MeanStdDev(m.lap, &m.mean, &m.std)
	sd := m.std.GetDoubleAt(0, 0)
	q := Quality{Sharpness: sd * sd}
	data, err := m.gray.DataPtrUint8()
	if err != nil || len(data) == 0 {
		return q
	}
	var sum, over, under int
	for _, v := range data {
		sum += int(v)
		if v >= 250 {
			over++
		} else if v <= 5 {
			under++
		}
	}
	n := float64(len(data))
	q.Brightness = float64(sum) / n
	q.Overexposed = float64(over) / n
	q.Underexposed = float64(under) / n
	return q
}

// shrink makes m.gray the grey picture of img, area-averaged to w×h. A picture four or more
// times as wide as w, with even sides, is first halved (OpenCV averages 2×2 blocks with
// SIMD; larger blocks it sums pixel by pixel), and made grey before the last step: at 1080p
// that takes a third of the time of averaging 6×6 blocks of the colour picture, for the same
// figures to a grey level's rounding.
func (m *Meter) shrink(img gocv.Mat, w, h int) {
	src := img
	for i := 0; src.Cols() >= 4*w && src.Cols()%2 == 0 && src.Rows()%2 == 0; i++ {
		dst := &m.half[i%2]
		gocv.Resize(src, dst, image.Pt(src.Cols()/2, src.Rows()/2), 0, 0, gocv.InterpolationArea)
		src = *dst
	}
	switch src.Channels() {
	case 3:
		gocv.CvtColor(src, &m.small, gocv.ColorBGRToGray)
		src = m.small
	case 4:
		gocv.CvtColor(src, &m.small, gocv.ColorBGRAToGray)
		src = m.small
	}
	gocv.Resize(src, &m.gray, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
}

// Close frees the scratch Mats.
func (m *Meter) Close() error {
	for _, mat := range []*gocv.Mat{&m.small, &m.gray, &m.lap, &m.mean, &m.std, &m.half[0], &m.half[1]} {
		mat.Close()
	}
	return nil
}
