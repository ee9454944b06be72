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
}

// NewMeter returns a Meter.
func NewMeter() *Meter {
	return &Meter{small: gocv.NewMat(), gray: gocv.NewMat(), lap: gocv.NewMat(), mean: gocv.NewMat(), std: gocv.NewMat()}
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
	gocv.Resize(region, &m.small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	switch m.small.Channels() {
	case 3:
		gocv.CvtColor(m.small, &m.gray, gocv.ColorBGRToGray)
	case 4:
		gocv.CvtColor(m.small, &m.gray, gocv.ColorBGRAToGray)
	default:
		m.small.CopyTo(&m.gray)
	}
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

// Close frees the scratch Mats.
func (m *Meter) Close() error {
	for _, mat := range []*gocv.Mat{&m.small, &m.gray, &m.lap, &m.mean, &m.std} {
		mat.Close()
	}
	return nil
}
