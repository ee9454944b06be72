package configs

import (
	"errors"
	"regexp"
	"strings"
)

// Masked replaces a secret in what Redact returns.
const Masked = "***"

var (
	// secretQuery finds password parameters in a URL query: ?password=..., &pwd=...
	secretQuery = regexp.MustCompile(`(?i)([?&](?:password|passwd|pwd|pass)=)[^&#\s"']*`)
	// sasSecret finds the key of an Azure connection string (SharedAccessKey=...) and the
	// signature of a SAS token (sig=...).
	sasSecret = regexp.MustCompile(`(?i)(SharedAccessKey=|\bsig=)[^;&\s"']*`)
	// gstCredential finds the credential properties of GStreamer elements (rtspsrc,
	// souphttpsrc, ...) with their value: unquoted (backslash escapes allowed), "double" or
	// 'single' quoted, a quote left open running to the end.
	gstCredential = regexp.MustCompile(`(?i)\b((?:user|proxy)-(?:pw|id))(\s*=\s*)("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|(?:\\.|[^\s!"'\\])*)`)
)

// Redact hides the secrets in a camera source, a broker URL, or any text that repeats them
// (an error from OpenCV or GStreamer, a log line): the password of every URL's userinfo
// (rtsp://user:pass@host becomes rtsp://user:***@host, also inside a GStreamer pipeline),
// password parameters of a URL query (?password=, pwd=, passwd=, pass=), and the values of
// GStreamer's user-id, user-pw, proxy-id and proxy-pw properties, quoted or not, and an
// Azure connection string's SharedAccessKey= and a SAS token's sig= values. Text
// without secrets comes back unchanged, and Redact(Redact(s)) == Redact(s).
//
// It is the one masking function of cvedge: camera.Redact is this function, and the config
// printout, the camera's states and errors, and the agent's log and status go through it.
func Redact(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "=") {
		return s // the common case: a device, a file, a camera name
	}
	s = redactUserinfo(s)
	s = secretQuery.ReplaceAllString(s, "${1}"+Masked)
	s = sasSecret.ReplaceAllString(s, "${1}"+Masked)
	return gstCredential.ReplaceAllStringFunc(s, func(m string) string {
		sub := gstCredential.FindStringSubmatch(m)
		val := sub[3]
		if val == "" {
			return m
		}
		q := ""
		if val[0] == '"' || val[0] == '\'' {
			q = val[:1]
		}
		return sub[1] + sub[2] + q + Masked + q
	})
}

// redactUserinfo masks the password of every URL in s: after each "://", the authority runs
// to the path, the query, whitespace or a quote; its userinfo is what comes before its last
// '@', and the password what follows the userinfo's first ':'. An authority with a ':' and no
// '@' runs on to the last '@' of its word, for a password with '/', '?' or '#' in it.
func redactUserinfo(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; ; {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		start := i + j + len("://")
		end := start
		for end < len(s) && !isAuthorityEnd(s[end]) {
			end++
		}
		auth := s[start:end]
		at := strings.LastIndexByte(auth, '@')
		if at < 0 && strings.IndexByte(auth, ':') >= 0 {
			// a password with an unescaped '/', '?' or '#' ends the authority early
			// (user:Cam#Pa55@host): its '@' comes later in the same word. A '@' in a path or
			// query after a port is masked too: the safe way to be wrong.
			word := end
			for word < len(s) && !isWordEnd(s[word]) {
				word++
			}
			if k := strings.Index(s[end:word], "://"); k >= 0 {
				word = end + k
			}
			if k := strings.LastIndexByte(s[end:word], '@'); k >= 0 {
				at, auth = end-start+k, s[start:end+k]
			}
		}
		if at >= 0 {
			if colon := strings.IndexByte(auth[:at], ':'); colon >= 0 {
				b.WriteString(s[done : start+colon+1])
				b.WriteString(Masked)
				done = start + at
			}
		}
		i = max(start, done) // a "://" inside what was masked starts no URL
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// isWordEnd reports whether c ends the word a URL is written in.
func isWordEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '<', '>':
		return true
	}
	return false
}

// isAuthorityEnd reports whether c ends a URL's authority: its path, query or fragment
// starts, or its word ends.
func isAuthorityEnd(c byte) bool {
	return c == '/' || c == '?' || c == '#' || isWordEnd(c)
}

// RedactError returns err with Redact applied to its text. The result still matches its
// cause with errors.Is, but does not unwrap to it: the cause's text holds the secrets.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Redact(msg); red != msg {
		return &redacted{msg: red, cause: err}
	}
	return err
}

type redacted struct {
	msg   string
	cause error
}

func (e *redacted) Error() string { return e.msg }

// Is lets errors.Is see the cause (os.ErrNotExist, context.Canceled, ...).
func (e *redacted) Is(target error) bool { return errors.Is(e.cause, target) }
