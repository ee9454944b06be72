package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
)

// slowStore is a disk that takes as long as the test says.
type slowStore struct {
	mu      sync.Mutex
	release chan struct{}
	kept    []string
}

func (s *slowStore) Add(p payload.Sample) (bool, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept = append(s.kept, p.ID)
	return true, nil
}

func (s *slowStore) ids() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.kept, " ")
}

// TestSampleWriterNeverHoldsTheCamera: a store whose disk hangs does not hold up the camera
// loop that sends samples; what does not fit in the queue is counted, not waited for; a
// flush (a correction looking in the store) waits for what was queued before it, but not
// beyond its limit; stop writes what is queued and ends the goroutine.
func TestSampleWriterNeverHoldsTheCamera(t *testing.T) {
	store := &slowStore{release: make(chan struct{})}
	var logs bytes.Buffer
	w := newSampleWriter(store, slog.New(slog.NewTextHandler(&logs, nil)))
	sent := make(chan struct{})
	go func() { // the camera loop
		for i := range sampleQueue + 5 {
			w.keep(payload.Sample{ID: "s" + string(rune('a'+i%26))})
		}
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("keep waited for the store's disk: the camera loop is held up")
	}
	// one sample is in the writer's hands, sampleQueue wait: the rest are counted
	if got := w.Dropped.Load(); got < 4 || got > 5 {
		t.Errorf("dropped %d samples, want the 4 or 5 beyond the queue", got)
	}
	if !strings.Contains(logs.String(), "the disk is behind") {
		t.Errorf("the dropped samples were not said:\n%s", logs.String())
	}
	if w.flush(50 * time.Millisecond) {
		t.Fatal("flush said the queue was written while the disk hung")
	}
	flushed := make(chan bool)
	go func() { flushed <- w.flush(time.Minute) }()
	close(store.release) // the disk comes back
	if !<-flushed {
		t.Fatal("flush gave up while the disk wrote the queue")
	}
	if n := len(strings.Fields(store.ids())); n != sampleQueue+5-int(w.Dropped.Load()) {
		t.Errorf("%d samples kept after the flush, want every one queued", n)
	}
	w.keep(payload.Sample{ID: "last"})
	w.stop()
	if !strings.HasSuffix(store.ids(), "last") {
		t.Errorf("stop did not write the queued sample: %s", store.ids())
	}
	w.keep(payload.Sample{ID: "after"}) // a late sender after stop: dropped quietly, no panic
	w.flush(time.Second)
	w.stop()
}
