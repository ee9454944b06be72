package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Classes of spooled messages. When the bounds are hit, the class named first in
// Options.DropOrder loses its oldest records first.
const (
	Predictions = "predictions" // predictions, command results: what dashboards count on
	Samples     = "samples"     // likely-misclassified samples with images: large, less urgent
)

// Options bound a Store.
type Options struct {
	// MaxBytes bounds the records waiting, all classes together.
	MaxBytes int64
	// MaxAge drops records older than this when they come up for delivery. 0 keeps them.
	MaxAge time.Duration
	// DropOrder lists the classes in the order they lose records when MaxBytes is hit.
	DropOrder []string
	// OnDrop hears of every record dropped, with the reason ("bytes" or "age").
	OnDrop func(class, reason string)
	// OnRepair hears of torn records cut off at open.
	OnRepair func(msg string)
}

// Store is the spool: one Log per class under one folder.
type Store struct {
	o    Options
	dir  string
	mu   sync.Mutex
	logs map[string]*Log
	// writeErr is the error of the last append that failed (nil: the last one worked);
	// probed is when the folder was last tried with a probe write while it was failing.
	writeErr   error
	failed     uint64
	probed     time.Time
	probeEvery time.Duration
}

// Health is the spool's state for stats, metrics and readiness.
type Health struct {
	// Writable is false from an append that failed (disk full, read-only, I/O error) until
	// one succeeds, or a probe write shows the disk takes data again.
	Writable bool
	// Error is the last append's error while not writable.
	Error string
	// Messages and Bytes are the records waiting; DiskBytes the size of the spool's files.
	Messages  int
	Bytes     int64
	DiskBytes int64
	// WriteFailures counts appends that failed; CorruptBytes the bytes of corrupt records
	// skipped since start.
	WriteFailures uint64
	CorruptBytes  int64
}

// Open opens (or creates) the spool in dir with one log per class in o.DropOrder.
func Open(dir string, o Options) (*Store, error) {
	if len(o.DropOrder) == 0 {
		return nil, errors.New("spool: no classes")
	}
	s := &Store{o: o, dir: dir, logs: map[string]*Log{}, probeEvery: 5 * time.Second}
	for _, c := range o.DropOrder {
		l, err := OpenLog(filepath.Join(dir, c), o.OnRepair)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("spool %s: %w", dir, err)
		}
		s.logs[c] = l
	}
	return s, nil
}

// Append spools r in class, first dropping the oldest records (in drop order) until it fits
// under MaxBytes. A record larger than MaxBytes on its own is dropped.
func (s *Store) Append(class string, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logs[class]
	if !ok {
		return fmt.Errorf("spool: unknown class %q", class)
	}
	need := r.size()
	if s.o.MaxBytes > 0 && need > s.o.MaxBytes {
		s.dropped(class, "bytes")
		return nil
	}
	for s.o.MaxBytes > 0 && s.bytes()+need > s.o.MaxBytes {
		if !s.dropOldest() {
			break
		}
	}
	if err := l.Append(r); err != nil {
		s.writeErr = err
		s.failed++
		return err
	}
	s.writeErr = nil
	return nil
}

// probeBytes is the size of the probe write that tells whether a failing spool folder takes
// data again.
const probeBytes = 64 << 10

// Health reports the spool's state. While appends fail, it tries a probe write in the
// spool's folder at most every few seconds, so the spool shows writable again once the
// disk has room, even before the next message needs it.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil && time.Since(s.probed) >= s.probeEvery {
		s.probed = time.Now()
		if s.probe() == nil {
			s.writeErr = nil
		}
	}
	h := Health{Writable: s.writeErr == nil, WriteFailures: s.failed, Bytes: s.bytes()}
	if s.writeErr != nil {
		h.Error = s.writeErr.Error()
	}
	for _, l := range s.logs {
		h.Messages += l.Len()
		h.DiskBytes += l.DiskBytes()
		h.CorruptBytes += l.Skipped()
	}
	return h
}

func (s *Store) probe() error {
	f, err := os.CreateTemp(s.dir, ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, probeBytes)); err != nil {
		return err
	}
	return f.Sync()
}

// dropOldest removes one record of the first class in drop order that has any.
func (s *Store) dropOldest() bool {
	for _, c := range s.o.DropOrder {
		if l := s.logs[c]; l.Len() > 0 {
			if err := l.Pop(); err != nil {
				return false
			}
			s.dropped(c, "bytes")
			return true
		}
	}
	return false
}

func (s *Store) dropped(class, reason string) {
	if s.o.OnDrop != nil {
		s.o.OnDrop(class, reason)
	}
}

func (s *Store) bytes() int64 {
	var n int64
	for _, l := range s.logs {
		n += l.Bytes()
	}
	return n
}

// Ticket names a record handed out by Next, for Ack.
type Ticket struct {
	Class string
	pos   Pos
}

// Next hands out the oldest record of all classes not yet handed out, without removing it:
// Ack removes it once delivered, and Rewind hands out again from the oldest after a failed
// delivery. Records past MaxAge are dropped on the way. ok is false when every record is
// handed out.
func (s *Store) Next() (t Ticket, r Record, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		t, r, ok = Ticket{}, Record{}, false
		for _, c := range s.o.DropOrder {
			rec, pos, err := s.logs[c].Ahead()
			if errors.Is(err, ErrEmpty) {
				continue
			}
			if err != nil {
				return Ticket{}, Record{}, false, err
			}
			if !ok || rec.Created.Before(r.Created) {
				t, r, ok = Ticket{Class: c, pos: pos}, rec, true
			}
		}
		if !ok {
			return t, r, false, nil
		}
		l := s.logs[t.Class]
		if s.o.MaxAge > 0 && time.Since(r.Created) > s.o.MaxAge {
			if _, head, err := l.Peek(); err == nil && head == t.pos {
				if err := l.Pop(); err != nil {
					return Ticket{}, Record{}, false, err
				}
				s.dropped(t.Class, "age")
				continue
			}
		}
		l.Advance(t.pos)
		return t, r, true, nil
	}
}

// Rewind hands out every record not yet acknowledged again, oldest first, after a delivery
// failed.
func (s *Store) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.logs {
		l.Rewind()
	}
}

// Ack removes the record of t once it was delivered. If the bounds dropped it meanwhile,
// Ack does nothing.
func (s *Store) Ack(t Ticket) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logs[t.Class]
	if !ok {
		return fmt.Errorf("spool: unknown class %q", t.Class)
	}
	return l.PopAt(t.pos)
}

// Len is the number of records waiting, all classes together.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.logs {
		n += l.Len()
	}
	return n
}

// Bytes is the size of the records waiting.
func (s *Store) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes()
}

// Close saves the cursors and closes the files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, l := range s.logs {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
