package pipeline

import (
	"image"
	"sync"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// FakeStage is a Stage that answers what its Answer function says, without onnxruntime: for
// tests of the pipeline, the steps and the daemon that need a model's behaviour, not its
// weights. Answer should compute its predictions from the frame's pixels in the region, so
// that a test checks what the pipeline did with them.
type FakeStage struct {
	// Model and Iteration name it in the messages' models list.
	Model, Iteration string
	// Finds makes it a detector: Answer's predictions carry boxes, relative to the region.
	Finds bool
	// Answer returns the predictions for one region of f, best first.
	Answer func(f *camera.Frame, region image.Rectangle) []models.Prediction
	// Err, when set, fails every call.
	Err error

	mu      sync.Mutex
	regions []image.Rectangle
}

// Infer implements Stage.
func (s *FakeStage) Infer(f *camera.Frame, regions []image.Rectangle, _ *models.Results) (Inference, error) {
	s.mu.Lock()
	s.regions = append(s.regions, regions...)
	s.mu.Unlock()
	if s.Err != nil {
		return Inference{}, s.Err
	}
	preds := make([][]models.Prediction, len(regions))
	for i, r := range regions {
		preds[i] = s.Answer(f, r)
	}
	return Inference{Preds: preds, Ref: s.Ref()}, nil
}

// Ref implements Stage.
func (s *FakeStage) Ref() payload.ModelRef {
	format := "ONNX"
	if s.Finds {
		format = "ONNX-detector"
	}
	return payload.ModelRef{Name: s.Model, Format: format, Iteration: s.Iteration}
}

// Detector implements Stage.
func (s *FakeStage) Detector() bool { return s.Finds }

// Seen returns the regions the stage was asked about, in order, and forgets them.
func (s *FakeStage) Seen() []image.Rectangle {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.regions
	s.regions = nil
	return out
}
