package steps

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"slices"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// PartFrames keeps, for each open part of a camera that tracks, the frames its end needs,
// and sends what they make when it ends (a PartWatcher of the parts step):
//
//   - the sample of the part, at most one: its least certain frame that a sampling rule
//     flags, with the rule's reason; or, when the part was decided unknown, its best frame
//     (reason unknown); or, when the audit drew the part, its best frame (reason audit);
//   - the part's best frame as an annotated JPEG on <prefix>/cameras/<camera>/parts/image
//     (cameras[].parts.image).
//
// A frame where the part's box touches the frame's edge (a part entering or leaving, seen in
// part) is kept only until a frame shows the whole part. Each frame kept is a copy (the
// frame's pixels are the steps' only during Handle), freed when a better one replaces it,
// when its part ends, and on Close. A copy holds only the region the sample shows unless the
// whole frame is needed (samples.full_frame, or the image for the best frame).
type PartFrames struct {
	env     *Env
	camera  string
	samples *Samples // nil: the camera is not sampled
	image   configs.PartImage
	topic   string
	keep    bool // keep the best frame (for unknown parts, the audit, or the image)
	hasher  *preprocess.Hasher
	open    map[string]*partFrames // by partId
	scratch []string               // the path finalPath builds, reused from frame to frame
}

// partFrames are the frames kept of one part.
type partFrames struct {
	flagged *kept // the least certain frame a rule flagged
	best    *kept // the most confident frame
	audit   bool  // the audit drew this part
}

// kept is a copy of one frame of a part, or of the region of it that the part's sample
// shows, with its prediction and the part's detection in it.
type kept struct {
	f     *camera.Frame
	crop  image.Rectangle // the region of the frame f holds; empty: f is the whole frame
	full  image.Rectangle // the frame's bounds
	msg   *payload.Prediction
	det   int
	edge  bool    // the part's box touches the frame's edge
	score float32 // flagged: the flagged answer's certainty; best: the final tag's confidence
	cand  sampling.Candidate
}

func (k *kept) free() {
	if k != nil {
		k.f.Close()
	}
}

// NewPartFrames returns the watcher of the parts of camera cc, sampling them through samples
// (which then leaves the detections of tracked parts to it), or nil when the camera does not
// track or neither its samples nor its part images are on.
func NewPartFrames(env *Env, cc configs.Camera, samples *Samples) PartWatcher {
	if !cc.Tracks() {
		return nil
	}
	if samples != nil && samples.sampler == nil {
		samples = nil
	}
	if samples == nil && !cc.Parts.Image.Enabled {
		return nil
	}
	p := &PartFrames{env: env, camera: cc.Name, image: cc.Parts.Image, topic: env.Topic("cameras/" + cc.Name + "/parts/image"),
		open: map[string]*partFrames{}}
	if samples != nil {
		p.samples, p.hasher = samples, preprocess.NewHasher()
		samples.perPart = true
		p.keep = samples.cfg.Unknown.Enabled || samples.cfg.Audit.Enabled
	}
	p.keep = p.keep || cc.Parts.Image.Enabled
	return p
}

// Seen keeps frame f of part when it is the part's least certain flagged frame or its best
// so far.
func (p *PartFrames) Seen(part *payload.Part, f *pipeline.Frame, msg *payload.Prediction, det int) {
	if f == nil || f.Frame == nil || f.Closed() || det < 0 || det >= len(msg.Predictions) || msg.Predictions[det].BoundingBox == nil {
		return
	}
	st, ok := p.open[part.PartID]
	if !ok {
		st = &partFrames{}
		p.open[part.PartID] = st
		st.audit = p.samples != nil && p.samples.sampler.Draw()
	}
	edge := touchesEdge(f.Bounds().Dx(), f.Bounds().Dy(), *msg.Predictions[det].BoundingBox)
	cropOnly := p.samples != nil && !p.samples.cfg.FullFrame
	if p.samples != nil {
		if c, ok := p.samples.sampler.CheckPart(msg, det); ok && better(st.flagged, edge, -c.Certainty) {
			st.flagged.free()
			st.flagged = p.copyOf(f.Frame, msg, det, cropOnly)
			st.flagged.edge, st.flagged.score, st.flagged.cand = edge, -c.Certainty, c
		}
	}
	if p.keep {
		var conf float32
		_, conf, p.scratch = finalPath(msg.Predictions[det], p.scratch[:0])
		if better(st.best, edge, conf) {
			st.best.free()
			st.best = p.copyOf(f.Frame, msg, det, cropOnly && !p.image.Enabled)
			st.best.edge, st.best.score = edge, conf
		}
	}
}

// copyOf copies frame f of detection det of msg: the region its sample shows when cropOnly,
// else the whole frame.
func (p *PartFrames) copyOf(f *camera.Frame, msg *payload.Prediction, det int, cropOnly bool) *kept {
	k := &kept{msg: msg, det: det, full: f.Bounds()}
	if cropOnly {
		if r := p.samples.Region(f, msg, det); !r.Empty() && r != k.full {
			k.f, k.crop = f.CloneRegion(r), r
			return k
		}
	}
	k.f = f.Clone()
	return k
}

// better reports whether a frame with the part's box touching the edge or not, and score,
// should replace k: a whole part beats one at the edge, then the higher score wins.
func better(k *kept, edge bool, score float32) bool {
	return k == nil || k.edge && !edge || k.edge == edge && score > k.score
}

// Ended sends the sample and the image of the part that ended, and frees its frames.
func (p *PartFrames) Ended(ev *payload.Part) {
	st, ok := p.open[ev.PartID]
	if !ok {
		return
	}
	delete(p.open, ev.PartID)
	defer func() {
		st.flagged.free()
		st.best.free()
	}()
	if p.samples != nil {
		p.sample(ev, st)
	}
	if p.image.Enabled && st.best != nil {
		p.sendImage(ev, st.best)
	}
}

// sample sends the part's one sample, if any: an unknown part's best frame, else its least
// certain flagged frame, else its best frame when the audit drew it.
func (p *PartFrames) sample(ev *payload.Part, st *partFrames) {
	cfg := p.samples.cfg
	var k *kept
	var reason, detail string
	switch {
	case ev.TagName == Unknown && cfg.Unknown.Enabled && st.best != nil:
		k, reason = st.best, sampling.Unknown
		detail = fmt.Sprintf("part decided unknown over %d frames (%s)", ev.Frames, votes(ev.Votes))
		if st.flagged != nil {
			detail += fmt.Sprintf("; least certain, frame %d: %s %s", st.flagged.msg.FrameID, st.flagged.cand.Reason, st.flagged.cand.Detail)
		}
	case st.flagged != nil:
		k, reason, detail = st.flagged, st.flagged.cand.Reason, st.flagged.cand.Detail
	case st.audit && st.best != nil:
		k, reason, detail = st.best, sampling.Audit, fmt.Sprintf("random audit of parts, rate %g", cfg.Audit.Rate)
	default:
		return
	}
	region := k.f.Bounds() // a copy of the region alone: all of it
	if k.crop.Empty() {
		region = p.samples.Region(k.f, k.msg, k.det)
	}
	if !p.samples.sampler.Admit(reason, p.hasher.DHash(k.f.Mat(), region), time.Now()) {
		return
	}
	smp := p.samples.build(k.f, k.msg, k.det, region)
	if !k.crop.Empty() && smp.Crop != nil {
		smp.Crop.Box = relative(k.crop, k.full)
	}
	smp.Reason, smp.Detail = reason, detail
	smp.PartID, smp.TrackID = ev.PartID, ev.TrackID
	p.samples.Send(smp)
}

// votes lists a part's evidence, strongest first: "red 3.10, blue 1.20".
func votes(v map[string]float32) string {
	tags := make([]string, 0, len(v))
	for t := range v {
		tags = append(tags, t)
	}
	slices.SortFunc(tags, func(a, b string) int {
		if v[a] != v[b] {
			if v[a] > v[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for i, t := range tags {
		tags[i] = fmt.Sprintf("%s %.2f", t, v[t])
	}
	return strings.Join(tags, ", ")
}

// sendImage publishes the part's best frame k with its box and decision drawn.
func (p *PartFrames) sendImage(ev *payload.Part, k *kept) {
	if !k.crop.Empty() {
		return // not kept whole: cannot happen, as the image asks for whole frames
	}
	b := *k.msg.Predictions[k.det].BoundingBox
	full := k.f.Bounds()
	box := preprocess.CropRect(full, full.Dx(), full.Dy(), b.Left, b.Top, b.Width, b.Height, 0)
	label := ev.TagName
	if ev.TagName != Unknown {
		label += fmt.Sprintf(" %.2f", ev.Probability)
	}
	if ev.Verdict != "" {
		label += " " + ev.Verdict
	}
	msg := payload.PartImage{Schema: payload.Schema, PartID: ev.PartID, TrackID: ev.TrackID, Agent: p.env.Agent, Camera: p.camera, Boot: p.env.Boot,
		Created: time.Now().UTC(), FrameID: k.msg.FrameID, Captured: k.msg.Captured, BoundingBox: b,
		TagName: ev.TagName, Probability: ev.Probability, Verdict: ev.Verdict}
	img, err := preprocess.EncodeAnnotatedJPEG(k.f.Mat(), box, label, p.image.JPEGQuality, p.env.ImageBytes(p.image.MaxKB<<10, 1))
	if err != nil {
		msg.ImageOmitted = true
		p.env.Log.Warn("part image not made", "component", "parts", "camera", p.camera, "part", ev.PartID, "err", err)
	} else {
		msg.Image = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(img), Width: full.Dx(), Height: full.Dy()}
		if c, err := jpeg.DecodeConfig(bytes.NewReader(img)); err == nil { // scaled down to fit
			msg.Image.Width, msg.Image.Height = c.Width, c.Height
		}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		p.env.Log.Error("part image not encoded", "component", "parts", "camera", p.camera, "err", err)
		return
	}
	p.env.Pub.Send(publish.Message{Topic: p.topic, QoS: 1, Payload: body, Class: spool.Samples})
}

// Close frees the frames of the parts still open, and the hasher.
func (p *PartFrames) Close() {
	for id, st := range p.open {
		st.flagged.free()
		st.best.free()
		delete(p.open, id)
	}
	if p.hasher != nil {
		p.hasher.Close()
		p.hasher = nil
	}
}
