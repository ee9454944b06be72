package station

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/configs"
)

// The review pages and their API (docs/operator.md, "Review queue" and "Confusion table"),
// served only when the station has a review queue (Options.Review):
//
//	GET  /review                              the review page: one sample at a time
//	GET  /confusion                           the confusion table page
//	GET  /api/review                          pending samples (agent, camera, reason, limit, offset) and the queue's stats
//	GET  /api/review/stats                    the queue's stats (the nav's pending count)
//	GET  /api/review/samples/{id}             one sample
//	GET  /api/review/samples/{id}/{image}     its crop or frame (image/jpeg)
//	POST /api/review/samples/{id}/answer      an operator's answer
//	GET  /api/review/confusion                the confusion table (since, until, agent, camera)
//	POST /api/review/upload                   send the data set's answers for training (Options.Upload)

const (
	// maxAnswerBody bounds an answer's JSON: 100 boxes with long tags and a 4 KiB note fit.
	maxAnswerBody = 64 << 10
	// defaultListLimit and maxListLimit bound the samples one list returns.
	defaultListLimit = 50
	maxListLimit     = 1000
	// maxListOffset bounds the offset of a list (the queue holds far fewer).
	maxListOffset = 1_000_000
	// maxFilterLen bounds a filter value (an agent's, a camera's or a reason's name).
	maxFilterLen = 256
	// defaultUploadTimeout bounds an upload started from the page.
	defaultUploadTimeout = 5 * time.Minute
	// tokenUser is the session user of a sign-in with the station's token: not a person, so
	// the page asks for the operator's name.
	tokenUser = configs.UITokenUser
)

// reviewPages are the review queue's pages and the upload's state.
type reviewPages struct {
	review, confusion *template.Template
	log               *slog.Logger
	uploading         atomic.Bool
	uploadTimeout     time.Duration
}

// routeReview adds the review pages and API to mux when the station has a review queue.
func (s *Station) routeReview(mux *http.ServeMux) error {
	if s.o.Review == nil {
		return nil
	}
	log := s.o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rv := &reviewPages{log: log.With("component", "ui"), uploadTimeout: defaultUploadTimeout}
	var err error
	if rv.review, err = template.ParseFS(web, "web/review.html"); err != nil {
		return fmt.Errorf("station: the review page template: %w", err)
	}
	if rv.confusion, err = template.ParseFS(web, "web/confusion.html"); err != nil {
		return fmt.Errorf("station: the confusion page template: %w", err)
	}
	s.rv = rv
	mux.HandleFunc("GET /review", s.reviewPage)
	mux.HandleFunc("GET /confusion", s.confusionPage)
	mux.HandleFunc("GET /api/review", s.reviewList)
	mux.HandleFunc("GET /api/review/stats", s.reviewStats)
	mux.HandleFunc("GET /api/review/samples/{id}", s.reviewSample)
	mux.HandleFunc("GET /api/review/samples/{id}/{image}", s.reviewImage)
	mux.HandleFunc("POST /api/review/samples/{id}/answer", s.reviewAnswer)
	mux.HandleFunc("GET /api/review/confusion", s.reviewConfusion)
	mux.HandleFunc("POST /api/review/upload", s.reviewUpload)
	return nil
}

// navView is what every page's navigation shows.
type navView struct {
	// Review: the station has a review queue; Pending is how many samples wait in it.
	Review  bool
	Pending int
	// Upload: the station can send the data set's answers for training.
	Upload bool
	// SignOut: the station asks for a sign-in, so the pages offer to sign out.
	SignOut bool
}

func (s *Station) nav() navView {
	if s.o.Review == nil {
		return navView{SignOut: s.auth.on}
	}
	return navView{Review: true, Pending: s.o.Review.Stats().Pending, Upload: s.o.Upload != nil, SignOut: s.auth.on}
}

// sessionUser is the name of the person signed in on r's session; "" with no sign-in, or
// with a sign-in by the station's token (then the page asks for the name).
func (s *Station) sessionUser(r *http.Request) string {
	if ses := s.auth.sessionOf(r); ses != nil && ses.user != tokenUser {
		return ses.user
	}
	return ""
}

// pageData is what the review and confusion pages are made of.
func (s *Station) pageData(w http.ResponseWriter, r *http.Request) map[string]any {
	return map[string]any{"CSRF": s.auth.csrfToken(w, r), "Nav": s.nav(), "User": s.sessionUser(r)}
}

func (s *Station) reviewPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, s.rv.review)
}

func (s *Station) confusionPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, s.rv.confusion)
}

func (s *Station) servePage(w http.ResponseWriter, r *http.Request, t *template.Template) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := t.Execute(w, s.pageData(w, r)); err != nil {
		s.rv.log.Warn("station page", "page", r.URL.Path, "err", err)
	}
}

// sampleView is a pending sample as the page shows it: the item, and the tags to offer.
type sampleView struct {
	review.Item
	// Offer are the tags to offer for a correction, likeliest first: the model's tags when
	// the queue knows them (Item.Tags), the sample's listed ones first; otherwise the tags
	// the sample listed.
	Offer []string `json:"offer"`
	// AnyTag: the model's tags are not known, so any tag is taken.
	AnyTag bool `json:"anyTag"`
	// BoxTags are the tags to offer for a missed part: Offer and the detector's tag.
	BoxTags []string `json:"boxTags"`
}

func newSampleView(it review.Item) sampleView {
	v := sampleView{Item: it, AnyTag: len(it.Tags) == 0}
	add := func(list *[]string, t string) {
		if t != "" && !slices.ContainsFunc(*list, func(o string) bool { return strings.EqualFold(o, t) }) {
			*list = append(*list, t)
		}
	}
	if v.AnyTag {
		for _, t := range it.Listed {
			add(&v.Offer, t)
		}
		add(&v.Offer, it.Tag)
	} else {
		for _, t := range it.Listed { // the likeliest first, as the model spells them
			if i := slices.IndexFunc(it.Tags, func(o string) bool { return strings.EqualFold(o, t) }); i >= 0 {
				add(&v.Offer, it.Tags[i])
			}
		}
		for _, t := range it.Tags {
			add(&v.Offer, t)
		}
	}
	v.BoxTags = slices.Clone(v.Offer)
	if it.Prediction != nil {
		add(&v.BoxTags, it.Prediction.TagName)
	}
	if v.Offer == nil {
		v.Offer = []string{}
	}
	if v.BoxTags == nil {
		v.BoxTags = []string{}
	}
	return v
}

// listView is the answer of GET /api/review.
type listView struct {
	Items []sampleView `json:"items"`
	// More: there are more samples past these (ask again with a larger offset).
	More  bool         `json:"more"`
	Stats review.Stats `json:"stats"`
	// Agents, Cameras and Reasons are those of all pending samples, for the filters.
	Agents  []string `json:"agents"`
	Cameras []string `json:"cameras"`
	Reasons []string `json:"reasons"`
}

// reviewList lists the pending samples, newest first.
func (s *Station) reviewList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := review.Filter{Agent: q.Get("agent"), Camera: q.Get("camera"), Reason: q.Get("reason"), Limit: defaultListLimit}
	for _, p := range []struct{ name, v string }{{"agent", f.Agent}, {"camera", f.Camera}, {"reason", f.Reason}} {
		if len(p.v) > maxFilterLen || !utf8.ValidString(p.v) {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("%q must be a name of at most %d characters", p.name, maxFilterLen))
			return
		}
	}
	var err error
	if f.Limit, err = intParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit); err == nil {
		f.Offset, err = intParam(q.Get("offset"), "offset", 0, 0, maxListOffset)
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	want := f.Limit
	f.Limit++ // one more: are there more?
	items := s.o.Review.List(f)
	v := listView{Items: make([]sampleView, 0, min(len(items), want)), Stats: s.o.Review.Stats(),
		Agents: []string{}, Cameras: []string{}, Reasons: []string{}}
	if len(items) > want {
		items, v.More = items[:want], true
	}
	for _, it := range items {
		v.Items = append(v.Items, newSampleView(it))
	}
	for _, it := range s.o.Review.List(review.Filter{}) {
		for _, p := range []struct {
			list *[]string
			v    string
		}{{&v.Agents, it.Agent}, {&v.Cameras, it.Camera}, {&v.Reasons, it.Reason}} {
			if p.v != "" && !slices.Contains(*p.list, p.v) {
				*p.list = append(*p.list, p.v)
			}
		}
	}
	slices.Sort(v.Agents)
	slices.Sort(v.Cameras)
	slices.Sort(v.Reasons)
	apiJSON(w, http.StatusOK, v)
}

// intParam reads a query parameter: def when empty, else an integer in lo..hi.
func intParam(raw, name string, def, lo, hi int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q must be a whole number from %d to %d, not %.40q", name, lo, hi, raw)
	}
	return n, nil
}

func (s *Station) reviewStats(w http.ResponseWriter, _ *http.Request) {
	apiJSON(w, http.StatusOK, s.o.Review.Stats())
}

// sampleID is the {id} of r, checked: the queue's ids are letters, digits, - and _.
func sampleID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !validID(id) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("sample id %.70q must be 1-128 letters, digits, - or _", id))
		return "", false
	}
	return id, true
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Station) reviewSample(w http.ResponseWriter, r *http.Request) {
	id, ok := sampleID(w, r)
	if !ok {
		return
	}
	it, err := s.o.Review.Get(id)
	if err != nil {
		s.reviewError(w, err)
		return
	}
	apiJSON(w, http.StatusOK, newSampleView(it))
}

// reviewImage is a pending sample's crop or whole frame.
func (s *Station) reviewImage(w http.ResponseWriter, r *http.Request) {
	id, ok := sampleID(w, r)
	if !ok {
		return
	}
	which := r.PathValue("image")
	if which != review.ImageCrop && which != review.ImageFrame {
		apiError(w, http.StatusNotFound, fmt.Sprintf("image %.40q: ask for %q or %q", which, review.ImageCrop, review.ImageFrame))
		return
	}
	raw, err := s.o.Review.Image(id, which)
	if err != nil {
		if _, gerr := s.o.Review.Get(id); gerr == nil && which == review.ImageFrame {
			apiError(w, http.StatusNotFound, err.Error()) // the sample has no frame
			return
		}
		s.reviewError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=3600") // a sample's images never change
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.Write(raw)
}

// reviewError answers an error of the queue: 404 for a sample not pending, 500 otherwise.
func (s *Station) reviewError(w http.ResponseWriter, err error) {
	if errors.Is(err, review.ErrNotFound) {
		apiError(w, http.StatusNotFound, err.Error()+": it may have been answered elsewhere; reload the list")
		return
	}
	s.rv.log.Error("review queue", "err", err)
	apiError(w, http.StatusInternalServerError, err.Error())
}

// feedbackView says whether an answer's correction went to the agent.
type feedbackView struct {
	// Sent: the correction was handed to the agent's feedback topic.
	Sent bool `json:"sent"`
	// Reason says why nothing was sent (nothing to send, or no way to send it); Error what
	// went wrong sending it. The answer is saved either way.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// answerView is the answer of POST .../answer.
type answerView struct {
	Result   review.Result `json:"result"`
	Feedback feedbackView  `json:"feedback"`
	Stats    review.Stats  `json:"stats"`
}

// reviewAnswer saves an operator's answer, then sends a correction to the agent.
func (s *Station) reviewAnswer(w http.ResponseWriter, r *http.Request) {
	id, ok := sampleID(w, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		apiError(w, http.StatusUnsupportedMediaType, "send the answer as JSON (Content-Type: application/json)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAnswerBody)
	a, err := parseAnswer(r.Body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if u := s.sessionUser(r); u != "" {
		a.Operator = u // the signed-in user, whatever the page typed
	}
	it, err := s.o.Review.Get(id)
	if err != nil {
		s.reviewError(w, err)
		return
	}
	if err := checkAnswer(a, it); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.o.Review.Answer(id, a)
	if err != nil {
		status := answerStatus(err)
		if status >= 500 {
			s.rv.log.Error("review answer not saved", "sample", id, "kind", a.Kind, "err", err)
		}
		apiError(w, status, err.Error())
		return
	}
	s.rv.log.Info("review answer", "sample", id, "agent", res.Agent, "camera", res.Camera, "kind", res.Kind,
		"predicted", res.Predicted, "answered", res.Answered, "operator", a.Operator)
	v := answerView{Result: res, Feedback: s.sendFeedback(res)}
	v.Stats = s.o.Review.Stats()
	if v.Result.Entries == nil {
		v.Result.Entries = []dataset.Entry{}
	}
	apiJSON(w, http.StatusOK, v)
}

// sendFeedback sends a correction's feedback to the agent that made the prediction.
func (s *Station) sendFeedback(res review.Result) feedbackView {
	switch {
	case res.Kind != review.Correct:
		return feedbackView{Reason: "only a correction is sent to the agent"}
	case res.Feedback == nil:
		return feedbackView{Reason: "the sample names no prediction or part the agent could correct"}
	case s.o.Feedback == nil:
		return feedbackView{Reason: "this station sends no corrections to the agents; the answer is saved in the data set"}
	}
	if err := s.o.Feedback(res.Agent, *res.Feedback); err != nil {
		s.rv.log.Warn("review correction not sent to the agent; the answer is saved", "sample", res.SampleID, "agent", res.Agent, "err", err)
		return feedbackView{Error: fmt.Sprintf("not sent to agent %s: %v; the answer is saved", res.Agent, err)}
	}
	return feedbackView{Sent: true}
}

// answerStatus is the HTTP status of an error of the queue's Answer: 404 for a sample no
// longer pending, 507 for a full data set, 400 for an answer the queue refused
// (review.ErrRefused), 500 for anything else (the disk's).
func answerStatus(err error) int {
	switch {
	case errors.Is(err, review.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, dataset.ErrQuota):
		return http.StatusInsufficientStorage
	case errors.Is(err, review.ErrRefused):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// reviewUpload sends the data set's answers for training (Options.Upload), bounded in time.
func (s *Station) reviewUpload(w http.ResponseWriter, r *http.Request) {
	if s.o.Upload == nil {
		apiError(w, http.StatusNotFound, "this station has no upload of the data set for training")
		return
	}
	if !s.rv.uploading.CompareAndSwap(false, true) {
		apiError(w, http.StatusConflict, "an upload is already running: wait for it to end")
		return
	}
	defer s.rv.uploading.Store(false)
	// the upload goes on when the browser leaves the page; it ends at the timeout, or when the
	// station closes
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.rv.uploadTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	sent, refused, err := s.o.Upload(ctx)
	v := map[string]any{"sent": sent, "refused": refused}
	status := http.StatusOK
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
		v["error"] = fmt.Sprintf("the upload took longer than %v and was stopped (%v); what was sent stays sent: upload again for the rest", s.rv.uploadTimeout, err)
	case err != nil:
		status = http.StatusBadGateway
		v["error"] = fmt.Sprintf("upload: %v", err)
	}
	if err != nil {
		s.rv.log.Warn("review upload failed", "sent", sent, "refused", refused, "err", err)
	} else {
		s.rv.log.Info("review upload", "sent", sent, "refused", refused)
	}
	apiJSON(w, status, v)
}

// apiJSON writes v as JSON with status.
func apiJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiError writes {"error": msg} with status.
func apiError(w http.ResponseWriter, status int, msg string) {
	apiJSON(w, status, map[string]string{"error": msg})
}
