package steps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// Samples makes and sends one camera's samples on <prefix>/cameras/<camera>/samples: as a
// step, those the sampling rules ask for (when sampling is on for the camera); beside that,
// the operators' corrections (Correction) and the LLM's disagreements (Send). It counts what
// it sends, by reason.
type Samples struct {
	env     *Env
	camera  string
	padding float32
	cfg     configs.Samples
	sampler *sampling.Sampler  // nil: no rules for this camera
	hasher  *preprocess.Hasher // with sampler
	perPart bool               // the rules leave tracked parts to PartFrames, which samples each once
	sent    ops.Tally
}

// NewSamples returns the samples of camera; rules says whether the sampling rules run on
// its frames. padding is the camera's crop padding: a sample shows what the classifier saw.
func NewSamples(env *Env, camera string, padding float32, cfg configs.Samples, rules bool, seed uint64) *Samples {
	s := &Samples{env: env, camera: camera, padding: padding, cfg: cfg}
	if rules {
		s.sampler, s.hasher = sampling.New(cfg, seed), preprocess.NewHasher()
	}
	return s
}

func (s *Samples) Name() string { return "samples" }

// Handle runs the sampling rules on a processed frame, or one the quality gate skipped, and
// sends what they admit. On a camera that tracks, the detections of tracked parts are left
// out: PartFrames samples each part once, when it ends.
func (s *Samples) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if s.sampler == nil || msg == nil || (f.Err != nil && !errors.Is(f.Err, pipeline.ErrGated)) {
		return
	}
	check := s.sampler.Check
	if s.perPart {
		check = s.sampler.CheckUntracked
	}
	for _, c := range check(msg) {
		region := s.Region(f.Frame, msg, c.Detection)
		if !s.sampler.Admit(c.Reason, s.hasher.DHash(f.Mat(), region), time.Now()) {
			continue
		}
		smp := s.build(f.Frame, msg, c.Detection, region)
		smp.Reason, smp.Detail = c.Reason, c.Detail
		s.Send(smp)
	}
}

// Count implements pipeline.Counter: the samples sent, by reason.
func (s *Samples) Count(c *pipeline.Counts) {
	for k, v := range s.sent.Snapshot() {
		if c.Samples == nil {
			c.Samples = map[string]uint64{}
		}
		c.Samples[k] += v
	}
}

// Close frees the image hasher.
func (s *Samples) Close() {
	if s.hasher != nil {
		s.hasher.Close()
	}
}

// Region is the pixel region a sample of detection det shows: its padded crop, or the whole
// frame.
func (s *Samples) Region(f *camera.Frame, msg *payload.Prediction, det int) image.Rectangle {
	full := f.Bounds()
	if det < 0 || det >= len(msg.Predictions) || msg.Predictions[det].BoundingBox == nil {
		return full
	}
	b := msg.Predictions[det].BoundingBox
	return preprocess.CropRect(full, full.Dx(), full.Dy(), b.Left, b.Top, b.Width, b.Height, s.padding)
}

// Send publishes a sample and counts it.
func (s *Samples) Send(smp *payload.Sample) {
	body, err := json.Marshal(smp)
	if err != nil {
		s.env.Log.Error("sample not encoded", "camera", s.camera, "err", err)
		return
	}
	s.env.Pub.Send(publish.Message{Topic: s.env.Topic("cameras/" + s.camera + "/samples"), QoS: 1, Payload: body, Class: spool.Samples})
	s.sent.Add(smp.Reason)
	if s.env.Review != nil {
		s.env.Review(*smp)
	}
}

// build makes a sample of detection det (or the whole frame) with its images.
func (s *Samples) build(f *camera.Frame, msg *payload.Prediction, det int, region image.Rectangle) *payload.Sample {
	smp := &payload.Sample{Schema: payload.Schema, ID: payload.NewID(), Agent: s.env.Agent, Camera: s.camera, Boot: s.env.Boot,
		Created: time.Now().UTC(), FrameID: msg.FrameID, Captured: msg.Captured, Models: msg.Models}
	if msg.FrameID > 0 { // published: dashboards know it by this id
		smp.PredictionID = msg.ID
	}
	switch {
	case det >= 0 && det < len(msg.Predictions):
		d := det
		smp.Detection = &d
		p := msg.Predictions[det]
		smp.Prediction = &p
	case len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox == nil: // classifier alone: its tags
		top := msg.Predictions[0]
		ref := msg.Models[len(msg.Models)-1]
		smp.Prediction = &payload.Tag{Probability: top.Probability, TagName: top.TagName,
			Classification: &payload.Classification{Model: ref.Name, Iteration: ref.Iteration, Predictions: msg.Predictions}}
	}
	s.attachImages(smp, f, region)
	return smp
}

// attachImages puts the crop of region, and the whole frame when samples.full_frame asks
// for it, into smp, each small enough for mqtt.max_payload_kb.
func (s *Samples) attachImages(smp *payload.Sample, f *camera.Frame, region image.Rectangle) {
	full := f.Bounds()
	both := s.cfg.FullFrame && region != full
	images := 1
	if both {
		images = 2
	}
	maxBytes := s.env.ImageBytes(s.cfg.MaxImageKB<<10, images)
	crop, err := preprocess.EncodeJPEG(f.Mat(), region, s.cfg.JPEGQuality, maxBytes)
	if err != nil {
		smp.ImageOmitted = true
	} else {
		smp.Crop = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(crop), Width: region.Dx(), Height: region.Dy()}
		if region != full {
			smp.Crop.Box = relative(region, full)
		}
	}
	if both {
		if whole, err := preprocess.EncodeJPEG(f.Mat(), full, s.cfg.JPEGQuality, maxBytes); err == nil {
			smp.Frame = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(whole), Width: full.Dx(), Height: full.Dy()}
		} else {
			smp.ImageOmitted = true
		}
	}
}

// relative is region as a box relative to full.
func relative(region, full image.Rectangle) *payload.Box {
	fw, fh := float32(full.Dx()), float32(full.Dy())
	return &payload.Box{Left: float32(region.Min.X) / fw, Top: float32(region.Min.Y) / fh, Width: float32(region.Dx()) / fw, Height: float32(region.Dy()) / fh}
}

// Labels gives the tags of the model named, as the agent serves it now; nil when it has no
// such model.
type Labels func(model string) []string

// Correction makes the sample that answers an operator's correction fb of the prediction
// msg of frame f (reason operator). The caller sends it. The tag must be one of the model
// the correction is about (labels tells its tags): the classifier that classified the
// detection or the frame, or one of the second-level classifiers that answered after it, or
// the detector, for a detection no classifier saw. It matches ignoring case, and the sample
// carries the model's spelling.
func (s *Samples) Correction(f *camera.Frame, msg *payload.Prediction, fb payload.Feedback, labels Labels) (*payload.Sample, error) {
	det, err := correctedDetection(msg, fb)
	if err != nil {
		return nil, err
	}
	tag, err := correctTag(msg, det, fb.Tag, labels)
	if err != nil {
		return nil, err
	}
	smp := s.build(f, msg, det, s.Region(f, msg, det))
	smp.Reason, smp.Detail = sampling.Operator, "corrected by "+orUnknown(fb.Operator)
	smp.CorrectTag, smp.Operator, smp.Note, smp.FeedbackID = tag, fb.Operator, fb.Note, fb.ID
	return smp, nil
}

// correctTag is tag as spelled by a model that detection det of msg (-1: the whole frame) is
// about, or an error that lists those models' tags. A model the agent no longer has is not
// checked; when it has none of them, the tag is taken as it is.
func correctTag(msg *payload.Prediction, det int, tag string, labels Labels) (string, error) {
	var models []string
	var c *payload.Classification
	if det >= 0 {
		c = msg.Predictions[det].Classification
	} else if classifier := modelOfStage(msg, "classifier"); classifier != "" { // classifier alone
		models, c = append(models, classifier), msg.Route
	}
	for ; c != nil; c = c.Next {
		models = append(models, c.Model)
	}
	if len(models) == 0 { // a detection no classifier saw
		models = append(models, modelOfStage(msg, "detector"))
	}
	var known []string
	checked := false
	for _, m := range models {
		var tags []string
		if labels != nil {
			tags = labels(m)
		}
		if tags == nil {
			continue
		}
		checked = true
		if t, ok := configs.TagIn(tags, tag); ok {
			return t, nil
		}
		known = append(known, fmt.Sprintf("model %s has %s", m, strings.Join(tags, ", ")))
	}
	if !checked {
		return tag, nil
	}
	return "", fmt.Errorf("tag %q is not a tag of the model this correction is about (%s): send one of those tags, or retrain the model with the new tag first", tag, strings.Join(known, "; "))
}

// modelOfStage is the name of msg's model at stage (detector, classifier); "" when none.
func modelOfStage(msg *payload.Prediction, stage string) string {
	for _, m := range msg.Models {
		if m.Stage == stage {
			return m.Name
		}
	}
	return ""
}

// correctedDetection is the detection of msg that fb corrects (-1: the whole frame).
func correctedDetection(msg *payload.Prediction, fb payload.Feedback) (int, error) {
	boxes := len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox != nil
	switch {
	case boxes && fb.Detection == nil && len(msg.Predictions) == 1:
		return 0, nil
	case boxes && fb.Detection == nil:
		return -1, fmt.Errorf("prediction %q has %d detections: say which one is wrong in \"detection\" (0-%d)", msg.ID, len(msg.Predictions), len(msg.Predictions)-1)
	case boxes && *fb.Detection >= len(msg.Predictions):
		return -1, fmt.Errorf("prediction %q has %d detections; \"detection\" %d is not one of them", msg.ID, len(msg.Predictions), *fb.Detection)
	case boxes:
		return *fb.Detection, nil
	case fb.Detection != nil:
		return -1, fmt.Errorf("prediction %q has no detections; leave \"detection\" out", msg.ID)
	case len(msg.Predictions) == 0:
		return -1, errors.New("the prediction found nothing to correct")
	}
	return -1, nil
}

// ShadowAnswer is the candidate's answer on the region a correction of msg is about, with
// the model whose candidate gave it; nil when no candidate answered there.
func ShadowAnswer(smp *payload.Sample, msg *payload.Prediction) (model string, sh *payload.ShadowAnswer) {
	if smp.Prediction == nil || smp.Prediction.Classification == nil {
		return "", nil
	}
	c := smp.Prediction.Classification
	sh = c.Shadow
	if smp.Detection == nil && msg.Shadow != nil {
		sh = msg.Shadow
	}
	return c.Model, sh
}

func orUnknown(s string) string {
	if s == "" {
		return "an operator"
	}
	return s
}
