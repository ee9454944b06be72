package agent

import (
	"errors"
	"fmt"
	"image"
	"math"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/preprocess"
)

// Pipeline turns one camera's frames into prediction payloads: measure quality, detect,
// crop each detection (with padding), classify the crops in one batch. It belongs to one
// camera goroutine; the Stages it uses may be shared with other cameras.
type Pipeline struct {
	Agent      string
	Boot       string
	Camera     string
	Detector   Stage // nil: the classifier sees the whole frame
	Classifier Stage // nil: detections are reported without classification
	Padding    float32
	// Gate bounds the capture quality; its Action says what happens to a frame out of bounds.
	Gate configs.QualityGate

	meter  *preprocess.Meter
	frames uint64 // messages made so far: the next FrameID
	crops  []image.Rectangle
	index  []int
}

// NewPipeline returns a Pipeline; Close frees its quality meter.
func NewPipeline(agent, boot, cameraName string, det, cls Stage, padding float32) *Pipeline {
	return &Pipeline{Agent: agent, Boot: boot, Camera: cameraName, Detector: det, Classifier: cls, Padding: padding, meter: preprocess.NewMeter()}
}

// Close frees the pipeline's scratch memory.
func (p *Pipeline) Close() { p.meter.Close() }

// Process runs the stages on f and returns the prediction message. f stays owned by the
// caller. A frame the quality gate skips returns errGated with a message that holds only its
// quality (no FrameID: it is not published).
func (p *Pipeline) Process(f *camera.Frame) (*payload.Prediction, error) {
	start := time.Now()
	full := f.Bounds()
	msg := &payload.Prediction{
		Schema: payload.Schema, ID: newID(), Agent: p.Agent, Camera: p.Camera, Boot: p.Boot,
		Captured: f.Captured, Width: full.Dx(), Height: full.Dy(),
		Predictions: []payload.Tag{}, Models: []payload.ModelRef{},
	}
	if f.Pos >= 0 {
		pos := f.Pos
		msg.SourcePos = &pos
	}
	msg.LatencyMs.Queue = ms(start.Sub(f.Captured))
	q := p.meter.Measure(f.Mat(), image.Rectangle{})
	msg.Quality = payload.Quality{Sharpness: q.Sharpness, Brightness: q.Brightness, Overexposed: q.Overexposed, Underexposed: q.Underexposed}
	if p.Gate.Action == "flag" || p.Gate.Action == "skip" {
		msg.Quality.Gate, msg.Quality.Failed = "pass", gateFailures(p.Gate, q)
		if len(msg.Quality.Failed) > 0 {
			msg.Quality.Gate = "fail"
			if p.Gate.Action == "skip" {
				return msg, fmt.Errorf("%w: %s", errGated, strings.Join(msg.Quality.Failed, ", "))
			}
		}
	}
	msg.LatencyMs.Preprocess = ms(time.Since(start))

	if p.Detector != nil {
		ref := p.Detector.Ref()
		ref.Stage = "detector"
		msg.Models = append(msg.Models, ref)
		msg.Iteration = ref.Iteration
		t := time.Now()
		res, fill, err := p.Detector.Infer(f, []image.Rectangle{full})
		if err != nil {
			return nil, fmt.Errorf("camera %s frame %d: detector: %w", p.Camera, f.Seq, err)
		}
		msg.LatencyMs.Preprocess += ms(fill)
		msg.LatencyMs.Detect = ms(time.Since(t) - fill)
		for _, d := range res[0] {
			msg.Predictions = append(msg.Predictions, tag(d))
		}
		if p.Classifier != nil && len(res[0]) > 0 {
			if err := p.classifyCrops(f, full, res[0], msg); err != nil {
				return nil, err
			}
		}
	} else if p.Classifier != nil {
		ref := p.Classifier.Ref()
		ref.Stage = "classifier"
		msg.Models = append(msg.Models, ref)
		msg.Iteration = ref.Iteration
		t := time.Now()
		res, fill, err := p.Classifier.Infer(f, []image.Rectangle{full})
		if err != nil {
			return nil, fmt.Errorf("camera %s frame %d: classifier: %w", p.Camera, f.Seq, err)
		}
		msg.LatencyMs.Preprocess += ms(fill)
		msg.LatencyMs.Classify = ms(time.Since(t) - fill)
		for _, c := range res[0] {
			msg.Predictions = append(msg.Predictions, tag(c))
		}
	}
	p.frames++
	msg.FrameID = p.frames
	msg.Created = time.Now().UTC()
	msg.LatencyMs.Total = ms(msg.Created.Sub(f.Captured))
	l := &msg.LatencyMs
	for _, v := range []*float64{&l.Queue, &l.Preprocess, &l.Detect, &l.Classify, &l.Total} {
		*v = round(*v, 3)
	}
	qq := &msg.Quality
	for _, v := range []*float64{&qq.Sharpness, &qq.Brightness, &qq.Overexposed, &qq.Underexposed} {
		*v = round(*v, 4)
	}
	return msg, nil
}

// classifyCrops classifies the padded crop of every detection, in as few calls as the
// classifier's batch allows, and attaches each answer to its detection.
func (p *Pipeline) classifyCrops(f *camera.Frame, full image.Rectangle, dets []models.Prediction, msg *payload.Prediction) error {
	ref := p.Classifier.Ref()
	ref.Stage = "classifier"
	msg.Models = append(msg.Models, ref)
	p.crops, p.index = p.crops[:0], p.index[:0]
	for i, d := range dets {
		r := preprocess.CropRect(full, full.Dx(), full.Dy(), d.Box.Left, d.Box.Top, d.Box.Width, d.Box.Height, p.Padding)
		if r.Dx() < 2 || r.Dy() < 2 {
			continue // box outside the frame: nothing to classify
		}
		p.crops = append(p.crops, r)
		p.index = append(p.index, i)
	}
	if len(p.crops) == 0 {
		return nil
	}
	t := time.Now()
	res, fill, err := p.Classifier.Infer(f, p.crops)
	if err != nil {
		return fmt.Errorf("camera %s frame %d: classifier: %w", p.Camera, f.Seq, err)
	}
	msg.LatencyMs.Preprocess += ms(fill)
	msg.LatencyMs.Classify = ms(time.Since(t) - fill)
	for j, preds := range res {
		c := &payload.Classification{Model: ref.Name, Iteration: ref.Iteration, Predictions: make([]payload.Tag, 0, len(preds))}
		for _, pr := range preds {
			c.Predictions = append(c.Predictions, tag(pr))
		}
		msg.Predictions[p.index[j]].Classification = c
	}
	return nil
}

// errGated marks a frame the quality gate kept from the models.
var errGated = errors.New("frame skipped by the quality gate")

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

func tag(p models.Prediction) payload.Tag {
	t := payload.Tag{Probability: p.Probability, TagName: p.TagName}
	if p.Box != nil {
		t.BoundingBox = clampBox(*p.Box)
	}
	return t
}

// clampBox keeps a box inside the frame, as the Prediction API reports it.
func clampBox(b models.Box) *payload.Box {
	x1, y1 := clamp01(b.Left), clamp01(b.Top)
	x2, y2 := clamp01(b.Left+b.Width), clamp01(b.Top+b.Height)
	return &payload.Box{Left: x1, Top: y1, Width: x2 - x1, Height: y2 - y1}
}

func clamp01(v float32) float32 { return min(max(v, 0), 1) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

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
