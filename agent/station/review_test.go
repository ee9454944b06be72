package station

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// jpegOf is a w x h JPEG of one shade.
func jpegOf(t testing.TB, w, h int, shade uint8) []byte { return testenv.JPEG(t, w, h, shade) }

// reviewSample is detection 1 of a two-stage pipeline on agent/camera, classified "green"
// among green, blue, red, with its crop and (when frame) the whole frame.
func reviewSample(t testing.TB, id, agent, camera string, frame bool, shade uint8) (payload.Sample, []byte, []byte) {
	t.Helper()
	det := 1
	crop := jpegOf(t, 32, 24, shade)
	s := payload.Sample{Schema: 1, ID: id, Agent: agent, Camera: camera, Boot: "b", Reason: "low_confidence",
		Detail: "green 0.41 under 0.5 (colour)", PredictionID: "pred-" + id, FrameID: 7, Detection: &det,
		Captured: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), Created: time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC),
		Models: []payload.ModelRef{{Stage: "detector", Name: "parts"}, {Stage: "classifier", Name: "colour"}},
		Prediction: &payload.Tag{Probability: 0.98, TagName: "part", BoundingBox: &payload.Box{Left: 0.1, Top: 0.2, Width: 0.3, Height: 0.4},
			Classification: &payload.Classification{Model: "colour", Predictions: []payload.Tag{
				{Probability: 0.41, TagName: "green"}, {Probability: 0.4, TagName: "blue"}, {Probability: 0.19, TagName: "red"}}}},
		Crop: &payload.Image{JPEG: base64.StdEncoding.EncodeToString(crop), Width: 32, Height: 24,
			Box: &payload.Box{Left: 0.09, Top: 0.19, Width: 0.32, Height: 0.42}},
	}
	var whole []byte
	if frame {
		whole = jpegOf(t, 100, 80, shade)
		s.Frame = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(whole), Width: 100, Height: 80}
	}
	return s, crop, whole
}

// reviewLabels are the tags of the test's models: more than a sample lists.
func reviewLabels(agent, model string) []string {
	switch model {
	case "colour":
		return []string{"blue", "green", "red", "yellow"}
	case "parts":
		return []string{"part", "screw"}
	}
	return nil
}

// reviewEnv is a station with a real review queue and data set in a temporary folder.
type reviewEnv struct {
	t       *testing.T
	st      *Station
	srv     *httptest.Server
	q       *review.Queue
	dsDir   string
	qDir    string
	b       *authClient
	csrf    string
	mu      sync.Mutex
	fbAgent []string
	fbs     []payload.Feedback
	fbErr   error
}

// newReviewEnv starts a station (no sign-in) with a review queue of the test's labels;
// edit changes its options first.
func newReviewEnv(t *testing.T, edit func(*Options)) *reviewEnv {
	t.Helper()
	dir := t.TempDir()
	e := &reviewEnv{t: t, dsDir: filepath.Join(dir, "dataset"), qDir: filepath.Join(dir, "review")}
	ds, err := dataset.Open(e.dsDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	if e.q, err = review.Open(e.qDir, 0, 0, ds); err != nil {
		t.Fatal(err)
	}
	e.q.SetLabels(reviewLabels)
	cfg := configs.Default().UI
	cfg.Enabled = true
	o := Options{Config: cfg, State: fakeView, Review: e.q, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Feedback: func(agent string, fb payload.Feedback) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.fbAgent, e.fbs = append(e.fbAgent, agent), append(e.fbs, fb)
			return e.fbErr
		}}
	if edit != nil {
		edit(&o)
	}
	if e.st, err = New(o); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.st)
	t.Cleanup(func() { e.st.Close(); e.srv.Close() })
	e.b = newAuthClient(t, e.srv.URL, nil, nil)
	if o.Config.Auth.On() {
		return e // the test signs in first
	}
	e.csrf = e.b.pageCSRF()
	return e
}

func (e *reviewEnv) add(s payload.Sample) {
	e.t.Helper()
	if ok, err := e.q.Add(s); err != nil || !ok {
		e.t.Fatalf("add %s: %v %v", s.ID, ok, err)
	}
}

// send sends a request with a raw body (JSON unless contentType says otherwise) and the
// page's CSRF token (none when csrf is false).
func (e *reviewEnv) send(method, path, body string, csrf bool) (*http.Response, string) {
	e.t.Helper()
	h := map[string]string{}
	if csrf {
		h[csrfHeader] = e.csrf
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet {
		req.Header.Set("Origin", e.srv.URL)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := e.b.c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// getJSON GETs path, wants status, and decodes the answer into v.
func (e *reviewEnv) getJSON(path string, status int, v any) string {
	e.t.Helper()
	resp, body := e.send("GET", path, "", false)
	if resp.StatusCode != status {
		e.t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, body, status)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			e.t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return body
}

// answer POSTs an answer to sample id and wants status; it returns the answer's body.
func (e *reviewEnv) answer(id, body string, status int) (answerView, string) {
	e.t.Helper()
	resp, raw := e.send("POST", "/api/review/samples/"+id+"/answer", body, true)
	if resp.StatusCode != status {
		e.t.Fatalf("answer %s %s: %d %s, want %d", id, body, resp.StatusCode, raw, status)
	}
	var v answerView
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			e.t.Fatal(err)
		}
	}
	return v, raw
}

// apiErr is the error text of a JSON error answer.
func apiErr(t *testing.T, body string) string {
	t.Helper()
	var v struct{ Error string }
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error == "" {
		t.Fatalf("not a JSON error: %q", body)
	}
	return v.Error
}

// dsFile reads a file of the data set; it fails the test when the file is missing.
func (e *reviewEnv) dsFile(rel string) []byte {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.dsDir, filepath.FromSlash(rel)))
	if err != nil {
		entries, _ := dataset.ReadIndex(e.dsDir)
		e.t.Fatalf("data set file %s: %v (index: %+v)", rel, err, entries)
	}
	return raw
}

// TestReviewRoutesAbsentWithoutQueue: a station without a review queue serves no review
// page, API or nav link.
func TestReviewRoutesAbsentWithoutQueue(t *testing.T) {
	_, srv := newTestStation(t, NewHub())
	b := newAuthClient(t, srv.URL, nil, nil)
	csrf := b.pageCSRF()
	_, page := b.do("GET", "/", nil, nil)
	if strings.Contains(page, `href="/review"`) {
		t.Fatal("the live page links to a review page the station does not have")
	}
	for _, p := range []string{"/review", "/confusion", "/api/review", "/api/review/stats", "/api/review/samples/s1",
		"/api/review/samples/s1/crop", "/api/review/confusion"} {
		if resp, _ := b.do("GET", p, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/api/review/samples/s1/answer", "/api/review/upload"} {
		if resp, _ := b.do("POST", p, url.Values{}, map[string]string{csrfHeader: csrf}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestReviewPages: the review and confusion pages carry the CSRF token, their scripts and
// the nav's pending count; the live page links to them.
func TestReviewPages(t *testing.T) {
	e := newReviewEnv(t, nil)
	s, _, _ := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	e.add(s)
	for _, p := range []struct{ path, script string }{{"/review", "/static/review.js"}, {"/confusion", "/static/confusion.js"}, {"/", "/static/nav.js"}} {
		resp, page := e.b.do("GET", p.path, nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(page, p.script) || !csrfMetaRE.MatchString(page) ||
			!strings.Contains(page, `href="/review"`) || !strings.Contains(page, `id="nav-pending">1<`) {
			t.Fatalf("GET %s: %d\n%s", p.path, resp.StatusCode, page)
		}
		if strings.Contains(page, "<script>") || strings.Contains(page, "style=") {
			t.Fatalf("GET %s has inline script or style, which the CSP refuses", p.path)
		}
	}
	for _, asset := range []string{"/static/review.js", "/static/confusion.js", "/static/nav.js"} {
		if resp, _ := e.b.do("GET", asset, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", asset, resp.StatusCode)
		}
	}
	if _, page := e.b.do("GET", "/review", nil, nil); strings.Contains(page, `id="upload"`) {
		t.Fatal("the review page offers an upload the station does not have")
	}
}

// TestReviewListGetImages: the list filters by agent, camera and reason, pages with limit
// and offset (newest first), and offers the filters' values; one sample comes with the tags
// to offer (the sample's likeliest first, then the model's others); its crop and frame come
// as they were queued; wrong ids, images and parameters get 400 or 404 naming them.
func TestReviewListGetImages(t *testing.T) {
	e := newReviewEnv(t, nil)
	s1, crop1, frame1 := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	s2, _, _ := reviewSample(t, "s2", "line3", "dock", false, 2)
	s3, _, _ := reviewSample(t, "s3", "line4", "conveyor", true, 3)
	s3.Reason = "disagreement"
	for _, s := range []payload.Sample{s1, s2, s3} {
		e.add(s) // newest first; samples queued in the same instant go by id, s3 first too
	}
	var l listView
	e.getJSON("/api/review", 200, &l)
	if got := sampleIDs(l.Items); !slices.Equal(got, []string{"s3", "s2", "s1"}) || l.More || l.Stats.Pending != 3 {
		t.Fatalf("list %v more %v stats %+v", got, l.More, l.Stats)
	}
	if !slices.Equal(l.Agents, []string{"line3", "line4"}) || !slices.Equal(l.Cameras, []string{"conveyor", "dock"}) ||
		!slices.Equal(l.Reasons, []string{"disagreement", "low_confidence"}) {
		t.Fatalf("filter values %v %v %v", l.Agents, l.Cameras, l.Reasons)
	}
	for q, want := range map[string][]string{
		"agent=line3":                      {"s2", "s1"},
		"camera=conveyor":                  {"s3", "s1"},
		"reason=disagreement":              {"s3"},
		"agent=line3&camera=conveyor":      {"s1"},
		"limit=1":                          {"s3"},
		"limit=1&offset=1":                 {"s2"},
		"offset=2":                         {"s1"},
		"agent=nobody":                     {},
		"camera=" + url.QueryEscape("a b"): {},
	} {
		var l listView
		e.getJSON("/api/review?"+q, 200, &l)
		if got := sampleIDs(l.Items); !slices.Equal(got, want) {
			t.Errorf("list ?%s: %v, want %v", q, got, want)
		}
		if wantMore := q == "limit=1" || q == "limit=1&offset=1"; l.More != wantMore {
			t.Errorf("list ?%s: more %v, want %v", q, l.More, wantMore)
		}
	}
	for q, field := range map[string]string{"limit=0": "limit", "limit=x": "limit", "limit=100000": "limit", "offset=-1": "offset",
		"agent=" + strings.Repeat("a", 300): "agent", "camera=%ff": "camera"} {
		if msg := apiErr(t, e.getJSON("/api/review?"+q, 400, nil)); !strings.Contains(msg, `"`+field+`"`) {
			t.Errorf("list ?%s: %q does not name %q", q, msg, field)
		}
	}

	var v sampleView
	e.getJSON("/api/review/samples/s1", 200, &v)
	if v.ID != "s1" || v.Tag != "green" || v.Region == nil || !v.HasFrame || v.AnyTag ||
		!slices.Equal(v.Offer, []string{"green", "blue", "red", "yellow"}) || !slices.Equal(v.BoxTags, []string{"green", "blue", "red", "yellow", "part"}) {
		t.Fatalf("sample %+v", v)
	}
	for _, img := range []struct {
		path string
		want []byte
	}{{"/api/review/samples/s1/crop", crop1}, {"/api/review/samples/s1/frame", frame1}} {
		resp, body := e.send("GET", img.path, "", false)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" ||
			!strings.HasPrefix(resp.Header.Get("Cache-Control"), "private") || !bytes.Equal([]byte(body), img.want) {
			t.Fatalf("GET %s: %d %v, %d bytes", img.path, resp.StatusCode, resp.Header, len(body))
		}
	}
	for path, status := range map[string]int{
		"/api/review/samples/s2/frame":   404, // no whole frame
		"/api/review/samples/s1/thumb":   404,
		"/api/review/samples/nope":       404,
		"/api/review/samples/nope/crop":  404,
		"/api/review/samples/a.b":        400,
		"/api/review/samples/a%20b/crop": 400,
	} {
		msg := apiErr(t, e.getJSON(path, status, nil))
		if status == 400 && !strings.Contains(msg, "sample id") {
			t.Errorf("GET %s: %q does not name the sample id", path, msg)
		}
	}
}

func sampleIDs(items []sampleView) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// TestReviewAnswerKinds: each kind of answer lands in the data set folder of cvedge
// collect (the crop in the tag's folder, missed parts cut out into theirs with the frame,
// false detections in Negative/), leaves the queue, and only the correction goes to the
// agent that made the prediction, naming it and the new tag.
func TestReviewAnswerKinds(t *testing.T) {
	e := newReviewEnv(t, nil)
	crops := map[string][]byte{}
	for i, id := range []string{"c1", "c2", "m1", "f1"} {
		s, crop, _ := reviewSample(t, id, "line3", "conveyor", true, uint8(10*i+5))
		crops[id] = crop
		e.add(s)
	}

	v, _ := e.answer("c1", `{"kind":"confirm","operator":"anna","note":"fine"}`, 200)
	if v.Result.Kind != review.Confirm || v.Feedback.Sent || v.Feedback.Reason == "" || v.Stats.Pending != 3 {
		t.Fatalf("confirm: %+v", v)
	}
	if !bytes.Equal(e.dsFile("green/c1.jpg"), crops["c1"]) {
		t.Fatal("the confirmed crop is not the sample's")
	}
	e.dsFile("frames/c1.jpg")

	v, _ = e.answer("c2", `{"kind":"correct","tag":"Blue","operator":"anna"}`, 200)
	if v.Result.Kind != review.Correct || v.Result.Answered != "blue" || !v.Feedback.Sent {
		t.Fatalf("correct: %+v", v)
	}
	if !bytes.Equal(e.dsFile("blue/c2.jpg"), crops["c2"]) {
		t.Fatal("the corrected crop is not the sample's")
	}
	e.mu.Lock()
	if len(e.fbs) != 1 || e.fbAgent[0] != "line3" || e.fbs[0].PredictionID != "pred-c2" || e.fbs[0].Tag != "blue" ||
		e.fbs[0].Detection == nil || *e.fbs[0].Detection != 1 || e.fbs[0].Operator != "anna" {
		t.Fatalf("feedback %v %+v", e.fbAgent, e.fbs)
	}
	e.mu.Unlock()

	v, _ = e.answer("m1", `{"kind":"missed","boxes":[{"tag":"red","left":0.5,"top":0.5,"width":0.2,"height":0.25},{"tag":"screw","left":0,"top":0,"width":0.1,"height":0.1}]}`, 200)
	if v.Result.Kind != review.Missed || len(v.Result.Entries) != 2 || v.Feedback.Sent {
		t.Fatalf("missed: %+v", v)
	}
	cut, err := jpeg.DecodeConfig(bytes.NewReader(e.dsFile("red/m1-missed-1.jpg")))
	if err != nil || cut.Width != 20 || cut.Height != 20 {
		t.Fatalf("the missed part cut out: %+v %v, want 20x20 of the 100x80 frame", cut, err)
	}
	e.dsFile("screw/m1-missed-2.jpg")
	e.dsFile("frames/m1-missed-1.jpg")

	v, _ = e.answer("f1", `{"kind":"false-detection"}`, 200)
	if v.Result.Kind != review.FalseDetection || v.Result.Answered != "" || v.Stats.Pending != 0 {
		t.Fatalf("false detection: %+v", v)
	}
	if !bytes.Equal(e.dsFile(review.NegativeTag+"/f1.jpg"), crops["f1"]) {
		t.Fatal("the false detection's crop is not the sample's")
	}
	e.mu.Lock()
	if len(e.fbs) != 1 {
		t.Fatalf("%d corrections sent, want only the correct answer's", len(e.fbs))
	}
	e.mu.Unlock()
	entries, err := dataset.ReadIndex(e.dsDir)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{}
	for _, en := range entries {
		verdicts[en.SampleID] = en.Verdict + "/" + en.Operator
	}
	if verdicts["c1"] != "confirm/anna" || verdicts["c2"] != "correct/anna" || verdicts["f1"] != "false-detection/" {
		t.Fatalf("index verdicts %v", verdicts)
	}
	log, err := os.ReadFile(filepath.Join(e.qDir, review.AnswersLog))
	if err != nil || strings.Count(string(log), "\n") != 4 {
		t.Fatalf("answers log: %v\n%s", err, log)
	}
	// answered: gone, a second answer is a 404
	if msg := apiErr(t, e.getJSON("/api/review/samples/c1", 404, nil)); !strings.Contains(msg, "not in the review queue") {
		t.Fatalf("an answered sample: %q", msg)
	}
	e.answer("c1", `{"kind":"confirm"}`, 404)
}

// TestReviewFeedbackFails: when the correction cannot be sent to the agent, the answer is
// saved all the same and the page is told why it was not sent; without a feedback hook it
// is saved and the page told so.
func TestReviewFeedbackFails(t *testing.T) {
	e := newReviewEnv(t, nil)
	e.fbErr = errors.New("broker unreachable")
	s, _, _ := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	e.add(s)
	v, _ := e.answer("s1", `{"kind":"correct","tag":"red"}`, 200)
	if v.Feedback.Sent || !strings.Contains(v.Feedback.Error, "broker unreachable") || !strings.Contains(v.Feedback.Error, "saved") {
		t.Fatalf("feedback %+v", v.Feedback)
	}
	e.dsFile("red/s1.jpg")
	if e.q.Stats().Pending != 0 {
		t.Fatal("the sample is still pending")
	}

	e2 := newReviewEnv(t, func(o *Options) { o.Feedback = nil })
	e2.add(s)
	v, _ = e2.answer("s1", `{"kind":"correct","tag":"red"}`, 200)
	if v.Feedback.Sent || !strings.Contains(v.Feedback.Reason, "sends no corrections") {
		t.Fatalf("feedback without a hook %+v", v.Feedback)
	}
	e2.dsFile("red/s1.jpg")
}

// TestReviewAnswerTagNotOffered: a tag the model does not have is refused with the tags it
// has, for a correction and for a missed part's box (refused by the queue: a 400 too, not a
// 500); the sample stays pending and nothing is written.
func TestReviewAnswerTagNotOffered(t *testing.T) {
	e := newReviewEnv(t, nil)
	s, _, _ := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	e.add(s)
	_, body := e.answer("s1", `{"kind":"correct","tag":"purple"}`, 400)
	if msg := apiErr(t, body); !strings.Contains(msg, `"purple" is not offered`) || !strings.Contains(msg, "blue, green, red, yellow") {
		t.Fatalf("correct to purple: %q", msg)
	}
	_, body = e.answer("s1", `{"kind":"missed","boxes":[{"tag":"purple","left":0.1,"top":0.1,"width":0.2,"height":0.2}]}`, 400)
	if msg := apiErr(t, body); !strings.Contains(msg, "purple") || !strings.Contains(msg, "box 1") {
		t.Fatalf("missed purple: %q", msg)
	}
	if e.q.Stats().Pending != 1 {
		t.Fatal("the sample left the queue")
	}
	if entries, _ := dataset.ReadIndex(e.dsDir); len(entries) != 0 {
		t.Fatalf("written: %+v", entries)
	}
}

// hostileAnswers are answer bodies that must be refused with 400, each with a word the
// error must carry (the field, or what is wrong).
var hostileAnswers = []struct{ body, want string }{
	{``, "empty"},
	{`null`, `"kind"`},
	{`[]`, "JSON object"},
	{`"confirm"`, "JSON object"},
	{`{`, "ends too early"},
	{`{"kind":"confirm"}{"kind":"confirm"}`, "one JSON object"},
	{`{"kind":"confirm"} x`, "not JSON"},
	{`{"kind":"approve"}`, `"kind"`},
	{`{"kind":""}`, `"kind"`},
	{`{"kind":7}`, `"kind"`},
	{`{"kind":"correct"}`, `"tag"`},
	{`{"kind":"correct","tag":"` + strings.Repeat("x", 300) + `"}`, `"tag"`},
	{`{"kind":"correct","tag":["blue"]}`, `"tag"`},
	{`{"kind":"correct","tag":"blue\u0000"}`, `"tag"`},
	{`{"kind":"confirm","tag":"blue"}`, `"tag"`},
	{`{"kind":"confirm","operator":{"name":"x"}}`, `"operator"`},
	{`{"kind":"confirm","operator":"` + strings.Repeat("o", 300) + `"}`, `"operator"`},
	{`{"kind":"confirm","note":"` + strings.Repeat("n", 5000) + `"}`, `"note"`},
	{`{"kind":"confirm","admin":true}`, `unknown field "admin"`},
	{`{"kind":"missed"}`, `"boxes"`},
	{`{"kind":"missed","boxes":{}}`, `"boxes"`},
	{`{"kind":"missed","boxes":[1]}`, `"boxes"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":"0.1","top":0,"width":0.1,"height":0.1}]}`, `"boxes.left"`},
	{`{"kind":"missed","boxes":[{"tag":"red","top":0,"width":0.1,"height":0.1}]}`, `"boxes[0].left"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":-0.1,"top":0,"width":0.1,"height":0.1}]}`, `"boxes[0].left"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":0.1,"top":1.5,"width":0.1,"height":0.1}]}`, `"boxes[0].top"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":0.5,"top":0,"width":0.6,"height":0.1}]}`, `"boxes[0].width"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":0.1,"top":0,"width":0.1,"height":0}]}`, `"boxes[0].height"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":0.1,"top":0,"width":1e300,"height":0.1}]}`, `"boxes[0].width"`},
	{`{"kind":"missed","boxes":[{"tag":"","left":0.1,"top":0,"width":0.1,"height":0.1}]}`, `"boxes[0].tag"`},
	{`{"kind":"missed","boxes":[{"tag":"red","left":0.1,"top":0,"width":0.001,"height":0.1}]}`, "under a pixel"},
	{`{"kind":"missed","boxes":[` + strings.Repeat(`{"tag":"red","left":0.1,"top":0.1,"width":0.1,"height":0.1},`, 100) + `{"tag":"red","left":0.1,"top":0.1,"width":0.1,"height":0.1}]}`, "at most 100"},
	{`{"kind":"confirm","boxes":[{"tag":"red","left":0.1,"top":0,"width":0.1,"height":0.1}]}`, `"boxes"`},
	{`{"kind":"confirm","note":"` + strings.Repeat("a", 70<<10) + `"}`, "larger than 64 KiB"},
}

// TestReviewHostileAnswers: every malformed answer is a 400 naming what is wrong, never a
// 500; a body that is not JSON is refused by its type; the sample stays pending.
func TestReviewHostileAnswers(t *testing.T) {
	e := newReviewEnv(t, nil)
	s, _, _ := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	e.add(s)
	for _, h := range hostileAnswers {
		resp, body := e.send("POST", "/api/review/samples/s1/answer", h.body, true)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%.80s: %d %s, want 400", h.body, resp.StatusCode, body)
			continue
		}
		if msg := apiErr(t, body); !strings.Contains(msg, h.want) {
			t.Errorf("%.80s: %q does not say %q", h.body, msg, h.want)
		}
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/review/samples/s1/answer", strings.NewReader("kind=confirm"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	req.Header.Set(csrfHeader, e.csrf)
	resp, err := e.b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("a form: %d, want 415", resp.StatusCode)
	}
	if e.q.Stats().Pending != 1 {
		t.Fatal("a hostile answer took the sample out of the queue")
	}
	e.answer("s1", `{"kind":"confirm"}`, 200) // and a good one still works
}

// TestReviewAnswerNotFitting: answers the sample cannot take (a confirm without a
// prediction, a false detection of a whole-frame sample, missed parts without the frame)
// are 400s saying what to answer instead.
func TestReviewAnswerNotFitting(t *testing.T) {
	e := newReviewEnv(t, nil)
	s, _, _ := reviewSample(t, "crop-only", "line3", "conveyor", false, 1)
	e.add(s)
	whole, _, _ := reviewSample(t, "whole", "line3", "conveyor", false, 2)
	whole.Frame, whole.Crop = whole.Crop, nil
	whole.Prediction = nil
	e.add(whole)
	for _, c := range []struct{ id, body, want string }{
		{"crop-only", `{"kind":"missed","boxes":[{"tag":"red","left":0.1,"top":0.1,"width":0.2,"height":0.2}]}`, "samples.full_frame"},
		{"whole", `{"kind":"confirm"}`, "no prediction to confirm"},
		{"whole", `{"kind":"false-detection"}`, "not a detection"},
	} {
		_, body := e.answer(c.id, c.body, 400)
		if msg := apiErr(t, body); !strings.Contains(msg, c.want) {
			t.Errorf("%s %s: %q", c.id, c.body, msg)
		}
	}
	e.answer("whole", `{"kind":"correct","tag":"anything"}`, 200) // the model's tags unknown: any tag
	e.dsFile("anything/whole.jpg")
}

// TestReviewCSRF: an answer or an upload without the page's CSRF token is refused, and does
// nothing.
func TestReviewCSRF(t *testing.T) {
	uploads := 0
	e := newReviewEnv(t, func(o *Options) {
		o.Upload = func(context.Context) (int, int, error) { uploads++; return 0, 0, nil }
	})
	s, _, _ := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	e.add(s)
	for _, p := range []string{"/api/review/samples/s1/answer", "/api/review/upload"} {
		resp, body := e.send("POST", p, `{"kind":"confirm"}`, false)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(apiErr(t, body), "CSRF") {
			t.Fatalf("POST %s without the token: %d %s, want 403", p, resp.StatusCode, body)
		}
	}
	if e.q.Stats().Pending != 1 || uploads != 0 {
		t.Fatal("a request without the CSRF token changed something")
	}
}

// TestReviewSignedInOperator: a signed-in user's answers carry their name, whatever the
// page sent as the operator.
func TestReviewSignedInOperator(t *testing.T) {
	e := newReviewEnv(t, func(o *Options) {
		o.Config.Auth = configs.UIAuth{Users: []configs.UIUser{{Name: "anna", PasswordHash: authHash(t, authTestPassword)}}, Session: time.Hour}
	})
	if resp, _ := e.b.signIn(url.Values{"user": {"anna"}, "password": {authTestPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	_, page := e.b.do("GET", "/review", nil, nil)
	m := csrfMetaRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "Answering as <b>anna</b>") {
		t.Fatalf("the review page does not show who answers:\n%s", page)
	}
	e.csrf = m[1]
	s, _, _ := reviewSample(t, "s1", "line3", "conveyor", true, 1)
	e.add(s)
	e.answer("s1", `{"kind":"correct","tag":"red","operator":"mallory"}`, 200)
	entries, _ := dataset.ReadIndex(e.dsDir)
	if len(entries) != 1 || entries[0].Operator != "anna" {
		t.Fatalf("entries %+v, want the operator anna", entries)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.fbs) != 1 || e.fbs[0].Operator != "anna" {
		t.Fatalf("feedback %+v", e.fbs)
	}
}

// TestReviewConfusion: after a few answers the table counts predicted against answered,
// the most confused pair first, with per-tag totals; the filters and the period choose the
// answers; wrong parameters are 400s naming them.
func TestReviewConfusion(t *testing.T) {
	e := newReviewEnv(t, nil)
	for i, a := range []string{
		`{"kind":"confirm"}`,
		`{"kind":"correct","tag":"blue"}`,
		`{"kind":"correct","tag":"blue"}`,
		`{"kind":"correct","tag":"red"}`,
		`{"kind":"false-detection"}`,
	} {
		id := fmt.Sprintf("s%d", i)
		s, _, _ := reviewSample(t, id, "line3", "conveyor", true, uint8(i+1))
		e.add(s)
		e.answer(id, a, 200)
	}
	var c review.Confusion
	e.getJSON("/api/review/confusion", 200, &c)
	if c.Answers != 5 || c.Counts["green"]["blue"] != 2 || c.Counts["green"]["green"] != 1 || c.Counts["green"][review.NoPart] != 1 {
		t.Fatalf("confusion %+v", c)
	}
	if len(c.Confused) != 3 || c.Confused[0] != (review.Pair{Predicted: "green", Answered: "blue", Count: 2}) {
		t.Fatalf("most confused %+v", c.Confused)
	}
	if i := slices.IndexFunc(c.Totals, func(t review.TagTotal) bool { return t.Tag == "green" }); i < 0 || c.Totals[i].Predicted != 5 || c.Totals[i].Right != 1 {
		t.Fatalf("totals %+v", c.Totals)
	}
	now := time.Now().UTC()
	for q, want := range map[string]int{
		"agent=line3": 5,
		"agent=line4": 0,
		"camera=dock": 0,
		"since=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)):                                                                        5,
		"since=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339)):                                                                         0,
		"until=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)):                                                                        0,
		"since=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)) + "&until=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339)): 5,
	} {
		var c review.Confusion
		e.getJSON("/api/review/confusion?"+q, 200, &c)
		if c.Answers != want {
			t.Errorf("confusion ?%s: %d answers, want %d", q, c.Answers, want)
		}
	}
	for q, field := range map[string]string{"since=yesterday": "since", "until=2026-13-01T00:00:00Z": "until",
		"since=2026-11-29T00:00:00Z&until=2026-11-28T00:00:00Z": "since", "agent=" + strings.Repeat("a", 300): "agent"} {
		if msg := apiErr(t, e.getJSON("/api/review/confusion?"+q, 400, nil)); !strings.Contains(msg, `"`+field+`"`) {
			t.Errorf("confusion ?%s: %q does not name %q", q, msg, field)
		}
	}
}

// TestReviewUpload: the upload calls Options.Upload and says what it sent and refused, or
// the error; one that runs past the timeout is stopped and said so; one at a time; none
// without Options.Upload.
func TestReviewUpload(t *testing.T) {
	var result struct {
		sent, refused int
		err           error
		block         bool
	}
	calls := 0
	e := newReviewEnv(t, func(o *Options) {
		o.Upload = func(ctx context.Context) (int, int, error) {
			calls++
			if result.block {
				<-ctx.Done()
				return 1, 0, ctx.Err()
			}
			return result.sent, result.refused, result.err
		}
	})
	resp, page := e.b.do("GET", "/review", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="upload"`) {
		t.Fatal("the review page offers no upload")
	}
	type answer struct {
		Sent, Refused int
		Error         string
	}
	post := func(status int) answer {
		t.Helper()
		resp, body := e.send("POST", "/api/review/upload", "", true)
		var a answer
		if resp.StatusCode != status || json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("upload: %d %s, want %d", resp.StatusCode, body, status)
		}
		return a
	}
	result.sent, result.refused = 3, 1
	if a := post(200); a.Sent != 3 || a.Refused != 1 || a.Error != "" {
		t.Fatalf("upload %+v", a)
	}
	result.err = errors.New("training API: 401 unauthorized")
	if a := post(http.StatusBadGateway); !strings.Contains(a.Error, "401 unauthorized") || a.Sent != 3 {
		t.Fatalf("a failed upload %+v", a)
	}
	result.block = true
	e.st.rv.uploadTimeout = time.Millisecond
	if a := post(http.StatusGatewayTimeout); !strings.Contains(a.Error, "longer than 1ms") || a.Sent != 1 {
		t.Fatalf("a slow upload %+v", a)
	}
	e.st.rv.uploading.Store(true) // one running
	if a := post(http.StatusConflict); !strings.Contains(a.Error, "already running") {
		t.Fatalf("a second upload %+v", a)
	}
	e.st.rv.uploading.Store(false)
	if calls != 3 {
		t.Fatalf("Upload called %d times, want 3", calls)
	}

	e2 := newReviewEnv(t, nil)
	resp, body := e2.send("POST", "/api/review/upload", "", true)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(apiErr(t, body), "no upload") {
		t.Fatalf("upload without Options.Upload: %d %s", resp.StatusCode, body)
	}
}

// TestAnswerStatus: the queue's refusals (review.ErrRefused) are 400s, its disk's errors
// 500s, a sample no longer pending 404, a full data set 507.
func TestAnswerStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("answer \"tag\" must be the right tag: %w", review.ErrRefused), 400},
		{fmt.Errorf("box 1: %w", fmt.Errorf("tag %q is not offered: %w", "x", review.ErrRefused)), 400},
		{errors.New("a message alone"), 500},
		{fmt.Errorf("sample s: %w (answered)", review.ErrNotFound), 404},
		{fmt.Errorf("sample s not saved: the data set is full (%w)", dataset.ErrQuota), 507},
		{fmt.Errorf("sample s not saved: %w (is its disk full?)", &fs.PathError{Op: "write", Path: "/x", Err: errors.New("no space left on device")}), 500},
		{fmt.Errorf("sample s: answers log: %w", os.ErrPermission), 500},
		{fmt.Errorf("sample s: %w", &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOSPC}), 500},
		{fmt.Errorf("sample s: the frame cannot be decoded: %w", jpeg.FormatError("bad")), 500},
	} {
		if got := answerStatus(c.err); got != c.want {
			t.Errorf("%v: %d, want %d", c.err, got, c.want)
		}
	}
}

// FuzzAnswerBody: no body makes the parser panic; an answer it takes has a known kind, its
// fields in their bounds and its boxes inside the frame; the check against a sample never
// panics either.
func FuzzAnswerBody(f *testing.F) {
	for _, h := range hostileAnswers {
		f.Add([]byte(h.body))
	}
	for _, s := range []string{
		`{"kind":"confirm","operator":"anna","note":"ok"}`,
		`{"kind":"correct","tag":"blue"}`,
		`{"kind":"false-detection"}`,
		`{"kind":"missed","boxes":[{"tag":"red","left":0.5,"top":0.5,"width":0.2,"height":0.25}]}`,
		`{"kind":"missed","boxes":[{"tag":"red","left":0.999,"top":0,"width":0.002,"height":1.001}]}`,
		`{"kind":"missed","boxes":[{"tag":"red","left":1e-320,"top":-0,"width":5e-324,"height":0.1}]}`,
	} {
		f.Add([]byte(s))
	}
	det := 1
	items := []review.Item{
		{ID: "s1", Agent: "a", Camera: "c", Tag: "green", Tags: []string{"blue", "green"}, HasFrame: true, FrameWidth: 100, FrameHeight: 80,
			CropWidth: 10, CropHeight: 10, Crop: &payload.Box{}, Region: &payload.Box{}, Detection: &det},
		{ID: "s2", Agent: "a", Camera: "c", CropWidth: 1, CropHeight: 1},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := parseAnswer(bytes.NewReader(raw))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if !validKind(a.Kind) || len(a.Operator) > maxOperatorLen || len(a.Note) > maxNoteLen || len(a.Boxes) > maxAnswerBoxes {
			t.Fatalf("taken: %+v", a)
		}
		if (a.Kind == review.Correct) != (a.Tag != "") || (a.Kind == review.Missed) != (len(a.Boxes) > 0) {
			t.Fatalf("taken with the wrong fields: %+v", a)
		}
		for _, b := range a.Boxes {
			if b.Tag == "" || !(b.Left >= 0 && b.Top >= 0 && b.Width > 0 && b.Height > 0 && b.Left+b.Width <= 1+2*boxSlack && b.Top+b.Height <= 1+2*boxSlack) {
				t.Fatalf("a box taken out of the frame: %+v", b)
			}
		}
		for _, it := range items {
			checkAnswer(a, it)
		}
	})
}
