package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/cvedge/cvedge/configs"
)

// hashPassword runs cvedge ui hash-password with stdin and returns exit code, stdout, stderr.
func hashPassword(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	for _, c := range root.Commands() {
		if c.Name() == "ui" {
			root.RemoveCommand(c)
		}
	}
	ui := uiCmd(strings.NewReader(stdin), &out, &errb)
	usageErrors(ui)
	root.AddCommand(ui)
	root.SetArgs(append([]string{"ui", "hash-password"}, args...))
	if _, err := root.ExecuteC(); err != nil {
		fmt.Fprintln(&errb, err)
		if isUsage(err) {
			return exitUsage, out.String(), errb.String()
		}
		return exitFailure, out.String(), errb.String()
	}
	return exitOK, out.String(), errb.String()
}

// TestHashPassword: cvedge ui hash-password reads the first line of stdin and prints a bcrypt
// hash of cost 12 that checks against the password (and not another), that configs accepts
// as ui.auth.users[].password_hash, and that does not show the password.
func TestHashPassword(t *testing.T) {
	const password = "correct horse battery"
	code, out, errs := hashPassword(t, password+"\r\nsecond line\n")
	hash := strings.TrimSuffix(out, "\n")
	if code != exitOK || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		t.Fatalf("the hash %q does not check against the password: %v", hash, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password+"\r")) == nil {
		t.Fatal("the line ending is part of the password")
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != 12 {
		t.Errorf("cost %d, want 12", cost)
	}
	if strings.Contains(out+errs, password) {
		t.Error("the password is printed")
	}
	cfg := configs.Default()
	cfg.UI.Auth.Users = []configs.UIUser{{Name: "ops", PasswordHash: hash}}
	if p := configs.ProblemsUnder(cfg.Validate(), "ui.auth"); len(p) != 0 {
		t.Errorf("configs refuses the hash: %v", p)
	}

	// without a line ending too
	if code, out, errs := hashPassword(t, password); code != exitOK || bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out)), []byte(password)) != nil {
		t.Fatalf("a password without a line ending: exit %d, %q %q", code, out, errs)
	}
}

// TestHashPasswordRefuses: no password, a short one, one longer than bcrypt reads, and an
// argument are refused with a clear message and no hash.
func TestHashPasswordRefuses(t *testing.T) {
	for _, c := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"empty stdin", "", nil, exitFailure, "no password on stdin"},
		{"an empty line", "\n", nil, exitFailure, "no password on stdin"},
		{"a short password", "short\n", nil, exitFailure, "the password is 5 bytes: give at least 8"},
		{"a long password", strings.Repeat("x", 73) + "\n", nil, exitFailure, "the password is 73 bytes: bcrypt takes at most 72"},
		{"an argument", "long enough password\n", []string{"pw"}, exitUsage, `unknown command "pw"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := hashPassword(t, c.stdin, c.args...)
			if code != c.code || out != "" || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, c.code, out, errs, c.want)
			}
		})
	}
}
