package camera

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/configs"
)

// rtspTimeout is how long rtspsrc waits on the RTSP connection (tcp-timeout) and for the
// first UDP packets (timeout) before the open or the read fails: the 5 s the FFmpeg path
// has too (ffmpegTimeouts), so a camera that stops answering is reopened, not waited on.
const rtspTimeout = 5 * time.Second

// rtspViaGStreamer reports whether the camera opens through GStreamer's rtspsrc: an rtsp://
// or rtsps:// stream whose rtsp.transport is not ffmpeg, and, for auto, that GStreamer has
// not already failed to play (ffmpegFallback). OpenCV's FFmpeg backend takes its options only
// from OPENCV_FFMPEG_CAPTURE_OPTIONS, one environment variable for the whole process, so it
// cannot give two cameras two transports, and its read waits 30 s on a silent camera;
// rtspsrc takes the transport per pipeline, and gstCapture bounds its reads.
func rtspViaGStreamer(src Source, cfg configs.Camera) bool {
	if src.Kind != KindStream || !configs.IsRTSP(src.Target) {
		return false
	}
	switch cfg.RTSP.Transport {
	case configs.RTSPFFmpeg:
		return false
	case configs.RTSPAuto:
		_, fell := ffmpegFallback.Load(src.Target)
		return !fell
	}
	return true
}

// ffmpegFallback holds the rtsp:// URLs of auto cameras that GStreamer could not play
// (rtspsrc or the stream's decoder not installed): they open through FFmpeg until the agent
// restarts, so each reconnect does not try GStreamer again.
var ffmpegFallback sync.Map

// rtspPipeline is the pipeline that opens an rtsp:// camera: rtspsrc with the camera's
// transport (auto: rtspsrc's own order, UDP and then TCP when no UDP packet came within
// rtspTimeout) and jitter buffer, decodebin (H.264, H.265 or MJPEG, whichever decoder is
// installed), BGR frames, and an appsink that keeps only the newest frame.
func rtspPipeline(url string, r configs.RTSP) string {
	us := rtspTimeout.Microseconds()
	protocols := ""
	if r.Transport != configs.RTSPAuto {
		protocols = "protocols=" + r.Transport + " "
	}
	return fmt.Sprintf(`rtspsrc location="%s" %slatency=%d tcp-timeout=%d timeout=%d `+
		`! decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink name=%s drop=true max-buffers=1 sync=false`,
		gstQuote(url), protocols, r.Latency.Milliseconds(), us, us, gstSinkName)
}

// gstQuote escapes a value for a double-quoted property of gst_parse_launch.
func gstQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// openRTSP opens an rtsp:// camera through rtspsrc, with the transport of its config, and
// waits for its first frame (auto: long enough for the UDP attempt and then TCP). The
// pipeline runs in gstCapture, whose reads are bounded: a camera that goes silent over UDP
// sends no end of stream, and OpenCV's GStreamer backend would wait for its next frame for
// good. An error from a part of GStreamer that is not installed carries errGstMissing.
func openRTSP(src Source, cfg configs.Camera) (grabber, error) {
	t := cfg.RTSP.Transport
	over, wait := "over "+t, 2*rtspTimeout
	if t == configs.RTSPAuto {
		over, wait = "(rtsp.transport auto: UDP, then TCP)", 3*rtspTimeout
	}
	g, err := startGst(rtspPipeline(src.Target, cfg.RTSP), rtspTimeout, wait)
	if err != nil {
		hint := fmt.Sprintf("that the camera serves RTSP over %s (or set rtsp.transport: auto)", t)
		if t == configs.RTSPAuto {
			hint = "that the camera serves RTSP (or try rtsp.transport: tcp, or ffmpeg)"
		}
		return nil, configs.RedactError(fmt.Errorf("cannot open stream %s %s (GStreamer rtspsrc): %w: check the address, the user and password, and %s",
			src.Target, over, err, hint))
	}
	return &rtspCapture{gstCapture: g, desc: fmt.Sprintf("stream %s %s", Redact(src.Target), over)}, nil
}

// openRTSPAuto opens an auto camera through rtspsrc and falls back to FFmpeg (ffmpeg, which
// opens it with OpenCV) when GStreamer cannot play it here: rtspsrc, decodebin or the
// stream's decoder is not installed. The fallback is logged once and kept (ffmpegFallback).
func openRTSPAuto(src Source, cfg configs.Camera, log *slog.Logger, ffmpeg func() (grabber, error)) (grabber, error) {
	g, err := openRTSP(src, cfg)
	if err == nil || !errors.Is(err, errGstMissing) {
		return g, err
	}
	ffmpegFallback.Store(src.Target, true)
	log.Warn("rtsp.transport auto: GStreamer cannot play this stream here, so it opens through FFmpeg, whose read waits 30 s on a camera that goes silent: install gstreamer1.0-plugins-good and gstreamer1.0-libav and restart the agent to use GStreamer (or set rtsp.transport: ffmpeg to say so)",
		"source", Redact(src.Target), "why", err)
	return ffmpeg()
}

// rtspCapture reads an rtspsrc pipeline; a read that fails says which stream stopped.
type rtspCapture struct {
	*gstCapture
	desc string
}

func (c *rtspCapture) read(m *gocv.Mat) error {
	if err := c.gstCapture.read(m); err != nil {
		return fmt.Errorf("%s stopped delivering frames: %w", c.desc, err)
	}
	return nil
}
