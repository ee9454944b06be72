package camera

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The Aravis stream calls (Aravis 0.8: arvcamera.h, arvstream.h, arvbuffer.h, arvdevice.h),
// found at run time in libaravis like the settings calls of genicam.go, so that a GenICam
// camera streams straight from Aravis: no aravissrc, no OpenCV capture.
typedef struct { unsigned int domain; int code; char *message; } cvs_gerror;

static int cvs_loaded;
static void *(*cvs_create_stream)(void *, void *, void *, cvs_gerror **);
static unsigned int (*cvs_get_payload)(void *, cvs_gerror **);
static void (*cvs_set_acquisition_mode)(void *, int, cvs_gerror **);
static void *(*cvs_buffer_new)(size_t, void *);
static void (*cvs_push_buffer)(void *, void *);
static void *(*cvs_timeout_pop_buffer)(void *, uint64_t);
static void (*cvs_start_acquisition)(void *, cvs_gerror **);
static void (*cvs_stop_acquisition)(void *, cvs_gerror **);
static int (*cvs_buffer_get_status)(void *);
static int (*cvs_buffer_get_payload_type)(void *);
static const void *(*cvs_buffer_get_data)(void *, size_t *);
static int (*cvs_buffer_get_image_width)(void *);
static int (*cvs_buffer_get_image_height)(void *);
static uint32_t (*cvs_buffer_get_image_pixel_format)(void *);
static void (*cvs_software_trigger)(void *, cvs_gerror **);
static void *(*cvs_get_device)(void *);
static int (*cvs_read_register)(void *, uint64_t, uint32_t *, cvs_gerror **);
static void (*cvs_unref)(void *);
static void (*cvs_error_free)(cvs_gerror *);

#define CVS_SYM(var, name) if (!(var = dlsym(h, name))) return name;

// cvs_load finds the stream calls; it returns NULL, or the name of the call it lacks.
static const char *cvs_load(void) {
	if (cvs_loaded) return NULL;
	void *h = dlopen("libaravis-0.8.so.0", RTLD_NOW | RTLD_GLOBAL);
	if (!h) return "libaravis-0.8.so.0";
	CVS_SYM(cvs_create_stream, "arv_camera_create_stream")
	CVS_SYM(cvs_get_payload, "arv_camera_get_payload")
	CVS_SYM(cvs_set_acquisition_mode, "arv_camera_set_acquisition_mode")
	CVS_SYM(cvs_buffer_new, "arv_buffer_new")
	CVS_SYM(cvs_push_buffer, "arv_stream_push_buffer")
	CVS_SYM(cvs_timeout_pop_buffer, "arv_stream_timeout_pop_buffer")
	CVS_SYM(cvs_start_acquisition, "arv_camera_start_acquisition")
	CVS_SYM(cvs_stop_acquisition, "arv_camera_stop_acquisition")
	CVS_SYM(cvs_buffer_get_status, "arv_buffer_get_status")
	CVS_SYM(cvs_buffer_get_payload_type, "arv_buffer_get_payload_type")
	CVS_SYM(cvs_buffer_get_data, "arv_buffer_get_data")
	CVS_SYM(cvs_buffer_get_image_width, "arv_buffer_get_image_width")
	CVS_SYM(cvs_buffer_get_image_height, "arv_buffer_get_image_height")
	CVS_SYM(cvs_buffer_get_image_pixel_format, "arv_buffer_get_image_pixel_format")
	CVS_SYM(cvs_software_trigger, "arv_camera_software_trigger")
	CVS_SYM(cvs_get_device, "arv_camera_get_device")
	CVS_SYM(cvs_read_register, "arv_device_read_register")
	CVS_SYM(cvs_unref, "g_object_unref")
	CVS_SYM(cvs_error_free, "g_error_free")
	cvs_loaded = 1;
	return NULL;
}

static char *cvs_take(cvs_gerror *e) {
	char *m = strdup(e->message ? e->message : "unknown Aravis error");
	cvs_error_free(e);
	return m;
}

// cvs_start creates the camera's stream with nbuf buffers of its payload and starts the
// acquisition. It returns the stream, or NULL with *err (malloc'd).
static void *cvs_start(void *cam, int nbuf, char **err) {
	cvs_gerror *e = NULL;
	cvs_set_acquisition_mode(cam, 0, NULL); // ARV_ACQUISITION_MODE_CONTINUOUS, where it has the feature
	unsigned int payload = cvs_get_payload(cam, &e);
	if (e) { *err = cvs_take(e); return NULL; }
	if (payload == 0) { *err = strdup("the camera reports a payload of 0 bytes"); return NULL; }
	void *s = cvs_create_stream(cam, NULL, NULL, &e);
	if (e) {
		if (s) cvs_unref(s);
		*err = cvs_take(e);
		return NULL;
	}
	if (!s) { *err = strdup("Aravis created no stream"); return NULL; }
	for (int i = 0; i < nbuf; i++) cvs_push_buffer(s, cvs_buffer_new(payload, NULL));
	cvs_start_acquisition(cam, &e);
	if (e) { cvs_unref(s); *err = cvs_take(e); return NULL; }
	return s;
}

// cvs_stop stops the acquisition and frees the stream and its buffers.
static void cvs_stop(void *cam, void *s) {
	cvs_stop_acquisition(cam, NULL);
	cvs_unref(s);
}

// A popped buffer, as cvs_pop describes it.
typedef struct {
	void *buf;
	int status, payload_type, w, h;
	uint32_t pf;
	const void *data;
	size_t size;
} cvs_frame;

// cvs_pop waits up to us microseconds for a buffer. It returns 0 when none came, else 1 with
// f filled: the buffer goes back to the stream with cvs_push once read.
static int cvs_pop(void *s, uint64_t us, cvs_frame *f) {
	memset(f, 0, sizeof *f);
	f->buf = cvs_timeout_pop_buffer(s, us);
	if (!f->buf) return 0;
	f->status = cvs_buffer_get_status(f->buf);
	if (f->status != 0) return 1; // ARV_BUFFER_STATUS_SUCCESS
	f->payload_type = cvs_buffer_get_payload_type(f->buf);
	if (f->payload_type != 1 && f->payload_type != 5) return 1; // IMAGE, EXTENDED_CHUNK_DATA
	f->w = cvs_buffer_get_image_width(f->buf);
	f->h = cvs_buffer_get_image_height(f->buf);
	f->pf = cvs_buffer_get_image_pixel_format(f->buf);
	f->data = cvs_buffer_get_data(f->buf, &f->size);
	return 1;
}

static void cvs_push(void *s, void *buf) { cvs_push_buffer(s, buf); }

// cvs_alive reads the camera's first bootstrap register: 0 when it answered, else 1 with
// *err.
static int cvs_alive(void *cam, char **err) {
	cvs_gerror *e = NULL;
	uint32_t v = 0;
	if (!cvs_read_register(cvs_get_device(cam), 0, &v, &e) || e) {
		*err = e ? cvs_take(e) : strdup("no answer");
		return 1;
	}
	return 0;
}

// cvs_trigger sends the camera a software trigger: 0, or 1 with *err.
static int cvs_trigger(void *cam, char **err) {
	cvs_gerror *e = NULL;
	cvs_software_trigger(cam, &e);
	if (e) { *err = cvs_take(e); return 1; }
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

// errNoFrameYet is what a grabber whose read waits in bounded slices returns when a slice
// passed without a frame: nothing is wrong, the reader looks at its context and asks again.
var errNoFrameYet = errors.New("no frame yet")

const (
	// arvPoll is one wait for a buffer: the longest a Close waits for a read that waits.
	arvPoll = 200 * time.Millisecond
	// arvHeard is how long a camera may send nothing before the reader asks it a register: a
	// triggered camera whose line is idle answers and is waited for; one that is gone does
	// not, and is reopened.
	arvHeard = time.Second
	// arvBuffers is how many frames Aravis may hold for the reader: a burst of pulses fills
	// them while the reader copies.
	arvBuffers = 8
	// arvLetGo is how long close waits for Aravis to let a camera go (see close).
	arvLetGo = time.Second
	// arvBadInARow is how many failed buffers in a row mean the stream is broken.
	arvBadInARow = 5
)

// GenICam pixel formats (PFNC values, arvenums.h) the agent turns into BGR.
const (
	pfMono8    = 0x01080001
	pfMono16   = 0x01100007
	pfBayerGR8 = 0x01080008
	pfBayerRG8 = 0x01080009
	pfBayerGB8 = 0x0108000a
	pfBayerBG8 = 0x0108000b
	pfRGB8     = 0x02180014
)

// arvBufferStatus names Aravis's buffer states (ArvBufferStatus).
var arvBufferStatus = map[int]string{-1: "unknown", 1: "cleared", 2: "timeout", 3: "missing packets", 4: "wrong packet id",
	5: "size mismatch", 6: "filling", 7: "aborted"}

var (
	arvStreamOnce sync.Once
	arvStreamWhy  string
	// arvStreams holds the streaming camera of each GenICam camera name in this process, for
	// softwareTrigger.
	arvStreams sync.Map // camera name -> *arvCapture
)

// arvCapture streams a GenICam camera from Aravis's own stream. It keeps the camera open (and
// controlled) while it streams, so settings and stream share one control session. Each wait
// for a frame is bounded (arvPoll): a camera that sends nothing, like a triggered camera on an
// idle line, is waited for as long as it answers its registers, and Close is never held up
// by a wait.
type arvCapture struct {
	name   string
	rate   float64
	log    *slog.Logger
	heard  time.Time // last frame, or last answer of the camera
	bad    int       // failed buffers in a row
	unlock func()

	mu     sync.Mutex // cam and stream against softwareTrigger and close
	cam    unsafe.Pointer
	stream unsafe.Pointer
}

// startArvStream starts the stream of cam (opened and set by openConfigured). It takes over
// cam and unlock: on failure both are released.
func startArvStream(name string, cam unsafe.Pointer, unlock func(), rate float64, log *slog.Logger) (*arvCapture, error) {
	arvStreamOnce.Do(func() {
		if why := C.cvs_load(); why != nil {
			arvStreamWhy = C.GoString(why)
		}
	})
	if arvStreamWhy != "" {
		closeArvCamera(cam)
		unlock()
		return nil, fmt.Errorf("GenICam camera %q: the Aravis library lacks %s: install Aravis 0.8 (apt-get install libaravis-0.8-0) and restart the agent", name, arvStreamWhy)
	}
	var cerr *C.char
	s := C.cvs_start(cam, arvBuffers, &cerr)
	if s == nil {
		closeArvCamera(cam)
		unlock()
		return nil, fmt.Errorf("GenICam camera %q: its stream did not start: %s: check that no other program streams from it and that the host's firewall lets its UDP stream in", name, takeCString(cerr))
	}
	g := &arvCapture{name: name, rate: rate, log: log, heard: time.Now(), unlock: unlock, cam: cam, stream: s}
	arvStreams.Store(name, g)
	return g, nil
}

func (g *arvCapture) read(m *gocv.Mat) error {
	var f C.cvs_frame
	if C.cvs_pop(g.stream, C.uint64_t(arvPoll.Microseconds()), &f) == 0 {
		if time.Since(g.heard) < arvHeard {
			return errNoFrameYet
		}
		var cerr *C.char
		if C.cvs_alive(g.cam, &cerr) != 0 {
			return fmt.Errorf("GenICam camera %q stopped streaming (it does not answer: %s): check its power and network cable; it is reopened", g.name, takeCString(cerr))
		}
		g.heard = time.Now()
		return errNoFrameYet
	}
	defer C.cvs_push(g.stream, f.buf)
	if f.status != 0 || (f.payload_type != 1 && f.payload_type != 5) {
		g.bad++
		why := arvBufferStatus[int(f.status)]
		if f.status == 0 {
			why = fmt.Sprintf("payload type %d, not an image", int(f.payload_type))
		}
		if g.bad >= arvBadInARow {
			return fmt.Errorf("GenICam camera %q stopped streaming (%d frames in a row failed, the last: %s): check its network (packet_size, net.core.rmem_max); it is reopened", g.name, g.bad, why)
		}
		g.log.Error("GenICam frame lost: it arrived incomplete; check the network (packet_size, net.core.rmem_max)", "component", "camera", "genicam", g.name, "why", why)
		return errNoFrameYet
	}
	g.bad = 0
	g.heard = time.Now()
	if f.data == nil {
		return fmt.Errorf("GenICam camera %q: a frame without data came from Aravis", g.name)
	}
	data := unsafe.Slice((*byte)(f.data), int(f.size))
	if err := arvToBGR(data, int(f.w), int(f.h), uint32(f.pf), m); err != nil {
		return fmt.Errorf("GenICam camera %q: %w", g.name, err)
	}
	return nil
}

func (g *arvCapture) fps() float64 { return g.rate }

// close stops the stream and frees it, its buffers and the camera. Aravis waits out its
// register timeouts on a camera that is gone (seconds): after arvLetGo the rest is left to
// finish in the background, holding the camera's control session lock, so that the next open
// of the camera waits for it and the camera's Close does not.
func (g *arvCapture) close() {
	arvStreams.CompareAndDelete(g.name, g)
	g.mu.Lock()
	cam, stream := g.cam, g.stream
	g.cam, g.stream = nil, nil
	g.mu.Unlock()
	if cam == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		C.cvs_stop(cam, stream)
		closeArvCamera(cam)
		g.unlock()
	}()
	t := time.NewTimer(arvLetGo)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.log.Warn("the GenICam camera does not answer: Aravis lets it go in the background", "component", "camera", "genicam", g.name)
	}
}

// softwareTrigger sends a software trigger (TriggerSoftware) to the GenICam camera streaming
// under name in this process, through the session that controls it: a camera takes commands
// only from its controller.
func softwareTrigger(name string) error {
	v, ok := arvStreams.Load(name)
	if !ok {
		return fmt.Errorf("GenICam camera %q is not streaming", name)
	}
	g := v.(*arvCapture)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cam == nil {
		return fmt.Errorf("GenICam camera %q is closed", name)
	}
	var cerr *C.char
	if C.cvs_trigger(g.cam, &cerr) != 0 {
		return fmt.Errorf("GenICam camera %q: software trigger: %s", name, takeCString(cerr))
	}
	return nil
}

// arvToBGR converts one frame of a GenICam pixel format into dst as BGR. data holds at least
// the frame's rows, one after the other without padding.
func arvToBGR(data []byte, w, h int, pf uint32, dst *gocv.Mat) error {
	var (
		typ  gocv.MatType
		bpp  int
		code gocv.ColorConversionCode
	)
	// OpenCV names a Bayer pattern by the second row's second and third pixels: GenICam's
	// BayerRG (RGGB from the top left) is OpenCV's BayerBG.
	switch pf {
	case pfMono8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorGrayToBGR
	case pfMono16:
		typ, bpp, code = gocv.MatTypeCV16UC1, 2, gocv.ColorGrayToBGR
	case pfBayerRG8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerBGToBGR
	case pfBayerGR8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerGBToBGR
	case pfBayerGB8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerGRToBGR
	case pfBayerBG8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerRGToBGR
	case pfRGB8:
		typ, bpp, code = gocv.MatTypeCV8UC3, 3, gocv.ColorBGRToRGB // the same swap
	default:
		return fmt.Errorf("it streams pixel format 0x%08x, which the agent does not convert: set genicam.pixel_format to Mono8, Mono16, RGB8 or a Bayer 8 format", pf)
	}
	if w > maxSide || h > maxSide || w*h > maxJPEGPixels {
		return fmt.Errorf("a frame of %dx%d pixels is larger than any camera's picture: a faulty camera, or a packet not from it", w, h)
	}
	if w <= 0 || h <= 0 || len(data) < w*h*bpp {
		return fmt.Errorf("a frame of %dx%d pixels came with %d bytes, fewer than its pixel format needs", w, h, len(data))
	}
	src := gocv.NewMatWithSize(h, w, typ)
	defer src.Close()
	p, err := src.DataPtrUint8()
	if err != nil || len(p) < w*h*bpp {
		return fmt.Errorf("a frame of %dx%d: no room in the Mat: %v", w, h, err)
	}
	copy(p, data[:w*h*bpp])
	if pf == pfMono16 {
		eight := gocv.NewMat()
		defer eight.Close()
		src.ConvertToWithParams(&eight, gocv.MatTypeCV8U, 1.0/256, 0)
		gocv.CvtColor(eight, dst, code)
		return nil
	}
	gocv.CvtColor(src, dst, code)
	return nil
}
