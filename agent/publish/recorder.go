package publish

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Recorder keeps every message sent to it, in order, instead of publishing it: the fake
// publisher for tests of what the agent sends (steps, commands), with no broker. It is safe
// for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	msgs []Message
}

// Send implements the publisher's Send: it keeps m.
func (r *Recorder) Send(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.Payload = append([]byte(nil), m.Payload...)
	r.msgs = append(r.msgs, m)
}

// Messages returns the messages sent on topics ending in suffix ("" for all), in order.
func (r *Recorder) Messages(suffix string) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Message
	for _, m := range r.msgs {
		if strings.HasSuffix(m.Topic, suffix) {
			out = append(out, m)
		}
	}
	return out
}

// Decode decodes the JSON of every message on topics ending in suffix into a new T each.
func Decode[T any](r *Recorder, suffix string) ([]T, error) {
	var out []T
	for _, m := range r.Messages(suffix) {
		var v T
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			return out, fmt.Errorf("%s: %w", m.Topic, err)
		}
		out = append(out, v)
	}
	return out, nil
}
