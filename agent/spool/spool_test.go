package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func rec(i int, size int) Record {
	return Record{Topic: fmt.Sprintf("t/%d", i), QoS: 1, Created: time.Unix(1700000000+int64(i), 0), Payload: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
}

func drain(t *testing.T, l *Log) []string {
	t.Helper()
	var topics []string
	for {
		r, _, err := l.Peek()
		if err == ErrEmpty {
			return topics
		}
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, r.Topic)
		if err := l.Pop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLogKeepsOrderAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLog(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := l.Append(rec(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	r, _, _ := l.Peek()
	if r.Topic != "t/0" || r.QoS != 1 || len(r.Payload) != 100 || !r.Created.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("record %+v", r)
	}
	l.Pop()
	l.Pop()
	l.Close()

	l, err = OpenLog(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Len() != 3 {
		t.Fatalf("after reopen %d records, want 3", l.Len())
	}
	if got := strings.Join(drain(t, l), " "); got != "t/2 t/3 t/4" {
		t.Fatalf("order %s", got)
	}
}

// TestLogWithoutClose: records appended and never closed (kill -9) are all there on reopen.
func TestLogWithoutClose(t *testing.T) {
	dir := t.TempDir()
	l, _ := OpenLog(dir, nil)
	for i := 0; i < 4; i++ {
		l.Append(rec(i, 10))
	}
	// no Close: the process died
	l2, err := OpenLog(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got := strings.Join(drain(t, l2), " "); got != "t/0 t/1 t/2 t/3" {
		t.Fatalf("got %s", got)
	}
}

func TestLogCutsTornTail(t *testing.T) {
	for _, damage := range []string{"truncate", "flip"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := OpenLog(dir, nil)
			for i := 0; i < 3; i++ {
				l.Append(rec(i, 50))
			}
			l.Close()
			seg := filepath.Join(dir, fmt.Sprintf("%016d.seg", 1))
			raw, _ := os.ReadFile(seg)
			if damage == "truncate" {
				raw = raw[:len(raw)-7]
			} else {
				raw[len(raw)-3] ^= 0xff
			}
			os.WriteFile(seg, raw, 0o640)
			var repaired []string
			l, err := OpenLog(dir, func(m string) { repaired = append(repaired, m) })
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(drain(t, l), " "); got != "t/0 t/1" || len(repaired) != 1 {
				t.Fatalf("got %q, repairs %v", got, repaired)
			}
			// appends go on after the cut
			l.Append(rec(9, 5))
			if got := strings.Join(drain(t, l), " "); got != "t/9" {
				t.Fatalf("after repair got %q", got)
			}
			l.Close()
		})
	}
}

func TestLogRollsAndDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	l, _ := OpenLog(dir, nil)
	defer l.Close()
	for i := 0; i < 20; i++ {
		if err := l.Append(rec(i, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("%d segments for 20 MiB", len(segs))
	}
	if got := len(drain(t, l)); got != 20 {
		t.Fatalf("drained %d", got)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 || l.Bytes() != 0 {
		t.Fatalf("after draining: %d segments, %d bytes", len(segs), l.Bytes())
	}
}

func TestStoreDropsSamplesFirst(t *testing.T) {
	var drops []string
	s, err := Open(t.TempDir(), Options{MaxBytes: 900, DropOrder: []string{Samples, Predictions}, OnDrop: func(c, why string) { drops = append(drops, c+":"+why) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Append(Samples, rec(0, 300))
	s.Append(Predictions, rec(1, 300))
	s.Append(Predictions, rec(2, 300)) // 3 x 324 bytes is over 900: the sample goes
	if strings.Join(drops, ",") != "samples:bytes" || s.Len() != 2 {
		t.Fatalf("drops %v, %d left", drops, s.Len())
	}
	s.Append(Predictions, rec(3, 300)) // no samples left: the oldest prediction goes
	if strings.Join(drops, ",") != "samples:bytes,predictions:bytes" {
		t.Fatalf("drops %v", drops)
	}
	s.Append(Samples, rec(4, 5000)) // larger than the whole spool
	if s.Len() != 2 || s.Bytes() > 900 {
		t.Fatalf("%d records, %d bytes", s.Len(), s.Bytes())
	}
	tk, r, ok, _ := s.Next()
	if !ok || r.Topic != "t/2" || tk.Class != Predictions {
		t.Fatalf("next %+v %+v", tk, r)
	}
}

func TestStoreNextOldestFirstAndAge(t *testing.T) {
	var drops []string
	s, _ := Open(t.TempDir(), Options{MaxAge: time.Hour, DropOrder: []string{Samples, Predictions}, OnDrop: func(c, why string) { drops = append(drops, c+":"+why) }})
	defer s.Close()
	now := time.Now()
	s.Append(Predictions, Record{Topic: "old", Created: now.Add(-2 * time.Hour)})
	s.Append(Predictions, Record{Topic: "p1", Created: now.Add(-3 * time.Minute)})
	s.Append(Samples, Record{Topic: "s1", Created: now.Add(-5 * time.Minute)})
	var order []string
	for {
		tk, r, ok, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		order = append(order, r.Topic)
		s.Ack(tk)
	}
	if strings.Join(order, " ") != "s1 p1" || strings.Join(drops, ",") != "predictions:age" {
		t.Fatalf("order %v drops %v", order, drops)
	}
}

func TestAckAfterDropDoesNothing(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{MaxBytes: 700, DropOrder: []string{Predictions}})
	defer s.Close()
	s.Append(Predictions, rec(0, 300))
	tk, _, _, _ := s.Next()
	s.Append(Predictions, rec(1, 300))
	s.Append(Predictions, rec(2, 300)) // drops t/0, the record tk names
	s.Ack(tk)
	_, r, _, _ := s.Next()
	if r.Topic != "t/1" || s.Len() != 2 {
		t.Fatalf("ack removed the wrong record: next %s, %d left", r.Topic, s.Len())
	}
}

func FuzzOpenLog(f *testing.F) {
	var buf bytes.Buffer
	for i := 0; i < 3; i++ {
		b, _ := rec(i, 20).encode()
		buf.Write(b)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:30])
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", 1)), data, 0o640)
		l, err := OpenLog(dir, nil)
		if err != nil {
			return
		}
		defer l.Close()
		n := l.Len()
		for i := 0; i < n; i++ {
			if _, _, err := l.Peek(); err != nil {
				t.Fatalf("record %d of %d: %v", i, n, err)
			}
			l.Pop()
		}
	})
}
