package station

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cvedge/cvedge/configs"
)

const (
	authTestToken    = "tok-PLANTED-7c1e9a55d0b34f2e" // planted: must appear in no page, log or error
	authTestPassword = "pw-PLANTED-3b8f0e6a21"
)

// authLog is a log the server's goroutines write into while the test reads it.
type authLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *authLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *authLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// authClock is the sessions' and the rate limit's clock, moved by the test.
type authClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *authClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *authClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// authHash is a bcrypt hash of password, at the lowest cost so that tests are fast.
func authHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// authStation is a station with auth cfg, its log and clock.
func authStation(t *testing.T, cfg configs.UIAuth, secure bool) (*Station, *authLog, *authClock) {
	t.Helper()
	if cfg.Session == 0 {
		cfg.Session = time.Hour
	}
	log := &authLog{}
	s, err := New(Options{
		Config: configs.UI{FPS: 5, Auth: cfg},
		Secure: secure,
		State:  func() View { return View{Agents: []AgentView{{}}} },
		Log:    slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := &authClock{now: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	s.auth.now = clock.Now
	t.Cleanup(s.Close)
	return s, log, clock
}

// authClient is a browser: it keeps cookies, does not follow redirects, sends its Origin
// with every POST, and keeps every response for the leak checks.
type authClient struct {
	t      *testing.T
	base   string
	c      *http.Client
	bodies *strings.Builder
}

func newAuthClient(t *testing.T, base string, c *http.Client, bodies *strings.Builder) *authClient {
	t.Helper()
	if c == nil {
		c = &http.Client{}
	}
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &authClient{t: t, base: base, c: c, bodies: bodies}
}

// do sends a request; a header given as "" is left out (Origin included).
func (b *authClient) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method != http.MethodGet {
		req.Header.Set("Origin", b.base)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if b.bodies != nil {
		b.bodies.Write(raw)
		for k, v := range resp.Header {
			b.bodies.WriteString(k + ": " + strings.Join(v, ", ") + "\n")
		}
	}
	return resp, string(raw)
}

var (
	csrfFieldRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	csrfMetaRE  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)
)

// loginForm opens the sign-in page and returns its CSRF token.
func (b *authClient) loginForm() string {
	b.t.Helper()
	resp, page := b.do("GET", "/login", nil, nil)
	m := csrfFieldRE.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil || m[1] == "" {
		b.t.Fatalf("GET /login: %d, no csrf field:\n%s", resp.StatusCode, page)
	}
	return m[1]
}

// signIn signs in with the form fields and returns the answer.
func (b *authClient) signIn(fields url.Values) (*http.Response, string) {
	b.t.Helper()
	fields.Set("csrf", b.loginForm())
	return b.do("POST", "/login", fields, nil)
}

// pageCSRF is the CSRF token the live page carries.
func (b *authClient) pageCSRF() string {
	b.t.Helper()
	resp, page := b.do("GET", "/", nil, nil)
	m := csrfMetaRE.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil || m[1] == "" {
		b.t.Fatalf("GET /: %d, no csrf-token meta:\n%s", resp.StatusCode, page)
	}
	return m[1]
}

func cookieOf(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wantUnauthenticated checks that the page sends to /login and the API answers 401 JSON.
func wantUnauthenticated(t *testing.T, b *authClient, why string) {
	t.Helper()
	resp, _ := b.do("GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("%s: GET / answered %d, Location %q; want 303 to /login", why, resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.do("GET", "/api/state", nil, nil)
	var e struct{ Error string }
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "sign in") {
		t.Fatalf("%s: GET /api/state answered %d %q; want 401 JSON saying to sign in", why, resp.StatusCode, body)
	}
}

// TestSignInWithToken: without a sign-in the page sends to /login and the API answers 401;
// the token typed on the sign-in page starts a session (cookie HttpOnly, SameSite=Strict,
// not Secure over http), and the token as a bearer header opens the API; a wrong one does
// neither.
func TestSignInWithToken(t *testing.T) {
	s, _, _ := authStation(t, configs.UIAuth{Token: authTestToken}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := newAuthClient(t, srv.URL, nil, nil)
	wantUnauthenticated(t, b, "before the sign-in")

	resp, page := b.do("GET", "/login", nil, nil)
	if !strings.Contains(page, `name="token"`) || strings.Contains(page, `name="password"`) {
		t.Fatalf("a token-only sign-in page should ask for the token alone:\n%s", page)
	}
	// under the station's no-referrer a browser posts the form with Origin: null
	if p := resp.Header.Get("Referrer-Policy"); p != "same-origin" {
		t.Errorf("the sign-in page's Referrer-Policy is %q: want same-origin, so that its form carries its Origin", p)
	}
	resp, body := b.signIn(url.Values{"token": {"not-the-token-at-all-0000"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong token") || cookieOf(resp, sessionCookie) != nil {
		t.Fatalf("a wrong token: %d, session cookie %v\n%s", resp.StatusCode, cookieOf(resp, sessionCookie), body)
	}
	wantUnauthenticated(t, b, "after a wrong token")

	resp, _ = b.signIn(url.Values{"token": {authTestToken}, "next": {"//evil.example/x"}})
	c := cookieOf(resp, sessionCookie)
	if resp.StatusCode != http.StatusSeeOther || c == nil {
		t.Fatalf("the right token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("a next of another site must not be followed: Location %q", loc)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge != 3600 {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over http, Max-Age of ui.auth.session", c)
	}
	if resp, body := b.do("GET", "/api/state", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, `"agents"`) {
		t.Fatalf("signed in, GET /api/state: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.do("GET", "/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("signed in, GET /: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/login", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("signed in, GET /login answered %d; want a redirect to the station", resp.StatusCode)
	}

	script := newAuthClient(t, srv.URL, nil, nil)
	if resp, _ := script.do("GET", "/api/state", nil, map[string]string{"Authorization": "Bearer " + authTestToken}); resp.StatusCode != 200 {
		t.Fatalf("the bearer token: %d", resp.StatusCode)
	}
	resp, body = script.do("GET", "/api/state", nil, map[string]string{"Authorization": "Bearer wrong-wrong-wrong-wrong"})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "wrong token") {
		t.Fatalf("a wrong bearer token: %d %s", resp.StatusCode, body)
	}
}

// TestSignInWithPassword: a user signs in with name and password (bcrypt); a wrong password
// or an unknown user is refused, and the failed sign-in is logged with the address and the
// name tried.
func TestSignInWithPassword(t *testing.T) {
	s, log, _ := authStation(t, configs.UIAuth{Users: []configs.UIUser{{Name: "ops", PasswordHash: authHash(t, authTestPassword)}}}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := newAuthClient(t, srv.URL, nil, nil)

	_, page := b.do("GET", "/login", nil, nil)
	if !strings.Contains(page, `name="user"`) || !strings.Contains(page, `name="password"`) || strings.Contains(page, `name="token"`) {
		t.Fatalf("a users-only sign-in page should ask for name and password alone:\n%s", page)
	}
	for _, c := range []url.Values{
		{"user": {"ops"}, "password": {"wrong-password"}},
		{"user": {"nobody"}, "password": {authTestPassword}},
	} {
		resp, body := b.signIn(c)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password") || cookieOf(resp, sessionCookie) != nil {
			t.Fatalf("%v: %d\n%s", c, resp.StatusCode, body)
		}
	}
	wantUnauthenticated(t, b, "after wrong passwords")
	if l := log.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "failed sign-in") ||
		!strings.Contains(l, "remote=127.0.0.1") || !strings.Contains(l, "user=nobody") {
		t.Errorf("a failed sign-in is logged at Warn with the address and the name tried:\n%s", l)
	}

	resp, _ := b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword}, "next": {"/api/state"}})
	if resp.StatusCode != http.StatusSeeOther || cookieOf(resp, sessionCookie) == nil || resp.Header.Get("Location") != "/api/state" {
		t.Fatalf("the right password: %d, Location %q, cookies %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	if resp, _ := b.do("GET", "/api/state", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("signed in, GET /api/state: %d", resp.StatusCode)
	}
	if !strings.Contains(log.String(), "user=ops") {
		t.Errorf("the sign-in is logged with the user:\n%s", log.String())
	}
}

// TestSignInRateLimited: after 5 failed sign-ins within a minute an address is refused with
// 429 and a clear message, even with the right password, until the minute is over; another
// address is not; wrong bearer tokens count too.
func TestSignInRateLimited(t *testing.T) {
	s, _, clock := authStation(t, configs.UIAuth{Token: authTestToken, Users: []configs.UIUser{{Name: "ops", PasswordHash: authHash(t, authTestPassword)}}}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := newAuthClient(t, srv.URL, nil, nil)
	for i := range signInFailures {
		if resp, _ := b.signIn(url.Values{"user": {"ops"}, "password": {"guess"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d: %d", i+1, resp.StatusCode)
		}
		clock.Add(time.Second)
	}
	resp, body := b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "too many failed sign-ins from 127.0.0.1: wait 55 seconds") ||
		resp.Header.Get("Retry-After") != "55" || cookieOf(resp, sessionCookie) != nil {
		t.Fatalf("after %d failures the right password: %d, Retry-After %q\n%s", signInFailures, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, body = b.do("GET", "/api/state", nil, map[string]string{"Authorization": "Bearer " + authTestToken})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "too many failed sign-ins") {
		t.Fatalf("a limited address with the bearer token: %d %s", resp.StatusCode, body)
	}

	// another address may still sign in
	other := httptest.NewRequest("GET", "/api/state", nil)
	other.RemoteAddr = "10.1.2.3:4567"
	other.Header.Set("Authorization", "Bearer "+authTestToken)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, other)
	if rec.Code != 200 {
		t.Fatalf("another address: %d %s", rec.Code, rec.Body)
	}

	clock.Add(signInWindow)
	if resp, _ := b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a minute later, the right password: %d", resp.StatusCode)
	}

	// wrong bearer tokens count as failed sign-ins
	for range signInFailures {
		other := httptest.NewRequest("GET", "/api/state", nil)
		other.RemoteAddr = "10.9.9.9:1"
		other.Header.Set("Authorization", "Bearer guess-guess-guess-guess")
		s.ServeHTTP(httptest.NewRecorder(), other)
	}
	other.RemoteAddr = "10.9.9.9:2"
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, other)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("after %d wrong bearer tokens, the right one: %d %s", signInFailures, rec.Code, rec.Body)
	}
}

// TestSignInAttemptsCountedAtOnce: an attempt counts from the moment it starts, so that
// many sign-ins sent at once from one address cannot all be checked: with five still being
// checked the sixth is refused; another address is not; a sign-in clears the count.
func TestSignInAttemptsCountedAtOnce(t *testing.T) {
	s, _, _ := authStation(t, configs.UIAuth{Token: authTestToken}, false)
	a := s.auth
	for i := range signInFailures {
		if wait := a.attempt("10.0.0.1"); wait != 0 {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if wait := a.attempt("10.0.0.1"); wait != signInWindow {
		t.Fatalf("the sixth attempt while five are being checked: wait %v; want %v", wait, signInWindow)
	}
	if wait := a.attempt("10.0.0.2"); wait != 0 {
		t.Fatalf("another address: wait %v", wait)
	}
	a.succeeded("10.0.0.1")
	if wait := a.attempt("10.0.0.1"); wait != 0 {
		t.Fatalf("after a sign-in: wait %v", wait)
	}
}

// TestSessionExpires: a session lasts ui.auth.session, then the page asks for a new sign-in.
func TestSessionExpires(t *testing.T) {
	s, _, clock := authStation(t, configs.UIAuth{Token: authTestToken, Session: 2 * time.Hour}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := newAuthClient(t, srv.URL, nil, nil)
	if resp, _ := b.signIn(url.Values{"token": {authTestToken}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	clock.Add(2*time.Hour - time.Second)
	if resp, _ := b.do("GET", "/api/state", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("within the session: %d", resp.StatusCode)
	}
	clock.Add(time.Second)
	wantUnauthenticated(t, b, "after ui.auth.session")
}

// TestSessionsBounded: beyond maxSessions sign-ins the oldest session ends.
func TestSessionsBounded(t *testing.T) {
	s, _, clock := authStation(t, configs.UIAuth{Token: authTestToken}, false)
	first := s.auth.newSession("token")
	for range maxSessions {
		clock.Add(time.Millisecond)
		s.auth.newSession("token")
	}
	if n := len(s.auth.sessions); n != maxSessions {
		t.Fatalf("%d sessions kept; want %d", n, maxSessions)
	}
	r := httptest.NewRequest("GET", "/api/state", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: first.id})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("the oldest session, evicted: %d", rec.Code)
	}
}

// TestLogout: POST /logout with the page's CSRF token ends the session; without the token it
// is refused; GET does nothing.
func TestLogout(t *testing.T) {
	s, _, _ := authStation(t, configs.UIAuth{Token: authTestToken}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := newAuthClient(t, srv.URL, nil, nil)
	resp, _ := b.signIn(url.Values{"token": {authTestToken}})
	old := cookieOf(resp, sessionCookie)
	csrf := b.pageCSRF()
	if resp, _ := b.do("GET", "/logout", nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /logout: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/logout", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /logout without the CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/api/state", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("a refused logout ended the session: %d", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/logout", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("POST /logout: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c := cookieOf(resp, sessionCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("the session cookie is not deleted: %v", c)
	}
	wantUnauthenticated(t, b, "after the logout")
	replay := httptest.NewRequest("GET", "/api/state", nil)
	replay.AddCookie(old)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, replay)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("the ended session's cookie, sent again: %d", rec.Code)
	}
}

// csrfHandler is a station whose routes answer every method: what the CSRF checks let
// through reaches it and counts.
func csrfHandler(a *auth) (http.Handler, *int) {
	n := new(int)
	return a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*n++
		w.Write([]byte("done"))
	})), n
}

// TestCSRF: a state-changing request is refused without the CSRF token, with a wrong one or
// another session's, from a foreign Origin or Referer, or marked Sec-Fetch-Site: cross-site;
// it passes with the token of its session in the header or the form. The same holds with
// auth off (the token bound to the browser's cookie) and for the sign-in form. A request
// with the bearer token needs no CSRF token, but a foreign Origin is refused still.
func TestCSRF(t *testing.T) {
	for _, mode := range []string{"signed in", "auth off"} {
		t.Run(mode, func(t *testing.T) {
			cfg := configs.UIAuth{Token: authTestToken}
			if mode == "auth off" {
				cfg = configs.UIAuth{}
			}
			s, _, _ := authStation(t, cfg, false)
			h, reached := csrfHandler(s.auth)
			mux := http.NewServeMux()
			mux.Handle("/api/act", h)
			mux.Handle("/", s)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			b := newAuthClient(t, srv.URL, nil, nil)
			if mode == "signed in" {
				if resp, _ := b.signIn(url.Values{"token": {authTestToken}}); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("sign-in: %d", resp.StatusCode)
				}
			}
			token := b.pageCSRF()
			// another browser (signed in too), whose token is not this one's
			other := newAuthClient(t, srv.URL, nil, nil)
			if mode == "signed in" {
				other.signIn(url.Values{"token": {authTestToken}})
			}
			otherToken := other.pageCSRF()
			if otherToken == token {
				t.Fatal("two browsers got the same CSRF token")
			}

			refused := []struct {
				name   string
				form   url.Values
				header map[string]string
			}{
				{"no token", nil, nil},
				{"a wrong token", nil, map[string]string{csrfHeader: "wrong"}},
				{"another browser's token", nil, map[string]string{csrfHeader: otherToken}},
				{"a foreign Origin", nil, map[string]string{csrfHeader: token, "Origin": "http://evil.example"}},
				{"the same host on another port", nil, map[string]string{csrfHeader: token, "Origin": "http://127.0.0.1:1"}},
				{"Origin null", nil, map[string]string{csrfHeader: token, "Origin": "null"}},
				{"Origin null, Sec-Fetch-Site same-site", nil, map[string]string{csrfHeader: token, "Origin": "null", "Sec-Fetch-Site": "same-site"}},
				{"a foreign Referer", nil, map[string]string{csrfHeader: token, "Origin": "", "Referer": "http://evil.example/page"}},
				{"Sec-Fetch-Site cross-site", nil, map[string]string{csrfHeader: token, "Sec-Fetch-Site": "cross-site"}},
				{"a wrong form token", url.Values{"csrf": {"wrong"}}, nil},
			}
			for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
				for _, c := range refused {
					resp, body := b.do(method, "/api/act", c.form, c.header)
					if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "refused") {
						t.Errorf("%s with %s: %d %s; want 403", method, c.name, resp.StatusCode, body)
					}
				}
			}
			if *reached != 0 {
				t.Fatalf("%d refused requests reached the handler", *reached)
			}
			for _, c := range []struct {
				name   string
				form   url.Values
				header map[string]string
			}{
				{"the header", nil, map[string]string{csrfHeader: token}},
				{"the form", url.Values{"csrf": {token}}, nil},
				{"no Origin, the same Referer", nil, map[string]string{csrfHeader: token, "Origin": "", "Referer": srv.URL + "/"}},
				{"Sec-Fetch-Site same-origin", nil, map[string]string{csrfHeader: token, "Sec-Fetch-Site": "same-origin"}},
				// a form posted from the station's page (Referrer-Policy: no-referrer)
				{"Origin null from the same origin", url.Values{"csrf": {token}}, map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}},
			} {
				if resp, body := b.do("POST", "/api/act", c.form, c.header); resp.StatusCode != 200 || body != "done" {
					t.Errorf("POST with the token in %s: %d %s", c.name, resp.StatusCode, body)
				}
			}
			if resp, _ := b.do("GET", "/api/act", nil, nil); resp.StatusCode != 200 {
				t.Errorf("GET needs no CSRF token: %d", resp.StatusCode)
			}
			if mode != "signed in" {
				return
			}
			script := newAuthClient(t, srv.URL, nil, nil)
			bearer := map[string]string{"Authorization": "Bearer " + authTestToken, "Origin": ""}
			if resp, _ := script.do("POST", "/api/act", nil, bearer); resp.StatusCode != 200 {
				t.Errorf("POST with the bearer token: %d", resp.StatusCode)
			}
			bearer["Origin"] = "http://evil.example"
			if resp, _ := script.do("POST", "/api/act", nil, bearer); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST with the bearer token from a foreign Origin: %d", resp.StatusCode)
			}

			// the sign-in form: its token bound to the browser's cookie
			fresh := newAuthClient(t, srv.URL, nil, nil)
			form := fresh.loginForm()
			elsewhere := newAuthClient(t, srv.URL, nil, nil).loginForm()
			for _, c := range []struct {
				name   string
				form   url.Values
				header map[string]string
			}{
				{"no token", url.Values{"token": {authTestToken}}, nil},
				{"another browser's token", url.Values{"token": {authTestToken}, "csrf": {elsewhere}}, nil},
				{"a foreign Origin", url.Values{"token": {authTestToken}, "csrf": {form}}, map[string]string{"Origin": "http://evil.example"}},
				{"Sec-Fetch-Site cross-site", url.Values{"token": {authTestToken}, "csrf": {form}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
			} {
				resp, _ := fresh.do("POST", "/login", c.form, c.header)
				if resp.StatusCode != http.StatusForbidden || cookieOf(resp, sessionCookie) != nil {
					t.Errorf("sign-in with %s: %d", c.name, resp.StatusCode)
				}
			}
			if resp, _ := fresh.do("POST", "/login", url.Values{"token": {authTestToken}, "csrf": {form}}, nil); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("sign-in with the form's token: %d", resp.StatusCode)
			}
		})
	}
}

// TestAuthOffPasses: with no token and no users (a loopback station) the pages and the API
// need no sign-in, and /login leads to the station.
func TestAuthOffPasses(t *testing.T) {
	s, _, _ := authStation(t, configs.UIAuth{}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	b := newAuthClient(t, srv.URL, nil, nil)
	for _, p := range []string{"/", "/api/state", "/static/station.css"} {
		if resp, _ := b.do("GET", p, nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := b.do("GET", "/login", nil, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("GET /login with auth off: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestStaticWithoutSignIn: the sign-in page's style sheet is served before the sign-in.
func TestStaticWithoutSignIn(t *testing.T) {
	s, _, _ := authStation(t, configs.UIAuth{Token: authTestToken}, false)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/static/station.css", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), ".signin-card") {
		t.Fatalf("GET /static/station.css: %d", rec.Code)
	}
}

// TestSecretsNeverShown: the token, a password and its hash appear in no page, answer,
// header or log line, through right and wrong sign-ins, refusals, the rate limit and the
// logout; nor in the errors of a bad token_file.
func TestSecretsNeverShown(t *testing.T) {
	hash := authHash(t, authTestPassword)
	s, log, _ := authStation(t, configs.UIAuth{Token: authTestToken, Users: []configs.UIUser{{Name: "ops", PasswordHash: hash}}}, false)
	srv := httptest.NewServer(s)
	defer srv.Close()
	var seen strings.Builder
	b := newAuthClient(t, srv.URL, nil, &seen)
	b.do("GET", "/", nil, nil)
	b.do("GET", "/api/state", nil, map[string]string{"Authorization": "Bearer " + authTestToken[:len(authTestToken)-1]})
	b.signIn(url.Values{"token": {authTestToken + "x"}})
	b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword + "x"}})
	b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword}, "token": {""}})
	b.do("POST", "/login", url.Values{"user": {"ops"}, "password": {authTestPassword}}, nil) // no CSRF token
	b.do("POST", "/login", url.Values{"token": {authTestToken}}, map[string]string{"Origin": "http://evil.example"})
	csrf := b.pageCSRF()
	b.do("GET", "/api/state", nil, nil)
	b.do("POST", "/logout", url.Values{"csrf": {csrf}}, nil)
	for range signInFailures + 1 {
		b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword + "y"}})
	}
	b.signIn(url.Values{"token": {authTestToken}})
	b.do("GET", "/api/state", nil, map[string]string{"Authorization": "Bearer " + authTestToken})

	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("PLANTEDshort\n"), 0o600)
	_, err := newAuth(configs.UIAuth{TokenFile: short, Session: time.Hour}, false, nil)
	if err == nil {
		t.Fatal("a token_file with a short token was accepted")
	}
	seen.WriteString(err.Error())
	_, err = newAuth(configs.UIAuth{Users: []configs.UIUser{{Name: "ops", PasswordHash: "$2b$12$" + authTestPassword}}, Session: time.Hour}, false, nil)
	if err == nil {
		t.Fatal("a password_hash that is no bcrypt hash was accepted")
	}
	seen.WriteString(err.Error())

	all := seen.String() + log.String()
	if !strings.Contains(log.String(), "failed sign-in") || !strings.Contains(seen.String(), "too many failed sign-ins") {
		t.Fatalf("the flows did not run as planned:\n%s", all)
	}
	for name, secret := range map[string]string{"the token": authTestToken, "the password": authTestPassword, "the hash": hash, "the hash's salt": hash[7:29], "the token_file's token": "PLANTEDshort"} {
		if strings.Contains(all, secret) {
			t.Errorf("%s shows in an answer or the log", name)
		}
	}
}

// TestTokenFile: the token is read from ui.auth.token_file, whitespace trimmed; a file that
// cannot be read, or holds a short token, is an error naming the key.
func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte("  "+authTestToken+"\n\n"), 0o600)
	a, err := newAuth(configs.UIAuth{TokenFile: good, Session: time.Hour}, false, nil)
	if err != nil || !a.tokenOK(authTestToken) || a.tokenOK(authTestToken+"\n") {
		t.Fatalf("token_file: %v", err)
	}
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "missing"), "ui.auth.token_file"},
		{filepath.Join(dir, "short"), "ui.auth.token_file"},
	} {
		os.WriteFile(filepath.Join(dir, "short"), []byte("0123456789\n"), 0o600)
		_, err := newAuth(configs.UIAuth{TokenFile: c.file, Session: time.Hour}, false, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error naming %s", c.file, err, c.want)
		}
	}
	if _, err := newAuth(configs.UIAuth{Token: authTestToken}, false, nil); err == nil || !strings.Contains(err.Error(), "ui.auth.session") {
		t.Errorf("a sign-in without a session length: %v", err)
	}
}

// TestSafeNext: after the sign-in only a path of the station is followed.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "/",
		"/":                     "/",
		"/api/state?x=1":        "/api/state?x=1",
		"//evil.example":        "/",
		"/\\evil.example":       "/",
		"https://evil.example":  "/",
		"javascript:alert(1)":   "/",
		"/login":                "/",
		"/x\r\nSet-Cookie: a=b": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q; want %q", in, got, want)
		}
	}
}

// FuzzSafeNext: whatever a sign-in link carries as next, the redirect after the sign-in
// stays on the station: a path, never another host.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/api/state?x=1", "//evil.example", "/\\evil.example", "https://evil.example/", "/%2f%2fevil", "/\t/evil", "javascript:alert(1)", "/login?next=//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || u.Host != "" || u.Scheme != "" {
			t.Fatalf("safeNext(%q) = %q: not a path of the station", next, got)
		}
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: changed a path", next, got)
		}
	})
}

// FuzzSameHost: an Origin or Referer matches the Host only when its host and port are the
// Host's, whatever the header holds.
func FuzzSameHost(f *testing.F) {
	for _, s := range [][2]string{
		{"http://10.0.0.5:9810", "10.0.0.5:9810"}, {"https://box", "box"}, {"http://box", "box:80"},
		{"http://evil.example", "box:9810"}, {"null", "box"}, {"http://[::1]:9810/x", "[::1]:9810"}, {"http://box:9810@evil", "box:9810"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, origin, host string) {
		if !sameHost(origin, host) {
			return
		}
		u, _ := url.Parse(origin)
		if !strings.EqualFold(u.Hostname(), hostOnly(host)) {
			t.Fatalf("sameHost(%q, %q): hosts %q and %q differ", origin, host, u.Hostname(), host)
		}
	})
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}
