package pipeline

import (
	"fmt"
	"image"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/preprocess"
)

// Stage runs one model on regions of a frame. It is the seam between the pipeline and
// onnxruntime: tests of the pipeline may give it a fake.
type Stage interface {
	// Infer runs the model on the regions of f. The predictions are put in into, which the
	// caller reuses from frame to frame: they are valid until its next use.
	Infer(f *camera.Frame, regions []image.Rectangle, into *models.Results) (Inference, error)
	// Ref names the model serving now, for payloads.
	Ref() payload.ModelRef
	// Detector reports whether the model finds boxes.
	Detector() bool
}

// AheadStage is a Stage that can fill a frame's input before the model's turn, on another
// goroutine (see Stream). ModelStage is one; a pipeline whose detector is not fills the
// input when the model runs.
type AheadStage interface {
	Stage
	// FillAhead fills a with region r of f; it is best effort (see ModelStage.FillAhead).
	FillAhead(a *Ahead, f *camera.Frame, r image.Rectangle)
	// InferAhead runs the model on a, or on region r of f when a is not filled for it.
	InferAhead(a *Ahead, f *camera.Frame, r image.Rectangle, into *models.Results) (Inference, error)
}

// Inference is what one Infer call returns.
type Inference struct {
	// Preds has one prediction list per region (boxes normalized to their region), held by
	// the Results given to the call.
	Preds [][]models.Prediction
	// Fill is the time spent filling the input tensor: part of the call's time, unless
	// Ahead says the input was filled before the call.
	Fill  time.Duration
	Ahead bool
	// Ref names the iteration that made these predictions, even if another was swapped in
	// since.
	Ref payload.ModelRef
	// Labels are the tags of that iteration.
	Labels []string
}

// loaded is one iteration of a model with its tensorizer.
type loaded struct {
	model *models.Model
	tz    *preprocess.Tensorizer
	ref   payload.ModelRef
	// view: the model reads a reduced view of the frame where one holds as many pixels as
	// its input (a detector; see camera.Frame.View). A classifier reads full-resolution crops.
	view bool
}

func newLoaded(m *models.Model, resize string) (*loaded, error) {
	tz, err := tensorizer(m, resize)
	if err != nil {
		return nil, err
	}
	return &loaded{model: m, tz: tz, view: m.Info.Format.IsDetector(), ref: payload.ModelRef{
		Name: m.Info.Name, Format: string(m.Info.Format), Iteration: m.Info.Iteration, SHA256: m.Info.SHA256,
	}}, nil
}

// fill fills one input slot from region r of f: from a reduced view of the frame for a
// detector, from its full-resolution pixels otherwise.
func (l *loaded) fill(tz *preprocess.Tensorizer, f *camera.Frame, r image.Rectangle, slot models.Slot) error {
	if l.view {
		in := l.model.Info.Input
		mat, vr := f.View(r, in.Width, in.Height)
		return tz.Fill(mat, vr, slot.F32, slot.F16)
	}
	return tz.Fill(f.Mat(), r, slot.F32, slot.F16)
}

// infer fills the input from the frame and runs the model; the model's lock serializes
// callers, and the Tensorizer is only used under it.
func (l *loaded) infer(f *camera.Frame, regions []image.Rectangle, into *models.Results) (Inference, error) {
	var fill time.Duration
	err := l.model.PredictInto(into, len(regions), func(i int, slot models.Slot) error {
		t := time.Now()
		err := l.fill(l.tz, f, regions[i], slot)
		fill += time.Since(t)
		return err
	})
	if err != nil {
		return Inference{}, err
	}
	return Inference{Preds: into.Lists(), Fill: fill, Ref: l.ref, Labels: l.model.Info.Labels}, nil
}

// tensorizer makes the preprocessing that turns pixels into m's input.
func tensorizer(m *models.Model, resize string) (*preprocess.Tensorizer, error) {
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
	return tz, nil
}

func (l *loaded) close() {
	l.model.Close()
	l.tz.Close()
}

// ModelStage serves one configured model to every camera that uses it. The iteration it
// runs can be swapped while cameras run: Swap loads nothing, it only exchanges the serving
// iteration between two frames and frees the old one once no frame uses it.
type ModelStage struct {
	mu     sync.RWMutex // read: a frame is using cur; write: a swap
	cur    *loaded
	resize string
	// shadow, when set, is a candidate iteration run beside cur (see shadow.go).
	shadow *shadowRun
}

// LoadStage loads the export mc.Path as model name (its warm-up inference included) and
// wraps it in a ModelStage.
func LoadStage(rt *models.Runtime, name string, mc configs.Model) (*ModelStage, error) {
	m, err := models.Load(rt, name, mc)
	if err != nil {
		return nil, err
	}
	st, err := NewModelStage(m, mc.Resize)
	if err != nil {
		m.Close()
		return nil, err
	}
	return st, nil
}

// NewModelStage wraps a loaded model. resize is "stretch" or "center_crop".
func NewModelStage(m *models.Model, resize string) (*ModelStage, error) {
	l, err := newLoaded(m, resize)
	if err != nil {
		return nil, err
	}
	return &ModelStage{cur: l, resize: resize}, nil
}

// Infer implements Stage.
func (s *ModelStage) Infer(f *camera.Frame, regions []image.Rectangle, into *models.Results) (Inference, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.infer(f, regions, into)
}

// Ahead is one frame's input to a ModelStage, filled before the model's turn by a goroutine
// of its own (see Stream), with its own preprocessing scratch. It is remade when the serving
// iteration changes. The zero Ahead is ready; Close frees it.
type Ahead struct {
	feed   *models.Feed
	tz     *preprocess.Tensorizer
	l      *loaded // the iteration the feed was made for
	filled bool
	fill   time.Duration
	at     time.Time          // when it was filled
	region [1]image.Rectangle // scratch: the region, when InferAhead fills it itself
}

// Close frees the feed and the scratch.
func (a *Ahead) Close() {
	if a.feed != nil {
		a.feed.Close()
		a.tz.Close()
		a.feed, a.tz, a.l = nil, nil, nil
	}
	a.filled = false
}

// FillAhead fills a with region r of f for the serving iteration. It is best effort: when
// it fails (the iteration was swapped out meanwhile, say), a stays unfilled and InferAhead
// fills the input itself, which reports any error that recurs.
func (s *ModelStage) FillAhead(a *Ahead, f *camera.Frame, r image.Rectangle) {
	a.filled = false
	s.mu.RLock()
	l := s.cur
	s.mu.RUnlock()
	if a.l != l {
		a.Close()
		feed, err := l.model.NewFeed()
		if err != nil {
			return
		}
		tz, err := tensorizer(l.model, s.resize)
		if err != nil {
			feed.Close()
			return
		}
		a.feed, a.tz, a.l = feed, tz, l
	}
	t := time.Now()
	if err := l.fill(a.tz, f, r, a.feed.Slot()); err != nil {
		return
	}
	a.filled, a.fill, a.at = true, time.Since(t), time.Now()
}

// InferAhead runs the model on a, filled from region r of f, with the predictions put in
// into (as Infer does); if another iteration was swapped in since a was filled, it fills the
// input again for that one.
func (s *ModelStage) InferAhead(a *Ahead, f *camera.Frame, r image.Rectangle, into *models.Results) (Inference, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !a.filled || a.l != s.cur {
		a.region[0] = r
		return s.cur.infer(f, a.region[:], into)
	}
	a.filled = false
	if err := s.cur.model.RunInto(into, a.feed); err != nil {
		return Inference{}, err
	}
	return Inference{Preds: into.Lists(), Fill: a.fill, Ahead: true, Ref: s.cur.ref, Labels: s.cur.model.Info.Labels}, nil
}

// Ref implements Stage.
func (s *ModelStage) Ref() payload.ModelRef {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.ref
}

// Detector implements Stage.
func (s *ModelStage) Detector() bool { return s.Model().Info.Format.IsDetector() }

// InputSize is the width and height of the serving iteration's input, in pixels.
func (s *ModelStage) InputSize() image.Point {
	in := s.Model().Info.Input
	return image.Pt(in.Width, in.Height)
}

// Model returns the iteration serving now.
func (s *ModelStage) Model() *models.Model {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.model
}

// Swap makes m the serving iteration, between frames, and frees the one it replaces. m
// must do the same job (detector or classifier).
func (s *ModelStage) Swap(m *models.Model) error {
	l, err := newLoaded(m, s.resize)
	if err != nil {
		return err
	}
	if m.Info.Format.IsDetector() != s.Detector() {
		l.close()
		return fmt.Errorf("iteration %s is a %s and cannot replace a %s", m.Info.Iteration, m.Info.Format, s.Model().Info.Format)
	}
	s.mu.Lock()
	old := s.cur
	s.cur = l
	s.mu.Unlock() // frames from here on use m; none uses old any more
	old.close()
	return nil
}

// Close frees the serving iteration and the shadow.
func (s *ModelStage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.close()
	if s.shadow != nil {
		s.shadow.close()
		s.shadow = nil
	}
	return nil
}
