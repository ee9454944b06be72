package review

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// A write that fails (a full disk) refuses the sample and leaves the queue as it was.
func TestAddWriteErrorKeepsQueue(t *testing.T) {
	for _, failAt := range []int{1, 2, 3} { // the crop, the frame, the record
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			dir := t.TempDir()
			q, _ := open(t, dir, 0, 0, nil)
			mustAdd(t, q, detection(t, "kept1", true))
			mustAdd(t, q, detection(t, "kept2", false))
			before := q.Stats()
			writes := 0
			q.writeFile = func(path string, data []byte) error {
				if writes++; writes == failAt {
					return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
				}
				return syncedWrite(path, data)
			}
			added, err := q.Add(detection(t, "lost", true))
			if added || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk") {
				t.Fatalf("add on a full disk: %v %v", added, err)
			}
			if st := q.Stats(); st != before {
				t.Fatalf("stats %+v, before %+v", st, before)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "review", PendingDir, "lost*"))
			if len(files) != 0 {
				t.Fatalf("left behind: %v", files)
			}
			q2, _ := open(t, dir, 0, 0, nil)
			if got := ids(q2.List(Filter{})); !slices.Equal(got, []string{"kept2", "kept1"}) && !slices.Equal(got, []string{"kept1", "kept2"}) {
				t.Fatalf("after restart %v", got)
			}
		})
	}
}

// An answer the log cannot take leaves the sample pending; answered again, it is saved
// once.
func TestAnswerLogErrorKeepsSample(t *testing.T) {
	dir := t.TempDir()
	q, ds := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "s", true))
	logPath := filepath.Join(dir, "review", AnswersLog)
	if err := os.Mkdir(logPath, 0o755); err != nil { // the log cannot be opened for writing
		t.Fatal(err)
	}
	if _, err := q.Answer("s", Answer{Kind: Correct, Tag: "red"}); err == nil || !strings.Contains(err.Error(), "stays in the queue") {
		t.Fatalf("answer without a log: %v", err)
	}
	if _, err := q.Get("s"); err != nil {
		t.Fatalf("the sample left the queue: %v", err)
	}
	if _, err := q.Image("s", ImageFrame); err != nil {
		t.Fatal(err)
	}
	os.Remove(logPath)
	r, err := q.Answer("s", Answer{Kind: Correct, Tag: "red"})
	if err != nil || r.Feedback == nil {
		t.Fatalf("%+v %v", r, err)
	}
	if ds.Len() != 1 || len(logLines(t, dir)) != 1 {
		t.Fatalf("data set %d, log %d", ds.Len(), len(logLines(t, dir)))
	}
}

// On a real full disk (a tiny tmpfs; needs root), adds fail with an error, answers too, and
// nothing already queued is lost.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; TestAddWriteErrorKeepsQueue covers the errors")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("no tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	q, _ := open(t, dir, 0, 0, nil)
	var queued []string
	var addErr error
	for i := range 200 {
		id := fmt.Sprintf("s%03d", i)
		added, err := q.Add(detection(t, id, true))
		if err != nil {
			addErr = err
			break
		}
		if added {
			queued = append(queued, id)
		}
	}
	if addErr == nil || !errors.Is(addErr, syscall.ENOSPC) || len(queued) == 0 {
		t.Fatalf("64 KiB took %d samples; error %v", len(queued), addErr)
	}
	// the data set's disk is full as well: the answer fails and the sample stays
	if _, err := q.Answer(queued[0], Answer{Kind: Missed, Boxes: nil}); err == nil {
		t.Fatal("a missed answer without boxes was taken")
	}
	_, ansErr := q.Answer(queued[0], Answer{Kind: Confirm})
	q2, _ := open(t, dir, 0, 0, nil)
	got := ids(q2.List(Filter{}))
	slices.Sort(got)
	want := queued
	if ansErr == nil { // the disk still had room for this one
		want = queued[1:]
	} else if !strings.Contains(ansErr.Error(), "stays in the queue") {
		t.Fatalf("answer on a full disk: %v", ansErr)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the full disk and a restart %v, want %v", got, want)
	}
	for _, id := range got {
		if _, err := q2.Image(id, ImageFrame); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	t.Logf("%d samples queued before the disk was full: %v; answer: %v", len(queued), addErr, ansErr)
}

// An answer the full disk cut short in the log leaves no torn line behind: the next answer
// is readable (needs root, for a tiny tmpfs).
func TestFullDiskLogLineNotTorn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("no tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	q, ds := open(t, dir, 0, 0, nil)
	a, b := detection(t, "a", false), detection(t, "b", false)
	mustAdd(t, q, a)
	mustAdd(t, q, b)
	if _, err := q.Answer("a", Answer{Kind: Confirm}); err != nil {
		t.Fatal(err)
	}
	// b is in the data set already (answered before a crash), so only the log line is written
	e := entry(q.items["b"], "red")
	if _, _, err := ds.AddJPEG(e, decoded(t, b.Crop), nil); err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for { // fill the disk: what is left is the free end of the log's last page
		if _, err := filler.Write(make([]byte, 1024)); err != nil {
			break
		}
	}
	for {
		if _, err := filler.Write(make([]byte, 1)); err != nil {
			break
		}
	}
	filler.Close()
	long := strings.Repeat("n", 4000) // longer than what is left of the page
	if _, err := q.Answer("b", Answer{Kind: Correct, Tag: "red", Note: long}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("answer on a full disk: %v", err)
	}
	os.Remove(filepath.Join(dir, "filler"))
	if _, err := q.Answer("b", Answer{Kind: Correct, Tag: "red", Note: long}); err != nil {
		t.Fatal(err)
	}
	if lines := logLines(t, dir); len(lines) != 2 || lines[1].SampleID != "b" || lines[1].Note != long {
		t.Fatalf("log %d lines", len(lines))
	}
}
