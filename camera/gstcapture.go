package camera

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The GStreamer and appsink calls a pipeline of the agent's own needs, found at run time like
// those of gstreamer.go, so that building needs no GStreamer headers.
typedef struct { unsigned int domain; int code; char *message; } cvg_error;
// GstMapInfo, whose layout is part of GStreamer's stable ABI.
typedef struct {
	void *memory; int flags; uint8_t *data; size_t size; size_t maxsize;
	void *user_data[4]; void *reserved[4];
} cvg_mapinfo;

static int cvg_loaded;
static void *(*cvg_parse_launch)(const char *, cvg_error **);
static void *(*cvg_object_ref_sink)(void *);
static void (*cvg_object_unref)(void *);
static void *(*cvg_bin_get_by_name)(void *, const char *);
static int (*cvg_set_state)(void *, int);
static void *(*cvg_get_bus)(void *);
static void *(*cvg_bus_pop_filtered)(void *, int);
static void (*cvg_message_parse_error)(void *, cvg_error **, char **);
static void (*cvg_mini_object_unref)(void *);
static void (*cvg_error_free)(cvg_error *);
static void (*cvg_free)(void *);
static void *(*cvg_try_pull_sample)(void *, uint64_t);
static int (*cvg_is_eos)(void *);
static void *(*cvg_sample_get_buffer)(void *);
static void *(*cvg_sample_get_caps)(void *);
static void *(*cvg_caps_get_structure)(void *, unsigned int);
static int (*cvg_structure_get_int)(void *, const char *, int *);
static int (*cvg_buffer_map)(void *, cvg_mapinfo *, int);
static unsigned int (*cvg_core_error_quark)(void);
static unsigned int (*cvg_stream_error_quark)(void);
static void (*cvg_buffer_unmap)(void *, cvg_mapinfo *);

#define CVG_STATE_NULL 1
#define CVG_STATE_PLAYING 4
#define CVG_MESSAGE_ERROR 2
// GST_CORE_ERROR_MISSING_PLUGIN and GST_STREAM_ERROR_CODEC_NOT_FOUND: no decoder for the stream.
#define CVG_CORE_MISSING_PLUGIN 12
#define CVG_STREAM_CODEC_NOT_FOUND 6

static int cvg_load(void) {
	if (cvg_loaded) return 1;
	void *g = dlopen("libgstreamer-1.0.so.0", RTLD_NOW | RTLD_GLOBAL);
	void *a = dlopen("libgstapp-1.0.so.0", RTLD_NOW | RTLD_GLOBAL);
	void *gl = dlopen("libglib-2.0.so.0", RTLD_NOW | RTLD_GLOBAL);
	if (!g || !a || !gl) return 0;
	cvg_parse_launch = dlsym(g, "gst_parse_launch");
	cvg_object_ref_sink = dlsym(g, "gst_object_ref_sink");
	cvg_object_unref = dlsym(g, "gst_object_unref");
	cvg_bin_get_by_name = dlsym(g, "gst_bin_get_by_name");
	cvg_set_state = dlsym(g, "gst_element_set_state");
	cvg_get_bus = dlsym(g, "gst_element_get_bus");
	cvg_bus_pop_filtered = dlsym(g, "gst_bus_pop_filtered");
	cvg_message_parse_error = dlsym(g, "gst_message_parse_error");
	cvg_mini_object_unref = dlsym(g, "gst_mini_object_unref");
	cvg_sample_get_buffer = dlsym(g, "gst_sample_get_buffer");
	cvg_sample_get_caps = dlsym(g, "gst_sample_get_caps");
	cvg_caps_get_structure = dlsym(g, "gst_caps_get_structure");
	cvg_structure_get_int = dlsym(g, "gst_structure_get_int");
	cvg_buffer_map = dlsym(g, "gst_buffer_map");
	cvg_buffer_unmap = dlsym(g, "gst_buffer_unmap");
	cvg_core_error_quark = dlsym(g, "gst_core_error_quark");
	cvg_stream_error_quark = dlsym(g, "gst_stream_error_quark");
	cvg_error_free = dlsym(gl, "g_error_free");
	cvg_free = dlsym(gl, "g_free");
	cvg_try_pull_sample = dlsym(a, "gst_app_sink_try_pull_sample");
	cvg_is_eos = dlsym(a, "gst_app_sink_is_eos");
	if (!cvg_parse_launch || !cvg_object_ref_sink || !cvg_object_unref || !cvg_bin_get_by_name ||
		!cvg_set_state || !cvg_get_bus || !cvg_bus_pop_filtered || !cvg_message_parse_error ||
		!cvg_mini_object_unref || !cvg_sample_get_buffer || !cvg_sample_get_caps ||
		!cvg_caps_get_structure || !cvg_structure_get_int || !cvg_buffer_map ||
		!cvg_buffer_unmap || !cvg_core_error_quark || !cvg_stream_error_quark || !cvg_error_free || !cvg_free || !cvg_try_pull_sample || !cvg_is_eos)
		return 0;
	cvg_loaded = 1;
	return 1;
}

typedef struct { void *pipeline, *sink, *bus; } cvg_pipe;

// cvg_start builds the pipeline, finds the appsink named sinkname and sets it playing. It
// returns NULL with *msg set (to be freed with free) when that fails.
static cvg_pipe *cvg_start(const char *launch, const char *sinkname, char **msg) {
	cvg_error *err = NULL;
	void *p = cvg_parse_launch(launch, &err);
	if (err) {
		*msg = strdup(err->message ? err->message : "cannot build the pipeline");
		cvg_error_free(err);
		if (p) { cvg_object_ref_sink(p); cvg_object_unref(p); }
		return NULL;
	}
	if (!p) { *msg = strdup("cannot build the pipeline"); return NULL; }
	cvg_object_ref_sink(p);
	void *sink = cvg_bin_get_by_name(p, sinkname);
	if (!sink) { *msg = strdup("the pipeline has no appsink"); cvg_object_unref(p); return NULL; }
	cvg_pipe *c = calloc(1, sizeof *c);
	c->pipeline = p; c->sink = sink; c->bus = cvg_get_bus(p);
	cvg_set_state(p, CVG_STATE_PLAYING);
	return c;
}

// cvg_error_message returns the text of the first error on the pipeline's bus (to be freed),
// or NULL when there is none; *missing says whether the error is a missing plugin (a decoder
// that is not installed). gst_bus_pop_filtered discards the other messages before it, so
// nothing piles up on a bus that nobody watches.
static char *cvg_error_message(cvg_pipe *c, int *missing) {
	void *m = cvg_bus_pop_filtered(c->bus, CVG_MESSAGE_ERROR);
	if (!m) return NULL;
	cvg_error *err = NULL;
	char *debug = NULL;
	cvg_message_parse_error(m, &err, &debug);
	char *out = strdup(err && err->message ? err->message : "error");
	*missing = err && ((err->domain == cvg_core_error_quark() && err->code == CVG_CORE_MISSING_PLUGIN) ||
		(err->domain == cvg_stream_error_quark() && err->code == CVG_STREAM_CODEC_NOT_FOUND));
	if (err) cvg_error_free(err);
	if (debug) cvg_free(debug);
	cvg_mini_object_unref(m);
	return out;
}

// cvg_pull waits up to timeout_ns for a sample. It returns 1 with the sample (to be freed with
// cvg_sample_free) and its width, height and row stride; 0 when none came in time; -1 at the
// end of the stream; -2 for a sample it cannot read.
static int cvg_pull(cvg_pipe *c, uint64_t timeout_ns, void **sample, int *w, int *h) {
	void *s = cvg_try_pull_sample(c->sink, timeout_ns);
	if (!s) return cvg_is_eos(c->sink) ? -1 : 0;
	void *caps = cvg_sample_get_caps(s);
	void *st = caps ? cvg_caps_get_structure(caps, 0) : NULL;
	if (!st || !cvg_structure_get_int(st, "width", w) || !cvg_structure_get_int(st, "height", h) ||
		*w <= 0 || *h <= 0 || !cvg_sample_get_buffer(s)) {
		cvg_mini_object_unref(s);
		return -2;
	}
	*sample = s;
	return 1;
}

// cvg_copy copies a BGR sample of w x h into dst (rows of w*3 bytes). It returns 0 when the
// buffer is too small for that size.
static int cvg_copy(void *sample, int w, int h, uint8_t *dst) {
	cvg_mapinfo info;
	memset(&info, 0, sizeof info);
	void *buf = cvg_sample_get_buffer(sample);
	if (!cvg_buffer_map(buf, &info, 1)) return 0;
	size_t row = (size_t)w * 3, stride = info.size / (size_t)h;
	int ok = stride >= row;
	for (int y = 0; ok && y < h; y++) memcpy(dst + y * row, info.data + y * stride, row);
	cvg_buffer_unmap(buf, &info);
	return ok;
}

static void cvg_sample_free(void *s) { cvg_mini_object_unref(s); }

static void cvg_stop(cvg_pipe *c) {
	cvg_set_state(c->pipeline, CVG_STATE_NULL);
	cvg_object_unref(c->bus);
	cvg_object_unref(c->sink);
	cvg_object_unref(c->pipeline);
	free(c);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

var (
	gstAppOnce sync.Once
	gstAppOK   bool // the appsink calls were found
)

// errGstMissing is in the chain of an error that comes from a part of GStreamer that is not
// installed here (the library, an element, a decoder), not from the camera.
var errGstMissing = errors.New("a part of GStreamer is not installed")

// gstMissing marks err as caused by something GStreamer lacks (errGstMissing).
type gstMissing struct{ error }

func (e gstMissing) Unwrap() []error { return []error{e.error, errGstMissing} }

// gstSinkName names the appsink of the pipelines the agent builds (gstCapture).
const gstSinkName = "cvedgesink"

// gstPoll is how long one wait for a sample lasts before the bus is looked at for errors.
const gstPoll = 100 * time.Millisecond

// gstCapture runs a GStreamer pipeline of the agent's own (one that ends in an appsink named
// gstSinkName, BGR) without OpenCV's GStreamer backend. OpenCV 4.6 waits for a sample with
// no time limit: a stream that stops without an end-of-stream (an RTSP camera over UDP that
// loses power) would block the read, and the camera's Close, for good. Here each wait is
// bounded, the bus's errors become the read's error ("Unauthorized", "Could not connect"),
// and a stream that sends nothing for silence ends the read.
type gstCapture struct {
	p       *C.cvg_pipe
	silence time.Duration
	first   unsafe.Pointer // a sample pulled by the open, handed out by the first read
	fw, fh  C.int
}

// startGst builds and starts the pipeline and waits up to wait for its first frame.
func startGst(launch string, silence, wait time.Duration) (*gstCapture, error) {
	if err := checkPipeline(launch); err != nil { // loads and initializes GStreamer
		return nil, err
	}
	if gstWhy != "" {
		return nil, gstMissing{fmt.Errorf("GStreamer is not available (%s): install gstreamer1.0-plugins-base", gstWhy)}
	}
	gstAppOnce.Do(func() { gstAppOK = C.cvg_load() != 0 })
	if !gstAppOK {
		return nil, gstMissing{errors.New("libgstapp-1.0.so.0 (appsink) cannot be loaded: install gstreamer1.0-plugins-base")}
	}
	cl, cs := C.CString(launch), C.CString(gstSinkName)
	defer C.free(unsafe.Pointer(cl))
	defer C.free(unsafe.Pointer(cs))
	var msg *C.char
	p := C.cvg_start(cl, cs, &msg)
	if p == nil {
		defer C.free(unsafe.Pointer(msg))
		return nil, errors.New(Redact(C.GoString(msg)))
	}
	g := &gstCapture{p: p, silence: wait}
	var sample unsafe.Pointer
	if err := g.pull(&sample, &g.fw, &g.fh); err != nil {
		g.close()
		return nil, err
	}
	g.first = sample
	g.silence = silence
	return g, nil
}

// busError returns the pipeline's first error, or nil; a missing decoder is a gstMissing.
func (g *gstCapture) busError() error {
	var missing C.int
	if m := C.cvg_error_message(g.p, &missing); m != nil {
		defer C.free(unsafe.Pointer(m))
		err := errors.New(Redact(C.GoString(m)))
		if missing != 0 {
			return gstMissing{err}
		}
		return err
	}
	return nil
}

// pull waits for the next sample, up to g.silence.
func (g *gstCapture) pull(sample *unsafe.Pointer, w, h *C.int) error {
	start := time.Now()
	for {
		if err := g.busError(); err != nil {
			return err
		}
		switch C.cvg_pull(g.p, C.uint64_t(gstPoll.Nanoseconds()), sample, w, h) {
		case 1:
			return nil
		case -1:
			if err := g.busError(); err != nil {
				return err
			}
			return errors.New("the stream ended (the source closed it)")
		case -2:
			return errors.New("a frame without width and height came from the pipeline")
		}
		if time.Since(start) >= g.silence {
			return fmt.Errorf("no frame for %s", g.silence)
		}
	}
}

func (g *gstCapture) read(m *gocv.Mat) error {
	var (
		sample unsafe.Pointer
		w, h   C.int
	)
	if g.first != nil {
		sample, w, h = g.first, g.fw, g.fh
		g.first = nil
	} else if err := g.pull(&sample, &w, &h); err != nil {
		return err
	}
	defer C.cvg_sample_free(sample)
	if m.Rows() != int(h) || m.Cols() != int(w) || m.Type() != gocv.MatTypeCV8UC3 {
		m.Close()
		*m = gocv.NewMatWithSize(int(h), int(w), gocv.MatTypeCV8UC3)
	}
	data, err := m.DataPtrUint8()
	if err != nil || len(data) < int(w)*int(h)*3 {
		return fmt.Errorf("frame of %dx%d: no room in the Mat: %v", w, h, err)
	}
	if C.cvg_copy(sample, w, h, (*C.uint8_t)(unsafe.Pointer(&data[0]))) == 0 {
		return fmt.Errorf("a %dx%d frame from the pipeline is smaller than %dx%d BGR pixels", w, h, w, h)
	}
	return nil
}

func (g *gstCapture) fps() float64 { return 0 }

func (g *gstCapture) close() {
	if g.first != nil {
		C.cvg_sample_free(g.first)
		g.first = nil
	}
	if g.p != nil {
		C.cvg_stop(g.p)
		g.p = nil
	}
}
