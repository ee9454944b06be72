package preprocess

import (
	"image"

	"gocv.io/x/gocv"
)

// MotionWidth is the width of the small picture that Motion compares: a cell of it is 10
// pixels of a 640-wide frame, 30 of a 1080p one. INTER_AREA averages every pixel of the cell
// into it, which is the blur that keeps sensor noise out (a 30 x 30 cell's mean moves a
// thirtieth of a pixel's noise), while a part that covers half a cell moves the cell by half
// the part's contrast with the belt.
const MotionWidth = 64

// Motion tells how much of a picture changed since a reference picture: the frame scaled to
// a small picture (MotionWidth wide, INTER_AREA), compared cell by cell with the reference,
// in each colour channel: a cell changed when any of its channels moved by more than the
// delta, so that a blue part on a grey belt of the same grey level still shows. The
// reference is set by Keep, not by every comparison: a part creeping in a few pixels a frame
// adds up its change against it until it shows. Motion keeps scratch Mats, allocates nothing
// per frame once their sizes are set, is not safe for concurrent use, and must be closed.
type Motion struct {
	small, ref, diff, mask, changed gocv.Mat
	size, refSize                   image.Point // of the pictures compared: the last, the reference's
}

// NewMotion returns a Motion without a reference: everything is changed until Keep.
func NewMotion() *Motion {
	return &Motion{small: gocv.NewMat(), ref: gocv.NewMat(), diff: gocv.NewMat(), mask: gocv.NewMat(), changed: gocv.NewMat()}
}

// Changed scales img to the small picture and returns the share (0..1) of its cells of which
// a channel moved by more than delta levels since the reference. It is 1 when there is no
// reference yet, or when the picture's size or channels changed; 0 for an empty img. The
// picture stays, for Keep.
func (m *Motion) Changed(img gocv.Mat, delta float32) float64 {
	if img.Empty() {
		return 0
	}
	w := min(MotionWidth, img.Cols())
	h := max(1, img.Rows()*w/img.Cols())
	m.size = image.Pt(w, h) // a reduced view of the same frame gives the same small picture
	gocv.Resize(img, &m.small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	if m.refSize != m.size || m.ref.Type() != m.small.Type() {
		return 1
	}
	gocv.AbsDiff(m.small, m.ref, &m.diff)
	gocv.Threshold(m.diff, &m.mask, delta, 255, gocv.ThresholdBinary) // each channel: above delta is 255
	switch m.mask.Channels() {
	case 3: // any channel 255: the grey level is at least 0.114 * 255
		gocv.CvtColor(m.mask, &m.changed, gocv.ColorBGRToGray)
	case 4:
		gocv.CvtColor(m.mask, &m.changed, gocv.ColorBGRAToGray)
	default:
		m.mask.CopyTo(&m.changed)
	}
	return float64(gocv.CountNonZero(m.changed)) / float64(m.changed.Rows()*m.changed.Cols())
}

// Keep makes the picture of the last Changed the reference: the frame went through the
// models.
func (m *Motion) Keep() {
	if m.small.Empty() {
		return
	}
	m.small.CopyTo(&m.ref)
	m.refSize = m.size
}

// Close frees the scratch Mats.
func (m *Motion) Close() error {
	for _, mat := range []*gocv.Mat{&m.small, &m.ref, &m.diff, &m.mask, &m.changed} {
		mat.Close()
	}
	return nil
}
