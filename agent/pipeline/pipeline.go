// Package pipeline turns camera frames into prediction messages: quality, detector, padded
// crops, classifier, second-level routes. Stream overlaps the work of three frames on three
// goroutines; the Steps that follow the models (publish, samples, ...) plug in through the
// Step interface. It owns the model stages (ModelStage: hot swap, shadow candidate) and the
// per-frame scratch, and it knows nothing of MQTT, the config file or the daemon.
package pipeline

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/preprocess"
)

// Options say what a Pipeline runs. Only the stages are needed; the rest has working zero
// values.
type Options struct {
	// Agent, Boot and Camera name where the messages come from.
	Agent, Boot, Camera string
	Detector            Stage // nil: the classifier sees the whole frame
	Classifier          Stage // nil: detections are reported without classification
	// Routes maps a first-level tag to the second-level classifier that refines it.
	Routes map[string]Stage
	// Padding grows each detected box by this fraction before its crop is classified.
	Padding float32
	// Gate bounds the capture quality; its Action says what happens to a frame out of bounds.
	Gate configs.QualityGate
	// Thresholds are per-tag minimum probabilities (see configs.Pipeline).
	Thresholds map[string]float64
	// Masks are areas where detections are ignored: one whose centre lies in a mask is
	// dropped before it is classified (cameras[].masks).
	Masks []configs.Area
	// Frames holds the last FrameID given; the pipeline numbers its messages on from it. The
	// agent keeps one per camera name for the whole boot, so that a reload, which makes new
	// pipelines, never numbers a frame again. nil: from 1.
	Frames *atomic.Uint64
	// Project is the Custom Vision project id of the first stage's model (models.<name>.project),
	// the messages' "project"; "" when not configured.
	Project string
	// Motion is the motion gate (cameras[].motion), its Hold resolved (Camera.MotionHold): a
	// frame whose picture has not changed skips the models with ErrUnchanged.
	Motion configs.Motion
}

// Pipeline turns one camera's frames into prediction payloads: measure quality, detect,
// crop each detection (with padding), classify the crops in one batch, refine by route. It
// belongs to one camera goroutine; the Stages it uses may be shared with other cameras. It
// knows nothing of MQTT or the daemon: what happens to a message afterwards is the Steps'.
type Pipeline struct {
	o     Options
	ahead AheadStage // the detector, when it can fill its input ahead
	meter *preprocess.Meter
	// view is the least size of the frame's picture that the quality meter and the detector
	// read (camera.Frame.View): a frame from a JPEG source is decoded for them at the
	// coarsest scale that keeps it, once. Without a detector model, the full frame.
	view image.Point
	// cropped: the last frame completed had crops to classify. Parts stay in view for many
	// frames, so the next frame likely has crops too: prepare then decodes a JPEG frame at
	// full resolution at once, and the gate, the meter and the detector read that, instead of
	// a reduced view decoded first and the whole frame decoded again for the crops.
	cropped atomic.Bool
	// busy holds when each phase began on its current frame (unix ns), 0 between frames.
	busy [phases]atomic.Int64
	// Each phase has its own scratch, as Stream runs the phases of a frame on three
	// goroutines: the model results it reuses from frame to frame, and the slabs that the
	// frame's message is cut from. In steady state a frame allocates next to nothing.
	pre struct {
		msgs slab[payload.Prediction]
		refs slab[payload.ModelRef]
		pos  slab[int64]
		ids  idBatch
	}
	det struct {
		res    models.Results
		tags   slab[payload.Tag]
		boxes  slab[payload.Box]
		kept   slab[models.Box]
		region [1]image.Rectangle
	}
	cmp struct {
		res, route models.Results
		cls        slab[payload.Classification]
		tags       slab[payload.Tag]
		out        []*payload.Classification
		crops      []image.Rectangle
		index      []int
		regions    []image.Rectangle // by prediction: what the classifier saw (see Regions)
		region     [1]image.Rectangle
	}
	// motion is the motion gate's state (Options.Motion): prepare decides, detect tells it
	// the detections.
	motion motionGate
}

// New returns a Pipeline; Close frees its quality meter.
func New(o Options) *Pipeline {
	if o.Frames == nil {
		o.Frames = new(atomic.Uint64)
	}
	p := &Pipeline{o: o, meter: preprocess.NewMeter(), view: image.Pt(math.MaxInt32, math.MaxInt32)}
	if a, ok := o.Detector.(AheadStage); ok {
		p.ahead = a
	}
	if s, ok := o.Detector.(interface{ InputSize() image.Point }); ok {
		in := s.InputSize()
		// the meter's figures from a view at least twice its width are those of the full frame
		// (at 1.5 times, the sharpness falls by a quarter)
		p.view = image.Pt(max(in.X, 2*preprocess.MeasureWidth), in.Y)
	}
	return p
}

// Close frees the pipeline's scratch memory.
func (p *Pipeline) Close() {
	p.meter.Close()
	p.motion.close()
}

// Regions returns, by prediction index of the last message completed, the pixel region the
// classifier saw: a detection's padded crop (empty when the box lies outside the frame or
// there is no classifier), or the whole frame for a classifier alone. It is scratch, valid
// until the next frame completes: the steps of that frame may read it.
func (p *Pipeline) Regions() []image.Rectangle { return p.cmp.regions }

// Process runs the stages on f and returns the prediction message. f stays owned by the
// caller. A frame the quality gate skips returns ErrGated with a message that holds only its
// quality (no FrameID: it is not published); so does one the motion gate skips (ErrUnchanged),
// except the unchanged report, numbered, every motion.report_interval. Stream does the same work in three phases that
// overlap across frames: prepare, detect, complete.
func (p *Pipeline) Process(f *camera.Frame) (*payload.Prediction, error) {
	msg, err := p.prepare(f, nil)
	if err != nil {
		p.report(msg, err)
		return msg, err
	}
	kept, err := p.detect(f, msg, nil)
	if err != nil {
		return nil, err
	}
	return p.complete(f, msg, kept)
}

// The phases of a frame in the pipeline (not to be confused with the Steps after it), for
// BusySince.
const (
	phasePrepare = iota
	phaseDetect
	phaseComplete
	phases
)

// prepare starts the message of f: its quality, the gate, and, when a is given and the
// detector is a model, the detector's input filled ahead into a.
func (p *Pipeline) prepare(f *camera.Frame, a *Ahead) (*payload.Prediction, error) {
	start := p.begin(phasePrepare)
	defer p.end(phasePrepare)
	full := f.Bounds()
	msg := p.pre.msgs.one()
	*msg = payload.Prediction{
		Schema: payload.Schema, ID: p.pre.ids.next(), Project: p.o.Project, Agent: p.o.Agent, Camera: p.o.Camera, Boot: p.o.Boot,
		Captured: f.Captured, Width: full.Dx(), Height: full.Dy(),
		// room for the detector, the classifier and the routes
		Predictions: []payload.Tag{}, Models: p.pre.refs.take(2 + len(p.o.Routes))[:0],
	}
	if f.Pos >= 0 {
		msg.SourcePos = p.pre.pos.one()
		*msg.SourcePos = f.Pos
	}
	// the motion gate: skipped, reported or on. Any picture of the whole frame twice the
	// gate's width will do: a frame from a JPEG source is decoded at 1/8 for it (at 1080p),
	// and a frame the gate skips is not decoded further (unless the frame before had crops:
	// then it was decoded whole at once, see cropped).
	if p.cropped.Load() {
		f.Mat()
	}
	still, _ := f.View(full, 2*preprocess.MotionWidth, 1)
	motion := p.motion.check(&p.o.Motion, still, f.Captured)
	if motion == motionSkip {
		return msg, ErrUnchanged
	}
	msg.LatencyMs.Queue = payload.Ms(start.Sub(f.Captured))
	q := p.meter.Measure(f.View(full, p.view.X, p.view.Y))
	msg.Quality = payload.Quality{Sharpness: q.Sharpness, Brightness: q.Brightness, Overexposed: q.Overexposed, Underexposed: q.Underexposed}
	if motion == motionReport {
		msg.Motion = MotionUnchanged // numbered by report, with the frames completed before it
		return msg, ErrUnchanged
	}
	if g := p.o.Gate; g.Action == "flag" || g.Action == "skip" {
		msg.Quality.Gate, msg.Quality.Failed = "pass", gateFailures(g, q)
		if len(msg.Quality.Failed) > 0 {
			msg.Quality.Gate = "fail"
			if g.Action == "skip" {
				return msg, fmt.Errorf("%w: %s", ErrGated, strings.Join(msg.Quality.Failed, ", "))
			}
		}
	}
	p.motion.pass(f.Captured)
	msg.LatencyMs.Preprocess = payload.Ms(time.Since(start))
	if p.ahead != nil && a != nil {
		p.ahead.FillAhead(a, f, full)
	}
	return msg, nil
}

// detect runs the detector (if any) on f, on its input filled ahead in a when there is one,
// adds the detections over the per-tag thresholds to msg, and returns their boxes.
func (p *Pipeline) detect(f *camera.Frame, msg *payload.Prediction, a *Ahead) (found []models.Box, _ error) {
	defer func() { p.motion.ran(p.o.Motion.Enabled, len(found) > 0) }()
	if p.o.Detector == nil {
		return nil, nil
	}
	t := p.begin(phaseDetect)
	defer p.end(phaseDetect)
	if a != nil && a.filled {
		msg.LatencyMs.Queue += payload.Ms(t.Sub(a.at)) // prepared, waiting for the detector
	}
	full := f.Bounds()
	var inf Inference
	var err error
	if p.ahead != nil && a != nil {
		inf, err = p.ahead.InferAhead(a, f, full, &p.det.res)
	} else {
		p.det.region[0] = full
		inf, err = p.o.Detector.Infer(f, p.det.region[:], &p.det.res)
	}
	if err != nil {
		return nil, fmt.Errorf("camera %s frame %d: detector: %w", p.o.Camera, f.Seq, err)
	}
	ref := inf.Ref
	ref.Stage = "detector"
	msg.Models = append(msg.Models, ref)
	msg.Iteration = ref.Iteration
	msg.LatencyMs.Preprocess += payload.Ms(inf.Fill)
	if inf.Ahead {
		msg.LatencyMs.Detect = payload.Ms(time.Since(t))
	} else {
		msg.LatencyMs.Detect = payload.Ms(time.Since(t) - inf.Fill)
	}
	// The boxes are copied out of the results, which the next frame reuses while the
	// complete phase classifies this one's crops.
	n := len(inf.Preds[0])
	kept := p.det.kept.take(n)[:0]
	msg.Predictions = p.det.tags.take(n)[:0]
	for _, d := range inf.Preds[0] {
		if p.under(d.TagName, d.Probability) || d.Box == nil || p.masked(*d.Box) {
			continue
		}
		kept = append(kept, *d.Box)
		t := tag(d)
		t.BoundingBox = p.det.boxes.one()
		*t.BoundingBox = clampBox(*d.Box)
		msg.Predictions = append(msg.Predictions, t)
	}
	return kept, nil
}

// masked reports whether box b is centred in one of the masks.
func (p *Pipeline) masked(b models.Box) bool {
	if len(p.o.Masks) == 0 {
		return false
	}
	_, in := configs.AreaAt(p.o.Masks, float64(b.Left+b.Width/2), float64(b.Top+b.Height/2))
	return in
}

// complete runs the classifier on each detection's padded crop (or on the whole frame when
// there is no detector) and the second-level classifiers the routes choose, and numbers the
// message.
func (p *Pipeline) complete(f *camera.Frame, msg *payload.Prediction, kept []models.Box) (*payload.Prediction, error) {
	p.begin(phaseComplete)
	defer p.end(phaseComplete)
	if err := p.classifyAll(f, msg, kept); err != nil {
		return nil, err
	}
	msg.FrameID = p.o.Frames.Add(1)
	msg.Created = time.Now().UTC()
	msg.LatencyMs.Total = payload.Ms(msg.Created.Sub(f.Captured))
	l := &msg.LatencyMs
	for _, v := range []*float64{&l.Queue, &l.Preprocess, &l.Detect, &l.Classify, &l.Total} {
		*v = payload.Round(*v, 3)
	}
	qq := &msg.Quality
	for _, v := range []*float64{&qq.Sharpness, &qq.Brightness, &qq.Overexposed, &qq.Underexposed} {
		*v = payload.Round(*v, 4)
	}
	return msg, nil
}

func (p *Pipeline) begin(phase int) time.Time {
	t := time.Now()
	p.busy[phase].Store(t.UnixNano())
	return t
}

func (p *Pipeline) end(phase int) { p.busy[phase].Store(0) }

// BusySince is when the pipeline's oldest unfinished phase on a frame began (zero when idle):
// the watchdog's measure of a stuck model or capture.
func (p *Pipeline) BusySince() time.Time {
	var oldest int64
	for i := range p.busy {
		if v := p.busy[i].Load(); v != 0 && (oldest == 0 || v < oldest) {
			oldest = v
		}
	}
	if oldest == 0 {
		return time.Time{}
	}
	return time.Unix(0, oldest)
}

// classifyAll classifies the whole frame (no detector) or each kept detection's crop, and
// notes the region of each (see Regions).
func (p *Pipeline) classifyAll(f *camera.Frame, msg *payload.Prediction, kept []models.Box) error {
	full := f.Bounds()
	c := &p.cmp
	c.regions = c.regions[:0]
	if p.o.Classifier == nil {
		c.regions = slices.Grow(c.regions, len(kept))[:len(kept)]
		clear(c.regions)
		return nil
	}
	if p.o.Detector == nil {
		c.region[0] = full
		cls, err := p.classify(f, c.region[:], msg)
		if err != nil {
			return err
		}
		top := cls[0]
		msg.Iteration = top.Iteration
		msg.Predictions = top.Predictions
		msg.Uncertain, msg.Route = top.Uncertain, top.Next
		c.regions = append(c.regions, full)
		return nil
	}
	c.crops, c.index = c.crops[:0], c.index[:0]
	c.regions = slices.Grow(c.regions, len(kept))[:len(kept)]
	clear(c.regions)
	for i, b := range kept {
		r := preprocess.CropRect(full, full.Dx(), full.Dy(), b.Left, b.Top, b.Width, b.Height, p.o.Padding)
		if r.Dx() < 2 || r.Dy() < 2 {
			continue // box outside the frame: nothing to classify
		}
		c.crops = append(c.crops, r)
		c.index = append(c.index, i)
		c.regions[i] = r
	}
	p.cropped.Store(len(c.crops) > 0)
	if len(c.crops) == 0 {
		return nil
	}
	f.Mat() // a JPEG frame is decoded here, not under the classifier's lock that other cameras wait on
	cls, err := p.classify(f, c.crops, msg)
	if err != nil {
		return err
	}
	for j, cl := range cls {
		msg.Predictions[c.index[j]].Classification = cl
	}
	return nil
}

// classify runs the classifier on the regions (one call, batched as the model allows) and the
// second level the routes choose for each region.
// The list it returns is scratch, valid until the next call.
func (p *Pipeline) classify(f *camera.Frame, regions []image.Rectangle, msg *payload.Prediction) ([]*payload.Classification, error) {
	t := time.Now()
	inf, err := p.o.Classifier.Infer(f, regions, &p.cmp.res)
	if err != nil {
		return nil, fmt.Errorf("camera %s frame %d: classifier: %w", p.o.Camera, f.Seq, err)
	}
	ref := inf.Ref
	ref.Stage = "classifier"
	msg.Models = append(msg.Models, ref)
	fill := inf.Fill
	out := slices.Grow(p.cmp.out[:0], len(regions))[:len(regions)]
	p.cmp.out = out
	for i, preds := range inf.Preds {
		out[i] = p.classification(ref, preds)
	}
	// second level: group the regions by the route their top tag picks
	routed := map[string][]int{}
	for i, c := range out {
		if c.Uncertain || len(c.Predictions) == 0 {
			continue
		}
		if name := p.routeFor(c.Predictions[0].TagName); name != "" {
			routed[name] = append(routed[name], i)
		}
	}
	for name, idx := range routed {
		stage := p.o.Routes[name]
		sub := make([]image.Rectangle, len(idx))
		for k, i := range idx {
			sub[k] = regions[i]
		}
		inf2, err := stage.Infer(f, sub, &p.cmp.route)
		if err != nil {
			return nil, fmt.Errorf("camera %s frame %d: route %s: %w", p.o.Camera, f.Seq, name, err)
		}
		ref2 := inf2.Ref
		ref2.Stage = "route"
		msg.Models = append(msg.Models, ref2)
		fill += inf2.Fill
		for k, i := range idx {
			out[i].Next = p.classification(ref2, inf2.Preds[k])
		}
	}
	msg.LatencyMs.Preprocess += payload.Ms(fill)
	msg.LatencyMs.Classify = payload.Ms(time.Since(t) - fill)
	return out, nil
}

// classification builds one level's answer, marking it uncertain under its tag's threshold.
func (p *Pipeline) classification(ref payload.ModelRef, preds []models.Prediction) *payload.Classification {
	c := p.cmp.cls.one()
	c.Model, c.Iteration, c.Predictions = ref.Name, ref.Iteration, p.cmp.tags.take(len(preds))
	for i, pr := range preds {
		c.Predictions[i] = tag(pr)
	}
	if len(preds) > 0 && p.under(preds[0].TagName, preds[0].Probability) {
		c.Uncertain = true
	}
	return c
}

// under reports whether probability is under the per-tag threshold of tag.
func (p *Pipeline) under(tagName string, probability float32) bool {
	t, ok := configs.TagKey(p.o.Thresholds, tagName)
	return ok && float64(probability) < p.o.Thresholds[t]
}

// routeFor returns the route name (key of Routes) for a first-level tag, or "".
func (p *Pipeline) routeFor(tagName string) string {
	t, _ := configs.TagKey(p.o.Routes, tagName)
	return t
}

// ErrGated marks a frame the quality gate kept from the models.
var ErrGated = errors.New("frame skipped by the quality gate")

// gateFailures names the bounds of g that q is outside of.
func gateFailures(g configs.QualityGate, q preprocess.Quality) []string {
	var failed []string
	check := func(bad bool, name string) {
		if bad {
			failed = append(failed, name)
		}
	}
	check(g.MinSharpness > 0 && q.Sharpness < g.MinSharpness, "sharpness")
	check(g.MinBrightness > 0 && q.Brightness < g.MinBrightness, "too_dark")
	check(g.MaxBrightness > 0 && q.Brightness > g.MaxBrightness, "too_bright")
	check(g.MaxOverexposed > 0 && q.Overexposed > g.MaxOverexposed, "overexposed")
	check(g.MaxUnderexposed > 0 && q.Underexposed > g.MaxUnderexposed, "underexposed")
	return failed
}

// tag is a prediction's tag and probability; detect adds the box.
func tag(p models.Prediction) payload.Tag {
	return payload.Tag{Probability: p.Probability, TagName: p.TagName}
}

// clampBox keeps a box inside the frame, as the Prediction API reports it.
func clampBox(b models.Box) payload.Box {
	x1, y1 := clamp01(b.Left), clamp01(b.Top)
	x2, y2 := clamp01(b.Left+b.Width), clamp01(b.Top+b.Height)
	return payload.Box{Left: x1, Top: y1, Width: x2 - x1, Height: y2 - y1}
}

func clamp01(v float32) float32 { return min(max(v, 0), 1) }

// Summary renders a prediction in one readable line for the log:
// "part 0.99 [0.12,0.40 0.14x0.25] red 0.98; part ...".
func Summary(msg *payload.Prediction) string {
	if len(msg.Predictions) == 0 {
		return "nothing found"
	}
	var b strings.Builder
	for i, t := range msg.Predictions {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %.2f", t.TagName, t.Probability)
		if bb := t.BoundingBox; bb != nil {
			fmt.Fprintf(&b, " [%.2f,%.2f %.2fx%.2f]", bb.Left, bb.Top, bb.Width, bb.Height)
		}
		if c := t.Classification; c != nil && len(c.Predictions) > 0 {
			fmt.Fprintf(&b, " -> %s %.2f", c.Predictions[0].TagName, c.Predictions[0].Probability)
		}
		if i >= 7 && len(msg.Predictions) > 8 {
			fmt.Fprintf(&b, "; ... %d more", len(msg.Predictions)-i-1)
			break
		}
	}
	return b.String()
}
