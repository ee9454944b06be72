package ops

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LimitedHandler passes each distinct warning or error (the same message, component, camera
// and err) at most once per window; the next one that passes says how many were suppressed.
// Info and debug records pass untouched.
type LimitedHandler struct {
	slog.Handler
	window time.Duration
	state  *limitState
	attrs  string // component of this handler, from WithAttrs
}

type limitState struct {
	mu   sync.Mutex
	seen map[string]*seenEntry
}

type seenEntry struct {
	last       time.Time
	suppressed int
}

// NewLimitedHandler wraps h.
func NewLimitedHandler(h slog.Handler, window time.Duration) *LimitedHandler {
	return &LimitedHandler{Handler: h, window: window, state: &limitState{seen: map[string]*seenEntry{}}}
}

// Handle implements slog.Handler.
func (h *LimitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	key := h.attrs + "\x00" + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "component" || a.Key == "camera" || a.Key == "err" {
			key += "\x00" + a.Value.String()
		}
		return true
	})
	h.state.mu.Lock()
	e := h.state.seen[key]
	if e == nil {
		e = &seenEntry{}
		h.state.seen[key] = e
		if len(h.state.seen) > 10000 { // bound the memory; forget everything
			h.state.seen = map[string]*seenEntry{key: e}
		}
	}
	if !e.last.IsZero() && r.Time.Sub(e.last) < h.window {
		e.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	n := e.suppressed
	e.last, e.suppressed = r.Time, 0
	h.state.mu.Unlock()
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *LimitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "component" || a.Key == "camera" {
			c.attrs += "\x00" + a.Value.String()
		}
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *LimitedHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithGroup(name)
	return &c
}
