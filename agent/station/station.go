// Package station is the operator station: a web page served by the agent's HTTP server
// (ui.enabled) that shows every camera live with its boxes, tags, counts and decisions, and
// the health of the agent. cvedge review serves the same station without cameras.
//
// It is pure Go. It reads the agent through small interfaces (State, the Hub of live frames)
// so its tests run on fakes in milliseconds; the agent wires the real ones.
package station

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/configs"
)

//go:embed web
var web embed.FS

// Options is what a station shows and how.
type Options struct {
	// Config is the ui section of the config.
	Config configs.UI
	// Secure says the server speaks https (http.tls): sign-in cookies are marked Secure.
	Secure bool
	// State returns what the page shows beside the pictures.
	State func() View
	// Live carries the cameras' annotated frames to the browsers; nil: no live view.
	Live *Hub
	// Review is the review queue of the samples; nil: none.
	Review ReviewQueue
	// Feedback sends an operator's correction to the agent that made the prediction (on
	// that agent's <prefix>/feedback); nil: corrections are saved, not sent.
	Feedback func(agent string, fb payload.Feedback) error
	// Upload sends the data set's answers not sent yet to the Custom Vision Training API;
	// nil: the page offers no upload.
	Upload func(ctx context.Context) (sent, refused int, err error)
	Log    *slog.Logger
}

// ReviewQueue is the review queue the station shows and answers (review.Queue).
type ReviewQueue interface {
	List(f review.Filter) []review.Item
	Get(id string) (review.Item, error)
	Image(id, which string) ([]byte, error)
	Answer(id string, a review.Answer) (review.Result, error)
	Confusion(since, until time.Time, agent, camera string) review.Confusion
	Stats() review.Stats
}

// Station serves the pages and their API.
type Station struct {
	o       Options
	auth    *auth
	handler http.Handler
	page    *template.Template
	closed  chan struct{} // closed by Close: the live streams end
	once    sync.Once
	rv      *reviewPages // the review pages; nil without a review queue
}

// New returns the station of o.
func New(o Options) (*Station, error) {
	a, err := newAuth(o.Config.Auth, o.Secure, o.Log)
	if err != nil {
		return nil, err
	}
	page, err := template.ParseFS(web, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("station: the page template: %w", err)
	}
	s := &Station{o: o, auth: a, page: page, closed: make(chan struct{})}
	static, _ := fs.Sub(web, "web/static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /api/state", s.state)
	mux.HandleFunc("GET /api/cameras/{camera}/live", s.live)
	if err := s.routeReview(mux); err != nil {
		return nil, err
	}
	s.handler = a.wrap(mux)
	return s, nil
}

func (s *Station) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "same-origin") // forms send their Origin (no-referrer makes it "null")
	s.handler.ServeHTTP(w, r)
}

// index is the live view.
func (s *Station) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	v := s.o.State()
	if err := s.page.Execute(w, map[string]any{"View": v, "CSRF": s.auth.csrfToken(w, r), "FPS": s.o.Config.FPS, "Nav": s.nav()}); err != nil {
		s.o.Log.Warn("station page", "component", "ui", "err", err)
	}
}

// state is the page's data as JSON, polled by the page.
func (s *Station) state(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.o.State())
}

// Close ends the live streams, which would otherwise keep the HTTP server's shutdown
// waiting; the server calls it when it shuts down.
func (s *Station) Close() { s.once.Do(func() { close(s.closed) }) }
