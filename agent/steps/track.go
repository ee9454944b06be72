package steps

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync/atomic"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// partTracker gives each detection the trackId of the part it shows (cameras[].tracking):
// a part is expected where its last box moves at its last velocity (constant velocity, as on
// a conveyor), and each detection is matched to the expected part it overlaps best, or, when
// it overlaps none, whose expected centre is nearest within max_jump. A part unseen for more
// than max_missed frames, or expected wholly outside the frame, ends. It belongs to one camera.
type partTracker struct {
	cfg    configs.Tracking
	ids    *atomic.Uint64 // the camera's last trackId, for the whole boot
	tracks []*partTrack
	// scratch
	pairs []pair
	taken []bool
}

type partTrack struct {
	id     uint64
	box    payload.Box // where it was last seen
	vx, vy float32     // its velocity: box widths per frame, in the frame's fraction
	missed int         // frames since it was last seen
	seen   int
}

// pair is a possible match of a detection with a track, by score (higher is better).
type pair struct {
	det, track int
	score      float32
}

// byScore orders pairs by their score, highest first.
func byScore(a, b pair) int { return cmp.Compare(b.score, a.score) }

// NewTrack returns the tracking step of a camera, or nil when tracking is off or the camera
// has no detector. ids holds the camera's last trackId and goes on through reloads.
func NewTrack(cfg configs.Tracking, detector bool, ids *atomic.Uint64) pipeline.Step {
	if !cfg.Enabled || !detector {
		return nil
	}
	return &partTracker{cfg: cfg, ids: ids}
}

func (t *partTracker) Name() string { return "track" }

// Handle sets the TrackID of every detection of a processed frame.
func (t *partTracker) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	t.frame(msg.Predictions, aspect(msg))
}

// aspect is the frame's height over its width (1 when unknown), to measure distances in
// pixels' proportions.
func aspect(msg *payload.Prediction) float32 {
	if msg.Width <= 0 || msg.Height <= 0 {
		return 1
	}
	return float32(msg.Height) / float32(msg.Width)
}

// frame matches one frame's detections to the parts in view, starts a track for each new
// part and ends those gone.
func (t *partTracker) frame(dets []payload.Tag, aspect float32) {
	t.pairs = t.pairs[:0]
	diag := float32(math.Sqrt(float64(1 + aspect*aspect)))
	maxJump := float32(t.cfg.MaxJump)
	jump := maxJump * diag // max_jump in the frame's width
	for ti, tr := range t.tracks {
		want := tr.expected()
		for di := range dets {
			b := dets[di].BoundingBox
			if b == nil {
				continue
			}
			if iou := models.Box(want).IoU(models.Box(*b)); iou >= float32(t.cfg.IoU) {
				t.pairs = append(t.pairs, pair{di, ti, 1 + iou}) // any overlap beats a distance
				continue
			}
			dx, dy := centre(*b, want)
			dy *= aspect
			if d2 := dx*dx + dy*dy; d2 <= jump*jump { // the root only for the few near enough
				d := float32(math.Sqrt(float64(d2))) / diag
				t.pairs = append(t.pairs, pair{di, ti, 1 - d/max(maxJump, 1e-9)})
			}
		}
	}
	slices.SortStableFunc(t.pairs, byScore) // no allocation, unlike sort.SliceStable
	t.taken = slices.Grow(t.taken[:0], len(t.tracks))[:len(t.tracks)]
	clear(t.taken)
	for _, p := range t.pairs {
		if t.taken[p.track] || dets[p.det].TrackID != 0 {
			continue
		}
		t.taken[p.track] = true
		t.tracks[p.track].update(*dets[p.det].BoundingBox)
		dets[p.det].TrackID = t.tracks[p.track].id
	}
	for di := range dets {
		if dets[di].BoundingBox != nil && dets[di].TrackID == 0 {
			tr := &partTrack{id: t.ids.Add(1), box: *dets[di].BoundingBox, seen: 1}
			t.tracks = append(t.tracks, tr)
			t.taken = append(t.taken, true)
			dets[di].TrackID = tr.id
		}
	}
	keep := t.tracks[:0]
	for ti, tr := range t.tracks {
		if !t.taken[ti] {
			tr.missed++
		}
		if tr.missed <= t.cfg.MaxMissed && inFrame(tr.expected()) {
			keep = append(keep, tr)
		}
	}
	clear(t.tracks[len(keep):])
	t.tracks = keep
}

// expected is where the part should be now: its last box, moved by its velocity for every
// frame since it was seen.
func (tr *partTrack) expected() payload.Box {
	b := tr.box
	n := float32(tr.missed + 1)
	b.Left += tr.vx * n
	b.Top += tr.vy * n
	return b
}

// update moves the track to box, where it was seen now, and measures its velocity (smoothed
// over the frames, so one jumpy box does not throw it off).
func (tr *partTrack) update(box payload.Box) {
	dx := moved(tr.box.Left, tr.box.Width, box.Left, box.Width)
	dy := moved(tr.box.Top, tr.box.Height, box.Top, box.Height)
	n := float32(tr.missed + 1)
	vx, vy := dx/n, dy/n
	if tr.seen > 1 {
		vx, vy = (tr.vx+vx)/2, (tr.vy+vy)/2
	}
	tr.vx, tr.vy, tr.box, tr.missed = vx, vy, box, 0
	tr.seen++
}

// frameEdge is how near a box's side must come to the frame's edge (in the frame's fraction)
// to be taken as cut by it.
const frameEdge = 1e-3

// moved is how far a part went along one axis from the box [a, a+aw) to the box [b, b+bw), in
// the frame's fraction. A part entering or leaving shows only what is in the frame: the frame
// cuts its box on one side, and the box's centre moves at half the part's pace. So where the
// frame cuts either box on one side only, the part moved as the sides on the other side did;
// elsewhere, as the centre did.
func moved(a, aw, b, bw float32) float32 {
	low := a <= frameEdge || b <= frameEdge            // cut by the left (or top) edge
	high := a+aw >= 1-frameEdge || b+bw >= 1-frameEdge // by the right (or bottom) edge
	switch {
	case low && !high:
		return (b + bw) - (a + aw)
	case high && !low:
		return b - a
	}
	return (b + bw/2) - (a + aw/2)
}

// centre is how far the centre of a lies from the centre of b.
func centre(a, b payload.Box) (dx, dy float32) {
	return (a.Left + a.Width/2) - (b.Left + b.Width/2), (a.Top + a.Height/2) - (b.Top + b.Height/2)
}

// inFrame reports whether any of b lies in the frame.
func inFrame(b payload.Box) bool {
	return b.Left < 1 && b.Top < 1 && b.Left+b.Width > 0 && b.Top+b.Height > 0
}
