package models

import (
	"strings"
	"testing"
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
