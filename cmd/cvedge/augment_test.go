package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/agent/tools/augment"
)

// TestCollectAugmentRealPhotos: collect augment stretches the real hemlock/cherry photos into
// an uploadable set, and eval refuses to score on it; a bad command line exits 2.
func TestCollectAugmentRealPhotos(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"collect", "augment", "--out", t.TempDir()}, "give --in (the data set) and --out"},
		{[]string{"collect", "augment", "--in", t.TempDir(), "--out", t.TempDir(), "--ops", "rotate=500"}, "--ops: rotate=500: give the largest angle in degrees, 0 to 180"},
		{[]string{"collect", "augment", "--in", t.TempDir(), "--out", t.TempDir(), "--copies", "0"}, "--copies 0"},
	} {
		if code, _, errs := cvedge(t, c.args...); code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errs, c.want)
		}
	}
	dir := testenv.RealData(t, "hemlock-cherry-onnx12")
	out := filepath.Join(t.TempDir(), "augmented")
	code, stdout, errs := cvedge(t, "collect", "augment", "--in", filepath.Join(dir, "images"), "--out", out, "--copies", "2", "--max-images", "5", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	var sum augment.Summary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if sum.Tags != 2 || sum.Sources != 10 || sum.Written != 30 || sum.Images != 30 || len(sum.Failed) != 0 {
		t.Fatalf("summary %+v: want 5 photos of each of 2 tags, each with 2 copies", sum)
	}
	for _, f := range []string{"Hemlock/hemlock_1.jpg", "Hemlock/hemlock_1.aug-2.jpg", "augment.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(f))); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	code, stdout, errs = cvedge(t, "collect", "augment", "--in", filepath.Join(dir, "images"), "--out", out, "--copies", "2", "--max-images", "5")
	if code != 0 || !strings.Contains(stdout, "10 images of 2 tags, 0 files written, 30 already there; 30 images in the augmented set") {
		t.Fatalf("run again: exit %d: %s%s", code, stdout, errs)
	}
	needRuntime(t)
	code, _, errs = cvedge(t, "eval", "--model", dir, "--data", out, "--out", t.TempDir())
	if code != exitFailure || !strings.Contains(errs, "data set "+out+" holds augmented copies") {
		t.Fatalf("eval on the augmented set: exit %d: %s", code, errs)
	}
}
