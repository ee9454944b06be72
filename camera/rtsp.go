package camera

import (
	"fmt"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/cvedge/cvedge/configs"
)

// rtspTimeout is how long rtspsrc waits on the RTSP connection (tcp-timeout) and for the
// first UDP packets (timeout) before the open or the read fails: the 5 s the FFmpeg path
// has too (ffmpegTimeouts), so a camera that stops answering is reopened, not waited on.
const rtspTimeout = 5 * time.Second

// rtspViaGStreamer reports whether the camera opens through GStreamer's rtspsrc: an rtsp://
// or rtsps:// stream whose rtsp.transport is tcp or udp. OpenCV's FFmpeg backend takes its
// options only from OPENCV_FFMPEG_CAPTURE_OPTIONS, one environment variable for the whole
// process, so it cannot give two cameras two transports; rtspsrc takes them per pipeline.
func rtspViaGStreamer(src Source, cfg configs.Camera) bool {
	t := cfg.RTSP.Transport
	return src.Kind == KindStream && configs.IsRTSP(src.Target) && (t == configs.RTSPTCP || t == configs.RTSPUDP)
}

// rtspPipeline is the pipeline that opens an rtsp:// camera over one transport: rtspsrc
// with the camera's jitter buffer, decodebin (H.264, H.265 or MJPEG, whichever decoder is
// installed), BGR frames, and an appsink that keeps only the newest frame.
func rtspPipeline(url string, r configs.RTSP) string {
	us := rtspTimeout.Microseconds()
	return fmt.Sprintf(`rtspsrc location="%s" protocols=%s latency=%d tcp-timeout=%d timeout=%d `+
		`! decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink name=%s drop=true max-buffers=1 sync=false`,
		gstQuote(url), r.Transport, r.Latency.Milliseconds(), us, us, gstSinkName)
}

// gstQuote escapes a value for a double-quoted property of gst_parse_launch.
func gstQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// openRTSP opens an rtsp:// camera through rtspsrc, with the transport of its config, and
// waits for its first frame. The pipeline runs in gstCapture, whose reads are bounded: a
// camera that goes silent over UDP sends no end of stream, and OpenCV's GStreamer backend
// would wait for its next frame for good.
func openRTSP(src Source, cfg configs.Camera) (grabber, error) {
	g, err := startGst(rtspPipeline(src.Target, cfg.RTSP), rtspTimeout, 2*rtspTimeout)
	if err != nil {
		return nil, configs.RedactError(fmt.Errorf("cannot open stream %s over %s (GStreamer rtspsrc): %w: check the address, the user and password, and that the camera serves RTSP over %s (or set rtsp.transport: auto)",
			src.Target, cfg.RTSP.Transport, err, cfg.RTSP.Transport))
	}
	return &rtspCapture{gstCapture: g, desc: fmt.Sprintf("stream %s over %s", Redact(src.Target), cfg.RTSP.Transport)}, nil
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
