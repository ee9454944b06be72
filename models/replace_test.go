package models

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/configs"
)

func TestCheckReplace(t *testing.T) {
	cls := Info{Format: FormatClassifier, Labels: []string{"blue", "green", "red"}}
	cases := []struct {
		name     string
		cur, nxt Info
		allow    bool
		want     []string // "" for no error
	}{
		{"same tags, other order", cls, Info{Format: FormatClassifierONNX12, Labels: []string{"red", "blue", "green"}}, false, nil},
		{"tags renamed", cls, Info{Format: FormatClassifier, Labels: []string{"blue_v2", "green", "red"}}, false,
			[]string{`added: "blue_v2"`, `removed: "blue"`, `"allowTagChange": true`, "--allow-tag-change"}},
		{"tag dropped", cls, Info{Format: FormatClassifier, Labels: []string{"blue", "green"}}, false, []string{"added: none", `removed: "red"`}},
		{"tags renamed, allowed", cls, Info{Format: FormatClassifier, Labels: []string{"x"}}, true, nil},
		{"detector for a classifier", cls, Info{Format: FormatDetectorYOLO, Labels: cls.Labels}, true, []string{"a detector-yolo cannot replace a classifier"}},
		{"classifier for a detector", Info{Format: FormatDetectorSSD, Labels: []string{"part"}}, Info{Format: FormatClassifier, Labels: []string{"part"}}, true, []string{"a classifier cannot replace a detector-ssd"}},
	}
	for _, c := range cases {
		err := CheckReplace(c.cur, c.nxt, c.allow)
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
	}
}

// TestLoadReplacement: the candidate is loaded with the model's settings from the path given
// (not mc.Path), checked against what serves, and handed over only when both pass; a load
// failure is not a *ReplaceError, a refusal is.
func TestLoadReplacement(t *testing.T) {
	rt := newRuntime(t)
	mc := configs.DefaultModel()
	mc.Path = demo("detector") // ignored: the candidate is the path given
	serving := loadModel(t, rt, demo("classifier")).Info

	m, err := LoadReplacement(rt, "colour", mc, demo("classifier"), &serving, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Name != "colour" || m.Info.Format.IsDetector() || m.Info.SHA256 != serving.SHA256 {
		t.Errorf("loaded %+v", m.Info)
	}
	m.Close()
	if m, err = LoadReplacement(rt, "colour", mc, demo("classifier"), nil, false); err != nil {
		t.Fatalf("no model serving: %v", err)
	}
	m.Close()

	var refusal *ReplaceError
	m, err = LoadReplacement(rt, "colour", mc, demo("detector"), &serving, true)
	if m != nil || !errors.As(err, &refusal) || !strings.Contains(err.Error(), "a detector-yolo cannot replace a classifier") {
		t.Fatalf("detector for a classifier: %v, %v", m, err)
	}
	retagged := serving
	retagged.Labels = []string{"blue", "green", "red", "purple"}
	if _, err = LoadReplacement(rt, "colour", mc, demo("classifier"), &retagged, false); !errors.As(err, &refusal) || !strings.Contains(err.Error(), `removed: "purple"`) {
		t.Fatalf("tags change: %v", err)
	}
	if m, err = LoadReplacement(rt, "colour", mc, demo("classifier"), &retagged, true); err != nil {
		t.Fatalf("tags change allowed: %v", err)
	}
	m.Close()
	if _, err = LoadReplacement(rt, "colour", mc, filepath.Join(t.TempDir(), "none"), &serving, true); err == nil || errors.As(err, &refusal) {
		t.Fatalf("a missing export: %v", err)
	}
}
