package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/testenv"
)

// TestVersionFlag: cvedge --version prints what cvedge version prints.
func TestVersionFlag(t *testing.T) {
	code, flag, errs := cvedge(t, "--version")
	_, sub, _ := cvedge(t, "version")
	if code != 0 || flag != sub || !strings.HasPrefix(flag, "cvedge ") {
		t.Fatalf("--version: exit %d, %q (stderr %q); version: %q", code, flag, errs, sub)
	}
}

// TestExitCodes: 0 when the command did its work, 1 when it failed, 2 when the command line
// is wrong (unknown command or flag, missing or extra argument, bad flag value); a usage
// error says where the usage is.
func TestExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("agent: {id: x}\nmqtt: {qos: 5}\ncameras: []\n"), 0o600)
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"ok", []string{"version"}, 0, ""},
		{"help", []string{"--help"}, 0, ""},
		{"a group alone prints its help", []string{"config"}, 0, ""},
		{"failure: a config with problems", []string{"config", "check", "--config", bad}, 1, "mqtt.qos"},
		{"failure: no such config", []string{"config", "print", "--config", filepath.Join(empty, "none.yaml")}, 1, "none.yaml"},
		{"failure: no model in the store", []string{"models", "--store", empty, "rollback", "colour"}, 1, ""},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate" for "cvedge"`},
		{"unknown command, suggested", []string{"confg"}, 2, "did you mean config?"},
		{"unknown command under a group", []string{"config", "chek"}, 2, `unknown command "chek" for "cvedge config"`},
		{"unknown command under models", []string{"models", "--store", empty, "remove", "colour"}, 2, `unknown command "remove"`},
		{"unknown completion shell", []string{"completion", "tcsh"}, 2, `unknown command "tcsh"`},
		{"unknown flag", []string{"config", "check", "--bogus"}, 2, "unknown flag: --bogus"},
		{"unknown shorthand flag", []string{"version", "-x"}, 2, "unknown shorthand flag"},
		{"bad flag value", []string{"bench", "--frames", "many", "--source", "x"}, 2, `invalid argument "many" for "--frames"`},
		{"bad flag value, checked", []string{"inspect", "--threshold", "2", "m.zip"}, 2, "--threshold"},
		{"bad --map", []string{"eval", "--model", "m", "--data", empty, "--map", "x"}, 2, "write FOLDER=TAG"},
		{"missing argument", []string{"inspect"}, 2, "accepts 1 arg(s), received 0"},
		{"missing arguments", []string{"models", "--store", empty, "activate", "colour"}, 2, "accepts 2 arg(s), received 1"},
		{"extra argument", []string{"version", "now"}, 2, `unknown command "now" for "cvedge version"`},
		{"extra argument to list", []string{"models", "--store", empty, "list", "a", "b"}, 2, "accepts at most 1 arg(s), received 2"},
		{"missing flag", []string{"eval", "--data", empty}, 2, "give --model"},
		{"missing --source", []string{"bench", "--detector", "d.zip"}, 2, "--source: give a video file"},
		{"missing --out", []string{"commands", "keygen"}, 2, "--out: give the file"},
		{"collect without --out", []string{"collect"}, 2, "--out: give the data set folder"},
		{"missing --key", []string{"commands", "sign", "{}"}, 2, "--key: give the private key file"},
		{"missing models", []string{"predict", "x.jpg"}, 2, "give --model, or --detector"},
		{"bad model name", []string{"models", "--store", empty, "add", "--model", "../x", "p"}, 2, "--model: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := cvedge(t, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("cvedge %v: exit %d, want %d; stderr %q, want it to contain %q", c.args, code, c.code, errs, c.want)
			}
			if code == 2 && !strings.Contains(errs, "--help' for usage") {
				t.Errorf("a usage error without the way to the usage: %q", errs)
			}
		})
	}
}

// TestHelpStatesExitCodes: cvedge --help lists the exit codes.
func TestHelpStatesExitCodes(t *testing.T) {
	code, out, _ := cvedge(t, "--help")
	for _, want := range []string{"Exit codes:", "0  success", "1  failure", "2  usage error"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d; want %q in\n%s", code, want, out)
		}
	}
}

// withoutExample are the commands whose Example is yet to be written in their own file.
var withoutExample = map[string]bool{}

// TestEveryCommandHasHelp: every command a user can run has a Long help and an Example,
// which the manual pages are made of.
func TestEveryCommandHasHelp(t *testing.T) {
	root := newRoot(os.Stdout, os.Stderr)
	n := 0
	walk(root, func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		n++
		if strings.TrimSpace(c.Long) == "" {
			t.Errorf("%s: no Long help", c.CommandPath())
		}
		if withoutExample[c.CommandPath()] {
			if c.Example != "" {
				t.Errorf("%s has an Example now: remove it from withoutExample", c.CommandPath())
			}
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example", c.CommandPath())
		}
	})
	if n < 20 {
		t.Fatalf("only %d commands walked", n)
	}
}

// TestCompletion: cvedge completion prints the script of each shell the package installs.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "# bash completion V2 for cvedge", "zsh": "#compdef cvedge", "fish": "complete -c cvedge"} {
		code, out, errs := cvedge(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %q missing\n%s", shell, code, want, errs)
		}
	}
}

// TestManPages: cvedge __man writes a page per command, with its description and example,
// and stays out of the help.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	if code, _, errs := cvedge(t, "__man", dir); code != 0 {
		t.Fatalf("__man: exit %d: %s", code, errs)
	}
	root := newRoot(os.Stdout, os.Stderr)
	walk(root, func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		page, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", c.CommandPath(), err)
			return
		}
		if !strings.Contains(string(page), ".TH \"CVEDGE\" \"1\"") || !strings.Contains(string(page), "DESCRIPTION") {
			t.Errorf("%s: not a manual page:\n%s", name, page)
		}
		if c.Example != "" && !strings.Contains(string(page), "EXAMPLE") {
			t.Errorf("%s: no example", name)
		}
	})
	if _, err := os.Stat(filepath.Join(dir, "cvedge-__man.1")); err == nil {
		t.Error("the hidden __man command has a page")
	}
	if _, out, _ := cvedge(t, "--help"); strings.Contains(out, "__man") {
		t.Error("__man is in the help")
	}
}

// TestConfigCheckJSON: config check --json prints the result, problems included, and exits
// as without it.
func TestConfigCheckJSON(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("agent: {id: x}\nmqtt: {qos: 5}\ncameras: []\n"), 0o600)
	code, out, _ := cvedge(t, "config", "check", "--json", "--config", bad)
	var r checkJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != 1 || r.OK || r.Config != bad || len(r.Problems) != 2 || r.Problems[0] != "mqtt.qos: 5 must be 0, 1 or 2" ||
		!strings.HasPrefix(r.Problems[1], "cameras: no camera configured") {
		t.Fatalf("exit %d, %+v", code, r)
	}

	needRuntime(t)
	cfg := checkConfig(t, testenv.Path("testdata", "demo", "detector"), testenv.Path("testdata", "demo", "conveyor.avi"))
	code, out, errs := cvedge(t, "config", "check", "--json", "--offline", "--config", cfg)
	r = checkJSON{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errs)
	}
	if code != 0 || !r.OK || !r.Offline || r.Models != 2 || r.Cameras != 1 || r.Problems == nil || len(r.Problems) != 0 {
		t.Fatalf("exit %d, %+v\n%s", code, r, errs)
	}
	code, out, _ = cvedge(t, "config", "check", "--json", "--offline", "--config", checkConfig(t, "/nonexistent/detector.zip", testenv.Path("testdata", "demo", "conveyor.avi")))
	r = checkJSON{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if code != 1 || r.OK || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "models.parts.path: ") {
		t.Fatalf("a model that does not load: exit %d, %+v", code, r)
	}
}
