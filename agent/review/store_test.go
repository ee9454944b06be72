package review

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// unbase64 is the JPEG of an image a sample carried.
func unbase64(t *testing.T, jpeg string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(jpeg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// An answered sample stays on disk, with its answer, for a late correction to find by id or
// by its prediction; it is no longer pending, and a restart finds it as it was.
func TestAnsweredSampleIsKept(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	s := detection(t, "late", true)
	mustAdd(t, q, s)
	mustAdd(t, q, detection(t, "other", false))
	if _, err := q.Answer("late", Answer{Kind: Correct, Tag: "Blue", Operator: "j.doe"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(q.List(Filter{})); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("pending %v, want only the unanswered one", got)
	}
	check := func(q *Queue) {
		t.Helper()
		st, err := q.Stored("late")
		if err != nil {
			t.Fatal(err)
		}
		if a := st.Item.Answer; a == nil || a.Kind != Correct || a.Tag != "blue" || a.Operator != "j.doe" {
			t.Fatalf("answer %+v", st.Item.Answer)
		}
		if !bytes.Equal(st.Crop, unbase64(t, s.Crop.JPEG)) || !bytes.Equal(st.Frame, unbase64(t, s.Frame.JPEG)) {
			t.Fatal("stored images are not the sample's")
		}
		if id, err := q.FindPrediction("pred-late", nil); err != nil || id != "late" {
			t.Fatalf("by prediction: %q %v", id, err)
		}
		if stats := q.Stats(); stats.Pending != 1 || stats.Kept != 1 {
			t.Fatalf("stats %+v", stats)
		}
		if _, err := q.Get("late"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("answered sample still pending: %v", err)
		}
	}
	check(q)
	q2, _ := open(t, dir, 0, 0, nil) // a restart
	check(q2)
	if added, err := q2.Add(s); added || err != nil {
		t.Fatalf("answered sample queued again: %v %v", added, err)
	}
}

// A store (no station, no data set) keeps what the agent sent and records answers in its
// log only; an id or prediction it does not hold is ErrNotFound.
func TestStoreWithoutDataset(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenStore(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	q.SetLabels(labels)
	mustAdd(t, q, detection(t, "s1", false))
	if _, err := q.Answer("s1", Answer{Kind: Correct, Tag: "red"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dataset")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store wrote a data set: %v", err)
	}
	log, err := os.ReadFile(filepath.Join(dir, AnswersLog))
	if err != nil || !strings.Contains(string(log), `"sampleId":"s1"`) || !strings.Contains(string(log), `"answered":"red"`) {
		t.Fatalf("answers log %q %v", log, err)
	}
	q2, err := OpenStore(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := q2.Stored("s1"); err != nil || st.Item.Answer == nil || st.Item.Answer.Tag != "red" {
		t.Fatalf("after restart: %+v %v", st.Item, err)
	}
	if _, err := q2.Stored("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "samples.store") {
		t.Fatalf("unknown sample: %v", err)
	}
	if _, err := q2.FindPrediction("pred-nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown prediction: %v", err)
	}
}

// The size bound drops the answered samples kept for late corrections before any pending
// one, and the age bound drops them too; the bytes stay within the bound.
func TestBoundDropsAnsweredFirst(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	q0, _ := open(t, t.TempDir(), 0, 0, c)
	mustAdd(t, q0, detection(t, "s0", true))
	one := q0.Stats().Bytes

	dir := t.TempDir()
	bound := 3*one + one/2
	q, _ := open(t, dir, bound, 0, c)
	for i := range 3 {
		mustAdd(t, q, detection(t, fmt.Sprintf("s%d", i), true))
		c.add(time.Minute)
	}
	if _, err := q.Answer("s1", Answer{Kind: Correct, Tag: "red"}); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, q, detection(t, "s3", true)) // over the bound: the answered s1 goes, not the older pending s0
	if _, err := q.Stored("s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("answered sample kept over the bound: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "review", AnsweredDir, "s1.crop.jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dropped answered sample's image still there: %v", err)
	}
	st := q.Stats()
	if got := ids(q.List(Filter{})); !slices.Equal(got, []string{"s3", "s2", "s0"}) || st.DroppedSize != 0 || st.Bytes > bound || st.Kept != 0 {
		t.Fatalf("pending %v, stats %+v", got, st)
	}

	// by age, answered samples go like pending ones
	qa, _ := open(t, t.TempDir(), 0, time.Hour, c)
	mustAdd(t, qa, detection(t, "a0", false))
	if _, err := qa.Answer("a0", Answer{Kind: Confirm}); err != nil {
		t.Fatal(err)
	}
	if _, err := qa.Stored("a0"); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Hour)
	if _, err := qa.Stored("a0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("answered sample kept past max_age: %v", err)
	}
}

// A prediction with samples of two detections needs the detection named.
func TestFindPredictionOfDetections(t *testing.T) {
	q, _ := open(t, t.TempDir(), 0, 0, nil)
	a, b := detection(t, "d1", false), detection(t, "d2", false)
	two := 2
	b.PredictionID, b.Detection = a.PredictionID, &two
	mustAdd(t, q, a)
	mustAdd(t, q, b)
	if _, err := q.FindPrediction(a.PredictionID, nil); err == nil || !strings.Contains(err.Error(), `detections 1, 2`) {
		t.Fatalf("ambiguous prediction: %v", err)
	}
	if id, err := q.FindPrediction(a.PredictionID, &two); err != nil || id != "d2" {
		t.Fatalf("detection 2: %q %v", id, err)
	}
	zero := 0
	if _, err := q.FindPrediction(a.PredictionID, &zero); !errors.Is(err, ErrNotFound) {
		t.Fatalf("detection 0: %v", err)
	}
}

// What a crash leaves half written among the answered samples is removed at open: a torn
// record, an image without its record, a temporary file; a pending record moved there whole
// (no answer) is refused too.
func TestAnsweredFolderAfterCrash(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "ok", false))
	mustAdd(t, q, detection(t, "moved", false))
	if _, err := q.Answer("ok", Answer{Kind: Correct, Tag: "red"}); err != nil {
		t.Fatal(err)
	}
	kept, pending := filepath.Join(dir, "review", AnsweredDir), filepath.Join(dir, "review", PendingDir)
	for _, suffix := range []string{".json", ".crop.jpg"} { // a pending sample's files, no answer in the record
		if err := os.Rename(filepath.Join(pending, "moved"+suffix), filepath.Join(kept, "moved"+suffix)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(kept, "torn.json"), []byte(`{"v": 1, "id": "torn", "agen`), 0o644)
	os.WriteFile(filepath.Join(kept, "torn.crop.jpg"), jpegOf(t, 8, 8, 1), 0o644)
	os.WriteFile(filepath.Join(kept, "orphan.crop.jpg"), jpegOf(t, 8, 8, 1), 0o644)
	os.WriteFile(filepath.Join(kept, "ok.json.tmp"), []byte("{"), 0o644)

	q2, _ := open(t, dir, 0, 0, nil)
	if _, err := q2.Stored("ok"); err != nil {
		t.Fatalf("the whole answered sample: %v", err)
	}
	if st := q2.Stats(); st.Corrupt != 2 || st.Kept != 1 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	entries, _ := os.ReadDir(kept)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"ok.crop.jpg", "ok.json"}) {
		t.Fatalf("answered folder after open: %v", names)
	}
}

// An answered sample that cannot be kept (its record not written: a full disk) is removed:
// the answer stands, the late correction finds nothing, and no file or byte is left over.
func TestAnsweredNotKeptOnWriteError(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "s", true))
	write := q.writeFile
	q.writeFile = func(path string, data []byte) error {
		if strings.Contains(path, string(filepath.Separator)+AnsweredDir+string(filepath.Separator)) {
			return errors.New("no space left on device")
		}
		return write(path, data)
	}
	if r, err := q.Answer("s", Answer{Kind: Correct, Tag: "red"}); err != nil || r.Answered != "red" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := q.Stored("s"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stored after a failed write: %v", err)
	}
	for _, d := range []string{PendingDir, AnsweredDir} {
		if entries, _ := os.ReadDir(filepath.Join(dir, "review", d)); len(entries) != 0 {
			t.Fatalf("%s not empty: %v", d, entries)
		}
	}
	if st := q.Stats(); st.Bytes != 0 || st.Kept != 0 || st.Answered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A part's sample is found by the part's id, the newest when there are several.
func TestFindPart(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	q, _ := open(t, t.TempDir(), 0, 0, c)
	for _, id := range []string{"p-old", "p-new", "other"} {
		s := detection(t, id, false)
		s.PartID = "part-7"
		if id == "other" {
			s.PartID = "part-8"
		}
		mustAdd(t, q, s)
		c.add(time.Minute)
	}
	if _, err := q.Answer("p-new", Answer{Kind: Confirm}); err != nil {
		t.Fatal(err)
	}
	if id, err := q.FindPart("part-7"); err != nil || id != "p-new" {
		t.Fatalf("part-7: %q %v", id, err)
	}
	if _, err := q.FindPart("part-9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("part-9: %v", err)
	}
}
