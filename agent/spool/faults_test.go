package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLogSkipsCorruptRecord: a record damaged in the middle of a segment (a bad sector, a
// power cut) is never handed out; every valid record behind it is, both by the running log
// and after a restart.
func TestLogSkipsCorruptRecord(t *testing.T) {
	for _, when := range []string{"running", "reopened"} {
		t.Run(when, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := OpenLog(dir, nil)
			var offsets []int64
			for i := 0; i < 5; i++ {
				offsets = append(offsets, l.DiskBytes())
				if err := l.Append(rec(i, 200)); err != nil {
					t.Fatal(err)
				}
			}
			seg := filepath.Join(dir, fmt.Sprintf("%016d.seg", 1))
			f, _ := os.OpenFile(seg, os.O_RDWR, 0)
			f.WriteAt([]byte("XXXX"), offsets[2]+headerSize+bodyFixed+5) // inside record 2's body
			f.Close()
			var repairs []string
			if when == "reopened" {
				l.Close()
				l, _ = OpenLog(dir, func(m string) { repairs = append(repairs, m) })
			} else {
				l.onRepair = func(m string) { repairs = append(repairs, m) }
			}
			defer l.Close()
			got := strings.Join(drain(t, l), " ")
			if got != "t/0 t/1 t/3 t/4" {
				t.Fatalf("delivered %q, want the valid records t/0 t/1 t/3 t/4", got)
			}
			if len(repairs) == 0 || l.Skipped()+int64(len(repairs)) == 0 {
				t.Fatalf("the skipped record was not reported: %v", repairs)
			}
		})
	}
}

// TestLogDamagedLength: a record whose length field is damaged cannot be walked over; the
// reader finds the next record by its sync marker.
func TestLogDamagedLength(t *testing.T) {
	dir := t.TempDir()
	l, _ := OpenLog(dir, nil)
	var offsets []int64
	for i := 0; i < 4; i++ {
		offsets = append(offsets, l.DiskBytes())
		l.Append(rec(i, 100))
	}
	l.Close()
	seg := filepath.Join(dir, fmt.Sprintf("%016d.seg", 1))
	f, _ := os.OpenFile(seg, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff, 0xff, 0xff, 0x0f}, offsets[1]+4)
	f.Close()
	l, _ = OpenLog(dir, nil)
	defer l.Close()
	if l.Len() != 3 {
		t.Fatalf("%d records counted, want 3", l.Len())
	}
	if got := strings.Join(drain(t, l), " "); got != "t/0 t/2 t/3" {
		t.Fatalf("delivered %q", got)
	}
}

// TestLogReadsLegacyRecords: segments written before records had a sync marker are still
// delivered.
func TestLogReadsLegacyRecords(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	for i := 0; i < 3; i++ {
		b, _ := rec(i, 30).encode()
		body := b[headerSize:]
		body[0] = legacyVersion
		var hdr [legacyHeaderSize]byte
		putLegacyHeader(hdr[:], body)
		buf.Write(hdr[:])
		buf.Write(body)
	}
	os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016d.seg", 1)), buf.Bytes(), 0o640)
	l, err := OpenLog(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Append(rec(3, 30))
	if got := strings.Join(drain(t, l), " "); got != "t/0 t/1 t/2 t/3" {
		t.Fatalf("delivered %q", got)
	}
}

// TestStoreWindow: Next hands out records ahead of their acknowledgement, Ack removes them in
// order, Rewind hands out the unacknowledged ones again, and a drop during the window moves
// the hand-out past the dropped record.
func TestStoreWindow(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{MaxBytes: 4 * 330, DropOrder: []string{Samples, Predictions}})
	defer s.Close()
	for i := 0; i < 4; i++ {
		s.Append(Predictions, rec(i, 300))
	}
	var tickets []Ticket
	for i := 0; i < 3; i++ {
		tk, r, ok, err := s.Next()
		if err != nil || !ok || r.Topic != fmt.Sprintf("t/%d", i) {
			t.Fatalf("hand-out %d: %v %v %s", i, ok, err, r.Topic)
		}
		tickets = append(tickets, tk)
	}
	s.Ack(tickets[0])
	s.Rewind() // t/1 and t/2 failed
	_, r, _, _ := s.Next()
	if r.Topic != "t/1" || s.Len() != 3 {
		t.Fatalf("after rewind: %s, %d waiting", r.Topic, s.Len())
	}
	s.Append(Predictions, rec(4, 300))
	s.Append(Predictions, rec(5, 300)) // over the bound: t/1 is dropped while handed out
	_, r, _, _ = s.Next()
	if r.Topic != "t/2" {
		t.Fatalf("next after the drop: %s", r.Topic)
	}
	s.Rewind()
	var order []string
	for {
		tk, r, ok, _ := s.Next()
		if !ok {
			break
		}
		order = append(order, r.Topic)
		s.Ack(tk)
	}
	if strings.Join(order, " ") != "t/2 t/3 t/4 t/5" {
		t.Fatalf("delivered %v", order)
	}
}

// TestSpoolOnFullDisk runs the spool on a small tmpfs that fills up (needs root to mount,
// as CI has): a failed append leaves nothing torn, the records that made it are delivered
// intact, the spool reports itself unwritable and writable again, and once the backlog is
// delivered the disk space is back for the next outage.
func TestSpoolOnFullDisk(t *testing.T) {
	dir := tmpfs(t, 512<<10)
	s, err := Open(filepath.Join(dir, "spool"), Options{DropOrder: []string{Samples, Predictions}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.probeEvery = 0
	ballast := filepath.Join(dir, "ballast")
	os.WriteFile(ballast, make([]byte, 256<<10), 0o640)

	var stored []string
	var appendErr error
	for i := 0; i < 100 && appendErr == nil; i++ {
		if appendErr = s.Append(Predictions, rec(i, 9000)); appendErr == nil {
			stored = append(stored, fmt.Sprintf("t/%d", i))
		}
	}
	if !errors.Is(appendErr, syscall.ENOSPC) {
		t.Fatalf("the disk never filled: %v", appendErr)
	}
	if h := s.Health(); h.Writable || !strings.Contains(h.Error, "no space") {
		t.Fatalf("health on a full disk: %+v", h)
	}
	os.Remove(ballast) // something else frees space; more messages come
	for i := 100; i < 105; i++ {
		if err := s.Append(Predictions, rec(i, 9000)); err != nil {
			t.Fatalf("append after space was freed: %v", err)
		}
		stored = append(stored, fmt.Sprintf("t/%d", i))
	}
	if h := s.Health(); !h.Writable {
		t.Fatalf("still unwritable after appends worked: %+v", h)
	}
	var got []string
	for {
		tk, r, ok, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if len(r.Payload) != 9000 {
			t.Fatalf("%s: payload of %d bytes", r.Topic, len(r.Payload))
		}
		got = append(got, r.Topic)
		s.Ack(tk)
	}
	if strings.Join(got, " ") != strings.Join(stored, " ") {
		t.Fatalf("delivered\n%v\nwant\n%v", got, stored)
	}
	if h := s.Health(); h.DiskBytes != 0 {
		t.Fatalf("after the backlog drained the spool still holds %d bytes on disk", h.DiskBytes)
	}
	// the next outage has the room again
	for i := 200; i < 230; i++ {
		if err := s.Append(Predictions, rec(i, 9000)); err != nil {
			t.Fatalf("second outage, record %d: %v", i-200, err)
		}
	}
}

// TestSpoolProbeSeesRoomAgain: an unwritable spool shows writable again once the disk has
// room, without waiting for the next message.
func TestSpoolProbeSeesRoomAgain(t *testing.T) {
	dir := tmpfs(t, 256<<10)
	s, _ := Open(filepath.Join(dir, "spool"), Options{DropOrder: []string{Predictions}})
	defer s.Close()
	s.probeEvery = 0
	ballast := filepath.Join(dir, "ballast")
	os.WriteFile(ballast, make([]byte, 250<<10), 0o640)
	if err := s.Append(Predictions, rec(0, 20000)); err == nil {
		t.Fatal("append to a full disk worked")
	}
	if s.Health().Writable {
		t.Fatal("writable on a full disk")
	}
	os.Remove(ballast)
	if h := s.Health(); !h.Writable || h.WriteFailures != 1 {
		t.Fatalf("after space was freed: %+v", h)
	}
}

func tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a tmpfs (CI runs as root): %v", err)
		}
		t.Skipf("mounting a tmpfs needs root: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
