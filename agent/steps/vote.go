package steps

import (
	"context"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// NewVote returns the step that decides parts by N-frame agreement (pipeline.vote), or nil
// when cfg.Frames is 0. detector says whether the camera's pipeline finds boxes: then each
// detection votes on its own part, else the whole frame's tag does.
func NewVote(cfg configs.Vote, detector bool) pipeline.Step {
	if cfg.Frames <= 0 {
		return nil
	}
	return &tracker{cfg: cfg, boxes: detector}
}

func (tr *tracker) Name() string { return "vote" }

// Handle sets the Vote of each detection of msg, or of msg itself for a classifier alone.
func (tr *tracker) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	if tr.boxes {
		tr.detections(msg.Predictions)
		return
	}
	if len(msg.Predictions) > 0 {
		c := &payload.Classification{Predictions: msg.Predictions, Next: msg.Route}
		msg.Vote = tr.frame(finalTag(payload.Tag{TagName: msg.Predictions[0].TagName, Classification: c}))
	}
}

// tracker decides parts by N-frame agreement: it links each detection to the part seen in
// earlier frames by box overlap, and takes the most frequent final tag once enough frames
// have seen the part. A tracker belongs to one camera's steps.
type tracker struct {
	cfg    configs.Vote
	boxes  bool // the pipeline has a detector
	next   int
	tracks []*track
	whole  []string // the last tags of the whole frame, for a classifier alone
	// wholeTag is the tag last decided for the whole frame
	wholeTag string
}

type track struct {
	id      int
	part    uint64 // the trackId of the part, when the camera tracks
	box     payload.Box
	tags    map[string]int
	order   []string // tags in first-seen order, for stable ties
	seen    int
	missed  int
	decided bool
}

// finalTag is the deepest level's top tag of a detection.
func finalTag(t payload.Tag) string {
	c := t.Classification
	if c == nil {
		return t.TagName
	}
	for c.Next != nil {
		c = c.Next
	}
	if len(c.Predictions) == 0 {
		return t.TagName
	}
	return c.Predictions[0].TagName
}

// detections sets the Vote of every detection in dets (one frame's).
func (tr *tracker) detections(dets []payload.Tag) {
	used := make([]bool, len(tr.tracks))
	for i := range dets {
		b := dets[i].BoundingBox
		best := tr.link(dets[i], used)
		var t *track
		if best >= 0 {
			used[best] = true
			t = tr.tracks[best]
		} else {
			tr.next++
			t = &track{id: tr.next, part: dets[i].TrackID, tags: map[string]int{}}
			tr.tracks = append(tr.tracks, t)
			used = append(used, true)
		}
		if b != nil {
			t.box = *b
		}
		t.missed = 0
		t.seen++
		tag := finalTag(dets[i])
		if t.tags[tag] == 0 {
			t.order = append(t.order, tag)
		}
		t.tags[tag]++
		v := &payload.Vote{Track: t.id, Frames: t.seen, Needed: tr.cfg.Frames, Tag: majority(t.tags, t.order)}
		if t.seen >= tr.cfg.Frames {
			v.Decided, v.First = true, !t.decided
			t.decided = true
		}
		dets[i].Vote = v
	}
	keep := tr.tracks[:0]
	for j, t := range tr.tracks {
		if j < len(used) && !used[j] {
			t.missed++
		}
		if t.missed <= tr.cfg.MaxGap {
			keep = append(keep, t)
		}
	}
	tr.tracks = keep
}

// link returns the index of the track detection d continues, or -1: the track of its part
// when the camera tracks (trackId), else the one it overlaps most, by at least the vote's iou.
func (tr *tracker) link(d payload.Tag, used []bool) int {
	if d.TrackID != 0 {
		for j, t := range tr.tracks {
			if !used[j] && t.part == d.TrackID {
				return j
			}
		}
		return -1
	}
	best, bestIoU := -1, float32(tr.cfg.IoU)
	for j, t := range tr.tracks {
		if used[j] || d.BoundingBox == nil {
			continue
		}
		if iou := models.Box(*d.BoundingBox).IoU(models.Box(t.box)); iou >= bestIoU {
			best, bestIoU = j, iou
		}
	}
	return best
}

// frame votes over the last Frames final tags of the whole frame (a classifier alone).
func (tr *tracker) frame(tag string) *payload.Vote {
	tr.whole = append(tr.whole, tag)
	if len(tr.whole) > tr.cfg.Frames {
		tr.whole = tr.whole[1:]
	}
	counts, order := map[string]int{}, []string{}
	for _, t := range tr.whole {
		if counts[t] == 0 {
			order = append(order, t)
		}
		counts[t]++
	}
	v := &payload.Vote{Frames: len(tr.whole), Needed: tr.cfg.Frames, Tag: majority(counts, order)}
	v.Decided = v.Frames >= v.Needed
	// What the camera sees is one "part" while the decided tag stays: first marks a change.
	v.First = v.Decided && v.Tag != tr.wholeTag
	if v.Decided {
		tr.wholeTag = v.Tag
	}
	return v
}

func majority(counts map[string]int, order []string) string {
	best := ""
	for _, t := range order {
		if best == "" || counts[t] > counts[best] {
			best = t
		}
	}
	return best
}
