package steps

import (
	"context"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// Ring keeps one camera's recent frames with their predictions (ring), so that an operator's
// correction can be answered with the image. A frame from a JPEG source is kept as its JPEG,
// in memory of the ring's own (camera.JPEGStore), and ring.max_mb counts what the frames
// hold. It owns the frames it holds and closes them when they leave. It outlives the steps of
// one config: a reload that keeps the ring's settings hands it on, so the daemon, not the
// steps, closes it.
type Ring struct {
	cfg   configs.Ring
	mu    sync.Mutex
	items []ringItem // oldest first
	bytes int64
	store *camera.JPEGStore // where the kept frames' JPEGs lie
}

type ringItem struct {
	f     *camera.Frame
	msg   *payload.Prediction
	bytes int64
	done  bool // its steps are done (Finished)
}

// NewRing returns an empty ring bounded by cfg.
func NewRing(cfg configs.Ring) *Ring { return &Ring{cfg: cfg, store: new(camera.JPEGStore)} }

func (r *Ring) Name() string { return "ring" }

// Handle keeps a processed frame (taking its pixels) with its prediction, and lets the
// oldest frames go until the bounds hold.
func (r *Ring) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	r.push(f.Keep(), msg)
}

func (r *Ring) push(f *camera.Frame, msg *payload.Prediction) {
	size := f.Bytes()
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.items); n > 0 {
		r.compact(&r.items[n-1]) // the frame before is done with its steps (Finished did it, in Steps)
	}
	r.items = append(r.items, ringItem{f: f, msg: msg, bytes: size})
	r.bytes += size
	maxBytes := int64(r.cfg.MaxMB) << 20
	for len(r.items) > 1 && (len(r.items) > r.cfg.Frames || r.bytes > maxBytes || time.Since(r.items[0].msg.Captured) > r.cfg.MaxAge) {
		r.drop()
	}
}

// Finished lets the decoded pixels of the frame just kept go once all its steps are done: a
// frame from a JPEG source waits in the ring as its JPEG (0.12 MB at 1080p, against 6.2 MB
// decoded), decoded again if a correction reads it.
func (r *Ring) Finished(f *pipeline.Frame) {
	if f.Err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.items); n > 0 && r.items[n-1].f == f.Frame {
		r.items[n-1].done = true
		r.compact(&r.items[n-1])
	}
}

// compact keeps only the JPEG of a frame from a JPEG source (decoded again when read), moved
// into the ring's store, under r.mu, and counts it so.
func (r *Ring) compact(it *ringItem) {
	it.f.Compact()
	it.f.StoreJPEG(r.store)
	now := it.f.Bytes()
	r.bytes += now - it.bytes
	it.bytes = now
}

func (r *Ring) drop() {
	r.items[0].f.Close()
	r.bytes -= r.items[0].bytes
	r.items[0] = ringItem{}
	r.items = r.items[1:]
}

// With calls fn, under the ring's lock, with the frame and prediction of prediction id; it
// reports false when the ring no longer (or never) held it.
func (r *Ring) With(id string, fn func(f *camera.Frame, msg *payload.Prediction)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.items) - 1; i >= 0; i-- {
		it := r.items[i]
		if it.msg.ID == id {
			if time.Since(it.msg.Captured) > r.cfg.MaxAge {
				return false
			}
			fn(it.f, it.msg)
			if i < len(r.items)-1 || it.done {
				r.compact(&r.items[i]) // what fn decoded goes again, unless the frame is still in its steps
			}
			return true
		}
	}
	return false
}

// StoreBytes is the memory the ring's store maps for its frames' JPEGs (camera.JPEGStore).
func (r *Ring) StoreBytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.Mapped()
}

// Clear frees every frame, and the store's memory. (It is not Close: the steps' Close leaves
// the ring alone.)
func (r *Ring) Clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.items) > 0 {
		r.drop()
	}
	r.store.Close()
	r.store = new(camera.JPEGStore)
}
