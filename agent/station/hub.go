package station

import (
	"sync"
	"sync/atomic"
)

// Hub carries each camera's annotated live frames (JPEG) to the browsers watching it. The
// per-frame step asks Watching first, so a camera nobody watches costs nothing; each viewer
// holds only the newest frame, so a slow browser skips frames and never slows the camera.
type Hub struct {
	mu   sync.Mutex
	cams map[string]*feed
}

// feed is one camera's viewers.
type feed struct {
	viewers map[*viewer]struct{}
	n       atomic.Int32
}

// viewer is one browser watching one camera: a one-frame mailbox.
type viewer struct {
	frames chan []byte
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{cams: map[string]*feed{}} }

func (h *Hub) feed(camera string) *feed {
	f := h.cams[camera]
	if f == nil {
		f = &feed{viewers: map[*viewer]struct{}{}}
		h.cams[camera] = f
	}
	return f
}

// Watching reports whether anyone watches camera. It is called on every frame: one
// uncontended lock and a load.
func (h *Hub) Watching(camera string) bool {
	h.mu.Lock()
	f := h.cams[camera]
	h.mu.Unlock()
	return f != nil && f.n.Load() > 0
}

// Publish hands camera's newest frame to each of its viewers, replacing one they have not
// taken yet. It never blocks.
func (h *Hub) Publish(camera string, jpeg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.cams[camera]
	if f == nil {
		return
	}
	for v := range f.viewers {
		select {
		case <-v.frames: // drop the one not taken yet
		default:
		}
		v.frames <- jpeg
	}
}

// watch adds a viewer of camera; stop removes it.
func (h *Hub) watch(camera string) (frames <-chan []byte, stop func()) {
	v := &viewer{frames: make(chan []byte, 1)}
	h.mu.Lock()
	f := h.feed(camera)
	f.viewers[v] = struct{}{}
	f.n.Add(1)
	h.mu.Unlock()
	var once sync.Once
	return v.frames, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(f.viewers, v)
			f.n.Add(-1)
			h.mu.Unlock()
		})
	}
}
