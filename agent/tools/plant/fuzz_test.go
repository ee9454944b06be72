package plant

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseTopic: no topic makes ParseTopic panic; a topic it takes has a prefix an agent
// may have, a camera name when it is about a camera, and is made again by String.
func FuzzParseTopic(f *testing.F) {
	for _, seed := range []string{
		"cvedge/line3/status", "cvedge/line3/stats", "cvedge/line3/cameras/cam1/samples", "cvedge/line3/cameras/cam1/counts",
		"acme/plant1/line3/cell2/cameras/top/decisions", "cvedge/line3/cameras/cam1/predictions", "status", "/status", "a//status",
		"cameras/c/counts", "x/cameras//counts", "x/cameras/c d/samples", "x/+/status", "#", "\xff/status", "a/\x00/stats",
		"x/cameras/cameras/cameras/decisions", strings.Repeat("a/", 600) + "status",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		got, err := ParseTopic(topic)
		if err != nil {
			if got != (Topic{}) {
				t.Fatalf("%q: an error with a topic %+v", topic, got)
			}
			return
		}
		if err := checkPrefix(got.Prefix); err != nil || strings.ContainsAny(got.Prefix, "+#\x00") {
			t.Fatalf("%q: prefix %q: %v", topic, got.Prefix, err)
		}
		if (got.Camera != "") != (got.Kind == Samples || got.Kind == Counts || got.Kind == Decisions) {
			t.Fatalf("%q: camera %q for a %s", topic, got.Camera, got.Kind)
		}
		if got.Camera != "" && !nameRE.MatchString(got.Camera) {
			t.Fatalf("%q: camera %q", topic, got.Camera)
		}
		if got.String() != topic {
			t.Fatalf("%q parsed as %+v, which is %q", topic, got, got.String())
		}
	})
}

// FuzzHandle: no message on any topic makes Handle panic, and every message is counted
// once: taken, refused, over a bound, ignored or (a sample without a queue) not queued.
func FuzzHandle(f *testing.F) {
	f.Add("cvedge/line3/status", []byte(`{"schema":1,"agent":"line3","state":"online","updated":"2026-11-29T08:00:00Z"}`))
	f.Add("cvedge/line3/stats", []byte(`{"schema":1,"agent":"line3","cameras":[{"name":"cam1"}]}`))
	f.Add("cvedge/line3/cameras/cam1/counts", []byte(`{"schema":1,"agent":"line3","camera":"cam1","parts":3,"tags":{"red":3}}`))
	f.Add("cvedge/line3/cameras/cam1/decisions", []byte(`{"schema":1,"agent":"line3","camera":"cam1","partId":"p","tagName":"red"}`))
	f.Add("cvedge/line3/cameras/cam1/samples", []byte(`{"schema":1,"id":"s1","agent":"line3","camera":"cam1","reason":"audit","imageOmitted":true}`))
	f.Add("cvedge/line3/status", []byte(`{"schema":1,"agent":"../x","state":"online"}`))
	f.Add("cvedge/line3/status", []byte(`null`))
	f.Add("cvedge/line3/cameras/cam1/counts", []byte{})
	f.Add("x/cameras/c/decisions", []byte(`[[[[[[[[]]]]]]]]`))
	f.Fuzz(func(t *testing.T, topic string, raw []byte) {
		p := New(Options{Log: quiet, MaxAgents: 3, MaxCameras: 2})
		p.Handle(topic, raw)
		p.Handle(topic, raw)
		c := p.Counters()
		_, err := ParseTopic(topic)
		cleared := len(raw) == 0 && err == nil && !errors.Is(err, ErrOtherTopic)
		if n := c.Taken + c.Bad + c.OverLimit + c.Ignored + c.NotQueued + c.Queued + c.Duplicates; n != 2 && !cleared {
			t.Fatalf("%q %q: counted %d times: %+v", topic, raw, n, c)
		}
		_ = p.View()
	})
}
