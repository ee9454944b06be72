package steps

import (
	"context"
	"image"
	"log/slog"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// Shadower runs a candidate iteration beside the active one (pipeline.ModelStage does).
type Shadower interface {
	// ShadowInfer runs the candidate on the regions when it has one and may run now; record,
	// nil when it did not run, counts each region's comparison.
	ShadowInfer(f *camera.Frame, regions []image.Rectangle, into *models.Results) (pipeline.Inference, func(activeTag string, agrees bool), error)
}

// shadow runs the classifier's candidate iteration on the regions the classifier saw, adds
// its answer beside the active one's (classification.shadow) and counts their agreement.
type shadow struct {
	stage  Shadower
	camera string
	log    *slog.Logger
	res    models.Results
	// scratch: the regions the classifier saw, and the classification of each
	regions []image.Rectangle
	cls     []*payload.Classification
	failed  uint64
}

// NewShadow returns the shadow step of a camera whose classifier is stage, or nil when
// stage is nil.
func NewShadow(stage Shadower, camera string, log *slog.Logger) pipeline.Step {
	if stage == nil {
		return nil
	}
	return &shadow{stage: stage, camera: camera, log: log}
}

func (s *shadow) Name() string { return "shadow" }

func (s *shadow) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	s.regions, s.cls = s.regions[:0], s.cls[:0]
	var whole *payload.Classification // a classifier alone: the frame's answer
	if len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox == nil && len(f.Regions) == 1 {
		whole = &payload.Classification{Predictions: msg.Predictions}
		s.regions, s.cls = append(s.regions, f.Regions[0]), append(s.cls, whole)
	} else {
		for i := range msg.Predictions {
			c := msg.Predictions[i].Classification
			if c == nil || i >= len(f.Regions) || f.Regions[i].Empty() {
				continue
			}
			s.regions, s.cls = append(s.regions, f.Regions[i]), append(s.cls, c)
		}
	}
	if len(s.regions) == 0 {
		return
	}
	inf, record, err := s.stage.ShadowInfer(f.Frame, s.regions, &s.res)
	if err != nil {
		if s.failed++; s.failed == 1 || s.failed%100 == 0 {
			s.log.Error("shadow candidate failed; the active iteration's answers are published without it", "camera", s.camera, "err", err, "failures", s.failed)
		}
		return
	}
	if record == nil {
		return
	}
	for i, preds := range inf.Preds {
		c := s.cls[i]
		if len(preds) == 0 || len(c.Predictions) == 0 {
			continue
		}
		active := c.Predictions[0].TagName
		a := &payload.ShadowAnswer{Iteration: inf.Ref.Iteration, TagName: preds[0].TagName, Probability: preds[0].Probability, Agrees: preds[0].TagName == active}
		c.Shadow = a
		record(active, a.Agrees)
	}
	if whole != nil {
		msg.Shadow = whole.Shadow
	}
}
