package pipeline

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
	"gocv.io/x/gocv"
)

// ErrUnchanged marks a frame the motion gate kept from the models: its picture has not
// changed since the last frame that went through them (cameras[].motion).
var ErrUnchanged = errors.New("frame unchanged since the last one through the models: skipped by the motion gate")

// MotionUnchanged is the "motion" of an unchanged report: a prediction message without
// predictions, sent every motion.report_interval while the picture stays the same.
const MotionUnchanged = "unchanged"

// UnchangedReport reports whether a frame the pipeline gave err and msg is an unchanged report
// to publish: the motion gate skipped it (ErrUnchanged), and msg is numbered as the report.
func UnchangedReport(err error, msg *payload.Prediction) bool {
	return errors.Is(err, ErrUnchanged) && msg != nil && msg.Motion == MotionUnchanged && msg.FrameID != 0
}

// motionVerdict is what the motion gate says of a frame.
type motionVerdict int

const (
	motionGo     motionVerdict = iota // through the models
	motionSkip                        // unchanged: not through the models, not published
	motionReport                      // unchanged, and its report is due: published as such
)

// motionGate is the state of a pipeline's motion gate (Options.Motion). The prepare phase
// compares each frame with the reference (the last frame it sent on to the detector) and
// decides; the detect phase, on another goroutine and a frame or two behind, tells it which
// frames had detections.
//
// Why that lag loses no part: prepare numbers the frames it sends on (sent), and detect
// numbers the same frames in the same order (runs), so "the last frame with a detection"
// (lastSeen) is a number in prepare's own count. The frames that prepare decides before
// detect has stored a detection are at most the two in flight, and each of them is compared
// with a reference no older than the frame that had the detection: a frame that shows
// anything new (the part moved, another came in) changed against it and goes on regardless
// of hold; one that shows the same picture has nothing for the models to find that they have
// not found already, and a skipped frame is not a missed frame for tracking (the track step
// leaves frames with an Err alone). From the next frame on, prepare knows and holds the gate
// open for Hold frames after it.
type motionGate struct {
	// prepare's
	m        *preprocess.Motion // nil: the gate is off, or has not checked a frame yet
	sent     int64              // frames sent on to the detector
	last     time.Time          // when the last of them was captured
	changed  time.Time          // when the last frame that changed (or had to go on for hold) was captured
	reported time.Time          // when the last unchanged report was captured
	// detect's, then shared
	runs     int64        // frames the detector ran on, numbered as sent
	lastSeen atomic.Int64 // the number (in sent) of the last frame with a detection; 0: none
}

// check compares img, the picture of a frame captured at at, with the reference and says,
// by the gate's settings cfg, whether the frame goes through the models, is skipped, or is
// skipped and reported.
func (g *motionGate) check(cfg *configs.Motion, img gocv.Mat, at time.Time) motionVerdict {
	if !cfg.Enabled {
		return motionGo
	}
	if g.m == nil {
		g.m = preprocess.NewMotion()
	}
	share := g.m.Changed(img, float32(cfg.PixelDelta)) // 1 for the first frame: no reference yet
	if seen := g.lastSeen.Load(); share > cfg.Threshold || (seen > 0 && g.sent-seen < int64(cfg.Hold)) {
		g.changed = at // changed, or parts were seen lately: look until their tracks end
		return motionGo
	}
	if at.Sub(g.last) >= cfg.MaxInterval {
		return motionGo // the safety net
	}
	if cfg.ReportInterval > 0 && at.Sub(g.changed) >= cfg.ReportInterval && at.Sub(g.reported) >= cfg.ReportInterval {
		g.reported = at
		return motionReport
	}
	return motionSkip
}

// pass notes that the frame last checked, captured at at, goes on to the detector: its
// picture becomes the reference.
func (g *motionGate) pass(at time.Time) {
	if g.m == nil {
		return
	}
	g.m.Keep()
	g.sent++
	g.last = at
}

// ran notes, in the detect phase, that the detector ran on the next frame sent on, and
// whether it kept a detection there; on is whether the gate is on.
func (g *motionGate) ran(on, found bool) {
	if !on {
		return
	}
	g.runs++
	if found {
		g.lastSeen.Store(g.runs)
	}
}

func (g *motionGate) close() {
	if g.m != nil {
		g.m.Close()
	}
}

// report numbers the unchanged report msg of a frame the gate skipped (err ErrUnchanged), on
// the goroutine that completes the frames, so that messages are numbered in the order they
// go out; any other msg is left as it is.
func (p *Pipeline) report(msg *payload.Prediction, err error) {
	if msg == nil || msg.Motion != MotionUnchanged || !errors.Is(err, ErrUnchanged) {
		return
	}
	msg.FrameID = p.o.Frames.Add(1)
	msg.Created = time.Now().UTC()
	msg.LatencyMs.Total = payload.Round(payload.Ms(msg.Created.Sub(msg.Captured)), 3)
	msg.LatencyMs.Queue = payload.Round(msg.LatencyMs.Queue, 3)
	q := &msg.Quality
	for _, v := range []*float64{&q.Sharpness, &q.Brightness, &q.Overexposed, &q.Underexposed} {
		*v = payload.Round(*v, 4)
	}
}
