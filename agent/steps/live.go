package steps

import (
	"context"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// LiveSink takes a camera's annotated frames for the operator station's viewers
// (station.Hub).
type LiveSink interface {
	// Watching reports whether anyone watches camera now.
	Watching(camera string) bool
	// Publish hands the newest annotated frame of camera to its viewers, without blocking.
	Publish(camera string, jpeg []byte)
}

// Live draws a camera's frames with their boxes, tags and track ids, and hands them to the
// operator station: only while someone watches, at most ui.fps frames a second, scaled to
// ui.max_width. A camera nobody watches pays one check per frame.
type Live struct {
	sink    LiveSink
	camera  string
	cfg     configs.UI
	every   time.Duration
	last    time.Time
	onError func(error) // the first encoding error, once
}

// NewLive returns the live step of camera, or nil (no step) when sink is nil: the station is
// off.
func NewLive(sink LiveSink, camera string, cfg configs.UI, env *Env) pipeline.Step {
	if sink == nil {
		return nil
	}
	l := &Live{sink: sink, camera: camera, cfg: cfg, every: time.Duration(float64(time.Second) / cfg.FPS)}
	warned := false
	l.onError = func(err error) {
		if !warned && env != nil && env.Log != nil {
			warned = true
			env.Log.Warn("live view: cannot draw a frame", "component", "ui", "camera", camera, "err", err)
		}
	}
	return l
}

func (l *Live) Name() string { return "live" }

// Handle draws and hands over f when someone watches and the rate allows. A frame that
// failed is shown as it is, without boxes.
func (l *Live) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Frame == nil || f.Closed() || !l.sink.Watching(l.camera) {
		return
	}
	now := time.Now()
	if now.Sub(l.last) < l.every {
		return
	}
	l.last = now
	// a frame from a JPEG source is read at the coarsest reduced size still max_width wide:
	// an idle frame is not decoded whole for the live view. Boxes are fractions of the frame.
	full := f.Bounds()
	width := l.cfg.MaxWidth
	if width <= 0 {
		width = full.Dx()
	}
	img, vr := f.View(full, width, 1)
	var marks []preprocess.Mark
	if f.Err == nil {
		marks = Marks(msg, vr)
	}
	jpeg, err := preprocess.EncodeMarkedJPEG(img, marks, l.cfg.MaxWidth, l.cfg.JPEGQuality, 0)
	if err != nil {
		l.onError(err)
		return
	}
	l.sink.Publish(l.camera, jpeg)
}
