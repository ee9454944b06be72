package configs

import "strings"

// Tags are matched without regard to case wherever the config names them (thresholds,
// routes, verdicts) and wherever a message names one of a model's tags (feedback): "Brass"
// in the config is the model's "brass". These two functions are that rule.

// TagKey returns the key of m that names tag, matched without regard to case.
func TagKey[V any](m map[string]V, tag string) (string, bool) {
	for k := range m { // no allocation: the pipeline asks on every detection
		if strings.EqualFold(k, tag) {
			return k, true
		}
	}
	return "", false
}

// TagIn returns the element of list that names tag, matched without regard to case, in
// the list's own spelling.
func TagIn(list []string, tag string) (string, bool) {
	for _, t := range list {
		if strings.EqualFold(t, tag) {
			return t, true
		}
	}
	return "", false
}
