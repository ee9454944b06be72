package camera

/*
#cgo LDFLAGS: -lturbojpeg
#include <stdio.h>
#include <turbojpeg.h>

// cvedge_tj_decode_into decodes the JPEG picture src (n bytes), whose frame header says it is
// full_w×full_h, into dst as w×h BGR pixels (rows of 3*w bytes): libjpeg-turbo picks the
// scaling (1/2, 1/4, 1/8) that gives w×h. It returns 0 when the picture decoded clean, 1 when
// it decoded whole with flaws libjpeg repaired (corrupt data, data cut short: grey from there,
// stray bytes between markers), -1 when it did not decode; msg then says why.
//
// TurboJPEG 2.1 reports a fatal error that follows a warning as a warning, with the pixels
// from there on unwritten. libjpeg writes the rows top to bottom and, when it repairs, every
// one of them; so the last row is filled with a pattern first, and a "warning" that leaves it
// unwritten is the failure it is.
// CVEDGE_MARK is the pattern byte i of the last row holds before the decode.
#define CVEDGE_MARK(i) ((unsigned char)((i) * 151 + 89))

static int cvedge_tj_decode_into(const unsigned char *src, unsigned long n, int full_w, int full_h,
		unsigned char *dst, int w, int h, char *msg, int msglen) {
	tjhandle t = tjInitDecompress();
	if (t == NULL) {
		snprintf(msg, msglen, "%s", tjGetErrorStr2(NULL));
		return -1;
	}
	int rc = 0, hw = 0, hh = 0, ss = 0, cs = 0;
	// a failed header read that still gave the size (a warning, such as stray bytes, or a
	// sampling TurboJPEG has no name for) goes on: tjDecompress2 reads the header again and
	// says what it makes of the picture
	if (tjDecompressHeader3(t, src, n, &hw, &hh, &ss, &cs) != 0 && (hw == 0 || hh == 0)) {
		snprintf(msg, msglen, "%s", tjGetErrorStr2(t));
		rc = -1;
	} else if (hw != full_w || hh != full_h) {
		snprintf(msg, msglen, "libjpeg reads a %dx%d picture where the first frame header says %dx%d", hw, hh, full_w, full_h);
		rc = -1;
	} else {
		unsigned char *last = dst + (size_t)3 * w * (h - 1);
		for (int i = 0; i < 3 * w; i++) {
			last[i] = CVEDGE_MARK(i);
		}
		if (tjDecompress2(t, src, n, dst, w, 3 * w, h, TJPF_BGR, 0) != 0) {
			snprintf(msg, msglen, "%s", tjGetErrorStr2(t));
			rc = -1;
			if (tjGetErrorCode(t) == TJERR_WARNING) {
				for (int i = 0; i < 3 * w; i++) {
					if (last[i] != CVEDGE_MARK(i)) {
						rc = 1; // the last row written: repaired
						break;
					}
				}
			}
		}
	}
	tjDestroy(t);
	return rc;
}

// cvedge_tj_result is what cvedge_tj_decode returns: rc, and msg when rc is not 0. It is
// returned by value, so that the message takes no memory of Go's.
typedef struct {
	int rc;
	char msg[200];
} cvedge_tj_result;

static cvedge_tj_result cvedge_tj_decode(const unsigned char *src, unsigned long n, int full_w, int full_h,
		unsigned char *dst, int w, int h) {
	cvedge_tj_result r;
	r.msg[0] = 0;
	r.rc = cvedge_tj_decode_into(src, n, full_w, full_h, dst, w, h, r.msg, sizeof r.msg);
	return r;
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
// whole 1080p frame took it a quarter longer (BenchmarkJPEGDecode1080p). A sound picture's
// pixels are the same (TestTurboJPEGDecodesAsIMDecode). A picture with flaws libjpeg repairs
// is decoded whole, missing data grey; a picture TurboJPEG cannot decode goes to imdecode,
// which decodes what it can (CMYK) and refuses the rest (a black frame).

// errTurboJPEG: TurboJPEG did not decode the picture; imdecode gets a try.
var errTurboJPEG = errors.New("turbojpeg")

// errJPEGRepaired: TurboJPEG decoded the picture whole, repairing flaws (the pixels stand).
var errJPEGRepaired = errors.New("libjpeg repaired a flawed picture")

// decodeTurbo is turboDecode; a test replaces it.
var decodeTurbo = turboDecode

// decodeFill, when 0-255, fills a picture's pixels before TurboJPEG decodes into them: tests
// decode twice with two fills to see that every pixel is written. -1 (always, but in tests):
// no fill, the pixels are whatever the new Mat holds until the decode writes them.
var decodeFill = -1

// turboDecode decodes the JPEG b, whose header says it is size, at 1/div of it (div 1, 2, 4
// or 8), into a new BGR Mat of the scaled size (rounded up, as libjpeg scales). With an error
// wrapping errJPEGRepaired the Mat holds the repaired picture; with errTurboJPEG it is empty.
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
	if decodeFill >= 0 {
		for i := range dst {
			dst[i] = byte(decodeFill)
		}
	}
	// the message comes back inside the result, by value: a buffer of Go's handed to C
	// would be one allocation a decode
	r := C.cvedge_tj_decode((*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)), C.int(size.X), C.int(size.Y),
		(*C.uchar)(unsafe.Pointer(&dst[0])), C.int(w), C.int(h))
	switch {
	case r.rc < 0:
		m.Close()
		return gocv.Mat{}, errors.Join(errTurboJPEG, errors.New(message(r)))
	case r.rc > 0:
		return m, errors.Join(errJPEGRepaired, errors.New(message(r)))
	}
	return m, nil
}

// message is the text of r's message (NUL-terminated by snprintf). It takes r by value: the
// copy C.GoString points into is made only for a decode that failed, where taking the address
// of the result itself would move it to Go's heap on every decode.
func message(r C.cvedge_tj_result) string { return C.GoString(&r.msg[0]) }
