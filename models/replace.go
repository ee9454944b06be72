package models

import (
	"fmt"
	"slices"
	"strings"
)

// CheckReplace says whether the export described by next may take the place of cur, the
// one serving (or active in the store). It is the one check behind the activate and add
// commands over MQTT and behind cvedge models add and activate:
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
