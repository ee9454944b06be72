package steps

import (
	"context"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
)

// metricsStep records each processed frame in the Prometheus metrics: the time per stage,
// the detections and crops per frame, and the final tags.
type metricsStep struct {
	m      *ops.Metrics
	camera string
}

// NewMetrics returns the metrics step of camera, or nil when m is nil.
func NewMetrics(m *ops.Metrics, camera string) pipeline.Step {
	if m == nil {
		return nil
	}
	return &metricsStep{m: m, camera: camera}
}

func (s *metricsStep) Name() string { return "metrics" }

func (s *metricsStep) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	cam := s.camera
	l := msg.LatencyMs
	for stage, v := range map[string]float64{"queue": l.Queue, "preprocess": l.Preprocess, "detect": l.Detect, "classify": l.Classify} {
		s.m.Stage.WithLabelValues(cam, stage).Observe(v / 1000)
	}
	crops := 0
	if len(msg.Models) > 0 && msg.Models[0].Stage == "detector" {
		s.m.Detections.WithLabelValues(cam).Observe(float64(len(msg.Predictions)))
		for _, d := range msg.Predictions {
			model, tag := msg.Models[0].Name, d.TagName
			if c := d.Classification; c != nil {
				crops++
				model, tag = finalModelTag(c, model, tag)
			}
			s.m.Predictions.WithLabelValues(cam, model, tag).Inc()
		}
	} else if len(msg.Predictions) > 0 {
		crops = 1
		model, tag := msg.Models[len(msg.Models)-1].Name, msg.Predictions[0].TagName
		if c := msg.Route; c != nil {
			model, tag = finalModelTag(c, model, tag)
		}
		s.m.Predictions.WithLabelValues(cam, model, tag).Inc()
	}
	s.m.Crops.WithLabelValues(cam).Observe(float64(crops))
}

// finalModelTag is the model and top tag of the deepest level of c; model and tag when that
// level has no predictions.
func finalModelTag(c *payload.Classification, model, tag string) (string, string) {
	for c.Next != nil {
		c = c.Next
	}
	if len(c.Predictions) > 0 {
		return c.Model, c.Predictions[0].TagName
	}
	return model, tag
}
