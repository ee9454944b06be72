package station

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

// fakeView is one agent with two cameras, one of them live, with counts and a decision.
func fakeView() View {
	return View{Agents: []AgentView{{
		Status: payload.Status{Agent: "line3", State: "online", Cameras: []payload.CameraStatus{{Name: "conveyor", State: "online"}, {Name: "dock", State: "reconnecting", Reason: "no frame for 5s"}},
			Models: []payload.ModelStatus{{Name: "parts", Format: "detector-yolo", Iteration: "it-7"}}},
		Counts:    map[string]payload.Counts{"conveyor": {Camera: "conveyor", Parts: 9, Tags: map[string]uint64{"brass": 7, "steel": 2}}},
		Decisions: map[string][]payload.Decision{"conveyor": {{PartID: "p1", TagName: "brass", Probability: 0.93, Verdict: "ok", By: "line"}}},
		Live:      []string{"conveyor"},
	}}}
}

func newTestStation(t *testing.T, hub *Hub) (*Station, *httptest.Server) {
	t.Helper()
	cfg := configs.Default().UI
	cfg.Enabled = true
	st, err := New(Options{Config: cfg, State: fakeView, Live: hub, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st)
	t.Cleanup(func() { st.Close(); srv.Close() })
	return st, srv
}

func TestStationPageAndState(t *testing.T) {
	_, srv := newTestStation(t, NewHub())
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "/static/station.js") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("page: %d %s\n%s", resp.StatusCode, resp.Header, page)
	}
	for _, asset := range []string{"/static/station.js", "/static/station.css"} {
		r, err := http.Get(srv.URL + asset)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", asset, err, r.Status)
		}
		r.Body.Close()
	}
	resp, err = http.Get(srv.URL + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Agents) != 1 || v.Agents[0].Counts["conveyor"].Parts != 9 || v.Agents[0].Decisions["conveyor"][0].TagName != "brass" {
		t.Fatalf("state %+v", v)
	}
}

// TestLiveStreamsOnlyWhileWatched: nobody watches until a browser opens the stream; the
// frames published then arrive as JPEG parts of the multipart stream; when the browser goes
// away, or the station closes, the camera is no longer watched.
func TestLiveStreamsOnlyWhileWatched(t *testing.T) {
	hub := NewHub()
	st, srv := newTestStation(t, hub)
	if hub.Watching("conveyor") {
		t.Fatal("watched before anyone looked")
	}
	if r, _ := http.Get(srv.URL + "/api/cameras/dock/live"); r.StatusCode != http.StatusNotFound {
		t.Fatalf("a camera without a live picture: %s, want 404", r.Status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/cameras/conveyor/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return hub.Watching("conveyor") })
	frames := [][]byte{[]byte("\xff\xd8frame-1\xff\xd9"), []byte("\xff\xd8frame-2\xff\xd9")}
	mr := multipart.NewReader(bufio.NewReader(resp.Body), params["boundary"])
	for _, f := range frames {
		hub.Publish("conveyor", f)
		part, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		// a browser shows a part once Content-Length bytes came: the next boundary comes
		// only with the next frame
		n, _ := strconv.Atoi(part.Header.Get("Content-Length"))
		got := make([]byte, n)
		if _, err := io.ReadFull(part, got); err != nil {
			t.Fatal(err)
		}
		if part.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(got, f) {
			t.Fatalf("part %q %q, want %q", part.Header.Get("Content-Type"), got, f)
		}
	}
	cancel()
	waitFor(t, func() bool { return !hub.Watching("conveyor") })

	// a stream still open when the station closes ends, so the server's shutdown does not wait
	resp2, err := http.Get(srv.URL + "/api/cameras/conveyor/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	waitFor(t, func() bool { return hub.Watching("conveyor") })
	st.Close()
	if _, err := io.ReadAll(resp2.Body); err != nil {
		t.Fatalf("the stream did not end cleanly at Close: %v", err)
	}
	waitFor(t, func() bool { return !hub.Watching("conveyor") })
}

// TestHubKeepsOnlyTheNewest: a viewer that does not read holds one frame, the newest; Publish
// never blocks.
func TestHubKeepsOnlyTheNewest(t *testing.T) {
	hub := NewHub()
	frames, stop := hub.watch("c")
	defer stop()
	for i := range 100 {
		hub.Publish("c", []byte{byte(i)})
	}
	if got := <-frames; got[0] != 99 {
		t.Fatalf("the viewer got frame %d, want the newest, 99", got[0])
	}
	if !hub.Watching("c") {
		t.Fatal("not watched while a viewer waits")
	}
	stop()
	stop() // twice is harmless
	if hub.Watching("c") {
		t.Fatal("still watched after stop")
	}
	// the second stop counted nothing off: a new viewer is watching
	_, stop2 := hub.watch("c")
	defer stop2()
	if !hub.Watching("c") {
		t.Fatal("a new viewer after a stop called twice is not counted")
	}
}

// waitFor polls cond for up to 10 s (a guard against a hang, not a speed assert).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
	}
}

// TestSignOutOffered: the pages offer to sign out when the station asks for a sign-in, and
// not when it is open to the box only.
func TestSignOutOffered(t *testing.T) {
	for _, token := range []string{"", "0123456789abcdef0123"} {
		cfg := configs.Default().UI
		cfg.Enabled, cfg.Auth.Token = true, token
		st, err := New(Options{Config: cfg, State: fakeView, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(st)
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		st.Close()
		if got := strings.Contains(string(page), `action="/logout"`); got != (token != "") || resp.StatusCode != 200 {
			t.Errorf("token %q: status %d, sign-out offered %v", token, resp.StatusCode, got)
		}
	}
}
