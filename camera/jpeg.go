package camera

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// A source that delivers JPEG (an MJPEG file or stream) hands on its frames undecoded, and
// each stage decodes what it needs: libjpeg decodes at 1/2, 1/4 or 1/8 of the size for
// little more than the cost of the smaller picture, so the detector and the quality meter
// read a reduced view, and only a frame whose crops the classifier sees (or that a step
// keeps as an image) is decoded at full resolution. A ring of recent frames holds the JPEG
// bytes, a twentieth of the decoded pixels.

// jpegFrame is the undecoded part of a Frame from a JPEG source. Its pixels are decoded on
// first use, under mu: a kept frame may be read from another goroutine (the ring answers
// corrections).
type jpegFrame struct {
	mu   sync.Mutex
	data gocv.Mat // the JPEG bytes, 1×N CV_8U
	size image.Point
	view gocv.Mat // the finest reduced decode made so far (empty: none)
	div  int      // its divisor
	bad  bool     // a decode failed: the frame's pixels are black
	// onBad, when set, is told of a decode that failed (the camera logs it)
	onBad func()
	// onFlawed, when set, is told of a decode that was not clean: libjpeg repaired the
	// picture, or TurboJPEG could not decode it and left it to imdecode
	onFlawed func(error)
	// imdecoded: a decode was left to imdecode
	imdecoded bool
	// held, when set, is the block of store that data lies in (StoreJPEG): released on close
	held  *jpegBlock
	store *JPEGStore
}

// jpegFlags decode a video frame: colour, and no EXIF rotation (a stream's frames carry none,
// and the header's size must stay the frame's size).
const jpegFlags = gocv.IMReadColor | gocv.IMReadIgnoreOrientation

// reducedFlags are the decode flags by log2 of the divisor.
var reducedFlags = [...]gocv.IMReadFlag{jpegFlags, gocv.IMReadReducedColor2 | gocv.IMReadIgnoreOrientation,
	gocv.IMReadReducedColor4 | gocv.IMReadIgnoreOrientation, gocv.IMReadReducedColor8 | gocv.IMReadIgnoreOrientation}

// maxJPEGPixels bounds the picture a JPEG frame (or a GenICam frame) may say it is (twice 8K):
// a corrupt or hostile header must not make the black frame of its size that an undecodable
// JPEG becomes.
const maxJPEGPixels = 2 * 7680 * 4320

// maxSide bounds a GenICam frame's width and height as its leader gives them, before their
// product (with maxJPEGPixels) is taken: two 32-bit sizes could overflow it.
const maxSide = 1 << 16

// errNotJPEG: a source read in passthrough delivered a packet that is not a JPEG picture.
var errNotJPEG = errors.New("not a JPEG picture")

// JPEGSize reads the size of a baseline or progressive JPEG picture from its header,
// without decoding it. It stops at the first frame header (SOF), so it reads only the head
// of the data; an error says what is wrong with it.
func JPEGSize(b []byte) (image.Point, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return image.Point{}, fmt.Errorf("%w: it does not start with a JPEG start-of-image marker (FF D8)", errNotJPEG)
	}
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return image.Point{}, fmt.Errorf("%w: byte %d is 0x%02X where a marker (FF) was expected", errNotJPEG, i, b[i])
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // markers without a length
			i += 2
			continue
		case m == 0xD9 || m == 0xDA:
			return image.Point{}, fmt.Errorf("%w: no frame header (SOF) before the image data", errNotJPEG)
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			return image.Point{}, fmt.Errorf("%w: segment FF%02X at byte %d has length %d, beyond the %d bytes", errNotJPEG, m, i, n, len(b))
		}
		// SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC)
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			if n < 8 {
				return image.Point{}, fmt.Errorf("%w: frame header of %d bytes is too short", errNotJPEG, n)
			}
			h := int(b[i+5])<<8 | int(b[i+6])
			w := int(b[i+7])<<8 | int(b[i+8])
			if w == 0 || h == 0 {
				return image.Point{}, fmt.Errorf("%w: frame header says %dx%d", errNotJPEG, w, h)
			}
			return image.Pt(w, h), nil
		}
		i += 2 + n
	}
	return image.Point{}, fmt.Errorf("%w: the header ends before a frame header (SOF)", errNotJPEG)
}

// setJPEG makes f a JPEG frame holding data (taken over: f closes it), whose header
// must give its size.
func (f *Frame) setJPEG(data gocv.Mat) error {
	b, err := data.DataPtrUint8()
	if err != nil || data.Rows() != 1 {
		return fmt.Errorf("%w: the source delivered a %dx%d picture, not encoded bytes", errNotJPEG, data.Cols(), data.Rows())
	}
	size, err := JPEGSize(b)
	if err != nil {
		return err
	}
	if size.X*size.Y > maxJPEGPixels {
		return fmt.Errorf("%w: its header says %dx%d, larger than any camera's picture", errNotJPEG, size.X, size.Y)
	}
	f.jpeg = &jpegFrame{data: data, size: size}
	return nil
}

// decode decodes the JPEG at 1/div of its size (div 1, 2, 4 or 8): by TurboJPEG (repairing
// what libjpeg repairs), or OpenCV's imdecode where TurboJPEG cannot (turbojpeg.go). A
// picture neither can decode gives black pixels of the right size, and marks the frame bad:
// the frame goes on, its steps never see an empty Mat.
func (j *jpegFrame) decode(div int) gocv.Mat {
	if j.data.Ptr() == nil {
		return gocv.Mat{} // closed: read after Close, as an empty Mat
	}
	b, err := j.data.DataPtrUint8()
	var m gocv.Mat
	if err == nil {
		// a picture under 8 pixels both ways TurboJPEG may scale by another factor of the
		// same size (5/8 for 1/2): imdecode's pixels are the ones asked for
		if div > 1 && max(j.size.X, j.size.Y) < 8 {
			err = errTurboJPEG
		} else if m, err = decodeTurbo(b, j.size, div); err != nil && j.onFlawed != nil {
			j.onFlawed(err)
		}
		if errors.Is(err, errTurboJPEG) {
			j.imdecoded = true
			m, err = gocv.IMDecode(b, reducedFlags[log2(div)])
		} else {
			err = nil // decoded, or repaired
		}
	}
	w, h := (j.size.X+div-1)/div, (j.size.Y+div-1)/div
	if err != nil || m.Empty() || m.Cols() != w || m.Rows() != h || m.Type() != gocv.MatTypeCV8UC3 {
		if err == nil {
			m.Close()
		}
		if !j.bad && j.onBad != nil {
			j.onBad()
		}
		j.bad = true
		return gocv.NewMatWithSizeFromScalar(gocv.Scalar{}, h, w, gocv.MatTypeCV8UC3)
	}
	return m
}

func log2(div int) int {
	switch div {
	case 2:
		return 1
	case 4:
		return 2
	case 8:
		return 3
	}
	return 0
}

// View returns the pixels of region r of the frame as a picture at least w×h where it can:
// for a frame from a JPEG source, a decode at 1/2, 1/4 or 1/8 of the size (the coarsest that
// keeps r at least w×h, or a finer one already decoded), with r in its coordinates; for any
// other frame, or when the frame's full pixels are decoded already, Mat() and r itself. The
// view stays valid until Close. The detector's input and the quality figures come from
// views; crops for the classifier come from Mat(), at full resolution.
func (f *Frame) View(r image.Rectangle, w, h int) (gocv.Mat, image.Rectangle) {
	j := f.jpeg
	if j == nil {
		return f.mat, r
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if f.mat.Ptr() != nil {
		return f.mat, r
	}
	div := 8
	for div > 1 && (r.Dx()/div < w || r.Dy()/div < h) {
		div /= 2
	}
	if div == 1 {
		f.mat = j.decode(1)
		return f.mat, r
	}
	if j.view.Ptr() == nil || j.div > div {
		closeMat(&j.view)
		j.view, j.div = j.decode(div), div
	}
	d := j.div
	vr := image.Rect(r.Min.X/d, r.Min.Y/d, (r.Max.X+d-1)/d, (r.Max.Y+d-1)/d)
	return j.view, vr.Intersect(image.Rect(0, 0, j.view.Cols(), j.view.Rows()))
}

// Encoded reports whether the frame holds its source's JPEG, decoded only as needed.
func (f *Frame) Encoded() bool { return f.jpeg != nil }

// Compact frees a JPEG frame's decoded pixels, keeping its JPEG: a frame kept for later
// (the ring) costs its compressed size, and is decoded again if it is read. Other frames
// are left as they are.
func (f *Frame) Compact() {
	j := f.jpeg
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	closeMat(&f.mat)
	closeMat(&j.view)
	j.div = 0
}

// Bytes is the memory the frame's pixels hold now: its JPEG and what of it is decoded, or
// its decoded pixels.
func (f *Frame) Bytes() int64 {
	j := f.jpeg
	if j == nil {
		return matBytes(f.mat)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return matBytes(j.data) + matBytes(f.mat) + matBytes(j.view)
}

func matBytes(m gocv.Mat) int64 {
	if m.Ptr() == nil {
		return 0
	}
	return int64(m.Total()) * int64(m.ElemSize())
}

// cloneJPEG copies the JPEG of j (not its decoded pixels).
func (j *jpegFrame) clone() *jpegFrame {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.data.Ptr() == nil {
		return &jpegFrame{size: j.size} // a clone of a closed frame is closed
	}
	return &jpegFrame{data: j.data.Clone(), size: j.size}
}

// close frees the JPEG and the view; the caller holds mu.
func (j *jpegFrame) close() {
	closeMat(&j.data)
	closeMat(&j.view)
	if j.held != nil {
		j.store.release(j.held)
		j.held, j.store = nil, nil
	}
}

// closeMat frees *m if it holds pixels.
func closeMat(m *gocv.Mat) {
	if m.Ptr() != nil {
		m.Close()
	}
}

// FrameOfJPEG makes a Frame of a JPEG picture (Seq 1, Pos -1, captured now) that is decoded
// only as its readers need, as a frame from an MJPEG source is. The bytes are copied. Close
// it when done.
func FrameOfJPEG(b []byte) (*Frame, error) {
	if _, err := JPEGSize(b); err != nil {
		return nil, err
	}
	view, err := gocv.NewMatFromBytes(1, len(b), gocv.MatTypeCV8U, b) // over b, not a copy
	if err != nil {
		return nil, fmt.Errorf("jpeg to frame: %w", err)
	}
	data := view.Clone()
	view.Close()
	f := &Frame{Camera: "image", Seq: 1, Captured: time.Now(), Pos: -1}
	if err := f.setJPEG(data); err != nil {
		data.Close()
		return nil, err
	}
	return f, nil
}
