package camera

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// The few GStreamer calls the check needs, found at run time in the libgstreamer that
// OpenCV's GStreamer backend uses, so that building needs no GStreamer headers.
typedef struct { unsigned int domain; int code; char *message; } cvedge_gerror;

static void *cvedge_gst;
static int (*cvedge_gst_init_check)(int *, char ***, cvedge_gerror **);
static void *(*cvedge_gst_parse_launch)(const char *, cvedge_gerror **);
static void *(*cvedge_gst_object_ref_sink)(void *);
static void (*cvedge_gst_object_unref)(void *);
static void (*cvedge_g_error_free)(cvedge_gerror *);
static unsigned int (*cvedge_gst_parse_error_quark)(void);
static void (*cvedge_gst_segtrap_set_enabled)(int);
static int (*cvedge_gst_segtrap_is_enabled)(void);

// cvedge_gst_load returns 1 when GStreamer is loaded and initialized, else 0 with *why set.
static int cvedge_gst_load(const char **why) {
	if (cvedge_gst) return 1;
	void *h = dlopen("libgstreamer-1.0.so.0", RTLD_NOW | RTLD_GLOBAL);
	if (!h) { *why = dlerror(); return 0; }
	cvedge_gst_init_check = dlsym(h, "gst_init_check");
	cvedge_gst_parse_launch = dlsym(h, "gst_parse_launch");
	cvedge_gst_object_ref_sink = dlsym(h, "gst_object_ref_sink");
	cvedge_gst_object_unref = dlsym(h, "gst_object_unref");
	cvedge_gst_parse_error_quark = dlsym(h, "gst_parse_error_quark");
	cvedge_g_error_free = dlsym(h, "g_error_free");
	cvedge_gst_segtrap_set_enabled = dlsym(h, "gst_segtrap_set_enabled");
	cvedge_gst_segtrap_is_enabled = dlsym(h, "gst_segtrap_is_enabled");
	if (!cvedge_gst_init_check || !cvedge_gst_parse_launch || !cvedge_gst_object_ref_sink ||
		!cvedge_gst_object_unref || !cvedge_gst_parse_error_quark || !cvedge_g_error_free ||
		!cvedge_gst_segtrap_set_enabled || !cvedge_gst_segtrap_is_enabled) {
		*why = "libgstreamer-1.0.so.0 lacks gst_parse_launch or its helpers";
		return 0;
	}
	// While it loads a plugin, GStreamer swaps the process's SIGSEGV handler for one of its
	// own (no SA_ONSTACK, no SA_SIGINFO) that prints "Caught a segmentation fault while
	// loading plugin file" and exits: a fault the Go runtime handles (a nil dereference
	// turned into a panic) in any goroutine during that window would end the agent. The
	// setting is process-wide, so it also covers the plugins OpenCV's backend loads.
	cvedge_gst_segtrap_set_enabled(0);
	cvedge_gerror *err = NULL;
	if (!cvedge_gst_init_check(NULL, NULL, &err)) {
		*why = "gst_init_check failed";
		if (err) cvedge_g_error_free(err);
		return 0;
	}
	cvedge_gst = h;
	return 1;
}

static int cvedge_gst_segtrap(void) { return cvedge_gst && cvedge_gst_segtrap_is_enabled(); }

// cvedge_gst_parse builds the pipeline (its elements are created, not started) and frees
// it. It returns 0 when GStreamer parsed it without complaint, else 1 with the parse error's
// code (-1 when not a parse error) and message, to be freed by the caller.
static int cvedge_gst_parse(const char *pipeline, int *code, char **message) {
	cvedge_gerror *err = NULL;
	void *el = cvedge_gst_parse_launch(pipeline, &err);
	if (el) {
		cvedge_gst_object_ref_sink(el);
		cvedge_gst_object_unref(el);
	}
	if (!err) {
		if (el) return 0;
		*code = -1;
		*message = NULL;
		return 1;
	}
	*code = err->domain == cvedge_gst_parse_error_quark() ? err->code : -1;
	*message = err->message ? strdup(err->message) : NULL;
	cvedge_g_error_free(err);
	return 1;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unsafe"
)

// GStreamer's parse error codes (GstParseError).
const (
	gstParseSyntax        = 0
	gstParseNoSuchElement = 1
	gstParseNoSuchProp    = 2
)

var (
	gstOnce sync.Once
	gstWhy  string // why GStreamer could not be loaded; "" when it was
)

// checkPipeline has GStreamer parse a camera's pipeline before OpenCV opens it. OpenCV 4.6
// waits forever on a pipeline whose first element is not installed and says only "not
// opened" for the others, so a missing element, a property an element lacks and a syntax
// error are caught here, with GStreamer's own parser, and named. The elements are created
// and freed at once: nothing is started, no device is opened. When libgstreamer cannot be
// loaded, nothing is checked (OpenCV then says what it can).
func checkPipeline(pipeline string) error {
	gstOnce.Do(func() {
		var why *C.char
		if C.cvedge_gst_load(&why) == 0 {
			gstWhy = C.GoString(why)
			if gstWhy == "" {
				gstWhy = "libgstreamer-1.0.so.0 not found"
			}
		}
	})
	if gstWhy != "" {
		return nil
	}
	cs := C.CString(pipeline)
	defer C.free(unsafe.Pointer(cs))
	var (
		code C.int
		msg  *C.char
	)
	if C.cvedge_gst_parse(cs, &code, &msg) == 0 {
		return nil
	}
	text := "GStreamer could not build it"
	if msg != nil {
		text = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return pipelineError(int(code), text)
}

// segtrap says whether GStreamer's own SIGSEGV handler is installed while it loads plugins
// (it must not be, see cvedge_gst_load).
func segtrap() bool { return C.cvedge_gst_segtrap() != 0 }

// quoted finds the first name GStreamer quotes in a message: no element "nosuchelement".
var quoted = regexp.MustCompile(`["“„«']([^"”“»']+)["”“»']`)

// pipelineError turns GStreamer's parse error into one that says what to do.
func pipelineError(code int, msg string) error {
	msg = Redact(msg)
	name := ""
	if m := quoted.FindStringSubmatch(msg); m != nil {
		name = m[1]
	}
	switch {
	case code == gstParseNoSuchElement && name != "":
		return gstMissing{fmt.Errorf("GStreamer element %q is not installed: install the plugin package that provides it (gst-inspect-1.0 %s; Debian's are gstreamer1.0-plugins-base, -good, -bad, -ugly, -libav), or fix its name in cameras[].source", name, name)}
	case code == gstParseNoSuchElement:
		return gstMissing{fmt.Errorf("a GStreamer element of the pipeline is not installed (%s): install the plugin package that provides it, or fix cameras[].source", msg)}
	case code == gstParseNoSuchProp:
		return fmt.Errorf("GStreamer pipeline: %s: fix the property in cameras[].source (gst-inspect-1.0 ELEMENT lists its properties)", msg)
	case code == gstParseSyntax:
		return fmt.Errorf("GStreamer pipeline: %s: fix cameras[].source (elements joined by '!', properties as name=value)", msg)
	}
	return errors.New("GStreamer pipeline: " + strings.TrimSuffix(msg, ".") + ": fix cameras[].source (try it with gst-launch-1.0, autovideosink in place of appsink)")
}
