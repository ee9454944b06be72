package pipeline

import (
	"context"
	"image"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
)

// Step is one thing done with each frame after the models: keep it for feedback, sample it,
// publish its message, answer its trigger. A camera's steps run in order on its goroutine,
// one frame at a time; a step owns its own state and counters. A new per-frame feature is
// one Step in a file of its own and one line where the daemon lists the steps.
type Step interface {
	// Name says what the step does, for logs and the docs' list.
	Name() string
	// Handle does the step's work on f. msg is the frame's prediction, nil when the frame
	// failed (f.Err says why); for a frame the quality gate skipped (f.Err is ErrGated) it
	// holds only the quality and is not published; for a frame the motion gate skipped (f.Err
	// is ErrUnchanged) it is published only when it is the unchanged report (its Motion is
	// MotionUnchanged). A step may change msg for the steps after it; it must not keep f past
	// its call unless it takes the frame with f.Keep.
	Handle(ctx context.Context, f *Frame, msg *payload.Prediction)
}

// Finisher is a Step told when every step has handled a frame: no step reads its pixels any
// more, so one that kept the frame may let what was decoded of it go.
type Finisher interface {
	Finished(f *Frame)
}

// Counter is a Step with counters: Count adds them to c.
type Counter interface {
	Count(c *Counts)
}

// Closer is a Step that holds something (a file, a goroutine's work) to free when the
// camera's steps end.
type Closer interface {
	Close()
}

// Trigger is the command that asked for a frame (trigger: mqtt): process the next fresh
// frame captured after At, and answer command ID.
type Trigger struct {
	ID string
	At time.Time
}

// Frame is one frame after the models, as the steps see it.
type Frame struct {
	*camera.Frame
	// Camera is the name of the camera that captured it.
	Camera string
	// Trigger is the command that asked for this frame; nil unless the camera has trigger mqtt.
	Trigger *Trigger
	// Regions are, by prediction index, the pixel regions the classifier saw (see
	// Pipeline.Regions); valid during the steps.
	Regions []image.Rectangle
	// Err is why the frame has no message from the models: ErrGated, ErrUnchanged, or a
	// failure of the models.
	Err  error
	kept bool
}

// Keep hands the frame's pixels over to the caller, who closes them when done; the steps
// after it may still read them during this frame.
func (f *Frame) Keep() *camera.Frame {
	f.kept = true
	return f.Frame
}

// Counts are a camera's counters since it started.
type Counts struct {
	Processed, Failed, Gated uint64
	// Unchanged counts the frames the motion gate kept from the models.
	Unchanged uint64
	// InferUs is the model time (detect and classify) of the processed frames, microseconds.
	InferUs uint64
	// Samples counts the samples sent, by reason.
	Samples map[string]uint64
	// QueueMs holds the queue latency of the last frames (at most 1000), oldest first.
	QueueMs []float64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Processed += o.Processed
	c.Failed += o.Failed
	c.Gated += o.Gated
	c.Unchanged += o.Unchanged
	c.InferUs += o.InferUs
	for k, v := range o.Samples {
		if c.Samples == nil {
			c.Samples = map[string]uint64{}
		}
		c.Samples[k] += v
	}
	c.QueueMs = append(c.QueueMs, o.QueueMs...)
}

// Steps are a camera's steps, in the order they run.
type Steps []Step

// NewSteps lists the steps given, in order, leaving out the nil ones (features turned off).
func NewSteps(list ...Step) Steps {
	out := make(Steps, 0, len(list))
	for _, s := range list {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Handle runs every step on the frame, tells the Finishers, then closes its pixels unless a
// step kept them.
func (s Steps) Handle(ctx context.Context, f *Frame, msg *payload.Prediction) {
	for _, st := range s {
		st.Handle(ctx, f, msg)
	}
	for _, st := range s {
		if fi, ok := st.(Finisher); ok {
			fi.Finished(f)
		}
	}
	if !f.kept {
		f.Frame.Close()
	}
}

// Count adds up the counters of the steps (an empty Samples map, never nil).
func (s Steps) Count() Counts {
	c := Counts{Samples: map[string]uint64{}}
	for _, st := range s {
		if n, ok := st.(Counter); ok {
			n.Count(&c)
		}
	}
	return c
}

// Close frees what the steps hold.
func (s Steps) Close() {
	for _, st := range s {
		if c, ok := st.(Closer); ok {
			c.Close()
		}
	}
}

// Names lists the steps' names, in order.
func (s Steps) Names() []string {
	out := make([]string, len(s))
	for i, st := range s {
		out[i] = st.Name()
	}
	return out
}
