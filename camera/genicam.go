package camera

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The few Aravis calls that set and read back a GenICam camera's features, found at run
// time in libaravis, so that building needs no Aravis headers
// and an agent without Aravis still runs its other cameras.
typedef struct { unsigned int domain; int code; char *message; } cvedge_arv_gerror;

static void *cvedge_arv;
static void *(*arv_camera_new_p)(const char *, cvedge_arv_gerror **);
static void *(*arv_camera_get_device_p)(void *);
static void *(*arv_device_get_feature_p)(void *, const char *);
static void (*arv_gc_feature_node_set_value_from_string_p)(void *, const char *, cvedge_arv_gerror **);
static const char *(*arv_gc_feature_node_get_value_as_string_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_set_exposure_time_p)(void *, double, cvedge_arv_gerror **);
static double (*arv_camera_get_exposure_time_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_set_exposure_time_auto_p)(void *, int, cvedge_arv_gerror **);
static int (*arv_camera_is_exposure_auto_available_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_set_gain_p)(void *, double, cvedge_arv_gerror **);
static double (*arv_camera_get_gain_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_set_gain_auto_p)(void *, int, cvedge_arv_gerror **);
static int (*arv_camera_is_gain_auto_available_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_set_frame_rate_p)(void *, double, cvedge_arv_gerror **);
static double (*arv_camera_get_frame_rate_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_set_pixel_format_from_string_p)(void *, const char *, cvedge_arv_gerror **);
static const char *(*arv_camera_get_pixel_format_as_string_p)(void *, cvedge_arv_gerror **);
static int (*arv_camera_is_gv_device_p)(void *);
static void (*arv_camera_gv_set_packet_size_p)(void *, int, cvedge_arv_gerror **);
static unsigned int (*arv_camera_gv_get_packet_size_p)(void *, cvedge_arv_gerror **);
static void (*arv_camera_get_region_p)(void *, int *, int *, int *, int *, cvedge_arv_gerror **);
static void (*cvedge_arv_g_object_unref)(void *);
static void (*cvedge_arv_g_error_free)(cvedge_arv_gerror *);

#define CVEDGE_ARV_SYM(name) if (!(name##_p = dlsym(h, #name))) { *why = "libaravis-0.8.so.0 lacks " #name; return 0; }

// cvedge_arv_load returns 1 when libaravis is loaded, else 0 with *why set.
static int cvedge_arv_load(const char **why) {
	if (cvedge_arv) return 1;
	void *h = dlopen("libaravis-0.8.so.0", RTLD_NOW | RTLD_GLOBAL);
	if (!h) { *why = dlerror(); return 0; }
	CVEDGE_ARV_SYM(arv_camera_new)
	CVEDGE_ARV_SYM(arv_camera_get_device)
	CVEDGE_ARV_SYM(arv_device_get_feature)
	CVEDGE_ARV_SYM(arv_gc_feature_node_set_value_from_string)
	CVEDGE_ARV_SYM(arv_gc_feature_node_get_value_as_string)
	CVEDGE_ARV_SYM(arv_camera_set_exposure_time)
	CVEDGE_ARV_SYM(arv_camera_get_exposure_time)
	CVEDGE_ARV_SYM(arv_camera_set_exposure_time_auto)
	CVEDGE_ARV_SYM(arv_camera_is_exposure_auto_available)
	CVEDGE_ARV_SYM(arv_camera_set_gain)
	CVEDGE_ARV_SYM(arv_camera_get_gain)
	CVEDGE_ARV_SYM(arv_camera_set_gain_auto)
	CVEDGE_ARV_SYM(arv_camera_is_gain_auto_available)
	CVEDGE_ARV_SYM(arv_camera_set_frame_rate)
	CVEDGE_ARV_SYM(arv_camera_get_frame_rate)
	CVEDGE_ARV_SYM(arv_camera_set_pixel_format_from_string)
	CVEDGE_ARV_SYM(arv_camera_get_pixel_format_as_string)
	CVEDGE_ARV_SYM(arv_camera_is_gv_device)
	CVEDGE_ARV_SYM(arv_camera_gv_set_packet_size)
	CVEDGE_ARV_SYM(arv_camera_gv_get_packet_size)
	CVEDGE_ARV_SYM(arv_camera_get_region)
	cvedge_arv_g_object_unref = dlsym(h, "g_object_unref");
	cvedge_arv_g_error_free = dlsym(h, "g_error_free");
	if (!cvedge_arv_g_object_unref || !cvedge_arv_g_error_free) {
		*why = "libaravis-0.8.so.0 does not bring g_object_unref and g_error_free";
		return 0;
	}
	cvedge_arv = h;
	return 1;
}

// take moves a GError's message into a malloc'd string (NULL when there was no error).
static char *cvedge_arv_take(cvedge_arv_gerror *e) {
	if (!e) return NULL;
	char *m = strdup(e->message ? e->message : "unknown Aravis error");
	cvedge_arv_g_error_free(e);
	return m;
}

// cvedge_arv_open opens the camera (and takes control of it), or returns NULL with *err.
static void *cvedge_arv_open(const char *name, char **err) {
	cvedge_arv_gerror *e = NULL;
	void *cam = arv_camera_new_p(name, &e);
	if (e) {
		if (cam) cvedge_arv_g_object_unref(cam);
		*err = cvedge_arv_take(e);
		return NULL;
	}
	if (!cam) *err = strdup("Aravis returned no camera");
	return cam;
}

static void cvedge_arv_close(void *cam) { cvedge_arv_g_object_unref(cam); }

// What cvedge_arv_set and cvedge_arv_get act on.
enum { CVEDGE_ARV_FEATURE, CVEDGE_ARV_EXPOSURE, CVEDGE_ARV_GAIN, CVEDGE_ARV_FRAME_RATE,
	CVEDGE_ARV_PIXEL_FORMAT, CVEDGE_ARV_PACKET_SIZE };

// cvedge_arv_set sets one setting. It returns 0 when the camera took the write, -1 when the
// camera has no such feature, 1 with *err when the write failed.
static int cvedge_arv_set(void *cam, int what, const char *name, const char *value, char **err) {
	cvedge_arv_gerror *e = NULL;
	switch (what) {
	case CVEDGE_ARV_FEATURE: {
		void *node = arv_device_get_feature_p(arv_camera_get_device_p(cam), name);
		if (!node) return -1;
		arv_gc_feature_node_set_value_from_string_p(node, value, &e);
		break;
	}
	case CVEDGE_ARV_EXPOSURE:
		if (arv_camera_is_exposure_auto_available_p(cam, NULL))
			arv_camera_set_exposure_time_auto_p(cam, 0, NULL); // ARV_AUTO_OFF
		arv_camera_set_exposure_time_p(cam, strtod(value, NULL), &e);
		break;
	case CVEDGE_ARV_GAIN:
		if (arv_camera_is_gain_auto_available_p(cam, NULL))
			arv_camera_set_gain_auto_p(cam, 0, NULL);
		arv_camera_set_gain_p(cam, strtod(value, NULL), &e);
		break;
	case CVEDGE_ARV_FRAME_RATE:
		arv_camera_set_frame_rate_p(cam, strtod(value, NULL), &e);
		break;
	case CVEDGE_ARV_PIXEL_FORMAT:
		arv_camera_set_pixel_format_from_string_p(cam, value, &e);
		break;
	case CVEDGE_ARV_PACKET_SIZE:
		if (!arv_camera_is_gv_device_p(cam)) return -1;
		arv_camera_gv_set_packet_size_p(cam, atoi(value), &e);
		break;
	}
	if (e) { *err = cvedge_arv_take(e); return 1; }
	return 0;
}

// cvedge_arv_get reads one setting back as text (malloc'd), or returns NULL with *err.
static char *cvedge_arv_get(void *cam, int what, const char *name, char **err) {
	cvedge_arv_gerror *e = NULL;
	char buf[64];
	const char *s = NULL;
	double v = 0;
	switch (what) {
	case CVEDGE_ARV_FEATURE: {
		void *node = arv_device_get_feature_p(arv_camera_get_device_p(cam), name);
		if (!node) { *err = strdup("no such feature"); return NULL; }
		s = arv_gc_feature_node_get_value_as_string_p(node, &e);
		break;
	}
	case CVEDGE_ARV_EXPOSURE: v = arv_camera_get_exposure_time_p(cam, &e); break;
	case CVEDGE_ARV_GAIN: v = arv_camera_get_gain_p(cam, &e); break;
	case CVEDGE_ARV_FRAME_RATE: v = arv_camera_get_frame_rate_p(cam, &e); break;
	case CVEDGE_ARV_PIXEL_FORMAT: s = arv_camera_get_pixel_format_as_string_p(cam, &e); break;
	case CVEDGE_ARV_PACKET_SIZE: v = arv_camera_gv_get_packet_size_p(cam, &e); break;
	}
	if (e) { *err = cvedge_arv_take(e); return NULL; }
	if (what != CVEDGE_ARV_FEATURE && what != CVEDGE_ARV_PIXEL_FORMAT) {
		snprintf(buf, sizeof buf, "%.10g", v);
		s = buf;
	}
	return strdup(s ? s : "");
}

// cvedge_arv_size reads the frame size the camera will stream.
static int cvedge_arv_size(void *cam, int *w, int *h, char **err) {
	cvedge_arv_gerror *e = NULL;
	arv_camera_get_region_p(cam, NULL, NULL, w, h, &e);
	if (e) { *err = cvedge_arv_take(e); return 1; }
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cvedge/cvedge/configs"
)

// GenICam settings as Aravis sets them: a feature by name, or one of Aravis's camera calls,
// which know each vendor's feature names (ExposureTime or ExposureTimeAbs, Gain or GainRaw).
const (
	arvFeature     = C.CVEDGE_ARV_FEATURE
	arvExposure    = C.CVEDGE_ARV_EXPOSURE
	arvGain        = C.CVEDGE_ARV_GAIN
	arvFrameRate   = C.CVEDGE_ARV_FRAME_RATE
	arvPixelFormat = C.CVEDGE_ARV_PIXEL_FORMAT
	arvPacketSize  = C.CVEDGE_ARV_PACKET_SIZE
)

// genicamSetting is one setting of a GenICam camera, in the order it is set.
type genicamSetting struct {
	key   string // the config key, for the log: exposure_us, features[2] ...
	what  C.int  // arvFeature, arvExposure, ...
	name  string // the feature's name, for arvFeature
	value string
	// optional settings are set when the camera has the feature, and not reported otherwise
	// (TriggerSelector on a camera with one trigger).
	optional bool
	// numeric read-backs are compared with a relative tolerance: cameras round to their
	// steps.
	numeric bool
}

// genicamSettings lists what a camera's config asks for, in the order cameras need it: the
// pixel format before the rate it allows, the trigger before the free features.
func genicamSettings(cfg configs.Camera) []genicamSetting {
	g := cfg.GenICam
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	list := []genicamSetting{{key: "pixel_format", what: arvPixelFormat, value: g.PixelFormat}}
	if g.PacketSize > 0 {
		list = append(list, genicamSetting{key: "packet_size", what: arvPacketSize, value: strconv.Itoa(g.PacketSize)})
	}
	if g.ExposureUS != nil {
		list = append(list, genicamSetting{key: "exposure_us", what: arvExposure, value: num(*g.ExposureUS), numeric: true})
	}
	if g.GainDB != nil {
		list = append(list, genicamSetting{key: "gain_db", what: arvGain, value: num(*g.GainDB), numeric: true})
	}
	if g.FrameRate != nil {
		list = append(list, genicamSetting{key: "frame_rate", what: arvFrameRate, value: num(*g.FrameRate), numeric: true})
	}
	trig := "trigger_source"
	if g.TriggerSource != "" && cfg.Trigger == "hardware" {
		list = append(list,
			genicamSetting{key: trig, what: arvFeature, name: "TriggerSelector", value: "FrameStart", optional: true},
			genicamSetting{key: trig, what: arvFeature, name: "TriggerMode", value: "On"},
			genicamSetting{key: trig, what: arvFeature, name: "TriggerSource", value: g.TriggerSource})
	} else {
		// a camera keeps its trigger mode until it is powered off: one left waiting for a
		// line by another program would deliver nothing
		list = append(list,
			genicamSetting{key: trig, what: arvFeature, name: "TriggerSelector", value: "FrameStart", optional: true},
			genicamSetting{key: trig, what: arvFeature, name: "TriggerMode", value: "Off", optional: true})
	}
	for i, f := range g.Features {
		name, value, err := configs.ParseGenICamFeature(f)
		if err != nil {
			continue // validated with the config
		}
		list = append(list, genicamSetting{key: fmt.Sprintf("features[%d]", i), what: arvFeature, name: name, value: value, numeric: isNumber(value)})
	}
	return list
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

var (
	arvOnce sync.Once
	arvWhy  string // why libaravis could not be loaded; "" when it was
	// arvLocks keeps one Aravis control session at a time per camera name in this process
	// (an abandoned open and the next one, a probe): a GigE Vision camera has one
	// controller. Cameras do not wait for one another: opening one that is gone takes
	// Aravis seconds of register timeouts.
	arvLocks sync.Map // camera name -> *sync.Mutex
)

// lockCamera holds the camera's control session lock until the returned func is called.
func lockCamera(name string) func() {
	mu, _ := arvLocks.LoadOrStore(name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// loadAravis loads libaravis once; the error names the camera that needs it.
func loadAravis(camera string) error {
	arvOnce.Do(func() {
		var why *C.char
		if C.cvedge_arv_load(&why) == 0 {
			arvWhy = C.GoString(why)
		}
	})
	if arvWhy != "" {
		return fmt.Errorf("GenICam camera %q: Aravis is not installed (%s): install it (apt-get install libaravis-0.8-0) and restart the agent", camera, arvWhy)
	}
	return nil
}

// genicamReport is what applying a GenICam camera's settings found.
type genicamReport struct {
	ignored []string // settings the camera did not take, each with what it has
	// features are the features (Name=Value) the camera took, in order.
	features      []string
	width, height int // the frame size it streams
}

// applyGenICam opens the camera through Aravis, sets what cfg asks for, reads each setting
// back and closes it again. The settings stay in the camera until it is powered off. It fails
// when the camera cannot be opened.
func applyGenICam(cfg configs.Camera) (genicamReport, error) {
	cam, rep, unlock, err := openConfigured(cfg)
	if err != nil {
		return rep, err
	}
	closeArvCamera(cam)
	unlock()
	return rep, nil
}

// openConfigured opens the camera through Aravis (taking control of it), sets what cfg asks
// for and reads each setting back. It returns the open camera, to be closed with
// closeArvCamera, and the unlock of its control session (lockCamera), to be called after.
func openConfigured(cfg configs.Camera) (unsafe.Pointer, genicamReport, func(), error) {
	var rep genicamReport
	name := cfg.GenICamCamera()
	if err := loadAravis(name); err != nil {
		return nil, rep, nil, err
	}
	unlock := lockCamera(name)
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var cerr *C.char
	cam := C.cvedge_arv_open(cname, &cerr)
	if cam == nil {
		unlock()
		return nil, rep, nil, fmt.Errorf("GenICam camera %q cannot be opened: %s: check that it is powered and on this box's network (arv-tool-0.8 lists the cameras Aravis sees, with their names), that cameras[].genicam.camera names it, and that no other program holds it", name, takeCString(cerr))
	}
	for _, s := range genicamSettings(cfg) {
		msg, status := setGenICam(cam, s)
		if msg != "" {
			rep.ignored = append(rep.ignored, msg)
		}
		if s.what == arvFeature && status == 0 {
			rep.features = append(rep.features, s.name+"="+s.value)
		}
	}
	var w, h C.int
	if C.cvedge_arv_size(cam, &w, &h, &cerr) != 0 {
		C.cvedge_arv_close(cam)
		unlock()
		return nil, rep, nil, fmt.Errorf("GenICam camera %q: reading its frame size: %s", name, takeCString(cerr))
	}
	rep.width, rep.height = int(w), int(h)
	return cam, rep, unlock, nil
}

// closeArvCamera frees a camera opened by openConfigured, ending its control session.
func closeArvCamera(cam unsafe.Pointer) { C.cvedge_arv_close(cam) }

// readGenICam reads features of a camera without setting anything: what it holds now, for a
// check. The camera must not be streaming to another program.
func readGenICam(camera string, features []string) (map[string]string, error) {
	if err := loadAravis(camera); err != nil {
		return nil, err
	}
	defer lockCamera(camera)()
	cname := C.CString(camera)
	defer C.free(unsafe.Pointer(cname))
	var cerr *C.char
	cam := C.cvedge_arv_open(cname, &cerr)
	if cam == nil {
		return nil, fmt.Errorf("GenICam camera %q cannot be opened: %s", camera, takeCString(cerr))
	}
	defer C.cvedge_arv_close(cam)
	out := map[string]string{}
	for _, f := range features {
		v, err := getGenICam(cam, genicamSetting{what: arvFeature, name: f})
		if err != nil {
			return nil, fmt.Errorf("GenICam camera %q: reading %s: %w", camera, f, err)
		}
		out[f] = v
	}
	return out, nil
}

// setGenICam sets s and reads it back. It returns a line for the log when the camera did
// not take it ("" when it did), and the write's outcome: 0 written, -1 no such feature, 1
// refused.
func setGenICam(cam unsafe.Pointer, s genicamSetting) (string, int) {
	cname := C.CString(s.name)
	defer C.free(unsafe.Pointer(cname))
	cvalue := C.CString(s.value)
	defer C.free(unsafe.Pointer(cvalue))
	label := s.key
	if s.what == arvFeature && !strings.HasPrefix(s.key, "features") {
		label = s.key + " (" + s.name + ")"
	} else if s.what == arvFeature {
		label = s.key + " " + s.name
	}
	var cerr *C.char
	status := int(C.cvedge_arv_set(cam, s.what, cname, cvalue, &cerr))
	switch status {
	case -1:
		if s.optional {
			return "", status
		}
		return fmt.Sprintf("%s: the camera has no such feature", label), status
	case 1:
		msg := takeCString(cerr)
		if got, _ := getGenICam(cam, s); got != "" {
			return fmt.Sprintf("%s: asked %s, refused (%s), camera has %s", label, s.value, msg, got), status
		}
		return fmt.Sprintf("%s: asked %s, refused (%s)", label, s.value, msg), status
	}
	got, err := getGenICam(cam, s)
	if err != nil {
		return fmt.Sprintf("%s: asked %s, cannot read it back (%v)", label, s.value, err), status
	}
	if !sameSetting(s, got) {
		return fmt.Sprintf("%s: asked %s, camera has %s", label, s.value, got), status
	}
	return "", status
}

func getGenICam(cam unsafe.Pointer, s genicamSetting) (string, error) {
	cname := C.CString(s.name)
	defer C.free(unsafe.Pointer(cname))
	var cerr *C.char
	v := C.cvedge_arv_get(cam, s.what, cname, &cerr)
	if v == nil {
		return "", errors.New(takeCString(cerr))
	}
	return takeCString(v), nil
}

// sameSetting reports whether the value read back is the one asked for: numbers within 1%
// (cameras round exposure and rate to their steps), names exactly.
func sameSetting(s genicamSetting, got string) bool {
	if !s.numeric {
		return got == s.value
	}
	want, err1 := strconv.ParseFloat(s.value, 64)
	have, err2 := strconv.ParseFloat(got, 64)
	if err1 != nil || err2 != nil {
		return got == s.value
	}
	return math.Abs(have-want) <= 0.01*math.Max(math.Abs(want), 1e-9) || math.Abs(have-want) < 1e-9
}

// takeCString returns a malloc'd C string as Go text and frees it.
func takeCString(s *C.char) string {
	if s == nil {
		return "unknown error"
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s)
}

// checkGenICam checks what opening a GenICam camera needs of its config: a pixel format the
// agent converts, and a camera name that is whole text (validated with the config too:
// configs.validateGenICam).
func checkGenICam(cfg configs.Camera) error {
	if !slices.Contains(configs.GenICamPixelFormats, cfg.GenICam.PixelFormat) {
		return fmt.Errorf("genicam.pixel_format %q is not one of %s", cfg.GenICam.PixelFormat, strings.Join(configs.GenICamPixelFormats, ", "))
	}
	name := cfg.GenICamCamera()
	if strings.ContainsAny(name, "\"\\!\n\r\x00") {
		return fmt.Errorf("GenICam camera %q: the name holds a quote, backslash or '!': fix cameras[].genicam.camera", name)
	}
	return nil
}

// openGenICam opens a GenICam camera, applies its settings, logs what it did not take, and
// starts its stream from Aravis (arvstream.go), on the same control session.
func openGenICam(src Source, cfg configs.Camera, log *slog.Logger) (grabber, error) {
	if err := checkGenICam(cfg); err != nil {
		return nil, err
	}
	start := time.Now()
	cam, rep, unlock, err := openConfigured(cfg)
	if err != nil {
		return nil, err
	}
	if len(rep.ignored) > 0 {
		log.Warn("the camera ignored settings", "component", "camera", "ignored", strings.Join(rep.ignored, "; "))
	}
	var rate float64
	if cfg.GenICam.FrameRate != nil && cfg.Trigger != "hardware" {
		rate = *cfg.GenICam.FrameRate
	}
	g, err := startArvStream(src.Target, cam, unlock, rate, log)
	if err != nil {
		return nil, err
	}
	log.Info("GenICam camera set", "component", "camera", "genicam", src.Target, "width", rep.width, "height", rep.height,
		"pixel_format", cfg.GenICam.PixelFormat, "trigger", cfg.Trigger, "ms", time.Since(start).Milliseconds())
	return g, nil
}
