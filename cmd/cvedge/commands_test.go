package main

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

// TestCommandsSign: keygen's public key verifies what sign signs, as the agent checks it;
// a command the agent would refuse is not signed; the key file is never overwritten.
func TestCommandsSign(t *testing.T) {
	key := filepath.Join(t.TempDir(), "ops.pem")
	code, out, errs := cvedge(t, "commands", "keygen", "--out", key)
	if code != 0 {
		t.Fatalf("keygen: %s", errs)
	}
	var pubText string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "public_key: "); ok {
			pubText = v
		}
	}
	pub, err := configs.ParsePublicKey(pubText)
	if err != nil {
		t.Fatalf("keygen's public key %q: %v", pubText, err)
	}
	if _, err := base64.StdEncoding.DecodeString(pubText); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cvedge(t, "commands", "sign", "--key", key, `{"id":"r1","command":"activate","model":"colour","iteration":"it-2","allowTagChange":true}`)
	if code != 0 {
		t.Fatalf("sign: %s", errs)
	}
	cmd, signed, err := payload.ParseSignedCommand([]byte(strings.TrimSpace(out)))
	if err != nil || signed == nil || cmd.ID != "r1" || !cmd.AllowTagChange {
		t.Fatalf("signed %q: %+v %v", out, cmd, err)
	}
	if err := payload.NewVerifier(pub, 5*time.Minute, nil).Check(cmd, signed, true); err != nil {
		t.Fatalf("the agent's check: %v", err)
	}
	if code, _, errs := cvedge(t, "commands", "sign", "--key", key, `{"id":"r2","command":"activate"}`); code == 0 || !strings.Contains(errs, `the agent would refuse this command: command activate needs "model"`) {
		t.Fatalf("a bad command was signed: %d %s", code, errs)
	}
	if code, _, errs := cvedge(t, "commands", "keygen", "--out", key); code == 0 || !strings.Contains(errs, "never overwritten") {
		t.Fatalf("keygen over an existing key: %d %s", code, errs)
	}
	if code, _, errs := cvedge(t, "commands", "sign", "--key", filepath.Join(t.TempDir(), "none.pem"), `{}`); code == 0 || !strings.Contains(errs, "--key") {
		t.Fatalf("a missing key: %d %s", code, errs)
	}
}
