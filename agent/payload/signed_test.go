package payload

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/configs"
)

func signedCommand(t *testing.T, key ed25519.PrivateKey, body string) (Command, *SignedBody) {
	t.Helper()
	c, s, err := ParseSignedCommand(Sign([]byte(body), key))
	if err != nil || s == nil {
		t.Fatalf("%s: %v", body, err)
	}
	return c, s
}

// TestVerifier: a good signature is taken once; a tampered body, another key, a stale or
// future timestamp, a replay, and an unsigned command where one is required are each
// refused with their own reason.
func TestVerifier(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v := NewVerifier(pub, 5*time.Minute, func() time.Time { return now })
	body := func(id string, at time.Time) string {
		return `{"id":"` + id + `","command":"reload","timestamp":"` + at.Format(time.RFC3339) + `"}`
	}
	good, gs := signedCommand(t, priv, body("s1", now.Add(-time.Minute)))
	if err := v.Check(good, gs, true); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if err := v.Check(good, gs, true); err == nil || !strings.Contains(err.Error(), "a replay") {
		t.Fatalf("replay: %v", err)
	}

	tampered, ts := signedCommand(t, priv, body("s2", now))
	ts.Body = []byte(strings.Replace(string(ts.Body), "reload", "add", 1))
	wrongKey, ws := signedCommand(t, other, body("s3", now))
	stale, ss := signedCommand(t, priv, body("s4", now.Add(-6*time.Minute)))
	future, fs := signedCommand(t, priv, body("s5", now.Add(6*time.Minute)))
	noTime, ns := signedCommand(t, priv, `{"id":"s6","command":"reload"}`)
	for name, c := range map[string]struct {
		cmd  Command
		s    *SignedBody
		want string
	}{
		"tampered":     {tampered, ts, "does not verify with commands.public_key"},
		"wrong key":    {wrongKey, ws, "does not verify with commands.public_key"},
		"stale":        {stale, ss, "stale, signed 6m0s ago, more than commands.max_age (5m0s)"},
		"future":       {future, fs, "6m0s in the future"},
		"no timestamp": {noTime, ns, `needs "timestamp"`},
		"unsigned":     {Command{ID: "u", Command: "reload"}, nil, "command reload must be signed on this agent (commands.signed)"},
	} {
		if err := v.Check(c.cmd, c.s, true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if err := v.Check(Command{ID: "u", Command: "trigger"}, nil, false); err != nil {
		t.Errorf("an unsigned command that needs no signature: %v", err)
	}
	// the replay is forgotten once the timestamp alone refuses it
	now = now.Add(5 * time.Minute)
	if err := v.Check(good, gs, true); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("old replay: %v", err)
	}
	if len(v.seen) != 0 {
		t.Errorf("%d signatures remembered past their window", len(v.seen))
	}
	if err := NewVerifier(nil, time.Minute, nil).Check(good, gs, true); err == nil || !strings.Contains(err.Error(), "no commands.public_key") {
		t.Errorf("no key: %v", err)
	}
}

func TestParseSignedCommand(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	raw := Sign([]byte(`{"id":"x1","command":"activate","model":"m","iteration":"i","allowTagChange":true,"timestamp":"2026-01-01T00:00:00Z"}`), priv)
	c, s, err := ParseSignedCommand(raw)
	if err != nil || s == nil || c.ID != "x1" || !c.AllowTagChange || c.Timestamp == "" {
		t.Fatalf("%+v %v", c, err)
	}
	if c, s, err := ParseSignedCommand([]byte(`{"id":"p","command":"reload"}`)); err != nil || s != nil || c.ID != "p" {
		t.Fatalf("plain: %+v %v", c, err)
	}
	b64 := base64.StdEncoding.EncodeToString
	for in, want := range map[string]string{
		`{"body":"!!","signature":"` + b64(make([]byte, 64)) + `"}`:                                                 `"body" must be the command JSON in base64`,
		`{"body":"` + b64([]byte(`{"id":"q","command":"reload"}`)) + `","signature":"AAAA"}`:                        `"signature" must be the 64-byte`,
		`{"body":"` + b64([]byte(`{"id":"q","command":"nope"}`)) + `","signature":"` + b64(make([]byte, 64)) + `"}`: `signed command body: "command" "nope"`,
		`{"body":"","signature":"","extra":1}`:                                                                      `unknown field "extra"`,
	} {
		if _, _, err := ParseSignedCommand([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: %v, want %q", in, err, want)
		}
	}
	// the id of a command with a bad signature is still named in the result
	if c, _, _ := ParseSignedCommand([]byte(`{"body":"` + b64([]byte(`{"id":"q","command":"reload"}`)) + `","signature":"AAAA"}`)); c.ID != "q" {
		t.Errorf("id %q", c.ID)
	}
}

func TestParsePrivateKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	k, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil || !k.Equal(priv) {
		t.Fatalf("%v", err)
	}
	if _, err := ParsePrivateKey([]byte("nope")); err == nil || !strings.Contains(err.Error(), "cvedge commands keygen") {
		t.Fatalf("%v", err)
	}
}

func FuzzParseSignedCommand(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	f.Add(Sign([]byte(`{"id":"a","command":"reload","timestamp":"2026-01-01T00:00:00Z"}`), priv))
	f.Add(Sign([]byte(`{"id":"a","command":"add","model":"m","url":"https://x/y.zip","sha256":"00"}`), priv))
	f.Add([]byte(`{"body":"e30=","signature":""}`))
	f.Add([]byte(`{"signature":null}`))
	f.Add([]byte(`{"id":"a","command":"reload"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, s, err := ParseSignedCommand(raw)
		if err == nil && (c.ID == "" || c.Command == "") {
			t.Fatalf("accepted %q without id or command", raw)
		}
		if s != nil && (err != nil || len(s.Signature) != ed25519.SignatureSize) {
			t.Fatalf("a signed body with error %v or a %d-byte signature", err, len(s.Signature))
		}
		if len(c.ID) > 128 {
			t.Fatalf("id of %d bytes would be echoed", len(c.ID))
		}
	})
}

// TestCommandNames: commands.allow and commands.signed know the same commands as the parser.
func TestCommandNames(t *testing.T) {
	if len(configs.CommandNames) != len(commands) {
		t.Fatalf("configs.CommandNames %v, the parser has %d commands", configs.CommandNames, len(commands))
	}
	for _, n := range configs.CommandNames {
		if _, ok := commands[n]; !ok {
			t.Errorf("configs.CommandNames has %q, the parser does not", n)
		}
	}
}
