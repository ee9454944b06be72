package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/models/store"
)

func TestModelsCommands(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	code, out, errs := cvedge(t, "models", "--store", dir, "add", "--model", "colour", testenv.Path("testdata", "demo", "classifier"))
	if code != 0 || !strings.Contains(out, "colour: iteration ad92cb91-12e0-5f2a-9680-3961651a2636 added") {
		t.Fatalf("add: %d %s%s", code, out, errs)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "add", "--model", "colour", "--activate", testenv.Path("testdata", "models", "classifier-v2"))
	if code == 0 || !strings.Contains(errs, `is in the store but not active: the tags change (added: "blue_v2"`) {
		t.Fatalf("add --activate with other tags: %d %s", code, errs)
	}
	code, out, errs = cvedge(t, "models", "--store", dir, "add", "--model", "colour", "--activate", "--allow-tag-change", testenv.Path("testdata", "models", "classifier-v2"))
	if code != 0 || !strings.Contains(out, "is active") {
		t.Fatalf("add --activate: %d %s%s", code, out, errs)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "add", "--model", "colour", filepath.Join(testenv.RealData(t, "legacy-onnx10-plankton"), "model.onnx"))
	if code == 0 || !strings.Contains(errs, "ONNX 1.0 export") {
		t.Fatalf("a model that does not load entered the store: %d %s", code, errs)
	}
	_, out, _ = cvedge(t, "models", "--store", dir, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "*") || strings.Contains(lines[1], "*") {
		t.Fatalf("list:\n%s", out)
	}
	if code, out, _ := cvedge(t, "models", "--store", dir, "rollback", "colour"); code != 0 || !strings.Contains(out, "ad92cb91-12e0-5f2a-9680-3961651a2636 is active again") {
		t.Fatalf("rollback: %s", out)
	}
	for _, args := range [][]string{
		{"models", "--store", dir, "activate", "colour", "../../etc"},
		{"models", "--store", dir, "add", "--model", "../x", "p"},
		{"models", "--store", dir, "rollback", "colour"},
	} {
		if code, _, errs := cvedge(t, args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}

// TestModelsSlotGuard: cvedge models refuses what the activate command refuses: a detector
// in a classifier's place (exit 1, the formats named), and other tags without
// --allow-tag-change.
func TestModelsSlotGuard(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	add := func(args ...string) (int, string, string) {
		return cvedge(t, append([]string{"models", "--store", dir, "add", "--model", "colour"}, args...)...)
	}
	if code, _, errs := add(testenv.Path("testdata", "demo", "classifier")); code != 0 {
		t.Fatalf("add the classifier: %s", errs)
	}
	code, _, errs := add("--activate", "--allow-tag-change", testenv.Path("testdata", "demo", "detector"))
	if code == 0 || !strings.Contains(errs, "a detector-yolo cannot replace a classifier") {
		t.Fatalf("add --activate a detector in the classifier's place: exit %d, %s", code, errs)
	}
	_, out, _ := cvedge(t, "models", "--store", dir, "list", "colour")
	var detector string
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[2] != "*" {
			detector = f[1]
		}
	}
	if detector == "" {
		t.Fatalf("the detector is not in the store (not active):\n%s", out)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "activate", "--allow-tag-change", "colour", detector)
	if code == 0 || !strings.Contains(errs, "a detector-yolo cannot replace a classifier") {
		t.Fatalf("activate a detector in the classifier's place: exit %d, %s", code, errs)
	}
	if code, _, errs := add(testenv.Path("testdata", "models", "classifier-v2")); code != 0 {
		t.Fatalf("add v2: %s", errs)
	}
	_, out, _ = cvedge(t, "models", "--store", dir, "list", "colour")
	v2 := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] != detector && f[1] != "ITERATION" && f[1] != "ad92cb91-12e0-5f2a-9680-3961651a2636" {
			v2 = f[1]
		}
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "activate", "colour", v2)
	if code == 0 || !strings.Contains(errs, `removed: "blue", "green", "red", "yellow"`) || !strings.Contains(errs, "--allow-tag-change") {
		t.Fatalf("activate v2 without --allow-tag-change: exit %d, %s", code, errs)
	}
	if code, out, errs := cvedge(t, "models", "--store", dir, "activate", "--allow-tag-change", "colour", v2); code != 0 || !strings.Contains(out, v2+" is active") {
		t.Fatalf("activate v2 with --allow-tag-change: exit %d, %s%s", code, out, errs)
	}
	// a store whose detector got active unchecked (by hand): rolling back to a classifier
	// is refused as the rollback command refuses it
	st, _ := store.Open(dir)
	if _, err := st.Activate("colour", detector); err != nil {
		t.Fatal(err)
	}
	code, _, errs = cvedge(t, "models", "--store", dir, "rollback", "colour")
	if code == 0 || !strings.Contains(errs, "a classifier cannot replace a detector-yolo") {
		t.Fatalf("rollback from a detector to a classifier: exit %d, %s", code, errs)
	}
	if state, _ := st.State("colour"); state.Active != detector {
		t.Fatalf("a refused rollback changed the store: %s is active", state.Active)
	}
}

// TestModelsListJSON: models list --json prints every iteration with the active one marked,
// as the table does.
func TestModelsListJSON(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	for _, m := range []string{testenv.Path("testdata", "demo", "classifier"), testenv.Path("testdata", "models", "classifier-v2")} {
		if code, _, errs := cvedge(t, "models", "--store", dir, "add", "--model", "colour", m); code != 0 {
			t.Fatalf("add %s: %s", m, errs)
		}
	}
	if code, _, errs := cvedge(t, "models", "--store", dir, "activate", "--allow-tag-change", "colour", "ad92cb91-12e0-5f2a-9680-3961651a2636"); code != 0 {
		t.Fatalf("activate: %s", errs)
	}
	code, out, errs := cvedge(t, "models", "--store", dir, "list", "--json")
	var list []iterationJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("exit %d: %v\n%s%s", code, err, out, errs)
	}
	if code != 0 || len(list) != 2 {
		t.Fatalf("exit %d, %+v", code, list)
	}
	for _, it := range list {
		active := it.Iteration == "ad92cb91-12e0-5f2a-9680-3961651a2636"
		if it.Model != "colour" || it.Active != active || len(it.SHA256) != 64 || it.Added.IsZero() || it.Source == "" {
			t.Errorf("%+v", it)
		}
	}
	// an empty store is an empty array, not null
	if code, out, _ := cvedge(t, "models", "--store", t.TempDir(), "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty store: exit %d, %q", code, out)
	}
}
