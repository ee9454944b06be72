package models

import (
	"fmt"
	"unsafe"
)

// Feed is the input tensor of one image, owned by its caller rather than by the model. The
// caller fills it without holding the model, so that preparing the next frame overlaps the
// model running on this one; Run then runs the model on it. Make one with NewFeed; Close
// frees it (closing the model does not).
type Feed struct {
	spec feedSpec
	slot Slot
	bind *binding
}

// feedSpec is what a Feed must match to be run by a model.
type feedSpec struct {
	Width, Height int
	Float16       bool
}

func specOf(m *Model) feedSpec {
	return feedSpec{Width: m.Info.Input.Width, Height: m.Info.Input.Height, Float16: m.Info.Input.Float16}
}

// NewFeed makes a Feed of one image for this model.
func (m *Model) NewFeed() (*Feed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("model %q is closed", m.Info.Name)
	}
	f := &Feed{spec: specOf(m)}
	per := 3 * f.spec.Width * f.spec.Height
	var in32 []float32
	var in16b []byte
	if f.spec.Float16 {
		in16b = make([]byte, 2*per)
		f.slot.F16 = unsafe.Slice((*uint16)(unsafe.Pointer(&in16b[0])), per)
	} else {
		in32 = make([]float32, per)
		f.slot.F32 = in32
	}
	bd, err := m.newBinding(1, in32, in16b)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.Info.Name, err)
	}
	f.bind = bd
	return f, nil
}

// Slot is where the image goes.
func (f *Feed) Slot() Slot { return f.slot }

// Fits reports whether m can run this feed (same input size and type).
func (f *Feed) Fits(m *Model) bool { return f.bind != nil && f.spec == specOf(m) }

// Close frees the feed's tensors.
func (f *Feed) Close() {
	if f.bind != nil {
		f.bind.destroy()
		f.bind = nil
	}
}

// Run runs the model on a filled Feed and returns the image's predictions, as Predict does.
func (m *Model) Run(f *Feed) ([]Prediction, error) {
	var r Results
	if err := m.RunInto(&r, f); err != nil {
		return nil, err
	}
	return r.Lists()[0], nil
}

// RunInto is Run with the predictions put in r (one list), which the caller reuses from call
// to call: in steady state it allocates nothing.
func (m *Model) RunInto(r *Results, f *Feed) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("model %q is closed", m.Info.Name)
	}
	if !f.Fits(m) {
		return fmt.Errorf("model %q: the feed was made for a %dx%d model, not this %dx%d one",
			m.Info.Name, f.spec.Width, f.spec.Height, m.Info.Input.Width, m.Info.Input.Height)
	}
	r.reset()
	if err := m.run(f.bind, 1, r); err != nil {
		return err
	}
	r.finish()
	return nil
}
