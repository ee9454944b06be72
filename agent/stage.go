package agent

import (
	"fmt"
	"image"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/preprocess"
)

// Stage runs one model on regions of a frame. It is the seam between the pipeline and
// onnxruntime: tests of the pipeline may give it a fake.
type Stage interface {
	// Infer returns one prediction list per region (boxes normalized to their region) and
	// the time spent filling the input tensor, which is part of the total.
	Infer(f *camera.Frame, regions []image.Rectangle) ([][]models.Prediction, time.Duration, error)
	// Ref names the model for payloads.
	Ref() payload.ModelRef
	// Detector reports whether the model finds boxes.
	Detector() bool
}

// ModelStage runs a loaded model, filling its input tensor straight from the frame. One
// ModelStage serves every camera that uses the model; the model's lock serializes them, and
// the Tensorizer is only used under that lock.
type ModelStage struct {
	model *models.Model
	tz    *preprocess.Tensorizer
	ref   payload.ModelRef
}

// NewModelStage wraps a loaded model. resize is "stretch" or "center_crop".
func NewModelStage(m *models.Model, resize string) (*ModelStage, error) {
	in := m.Info.Input
	tz, err := preprocess.NewTensorizer(preprocess.Spec{
		Width: in.Width, Height: in.Height,
		SwapRB: in.Pixels.Order == models.RGB,
		Scale:  in.Pixels.Scale, Offset: in.Pixels.Offset,
		CenterCrop: resize == "center_crop",
	})
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.Info.Name, err)
	}
	return &ModelStage{model: m, tz: tz, ref: payload.ModelRef{
		Name: m.Info.Name, Format: string(m.Info.Format), Iteration: m.Info.Iteration, SHA256: m.Info.SHA256,
	}}, nil
}

// Infer implements Stage.
func (s *ModelStage) Infer(f *camera.Frame, regions []image.Rectangle) ([][]models.Prediction, time.Duration, error) {
	mat := f.Mat()
	var fill time.Duration
	res, err := s.model.Predict(len(regions), func(i int, slot models.Slot) error {
		t := time.Now()
		err := s.tz.Fill(mat, regions[i], slot.F32, slot.F16)
		fill += time.Since(t)
		return err
	})
	return res, fill, err
}

// Ref implements Stage.
func (s *ModelStage) Ref() payload.ModelRef { return s.ref }

// Detector implements Stage.
func (s *ModelStage) Detector() bool { return s.model.Info.Format.IsDetector() }

// Model returns the wrapped model.
func (s *ModelStage) Model() *models.Model { return s.model }

// Close frees the model and the Tensorizer.
func (s *ModelStage) Close() error {
	err := s.model.Close()
	s.tz.Close()
	return err
}
