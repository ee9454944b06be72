package camera

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/configs"
)

// Kind is the kind of frame source.
type Kind string

// Source kinds.
const (
	KindUSB       Kind = "usb"       // V4L2 device: index, /dev/videoN or /dev/v4l/by-id/...
	KindStream    Kind = "stream"    // rtsp://, http(s):// MJPEG, ...
	KindGStreamer Kind = "gstreamer" // a pipeline ending in appsink
	KindFile      Kind = "file"      // a video file
	KindFolder    Kind = "folder"    // a folder of images, in name order
	KindGenICam   Kind = "genicam"   // a GigE Vision or USB3 Vision camera, through Aravis
)

// Source is a parsed camera source string.
type Source struct {
	Kind Kind
	// Target is what gets opened: a device path, URL, pipeline, file or folder.
	Target string
	// Index is the device index for a USB camera given by number, else -1.
	Index int
}

// Live reports whether the source is a live camera rather than a recording.
func (s Source) Live() bool {
	return s.Kind == KindUSB || s.Kind == KindStream || s.Kind == KindGStreamer || s.Kind == KindGenICam
}

// Exclusive reports whether the source is a device that one program at a time can open: a
// USB camera, or a GenICam camera (one controller). A reload does not try such a source
// beside the running camera that holds it.
func (s Source) Exclusive() bool { return s.Kind == KindUSB || s.Kind == KindGenICam }

// sourceOf parses a camera's source: for type genicam the camera it names (genicam.camera,
// else source), otherwise the source string (see ParseSource).
func sourceOf(cfg configs.Camera) (Source, error) {
	if cfg.Type != string(KindGenICam) {
		return ParseSource(cfg.Source, cfg.Type)
	}
	return ParseSource(cfg.GenICamCamera(), cfg.Type)
}

var streamSchemes = map[string]bool{"rtsp": true, "rtsps": true, "http": true, "https": true, "rtmp": true, "udp": true, "tcp": true}

// ParseSource works out the kind of source from a camera's source string, or checks it
// against an explicit kind ("auto" or "" guesses). It does not open anything; file and
// folder paths are checked to exist.
func ParseSource(source, kind string) (Source, error) {
	s := strings.TrimSpace(source)
	if s == "" {
		return Source{}, errors.New("source is empty: give a device index, /dev/video path, URL, GStreamer pipeline, file or folder")
	}
	if strings.ContainsRune(s, 0) {
		return Source{}, errors.New("source contains a NUL byte")
	}
	k := Kind(kind)
	if kind == "" || kind == "auto" {
		k = guess(s)
	}
	src := Source{Kind: k, Target: s, Index: -1}
	switch k {
	case KindUSB:
		if n, err := strconv.Atoi(s); err == nil {
			if n < 0 || n > 255 {
				return Source{}, fmt.Errorf("USB camera index %d is out of range 0-255", n)
			}
			src.Index = n
			return src, nil
		}
		if !strings.HasPrefix(s, "/dev/") {
			return Source{}, fmt.Errorf("USB camera %q must be an index (0), /dev/videoN or /dev/v4l/by-id/... path", s)
		}
	case KindStream:
		u, err := url.Parse(s)
		if err != nil || !streamSchemes[strings.ToLower(u.Scheme)] || u.Host == "" {
			return Source{}, fmt.Errorf("stream %q must be a URL such as rtsp://host:554/path or http://host/mjpeg", Redact(s))
		}
	case KindGStreamer:
		if !strings.Contains(s, "appsink") {
			return Source{}, fmt.Errorf("GStreamer pipeline %q must end in appsink (e.g. '... ! videoconvert ! appsink')", Redact(s))
		}
		if err := lintPipeline(s); err != nil {
			return Source{}, err
		}
	case KindFile, KindFolder:
		s = strings.TrimPrefix(s, "file://")
		src.Target = s
		st, err := os.Stat(s)
		if err != nil {
			return Source{}, fmt.Errorf("%s %q: %w", k, s, errors.Unwrap(err))
		}
		if k == KindFile && st.IsDir() {
			return Source{}, fmt.Errorf("%q is a folder; set type: folder or give a video file", s)
		}
		if k == KindFolder && !st.IsDir() {
			return Source{}, fmt.Errorf("%q is not a folder", s)
		}
	case KindGenICam:
		if err := checkGenICam(configs.Camera{Source: s, GenICam: configs.GenICam{PixelFormat: "Mono8"}}); err != nil {
			return Source{}, err
		}
	default:
		return Source{}, fmt.Errorf("type %q is not one of auto, usb, stream, gstreamer, file, folder, genicam", kind)
	}
	return src, nil
}

func guess(s string) Kind {
	if _, err := strconv.Atoi(s); err == nil {
		return KindUSB
	}
	if strings.HasPrefix(s, "/dev/") {
		return KindUSB
	}
	if strings.Contains(s, "!") {
		return KindGStreamer
	}
	if strings.HasPrefix(s, "file://") {
		s = strings.TrimPrefix(s, "file://")
	} else if strings.Contains(s, "://") {
		return KindStream
	}
	if st, err := os.Stat(s); err == nil && st.IsDir() {
		return KindFolder
	}
	return KindFile
}

// Redact hides the secrets of a camera source, or of any text that repeats one (an error
// from OpenCV or GStreamer): URL passwords (rtsp://user:***@host, also inside a pipeline)
// and the values of GStreamer's user-id, user-pw, proxy-id and proxy-pw properties. Sources
// without secrets come back unchanged. It is configs.Redact, the one masking function of
// cvedge (configs cannot import camera; the config printout uses it too).
func Redact(source string) string { return configs.Redact(source) }

// imageExts are the file types a folder source reads.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// IsImage reports whether a file name has an image extension a folder source reads.
func IsImage(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

// OpenCVVersion is the OpenCV version gocv runs on.
func OpenCVVersion() string { return gocv.OpenCVVersion() }
