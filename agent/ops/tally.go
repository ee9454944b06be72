package ops

import "sync"

// Tally counts events by key (spool drops by "class/reason", samples by reason); it is safe
// for concurrent use. The zero Tally is ready.
type Tally struct {
	mu sync.Mutex
	n  map[string]uint64
}

// Add counts one event of key and returns the count so far.
func (t *Tally) Add(key string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]uint64{}
	}
	t.n[key]++
	return t.n[key]
}

// Snapshot copies the counts (an empty map, never nil, when nothing was counted).
func (t *Tally) Snapshot() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.n))
	for k, v := range t.n {
		out[k] = v
	}
	return out
}
