package plant

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Kind is what a message is, by the last level of its topic (docs/mqtt.md).
type Kind string

// The kinds of message the station follows.
const (
	Status    Kind = "status"
	Stats     Kind = "stats"
	Samples   Kind = "samples"
	Counts    Kind = "counts"
	Decisions Kind = "decisions"
)

// DefaultPrefix is the pattern of the agents' topic prefixes followed when none is given:
// cvedge/<agent.id>, the default mqtt.topic_prefix.
const DefaultPrefix = "cvedge/+"

// Topic is a topic the station follows, taken apart.
type Topic struct {
	// Prefix is the agent's topic prefix (mqtt.topic_prefix): where its feedback goes.
	Prefix string
	Kind   Kind
	// Camera is the camera of samples, counts and decisions; "" for status and stats.
	Camera string
}

// ErrOtherTopic is ParseTopic's answer for a well-formed topic of a kind the station does
// not follow (predictions, parts, feedback, ...): not an error of the sender.
var ErrOtherTopic = errors.New("a topic the station does not follow")

// maxTopic bounds a topic's length (MQTT allows 65535 bytes; real ones are short).
const maxTopic = 1024

// nameRE is what a camera name may be (cameras[].name, as configs checks it).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ParseTopic takes a topic apart: <prefix>/status, <prefix>/stats, or
// <prefix>/cameras/<camera>/{samples,counts,decisions}. A topic of another kind is
// ErrOtherTopic; one that ends like these but is not shaped like them (no prefix, a camera
// name that is not one, wildcards, not UTF-8) is an error saying what is wrong.
func ParseTopic(topic string) (Topic, error) {
	switch {
	case topic == "":
		return Topic{}, errors.New("empty topic")
	case len(topic) > maxTopic:
		return Topic{}, fmt.Errorf("topic of %d bytes is longer than %d", len(topic), maxTopic)
	case !utf8.ValidString(topic) || strings.ContainsAny(topic, "\x00+#"):
		return Topic{}, errors.New("topic is not UTF-8, or holds a NUL, + or #")
	}
	levels := strings.Split(topic, "/")
	n := len(levels)
	switch k := Kind(levels[n-1]); k {
	case Status, Stats:
		prefix := strings.Join(levels[:n-1], "/")
		if err := checkPrefix(prefix); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		return Topic{Prefix: prefix, Kind: k}, nil
	case Samples, Counts, Decisions:
		if n < 4 || levels[n-3] != "cameras" {
			return Topic{}, fmt.Errorf("topic %q: %s come on <prefix>/cameras/<camera>/%s", clip(topic), k, k)
		}
		camera := levels[n-2]
		if !nameRE.MatchString(camera) {
			return Topic{}, fmt.Errorf("topic %q: camera %q must be 1-64 letters, digits, '-' or '_'", clip(topic), clip(camera))
		}
		prefix := strings.Join(levels[:n-3], "/")
		if err := checkPrefix(prefix); err != nil {
			return Topic{}, fmt.Errorf("topic %q: %w", clip(topic), err)
		}
		return Topic{Prefix: prefix, Kind: k, Camera: camera}, nil
	}
	return Topic{}, ErrOtherTopic
}

// checkPrefix checks an agent's topic prefix as mqtt.topic_prefix is checked: not empty, and
// not starting or ending with "/".
func checkPrefix(prefix string) error {
	if prefix == "" || strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
		return errors.New("no agent topic prefix before it (mqtt.topic_prefix is never empty, nor starts or ends with /)")
	}
	return nil
}

// String is the topic the parts make.
func (t Topic) String() string {
	if t.Camera == "" {
		return t.Prefix + "/" + string(t.Kind)
	}
	return t.Prefix + "/cameras/" + t.Camera + "/" + string(t.Kind)
}

// Filters returns the MQTT topic filters of the messages the station follows from the agents
// whose topic prefix matches one of patterns: each pattern is a topic prefix in which "+"
// stands for one level (cvedge/+ matches cvedge/line3; acme/+/+ matches acme/plant1/cell2).
// For each it subscribes to <pattern>/status, <pattern>/stats and
// <pattern>/cameras/+/{samples,counts,decisions}, never to the predictions.
func Filters(patterns []string) ([]string, error) {
	if len(patterns) == 0 {
		return nil, errors.New("no agent topic prefix pattern: give one, e.g. " + DefaultPrefix)
	}
	var out []string
	for _, p := range patterns {
		if err := checkPattern(p); err != nil {
			return nil, err
		}
		for _, suffix := range []string{"/status", "/stats", "/cameras/+/samples", "/cameras/+/counts", "/cameras/+/decisions"} {
			if f := p + suffix; !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// matches reports whether topic is one of filter's (levels that are "+" or names, as
// Filters makes them).
func matches(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	if len(f) != len(t) {
		return false
	}
	for i := range f {
		if f[i] != "+" && f[i] != t[i] {
			return false
		}
	}
	return true
}

// checkPattern checks a prefix pattern: levels that are "+" or names without wildcards, no
// "#" (it would take every message, predictions included).
func checkPattern(p string) error {
	switch {
	case p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		return fmt.Errorf("prefix pattern %q must not be empty, nor start or end with /", p)
	case len(p) > maxTopic/2 || !utf8.ValidString(p) || strings.ContainsRune(p, 0):
		return fmt.Errorf("prefix pattern %q must be UTF-8, without NUL, and at most %d bytes", clip(p), maxTopic/2)
	case strings.Contains(p, "#"):
		return fmt.Errorf("prefix pattern %q: # would follow every message, predictions included; use + for each level of the agents' prefix (e.g. %s)", p, DefaultPrefix)
	}
	for _, l := range strings.Split(p, "/") {
		if l != "+" && strings.Contains(l, "+") {
			return fmt.Errorf("prefix pattern %q: + must stand alone for a whole level, as in cvedge/+", p)
		}
	}
	return nil
}

// clip keeps what a log line or error quotes short.
func clip(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
