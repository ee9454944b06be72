package station

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cvedge/cvedge/configs"
)

// The station's sign-in (docs/operator.md, "Security"). With ui.auth.token or ui.auth.users a
// browser signs in at /login and gets a session cookie; a script sends the token as
// "Authorization: Bearer TOKEN". Without either (allowed on a loopback http.listen only,
// configs.validateUI) every request passes. Every state-changing request, signed in or not,
// must come from the station's own pages: same Origin (or Referer) as the Host, no
// Sec-Fetch-Site: cross-site, and the page's CSRF token. A token, a password or a hash is
// never written into a page, a log line or an error.

const (
	sessionCookie = "cvedge_session"
	csrfCookie    = "cvedge_csrf" // the pre-session CSRF secret: sign-in form, and no auth
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"

	// maxSessions bounds the sessions kept in memory: a sign-in beyond it ends the oldest.
	maxSessions = 1000
	// signInFailures failed sign-ins within signInWindow from one address, and the next
	// attempt from it is refused (429) until the oldest of them is older than the window.
	signInFailures = 5
	signInWindow   = time.Minute
	// maxLimited bounds the addresses whose failures are remembered.
	maxLimited = 10_000
	// maxSignInBody bounds the sign-in form.
	maxSignInBody = 8 << 10
)

// auth decides who may use the station.
type auth struct {
	on       bool
	token    []byte            // empty: no token sign-in
	users    map[string][]byte // name: bcrypt hash
	anyHash  []byte            // checked for an unknown name, so that it takes as long as a known one
	session  time.Duration
	secure   bool   // https: cookies are Secure
	secret   []byte // this process's key of the CSRF tokens
	log      *slog.Logger
	login    *template.Template
	now      func() time.Time
	mu       sync.Mutex
	sessions map[string]*session
	failures map[string][]time.Time // failed sign-ins by remote address, oldest first
}

// session is one sign-in.
type session struct {
	id      string
	user    string // a user's name, or "token"
	created time.Time
	expires time.Time
}

type sessionKey struct{}

func newAuth(cfg configs.UIAuth, secure bool, log *slog.Logger) (*auth, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &auth{
		on: cfg.On(), session: cfg.Session, secure: secure, log: log.With("component", "ui"),
		now: time.Now, users: map[string][]byte{}, sessions: map[string]*session{}, failures: map[string][]time.Time{},
		secret: make([]byte, 32),
	}
	rand.Read(a.secret)
	switch {
	case cfg.Token != "" && cfg.TokenFile != "":
		return nil, errors.New("ui.auth.token: set ui.auth.token or ui.auth.token_file, not both")
	case cfg.Token != "":
		if len(cfg.Token) < configs.MinUITokenLen {
			return nil, fmt.Errorf("ui.auth.token: is %d characters: give at least %d (openssl rand -hex 16)", len(cfg.Token), configs.MinUITokenLen)
		}
		a.token = []byte(cfg.Token)
	case cfg.TokenFile != "":
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("ui.auth.token_file: %w: give a file the agent can read, holding the token", err)
		}
		t := strings.TrimSpace(string(b))
		if len(t) < configs.MinUITokenLen {
			return nil, fmt.Errorf("ui.auth.token_file %s: the token is %d characters: give at least %d (openssl rand -hex 16 > %s)", cfg.TokenFile, len(t), configs.MinUITokenLen, cfg.TokenFile)
		}
		a.token = []byte(t)
	}
	for i, u := range cfg.Users {
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return nil, fmt.Errorf("ui.auth.users[%d].password_hash: not a bcrypt hash: make one with cvedge ui hash-password", i)
		}
		if _, dup := a.users[u.Name]; dup || u.Name == "" {
			return nil, fmt.Errorf("ui.auth.users[%d].name: %q is empty or given twice", i, u.Name)
		}
		a.users[u.Name] = []byte(u.PasswordHash)
		if a.anyHash == nil {
			a.anyHash = []byte(u.PasswordHash)
		}
	}
	if a.on && a.session <= 0 {
		return nil, fmt.Errorf("ui.auth.session: %v must be a positive duration, e.g. 12h", a.session)
	}
	login, err := template.ParseFS(web, "web/login.html")
	if err != nil {
		return nil, fmt.Errorf("station: the sign-in page template: %w", err)
	}
	a.login = login
	return a, nil
}

// wrap lets a request through to next when it is allowed: /login and /logout are served
// here, /static/ (the style sheet and script, no data) to everyone, everything else only
// when signed in (or with auth off); and a state-changing request only with the CSRF checks.
func (a *auth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			a.serveLogin(w, r)
			return
		case "/logout":
			a.serveLogout(w, r)
			return
		}
		bearer := false
		if a.on {
			s, ok, err := a.identify(r)
			if err != nil { // a wrong bearer token, or too many of them
				a.refuse(w, r, err)
				return
			}
			if s != nil {
				r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
			}
			bearer = ok && s == nil
			if !ok && !strings.HasPrefix(r.URL.Path, "/static/") {
				a.unauthenticated(w, r)
				return
			}
		}
		if stateChanging(r.Method) {
			// A request that carries the bearer token was not made by a browser on its own:
			// no page can add that header to a request to another site.
			mode := csrfSession
			if bearer {
				mode = csrfOriginOnly
			}
			if err := a.checkCSRF(r, mode); err != nil {
				a.forbidden(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// csrfToken is the token the page sends back with each state-changing request: bound to the
// session when signed in, otherwise to a cookie of the browser's, which it sets when missing.
func (a *auth) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if s := a.sessionOf(r); s != nil {
		return a.mac("session", s.id)
	}
	return a.browserToken(w, r)
}

// browserToken is the CSRF token bound to the browser's csrf cookie (the sign-in form's, and
// every page's with auth off); it sets the cookie when missing.
func (a *auth) browserToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && validCookieValue(c.Value) {
		return a.mac("browser", c.Value)
	}
	v := randomID()
	http.SetCookie(w, a.cookie(csrfCookie, v, 0))
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: v}) // a second call in this request agrees
	return a.mac("browser", v)
}

// errRateLimited is a refused sign-in: too many failed ones from the address.
type errRateLimited struct {
	addr string
	wait time.Duration
}

func (e errRateLimited) Error() string {
	return fmt.Sprintf("too many failed sign-ins from %s: wait %d seconds and try again", e.addr, int(e.wait.Seconds()+0.999))
}

var errWrongToken = errors.New("wrong token: give the station's token (ui.auth.token) as Authorization: Bearer TOKEN, or sign in at /login")

// identify finds who makes r: a valid bearer token (ok, no session), a valid session cookie
// (ok, the session), nobody (not ok), or a wrong or rate-limited bearer token (err).
func (a *auth) identify(r *http.Request) (*session, bool, error) {
	if h := r.Header.Get("Authorization"); len(a.token) > 0 && h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			addr := remoteHost(r)
			if wait := a.attempt(addr); wait > 0 {
				return nil, false, errRateLimited{addr, wait}
			}
			if !a.tokenOK(strings.TrimSpace(tok)) {
				a.log.Warn("station: a request with a wrong bearer token", "remote", addr, "path", r.URL.Path)
				return nil, false, errWrongToken
			}
			a.succeeded(addr)
			return nil, true, nil
		}
	}
	if s := a.sessionOf(r); s != nil {
		return s, true, nil
	}
	return nil, false, nil
}

// tokenOK compares t with the token in constant time (of their hashes: no length leaks).
func (a *auth) tokenOK(t string) bool {
	if len(a.token) == 0 {
		return false
	}
	x, y := sha256.Sum256([]byte(t)), sha256.Sum256(a.token)
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// passwordOK checks name and password against the users, as long for an unknown name.
func (a *auth) passwordOK(name, password string) bool {
	h, ok := a.users[name]
	if !ok {
		if a.anyHash != nil {
			bcrypt.CompareHashAndPassword(a.anyHash, []byte(password))
		}
		return false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil
}

// sessionOf is r's session: the one wrap found, or its cookie's when valid.
func (a *auth) sessionOf(r *http.Request) *session {
	if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
		return s
	}
	if !a.on {
		return nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[c.Value]
	if s == nil {
		return nil
	}
	if !a.now().Before(s.expires) {
		delete(a.sessions, s.id)
		return nil
	}
	return s
}

// newSession starts a session for user, ending the expired ones and, beyond maxSessions,
// the oldest.
func (a *auth) newSession(user string) *session {
	now := a.now()
	s := &session{id: randomID(), user: user, created: now, expires: now.Add(a.session)}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, o := range a.sessions {
		if !now.Before(o.expires) {
			delete(a.sessions, id)
		}
	}
	for len(a.sessions) >= maxSessions {
		var oldest *session
		for _, o := range a.sessions {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(a.sessions, oldest.id)
	}
	a.sessions[s.id] = s
	return s
}

// attempt counts a sign-in attempt from addr, as failed until succeeded says otherwise, so
// that attempts made at once are counted before their (slow) checks end. It returns how long
// addr must wait when it has failed too often (0: go on).
func (a *auth) attempt(addr string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if f := a.recent(addr, now); len(f) >= signInFailures {
		return f[0].Add(signInWindow).Sub(now)
	}
	if _, known := a.failures[addr]; !known && len(a.failures) >= maxLimited {
		for k := range a.failures {
			if len(a.recent(k, now)) == 0 {
				delete(a.failures, k)
			}
		}
		for k := range a.failures { // still full: forget any one
			if len(a.failures) < maxLimited {
				break
			}
			delete(a.failures, k)
		}
	}
	a.failures[addr] = append(a.failures[addr], now)
	return 0
}

// succeeded forgets addr's failed sign-ins: it has just signed in.
func (a *auth) succeeded(addr string) {
	a.mu.Lock()
	delete(a.failures, addr)
	a.mu.Unlock()
}

// recent drops addr's failures older than the window and returns the rest; a.mu is held.
func (a *auth) recent(addr string, now time.Time) []time.Time {
	f := a.failures[addr]
	i := 0
	for i < len(f) && !now.Before(f[i].Add(signInWindow)) {
		i++
	}
	if i == len(f) {
		delete(a.failures, addr)
		return nil
	}
	f = f[i:]
	a.failures[addr] = f
	return f
}

// serveLogin is the sign-in page (GET) and the sign-in (POST).
func (a *auth) serveLogin(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if !a.on {
		http.Redirect(w, r, next, http.StatusSeeOther) // nothing to sign in to
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if a.sessionOf(r) != nil {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		a.loginPage(w, r, http.StatusOK, "", next)
	case http.MethodPost:
		a.signIn(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		a.fail(w, r, http.StatusMethodNotAllowed, "/login takes GET (the page) and POST (the sign-in)")
	}
}

// signIn checks the sign-in form: the token, or a user's name and password.
func (a *auth) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBody)
	if err := r.ParseForm(); err != nil {
		a.loginPage(w, r, http.StatusBadRequest, "the sign-in form could not be read: reload the page and try again", "/")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if err := a.checkCSRF(r, csrfBrowser); err != nil {
		a.log.Warn("station: a sign-in refused", "remote", remoteHost(r), "reason", err.Error())
		a.loginPage(w, r, http.StatusForbidden, "The sign-in form was refused ("+err.Error()+"). Try again.", next)
		return
	}
	token, name, password := r.PostFormValue("token"), strings.TrimSpace(r.PostFormValue("user")), r.PostFormValue("password")
	if token == "" && (name == "" || len(a.users) == 0) {
		a.loginPage(w, r, http.StatusBadRequest, a.askFor()+".", next)
		return
	}
	addr := remoteHost(r)
	if wait := a.attempt(addr); wait > 0 {
		e := errRateLimited{addr, wait}
		a.log.Warn("station: a sign-in refused", "remote", addr, "reason", "too many failed sign-ins")
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+0.999)))
		a.loginPage(w, r, http.StatusTooManyRequests, e.Error()+".", next)
		return
	}
	user := ""
	if token != "" {
		if a.tokenOK(token) {
			user = "token"
		}
	} else if a.passwordOK(name, password) {
		user = name
	}
	if user == "" {
		tried := name
		if token != "" {
			tried = "(the token)"
		}
		if len(tried) > 64 {
			tried = tried[:64] + "..."
		}
		a.log.Warn("station: a failed sign-in", "remote", addr, "user", tried)
		msg := "Wrong user name or password."
		if token != "" {
			msg = "Wrong token."
		}
		a.loginPage(w, r, http.StatusUnauthorized, msg, next)
		return
	}
	a.succeeded(addr)
	s := a.newSession(user)
	http.SetCookie(w, a.cookie(sessionCookie, s.id, a.session))
	a.log.Info("station: signed in", "remote", addr, "user", user)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// askFor says what the sign-in page wants.
func (a *auth) askFor() string {
	switch {
	case len(a.token) > 0 && len(a.users) > 0:
		return "Give the station's token, or your user name and password"
	case len(a.token) > 0:
		return "Give the station's token"
	default:
		return "Give your user name and password"
	}
}

// serveLogout ends the session (POST, with the page's CSRF token).
func (a *auth) serveLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		a.fail(w, r, http.StatusMethodNotAllowed, "sign out with POST /logout (the page's Sign out button)")
		return
	}
	if s := a.sessionOf(r); s != nil {
		if err := a.checkCSRF(r, csrfSession); err != nil {
			a.forbidden(w, r, err)
			return
		}
		a.mu.Lock()
		delete(a.sessions, s.id)
		a.mu.Unlock()
		a.log.Info("station: signed out", "remote", remoteHost(r), "user", s.user)
	}
	http.SetCookie(w, a.cookie(sessionCookie, "", -1))
	target := "/login"
	if !a.on {
		target = "/"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// csrfMode is which CSRF token a request must carry.
type csrfMode int

const (
	csrfSession    csrfMode = iota // its session's, or without one its browser's
	csrfBrowser                    // its browser's (the sign-in form)
	csrfOriginOnly                 // none: it carries the bearer token, which no other site can add
)

// checkCSRF refuses a state-changing request that another site may have made: one marked
// cross-site by the browser, one whose Origin (or, without it, Referer) is not this host,
// and one without the CSRF token that mode asks for.
func (a *auth) checkCSRF(r *http.Request, mode csrfMode) error {
	fetchSite := r.Header.Get("Sec-Fetch-Site")
	if fetchSite == "cross-site" {
		return errors.New("the request came from another site (Sec-Fetch-Site: cross-site)")
	}
	if o := r.Header.Get("Origin"); o == "null" {
		// A browser sends Origin: null for a form posted from a page with Referrer-Policy:
		// no-referrer (the station's own pages), and for a sandboxed or data: document of any
		// site: only the browser's own word that it comes from this origin lets it through.
		if fetchSite != "same-origin" {
			return errors.New("the request came from an unknown site (Origin: null)")
		}
	} else if o != "" {
		if !sameHost(o, r.Host) {
			return fmt.Errorf("the request came from another site (Origin %.100q, this station is %.100q)", o, r.Host)
		}
	} else if ref := r.Header.Get("Referer"); ref != "" && !sameHost(ref, r.Host) {
		return fmt.Errorf("the request came from another site (its Referer is not %.100q)", r.Host)
	}
	if mode == csrfOriginOnly {
		return nil
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = formCSRF(r)
	}
	if got == "" {
		return errors.New("no CSRF token: send the page's csrf-token as the X-CSRF-Token header (reload the page)")
	}
	var want string
	if s := a.sessionOf(r); s != nil && mode == csrfSession {
		want = a.mac("session", s.id)
	} else if c, err := r.Cookie(csrfCookie); err == nil && validCookieValue(c.Value) {
		want = a.mac("browser", c.Value)
	} else {
		return errors.New("no CSRF cookie: the browser must accept the station's cookies (reload the page)")
	}
	if !hmac.Equal([]byte(got), []byte(want)) {
		return errors.New("a wrong CSRF token: reload the page and try again")
	}
	return nil
}

// formCSRF is the csrf field of a form body, if r has one.
func formCSRF(r *http.Request) string {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
		return ""
	}
	return r.PostFormValue(csrfField)
}

// sameHost reports whether the URL raw (an Origin or a Referer) is of host (the Host
// header). A host without a port has the default port of raw's scheme, as a browser sends it.
func sameHost(raw, host string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return hostPort(u.Host, u.Scheme) == hostPort(host, u.Scheme)
}

func hostPort(h, scheme string) string {
	h = strings.ToLower(h)
	if host, port, err := net.SplitHostPort(h); err == nil {
		return net.JoinHostPort(host, port)
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), port)
}

// stateChanging reports whether method may change something (all but GET, HEAD, OPTIONS).
func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// unauthenticated answers a request that needs a sign-in: the API with 401, a page with the
// way to /login.
func (a *auth) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/api/") {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(safeNext(r.URL.RequestURI())), http.StatusSeeOther)
		return
	}
	if len(a.token) > 0 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cvedge station"`)
	}
	a.fail(w, r, http.StatusUnauthorized, "sign in first: at /login, or with Authorization: Bearer TOKEN")
}

// refuse answers a wrong or rate-limited bearer token.
func (a *auth) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var rl errRateLimited
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", fmt.Sprint(int(rl.wait.Seconds()+0.999)))
		a.fail(w, r, http.StatusTooManyRequests, err.Error())
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="cvedge station", error="invalid_token"`)
	a.fail(w, r, http.StatusUnauthorized, err.Error())
}

// forbidden answers a request the CSRF checks refused.
func (a *auth) forbidden(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Warn("station: a request refused", "remote", remoteHost(r), "method", r.Method, "path", r.URL.Path, "reason", err.Error())
	a.fail(w, r, http.StatusForbidden, "refused: "+err.Error())
}

// fail writes an error: JSON for the API, text otherwise.
func (a *auth) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	http.Error(w, msg, status)
}

// loginPage writes the sign-in page with status and msg (empty: no error).
func (a *auth) loginPage(w http.ResponseWriter, r *http.Request, status int, msg, next string) {
	csrf := a.browserToken(w, r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The form's POST then carries this Origin, not "null" (no-referrer), in every browser.
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	err := a.login.Execute(w, map[string]any{
		"CSRF": csrf, "Token": len(a.token) > 0, "Users": len(a.users) > 0, "Error": msg, "Next": next,
	})
	if err != nil {
		a.log.Warn("station: the sign-in page", "err", err)
	}
}

// cookie is a cookie of the station: HttpOnly, SameSite=Strict, Secure over https, for
// maxAge (0: until the browser closes; negative: delete it).
func (a *auth) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode}
	switch {
	case maxAge < 0:
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int(maxAge.Seconds())
		c.Expires = a.now().Add(maxAge)
	}
	return c
}

// mac is the CSRF token of value (a session id or a browser's cookie).
func (a *auth) mac(kind, value string) string {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(kind + ":" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// randomID is 256 random bits, as cookie text.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validCookieValue reports whether v can be a randomID.
func validCookieValue(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// safeNext is where to go after the sign-in: a path of this station, "/" for anything else
// (another site, a scheme, a protocol-relative //host).
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/logout") || strings.ContainsAny(next, "\r\n\t\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// remoteHost is the address r came from, without its port.
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
