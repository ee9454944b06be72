package camera

import (
	"fmt"
	"image"
	"math"
	"os"
	"sync"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/configs"
)

// shaper turns a raw frame into the one the pipeline sees: rotated, then cut to the ROI.
type shaper struct {
	rotate   gocv.RotateFlag
	doRotate bool
	roi      image.Rectangle
}

func newShaper(degrees int, roi []int) shaper {
	s := shaper{doRotate: degrees != 0}
	switch degrees {
	case 90:
		s.rotate = gocv.Rotate90Clockwise
	case 180:
		s.rotate = gocv.Rotate180Clockwise
	case 270:
		s.rotate = gocv.Rotate90CounterClockwise
	}
	if len(roi) == 4 {
		s.roi = image.Rect(roi[0], roi[1], roi[0]+roi[2], roi[1]+roi[3])
	}
	return s
}

// SettingsError is a camera setting that does not fit the frames the source delivers (an
// ROI outside the frame). Reopening the source does not fix it: the camera ends with it.
type SettingsError struct{ msg string }

func (e *SettingsError) Error() string { return e.msg }

// identity reports whether the shaper leaves frames as they are.
func (s shaper) identity() bool { return !s.doRotate && s.roi.Empty() }

// apply rotates and crops f's pixels in place. key names the camera in the config
// (cameras[2]). A shaper that changes nothing leaves a JPEG frame undecoded.
func (s shaper) apply(f *Frame, key string) error {
	if s.identity() {
		return nil
	}
	m := &f.mat
	if f.jpeg != nil { // not handed on when shaping (see Camera.run); decode it all the same
		dec := f.Mat()
		f.jpeg.close()
		f.jpeg, f.mat = nil, dec
	}
	if s.doRotate {
		r := gocv.NewMat()
		gocv.Rotate(*m, &r, s.rotate)
		m.Close()
		*m = r
	}
	if s.roi.Empty() {
		return nil
	}
	if b := image.Rect(0, 0, m.Cols(), m.Rows()); !s.roi.In(b) {
		turned := ""
		if s.doRotate {
			turned = " (as rotated)"
		}
		return &SettingsError{fmt.Sprintf("roi %v (x, y, width, height = %d, %d, %d, %d) lies outside the %dx%d frame%s: fix %s.roi to fit in %dx%d",
			s.roi, s.roi.Min.X, s.roi.Min.Y, s.roi.Dx(), s.roi.Dy(), b.Dx(), b.Dy(), turned, key, b.Dx(), b.Dy())}
	}
	region := m.Region(s.roi)
	c := region.Clone()
	region.Close()
	m.Close()
	*m = c
	return nil
}

// propDevice is the part of gocv.VideoCapture that device settings use.
type propDevice interface {
	Set(prop gocv.VideoCaptureProperties, value float64)
	Get(prop gocv.VideoCaptureProperties) float64
}

// V4L2 values of the auto exposure menu, as OpenCV's V4L2 backend takes them.
const (
	v4l2ExposureManual = 1
	v4l2ExposureAuto   = 3
)

// applyDevice sets what d asks for, in the order cameras need (format before size, size
// before rate, auto modes before manual values), reads each back and returns a line for
// every setting the device did not take.
func applyDevice(dev propDevice, d configs.Device) []string {
	type setting struct {
		name string
		prop gocv.VideoCaptureProperties
		want float64
		tol  float64
		show func(float64) string
	}
	num := func(v float64) string { return fmt.Sprintf("%g", v) }
	var list []setting
	if d.FourCC != "" {
		list = append(list, setting{"fourcc", gocv.VideoCaptureFOURCC, fourcc(d.FourCC), 0, fourccString})
	}
	if d.Width != nil {
		list = append(list, setting{"width", gocv.VideoCaptureFrameWidth, float64(*d.Width), 0, num})
	}
	if d.Height != nil {
		list = append(list, setting{"height", gocv.VideoCaptureFrameHeight, float64(*d.Height), 0, num})
	}
	if d.FPS != nil {
		list = append(list, setting{"fps", gocv.VideoCaptureFPS, *d.FPS, 0.5, num})
	}
	if d.AutoExposure != nil {
		v := float64(v4l2ExposureManual)
		if *d.AutoExposure {
			v = v4l2ExposureAuto
		}
		list = append(list, setting{"auto_exposure", gocv.VideoCaptureAutoExposure, v, 0, num})
	}
	if d.Exposure != nil {
		list = append(list, setting{"exposure", gocv.VideoCaptureExposure, *d.Exposure, 0.5, num})
	}
	if d.Autofocus != nil {
		list = append(list, setting{"autofocus", gocv.VideoCaptureAutoFocus, b2f(*d.Autofocus), 0, num})
	}
	if d.Focus != nil {
		list = append(list, setting{"focus", gocv.VideoCaptureFocus, *d.Focus, 0.5, num})
	}
	if d.Gain != nil {
		list = append(list, setting{"gain", gocv.VideoCaptureGain, *d.Gain, 0.5, num})
	}
	var ignored []string
	for _, s := range list {
		dev.Set(s.prop, s.want)
	}
	for _, s := range list {
		if got := dev.Get(s.prop); math.IsNaN(got) || math.Abs(got-s.want) > s.tol {
			ignored = append(ignored, fmt.Sprintf("%s: asked %s, device has %s", s.name, s.show(s.want), s.show(got)))
		}
	}
	return ignored
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fourcc packs a four-character code as OpenCV wants it.
func fourcc(s string) float64 {
	var v uint32
	for i := 0; i < 4 && i < len(s); i++ {
		v |= uint32(s[i]) << (8 * i)
	}
	return float64(v)
}

func fourccString(v float64) string {
	u := uint32(v)
	b := []byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)}
	for _, c := range b {
		if c < 32 || c > 126 {
			return fmt.Sprintf("%#x", u)
		}
	}
	return string(b)
}

var ffmpegOnce sync.Once

// ffmpegTimeouts gives FFmpeg socket timeouts for network streams, so a camera that stops
// answering makes the read fail (and the source reopen) instead of hanging. A value the user
// set in OPENCV_FFMPEG_CAPTURE_OPTIONS wins.
func ffmpegTimeouts() {
	ffmpegOnce.Do(func() {
		if os.Getenv("OPENCV_FFMPEG_CAPTURE_OPTIONS") == "" {
			os.Setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "timeout;5000000|rw_timeout;5000000")
		}
	})
}
