package models

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cvedge/cvedge/configs"
)

// LoadReplacement loads the candidate export at path with mc, the settings of model name
// (mc.Path is ignored), which checks it and runs its warm-up inference, and then checks with
// CheckReplace that it may take the place of cur, the one serving or active: the same job,
// and the same tags unless allowTagChange. A nil cur checks only that it loads and runs.
//
// It is the one check behind the activate, rollback and add commands over MQTT and cvedge
// models add, activate and rollback. The caller owns the model it returns: the daemon swaps
// it in, the command line closes it. A load error comes back as Load returns it; a refusal
// of CheckReplace as a *ReplaceError.
func LoadReplacement(rt *Runtime, name string, mc configs.Model, path string, cur *Info, allowTagChange bool) (*Model, error) {
	mc.Path = path
	m, err := Load(rt, name, mc)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		if err := CheckReplace(*cur, m.Info, allowTagChange); err != nil {
			m.Close()
			return nil, &ReplaceError{Err: err}
		}
	}
	return m, nil
}

// ReplaceError is CheckReplace's refusal as LoadReplacement returns it: the export loads and
// runs, but may not take the place of the one serving. Its text is CheckReplace's.
type ReplaceError struct{ Err error }

func (e *ReplaceError) Error() string { return e.Err.Error() }

// Unwrap returns CheckReplace's error.
func (e *ReplaceError) Unwrap() error { return e.Err }

// CheckReplace says whether the export described by next may take the place of cur, the
// one serving (or active in the store). LoadReplacement runs it for the activate, rollback
// and add commands over MQTT and for cvedge models add, activate and rollback:
//
//   - a detector never replaces a classifier, nor a classifier a detector;
//   - the tags must be the same set, unless allowTagChange: whoever reads the predictions
//     (dashboards, PLC mappings, second-level routes, per-tag thresholds) knows the old
//     tags, and a renamed or dropped tag breaks them without a word.
//
// The error names the formats, or the tags added and removed, and how to go ahead.
func CheckReplace(cur, next Info, allowTagChange bool) error {
	if cur.Format.IsDetector() != next.Format.IsDetector() {
		return fmt.Errorf("a %s cannot replace a %s: a model keeps its job (detector or classifier); add it under another model name and point the pipeline at it", next.Format, cur.Format)
	}
	if allowTagChange {
		return nil
	}
	added, removed := tagDiff(cur.Labels, next.Labels)
	if len(added) == 0 && len(removed) == 0 {
		return nil
	}
	return fmt.Errorf("the tags change (added: %s; removed: %s): update what reads the predictions, then ask again with \"allowTagChange\": true (cvedge models: --allow-tag-change)",
		tagList(added), tagList(removed))
}

// tagDiff returns the tags of next that cur lacks, and those of cur that next lacks, sorted.
func tagDiff(cur, next []string) (added, removed []string) {
	for _, t := range next {
		if !slices.Contains(cur, t) && !slices.Contains(added, t) {
			added = append(added, t)
		}
	}
	for _, t := range cur {
		if !slices.Contains(next, t) && !slices.Contains(removed, t) {
			removed = append(removed, t)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

func tagList(tags []string) string {
	if len(tags) == 0 {
		return "none"
	}
	q := make([]string, len(tags))
	for i, t := range tags {
		q[i] = fmt.Sprintf("%q", t)
	}
	return strings.Join(q, ", ")
}
