package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// cameraRun is one camera under one config: its pipeline and steps, and what commands and
// feedback reach into (the trigger queue, the snapshot step, the samples, the ring).
type cameraRun struct {
	cam   *camera.Camera
	cfg   configs.Camera
	pl    *pipeline.Pipeline
	steps pipeline.Steps
	// camStarted: cam runs already (a reload took it over), so it is not started again.
	camStarted bool
	// base holds the counts of the camera's runs before a reload: its counters go on.
	base pipeline.Counts
	// stepsBusy is when the steps began on the current frame (unix ns), 0 between frames:
	// with the pipeline's phases, what the watchdog watches.
	stepsBusy atomic.Int64

	triggers chan pipeline.Trigger // trigger mode mqtt: the triggers waiting
	snaps    *steps.Snapshots
	samples  *steps.Samples
	ring     *steps.Ring
	ended    *steps.EndedParts // its recently ended parts, for feedback by partId
	// ringFrom is the run of the config before a reload whose ring this one took over; nil
	// when the ring is its own. ringMoved: a later run took this one's ring.
	ringFrom  *cameraRun
	ringMoved bool
	closed    bool // close ran: it runs once (at shutdown, before MQTT closes, and in Close)
}

// counts are the camera's counters since the agent started, across reloads.
func (r *cameraRun) counts() pipeline.Counts {
	c := r.steps.Count()
	c.Add(r.base)
	return c
}

// close frees what the run holds beside its camera: its pipeline's and steps' scratch and
// files, and the recent frames unless a reload took them over. Every run is closed once: when
// its build fails, when a reload replaces it, or when the agent stops (before MQTT closes, so
// that what the steps send on closing goes out); never while its loop runs.
func (r *cameraRun) close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.pl != nil {
		r.pl.Close()
	}
	r.steps.Close()
	if !r.ringMoved && r.ringFrom == nil {
		r.ring.Clear()
	}
}

// loop processes the camera's frames, as its trigger mode says, until the camera ends or
// ctx ends: through the pipeline (one frame ahead, see pipeline.Stream), then the steps.
func (a *Agent) loop(ctx context.Context, r *cameraRun) {
	fr := &pipeline.Frame{Camera: r.cam.Name()} // reused: the steps do not keep it
	trig, err := pipeline.Stream(ctx, r.pl, r.nextFrame(), func(f *camera.Frame, trig *pipeline.Trigger, msg *payload.Prediction, err error) {
		*fr = pipeline.Frame{Frame: f, Camera: r.cam.Name(), Trigger: trig, Err: err}
		if err == nil {
			fr.Regions = r.pl.Regions()
			if trig != nil {
				msg.TriggerID = trig.ID
			}
		}
		r.handle(ctx, fr, msg)
	})
	if trig != nil {
		a.env.Result(trig.ID, payload.CmdTrigger, fmt.Errorf("camera %q delivered no frame: %v", r.cam.Name(), err), nil)
	}
	if errors.Is(err, io.EOF) && ctx.Err() == nil {
		a.log.Info("camera finished: no more frames", "camera", r.cam.Name(), "state", r.cam.Status().State)
	}
}

// handle runs the steps on one frame, marked busy for the watchdog meanwhile.
func (r *cameraRun) handle(ctx context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	r.stepsBusy.Store(time.Now().UnixNano())
	defer r.stepsBusy.Store(0)
	r.steps.Handle(ctx, f, msg)
}

// busySince is when the camera's oldest unfinished work on a frame began, in the pipeline or
// in the steps; zero when idle.
func (r *cameraRun) busySince() time.Time {
	busy := r.pl.BusySince()
	if v := r.stepsBusy.Load(); v != 0 && (busy.IsZero() || v < busy.UnixNano()) {
		busy = time.Unix(0, v)
	}
	return busy
}

// nextFrame returns the function that waits for the camera's next frame as its trigger mode
// says: the next one (at most max_fps), one every interval, or the first after each trigger.
func (r *cameraRun) nextFrame() func(context.Context) (*camera.Frame, *pipeline.Trigger, error) {
	var next time.Time // earliest start of the next frame (interval, max_fps)
	return func(ctx context.Context) (*camera.Frame, *pipeline.Trigger, error) {
		switch r.cfg.Trigger {
		case "interval":
			if !camera.Sleep(ctx, time.Until(next)) {
				return nil, nil, ctx.Err()
			}
			next = time.Now().Add(r.cfg.Interval)
			f, err := r.cam.NextAfter(ctx, time.Now())
			return f, nil, err
		case "mqtt":
			select {
			case t := <-r.triggers:
				f, err := r.cam.NextAfter(ctx, t.At)
				return f, &t, err
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		default:
			if r.cfg.MaxFPS > 0 {
				if !camera.Sleep(ctx, time.Until(next)) {
					return nil, nil, ctx.Err()
				}
				next = time.Now().Add(time.Duration(float64(time.Second) / r.cfg.MaxFPS))
			}
			f, err := r.cam.Next(ctx)
			return f, nil, err
		}
	}
}
