package spool

import (
	"errors"
	"fmt"
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
	mu   sync.Mutex
	logs map[string]*Log
}

// Open opens (or creates) the spool in dir with one log per class in o.DropOrder.
func Open(dir string, o Options) (*Store, error) {
	if len(o.DropOrder) == 0 {
		return nil, errors.New("spool: no classes")
	}
	s := &Store{o: o, logs: map[string]*Log{}}
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
	return l.Append(r)
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

// Next returns the oldest record of all classes without removing it; records past MaxAge are
// dropped on the way. ok is false when the spool is empty.
func (s *Store) Next() (t Ticket, r Record, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		t, r, ok = Ticket{}, Record{}, false
		for _, c := range s.o.DropOrder {
			rec, pos, err := s.logs[c].Peek()
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
		if !ok || s.o.MaxAge <= 0 || time.Since(r.Created) <= s.o.MaxAge {
			return t, r, ok, nil
		}
		if err := s.logs[t.Class].Pop(); err != nil {
			return Ticket{}, Record{}, false, err
		}
		s.dropped(t.Class, "age")
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
