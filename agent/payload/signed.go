package payload

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Signed is a signed command on <prefix>/commands: the command's JSON as the signer wrote
// it, in base64, and an ed25519 signature over exactly those bytes:
//
//	{"body": "<base64 of the command JSON>", "signature": "<base64 of the 64-byte signature>"}
//
// The command inside carries "timestamp" (RFC 3339). Signing bytes rather than parsed JSON
// keeps it reproducible by any tool: no canonical form to agree on (docs/mqtt.md).
type Signed struct {
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

// ParseSignedCommand reads a command, signed or not. For a signed one it returns the
// command of the body and the body and signature bytes; for a plain one, nil for both. As
// ParseCommand, it returns what it could read of the id on error.
func ParseSignedCommand(raw []byte) (Command, *SignedBody, error) {
	if !isSigned(raw) {
		c, err := ParseCommand(raw)
		return c, nil, err
	}
	var s Signed
	if err := strictJSON(raw, &s); err != nil {
		return Command{}, nil, fmt.Errorf("signed command: %w", err)
	}
	body, err := base64.StdEncoding.DecodeString(s.Body)
	if err != nil || len(body) == 0 {
		return Command{}, nil, errors.New(`signed command: "body" must be the command JSON in base64`)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		c, _ := ParseCommand(body)
		return Command{ID: c.ID, Command: c.Command}, nil, errors.New(`signed command: "signature" must be the 64-byte ed25519 signature of the body, in base64`)
	}
	c, err := ParseCommand(body)
	if err != nil {
		return c, nil, fmt.Errorf("signed command body: %w", err)
	}
	return c, &SignedBody{Body: body, Signature: sig}, nil
}

// SignedBody is the decoded body and signature of a signed command.
type SignedBody struct {
	Body, Signature []byte
}

// isSigned says whether raw is a JSON object with a "signature" member.
func isSigned(raw []byte) bool {
	if len(raw) > maxMessage {
		return false
	}
	var probe map[string]json.RawMessage
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&probe) != nil {
		return false
	}
	_, ok := probe["signature"]
	return ok
}

// Sign wraps the command JSON body in a signed command with key.
func Sign(body []byte, key ed25519.PrivateKey) []byte {
	out, _ := json.Marshal(Signed{Body: base64.StdEncoding.EncodeToString(body), Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))})
	return out
}

// ParsePrivateKey reads an ed25519 private key in PEM (PKCS #8, as openssl genpkey
// -algorithm ed25519 writes it).
func ParsePrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`not a PEM "PRIVATE KEY" (make one with cvedge commands keygen, or openssl genpkey -algorithm ed25519)`)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a readable private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key; commands are signed with ed25519", k)
	}
	return priv, nil
}

// Verifier checks signed commands: the signature against the key, the timestamp against a
// window, and that the same signature is not taken twice. It is safe for concurrent use.
type Verifier struct {
	key    ed25519.PublicKey
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[[32]byte]time.Time // signature hash -> when it leaves the window
}

// NewVerifier checks with key (nil: nothing can be verified) and a window of maxAge either
// side of now.
func NewVerifier(key ed25519.PublicKey, maxAge time.Duration, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{key: key, window: maxAge, now: now, seen: map[[32]byte]time.Time{}}
}

// Check accepts cmd when it needs no signature and carries none, or when its signature s
// verifies, its timestamp is within the window and the signature was not seen within it.
// required says whether commands.signed names the command. Each refusal says why.
func (v *Verifier) Check(cmd Command, s *SignedBody, required bool) error {
	if s == nil {
		if required && v.key != nil {
			return fmt.Errorf("command %s must be signed on this agent (commands.signed): send {\"body\":..., \"signature\":...}, made with cvedge commands sign (docs/mqtt.md)", cmd.Command)
		}
		return nil
	}
	if v.key == nil {
		return errors.New("signed command refused: this agent has no commands.public_key to check it with (set it, or send the command unsigned)")
	}
	if !ed25519.Verify(v.key, s.Body, s.Signature) {
		return errors.New("signature refused: it does not verify with commands.public_key (signed with another key, or the body was changed after signing)")
	}
	if cmd.Timestamp == "" {
		return errors.New(`signed command refused: it needs "timestamp" (RFC 3339, when it was signed) inside the body`)
	}
	at, err := time.Parse(time.RFC3339Nano, cmd.Timestamp)
	if err != nil {
		return fmt.Errorf(`signed command refused: "timestamp" %q is not RFC 3339 (2026-01-02T15:04:05Z)`, clip(cmd.Timestamp))
	}
	now := v.now()
	h := sha256.Sum256(s.Signature)
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, until := range v.seen {
		if now.After(until) {
			delete(v.seen, k)
		}
	}
	switch {
	case now.Sub(at) > v.window:
		return fmt.Errorf("signed command refused: stale, signed %s ago, more than commands.max_age (%v); sign it again (check the clocks if it was just signed)", now.Sub(at).Round(time.Second), v.window)
	case at.Sub(now) > v.window:
		return fmt.Errorf("signed command refused: its timestamp is %s in the future, more than commands.max_age (%v); check the signer's and the agent's clocks", at.Sub(now).Round(time.Second), v.window)
	}
	if _, dup := v.seen[h]; dup {
		return errors.New("signed command refused: a replay, this signature was already taken; sign a new command (new id and timestamp) to do it again")
	}
	v.seen[h] = at.Add(v.window) // past that, the timestamp alone refuses it
	return nil
}
