package pipeline

import (
	"errors"
	"fmt"
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

// ErrUnchangedEmpty is ErrUnchanged (errors.Is) for a frame unchanged since a frame that the
// models found nothing in and that went through them because its picture had changed (a part
// left): the models would find nothing in it either. The steps that follow parts (tracking,
// parts, voting) count it as a frame that did not see them, as they would if it had gone
// through, so a part that left ends its track on a still picture as soon as without the gate.
// A frame unchanged since one with detections is left alone: the parts are still where they
// were. So is one after a frame that found nothing on an unchanged picture (it went through
// for hold or max_interval): there the part is likely still in view and the detector's score
// flickered, and the gate holds open until the steps have seen the misses through the models.
var ErrUnchangedEmpty = fmt.Errorf("%w, after a change where they found nothing", ErrUnchanged)

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
// not found already, and a skipped frame unchanged since a frame with detections is not a
// missed frame for tracking (the steps leave ErrUnchanged alone; only ErrUnchangedEmpty, set
// in frame order when the frame compared with had none, counts as a miss). From the next
// frame on, prepare knows and holds the gate open for Hold frames after it.
type motionGate struct {
	// prepare's
	m        *preprocess.Motion // nil: the gate is off, or has not checked a frame yet
	sent     int64              // frames sent on to the detector
	last     time.Time          // when the last of them was captured
	changed  time.Time          // when the last frame that changed (or had to go on for hold) was captured
	reported time.Time          // when the last unchanged report was captured
	// changes says, by number in sent (modulo its length), whether each frame went on because
	// its picture had changed (not for hold or max_interval). prepare writes it before it
	// hands the frame on; detect and complete, at most a few frames behind, read it after.
	changes [8]bool
	now     bool // the frame last checked changed
	// detect's, then shared
	runs     int64        // frames the detector ran on, numbered as sent
	lastSeen atomic.Int64 // the number (in sent) of the last frame with a detection; 0: none
	lastLeft atomic.Int64 // the number of the last frame that changed and had none
	// complete's
	done int64 // frames through the detector, completed or failed, numbered as sent
}

// check compares img, the picture of a frame captured at at, with the reference and says,
// by the gate's settings cfg, whether the frame goes through the models, is skipped, or is
// skipped and reported. misses is how many frames in a row the steps let a part go unseen.
func (g *motionGate) check(cfg *configs.Motion, misses int, img gocv.Mat, at time.Time) motionVerdict {
	if !cfg.Enabled {
		return motionGo
	}
	if g.m == nil {
		g.m = preprocess.NewMotion()
	}
	share := g.m.Changed(img, float32(cfg.PixelDelta)) // 1 for the first frame: no reference yet
	g.now = share > cfg.Threshold
	hold := int64(cfg.Hold)
	seen := g.lastSeen.Load()
	if g.lastLeft.Load() < seen {
		// No frame has changed and found nothing since the last detection: the frames that
		// missed the part since then, if any, showed it standing still. Look until the steps
		// have seen it missed through the models, so that a flickering score ends no track.
		hold = max(hold, int64(misses)+1)
	}
	if g.now || (seen > 0 && g.sent-seen < hold) {
		g.changed = at // changed, or parts were seen lately
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
	g.changes[g.sent%int64(len(g.changes))] = g.now
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
	} else if g.changes[g.runs%int64(len(g.changes))] {
		g.lastLeft.Store(g.runs)
	}
}

// completed says, in the completing goroutine, for the next frame sent on, whether it went
// on because its picture changed; on is whether the gate is on.
func (g *motionGate) completed(on bool) (changed bool) {
	if !on {
		return false
	}
	g.done++
	return g.changes[g.done%int64(len(g.changes))]
}

func (g *motionGate) close() {
	if g.m != nil {
		g.m.Close()
	}
}

// report settles err, the error of a frame that did not complete, on the goroutine that
// completes the frames, in their order. A frame the gate skipped (ErrUnchanged) becomes
// ErrUnchangedEmpty when the models found nothing since a frame that changed (empty), and its unchanged
// report msg is numbered, so that messages are numbered in the order they go out. A frame
// that failed in the detector leaves what the models would find unknown. err, settled, is
// returned.
func (p *Pipeline) report(msg *payload.Prediction, err error) error {
	if !errors.Is(err, ErrUnchanged) {
		if !errors.Is(err, ErrGated) { // not kept from the detector: it failed there
			p.motion.completed(p.o.Motion.Enabled)
			p.empty = false
		}
		return err
	}
	if p.empty {
		err = ErrUnchangedEmpty
	}
	if msg == nil || msg.Motion != MotionUnchanged {
		return err
	}
	msg.FrameID = p.o.Frames.Add(1)
	msg.Created = time.Now().UTC()
	msg.LatencyMs.Total = payload.Round(payload.Ms(msg.Created.Sub(msg.Captured)), 3)
	msg.LatencyMs.Queue = payload.Round(msg.LatencyMs.Queue, 3)
	q := &msg.Quality
	for _, v := range []*float64{&q.Sharpness, &q.Brightness, &q.Overexposed, &q.Underexposed} {
		*v = payload.Round(*v, 4)
	}
	return err
}
