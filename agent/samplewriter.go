package agent

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
)

// sampleQueue is how many sent samples may wait for the sample store's disk; flushWait is how
// long a correction waits for them.
const (
	sampleQueue = 64
	flushWait   = 10 * time.Second
)

// sampleAdder is where the samples the agent sends are kept: the review queue of the
// station, or of samples.store.
type sampleAdder interface {
	Add(payload.Sample) (bool, error)
}

// sampleWriter keeps the samples the agent sends in a store, off the camera loops: a store
// write syncs its files and folder, which on an SD card can take tens of milliseconds, and a
// camera loop must not wait for that. At most sampleQueue samples wait; one beyond them is
// not kept (it was published all the same), counted and said once. It owns one goroutine,
// which stop ends.
type sampleWriter struct {
	store   sampleAdder
	log     *slog.Logger
	ch      chan sampleJob
	done    chan struct{}
	mu      sync.RWMutex // sends hold it for reading, stop for writing: no send after close
	closed  bool
	Dropped atomic.Uint64
	warned  atomic.Bool
}

// sampleJob is a sample to keep, or, with flushed set, a mark that every sample before it
// is kept.
type sampleJob struct {
	s       payload.Sample
	flushed chan struct{}
}

func newSampleWriter(store sampleAdder, log *slog.Logger) *sampleWriter {
	w := &sampleWriter{store: store, log: log, ch: make(chan sampleJob, sampleQueue), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *sampleWriter) run() {
	defer close(w.done)
	var failed bool
	for j := range w.ch {
		if j.flushed != nil {
			close(j.flushed)
			continue
		}
		if _, err := w.store.Add(j.s); err != nil && !failed {
			failed = true
			w.log.Warn("sample store: a sample was not kept (said once)", "sample", j.s.ID, "err", err)
		}
	}
}

// keep queues a sample for the store and returns at once.
func (w *sampleWriter) keep(s payload.Sample) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return
	}
	select {
	case w.ch <- sampleJob{s: s}:
	default:
		w.Dropped.Add(1)
		if !w.warned.Swap(true) {
			w.log.Warn("sample store: the disk is behind, a sample was not kept for late corrections (said once; it was published)", "sample", s.ID, "queue", sampleQueue)
		}
	}
}

// flush waits until every sample queued before it is in the store (a correction looks
// there), at most limit: false when the disk did not keep up.
func (w *sampleWriter) flush(limit time.Duration) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return true
	}
	done := make(chan struct{})
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case w.ch <- sampleJob{flushed: done}: // the writer runs until stop, which waits for this
	case <-t.C:
		return false
	}
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// stop writes what is queued and ends the goroutine.
func (w *sampleWriter) stop() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
	<-w.done
}
