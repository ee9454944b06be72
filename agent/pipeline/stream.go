package pipeline

import (
	"context"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/models"
)

// Stream runs p on the frames next returns, in three phases that overlap across frames, each
// on its own goroutine: one grabs frame n+2, measures its quality and fills the detector's
// input; one runs the detector on frame n+1; the calling goroutine classifies frame n's
// crops and calls done. On a small box this keeps the detector, the expensive part, busy.
//
// done gets each frame in order, with its message or error (ErrGated for a frame the gate
// skipped, with its quality; ErrUnchanged for one the motion gate skipped, its message the
// numbered unchanged report when one is due); done owns f. meta travels with its frame.
// When next fails (io.EOF at the end of a file, or ctx ended), Stream returns that call's
// meta and error once every earlier frame is done. p must not be used elsewhere meanwhile.
func Stream[T any](ctx context.Context, p *Pipeline, next func(context.Context) (*camera.Frame, T, error),
	done func(f *camera.Frame, meta T, msg *payload.Prediction, err error)) (T, error) {
	type job struct {
		f    *camera.Frame
		meta T
		msg  *payload.Prediction
		err  error
		a    *Ahead
		kept []models.Box
	}
	// Two detector inputs: one the detector reads, one being filled. An input comes back to
	// free once the detector is done with it.
	free := make(chan *Ahead, 2)
	free <- &Ahead{}
	free <- &Ahead{}
	prepared := make(chan job, 1)
	detected := make(chan job, 1)
	var (
		endMeta T
		endErr  error
	)
	go func() {
		defer close(prepared)
		for {
			var a *Ahead
			select {
			case a = <-free:
			case <-ctx.Done():
				endErr = ctx.Err()
				return
			}
			f, meta, err := next(ctx)
			if err != nil {
				free <- a
				endMeta, endErr = meta, err
				return
			}
			msg, err := p.prepare(f, a)
			prepared <- job{f: f, meta: meta, msg: msg, err: err, a: a}
		}
	}()
	go func() {
		defer close(detected)
		for j := range prepared {
			if j.err == nil {
				j.kept, j.err = p.detect(j.f, j.msg, j.a)
			}
			free <- j.a
			detected <- j
		}
	}()
	for j := range detected {
		msg, err := j.msg, j.err
		if err == nil {
			msg, err = p.complete(j.f, msg, j.kept)
		} else {
			p.report(msg, err)
		}
		done(j.f, j.meta, msg, err)
	}
	// detected is closed: both goroutines have returned, and both inputs are back.
	for range 2 {
		(<-free).Close()
	}
	return endMeta, endErr
}
