package configs

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCommandsDefaults: every command but add is allowed; add, activate and reload are
// signed once a key is set; the download bounds have their defaults.
func TestCommandsDefaults(t *testing.T) {
	cfg, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Commands
	if slices.Contains(c.Allow, "add") || len(c.Allow) != len(CommandNames)-1 {
		t.Errorf("commands.allow %v", c.Allow)
	}
	if strings.Join(c.Signed, ",") != "add,activate,reload" || c.MaxAge != 5*time.Minute {
		t.Errorf("commands %+v", c)
	}
	if k, err := c.Key(); k != nil || err != nil {
		t.Errorf("a key without one set: %v %v", k, err)
	}
	if s := cfg.Store; s.MaxDownloadMB != 512 || s.MaxUnpackedMB != 1024 || s.DownloadTimeout != 30*time.Second {
		t.Errorf("store %+v", s)
	}
	cfg, err = Load(write(t, minimal+"commands: {allow: [trigger, add]}\n"))
	if err != nil || strings.Join(cfg.Commands.Allow, ",") != "trigger,add" {
		t.Fatalf("allow from the file: %v %v", cfg, err)
	}
}

// TestCommandsKey: the key is read as base64, as PEM, and from a file relative to the config.
func TestCommandsKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "commands.pub"), []byte(pemText), 0o644)
	cfgPath := filepath.Join(dir, "cvedge.yaml")
	os.WriteFile(cfgPath, []byte(minimal+"commands: {public_key_file: commands.pub}\n"), 0o644)
	for name, path := range map[string]string{
		"base64": write(t, minimal+"commands: {public_key: "+base64.StdEncoding.EncodeToString(pub)+"}\n"),
		"pem":    write(t, minimal+"commands:\n  public_key: |\n    "+strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\n    ")+"\n"),
		"file":   cfgPath,
	} {
		cfg, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if k, err := cfg.Commands.Key(); err != nil || !k.Equal(pub) {
			t.Errorf("%s: %v %v", name, k, err)
		}
	}
}

func TestCommandsBad(t *testing.T) {
	cases := map[string]string{
		"commands: {allow: [trigger, reboot]}":                   `commands.allow[1]: "reboot" is not one of trigger, snapshot, reload, activate, rollback, add`,
		"commands: {signed: [add, selfdestruct]}":                `commands.signed[1]: "selfdestruct" is not one of`,
		"commands: {signed: [trigger]}":                          "commands.signed: names commands to sign but no key checks them",
		"commands: {public_key: AAAA}":                           "commands.public_key: not an ed25519 public key",
		"commands: {public_key_file: /nonexistent/commands.pub}": "commands.public_key_file: open /nonexistent/commands.pub",
		"commands: {public_key: AAAA, public_key_file: x}":       "commands.public_key: give public_key or public_key_file, not both",
		"commands: {max_age: 0s}":                                "commands.max_age: 0s must be a positive duration",
		"store: {max_download_mb: 0}":                            "store.max_download_mb: 0 must be 1 or more",
		"store: {max_unpacked_mb: -1}":                           "store.max_unpacked_mb: -1 must be 1 or more",
		"store: {download_timeout: 0s}":                          "store.download_timeout: 0s must be a positive duration",
		"commands: {public_key: \"-----BEGIN CERTIFICATE-----\\nAA==\\n-----END CERTIFICATE-----\"}": `a PEM "CERTIFICATE" block`,
	}
	for extra, want := range cases {
		_, err := Load(write(t, minimal+extra+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", extra, err, want)
		}
	}
}
