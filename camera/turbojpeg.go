package camera

/*
#cgo LDFLAGS: -lturbojpeg
#include <stdio.h>
#include <turbojpeg.h>

// cvedge_tj_decode decodes the JPEG picture src (n bytes), whose frame header says it is
// full_w×full_h, into dst as w×h BGR pixels (rows of 3*w bytes): libjpeg-turbo picks the
// scaling (1/2, 1/4, 1/8) that gives w×h. It returns 0 when the picture decoded whole and
// clean, -1 otherwise; msg then says why. A warning (corrupt data, bytes between markers)
// stops it too: TurboJPEG 2.1 reports a fatal error that follows a warning as a warning,
// with the pixels unwritten, so only a clean decode can be trusted.
static int cvedge_tj_decode(const unsigned char *src, unsigned long n, int full_w, int full_h,
		unsigned char *dst, int w, int h, char *msg, int msglen) {
	tjhandle t = tjInitDecompress();
	if (t == NULL) {
		snprintf(msg, msglen, "%s", tjGetErrorStr2(NULL));
		return -1;
	}
	int rc = 0, hw = 0, hh = 0, ss = 0, cs = 0;
	if (tjDecompressHeader3(t, src, n, &hw, &hh, &ss, &cs) != 0) {
		snprintf(msg, msglen, "%s", tjGetErrorStr2(t));
		rc = -1;
	} else if (hw != full_w || hh != full_h) {
		snprintf(msg, msglen, "libjpeg reads a %dx%d picture where the first frame header says %dx%d", hw, hh, full_w, full_h);
		rc = -1;
	} else if (tjDecompress2(t, src, n, dst, w, 3 * w, h, TJPF_BGR, TJFLAG_STOPONWARNING) != 0) {
		snprintf(msg, msglen, "%s", tjGetErrorStr2(t));
		rc = -1;
	}
	tjDestroy(t);
	return rc;
}
*/
import "C"

import (
	"errors"
	"image"
	"unsafe"

	"gocv.io/x/gocv"
)

// JPEG frames are decoded by libjpeg-turbo's TurboJPEG API straight into BGR pixels, the
// order OpenCV and the models' tensorizer read. OpenCV's imdecode (built against the same
// libjpeg-turbo on Debian) decodes to RGB and swaps the channels in a loop of its own: a
// whole 1080p frame took it a quarter longer (BenchmarkJPEGDecode1080p). The pixels are the
// same (TestTurboJPEGDecodesAsIMDecode). A picture TurboJPEG cannot decode whole and clean
// goes to imdecode, which decodes it as before: one it cannot turn into BGR (CMYK), and a
// corrupt one, which imdecode decodes with libjpeg's repairs or refuses (a black frame).

// errTurboJPEG: TurboJPEG did not decode the picture whole and clean; imdecode gets a try.
var errTurboJPEG = errors.New("turbojpeg")

// decodeTurbo is turboDecode; a test replaces it.
var decodeTurbo = turboDecode

// turboDecode decodes the JPEG b, whose header says it is size, at 1/div of it (div 1, 2, 4
// or 8), into a new BGR Mat of the scaled size (rounded up, as libjpeg scales).
func turboDecode(b []byte, size image.Point, div int) (gocv.Mat, error) {
	if len(b) == 0 {
		return gocv.Mat{}, errTurboJPEG
	}
	w, h := (size.X+div-1)/div, (size.Y+div-1)/div
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	dst, err := m.DataPtrUint8()
	if err != nil || len(dst) < 3*w*h {
		m.Close()
		return gocv.Mat{}, errTurboJPEG
	}
	var msg [200]C.char
	rc := C.cvedge_tj_decode((*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)), C.int(size.X), C.int(size.Y),
		(*C.uchar)(unsafe.Pointer(&dst[0])), C.int(w), C.int(h), &msg[0], C.int(len(msg)))
	if rc < 0 {
		m.Close()
		return gocv.Mat{}, errors.Join(errTurboJPEG, errors.New(C.GoString(&msg[0])))
	}
	return m, nil
}
