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
	"sync"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// jpegOf is a w x h JPEG of one shade.
func jpegOf(t testing.TB, w, h int, shade uint8) []byte { return testenv.JPEG(t, w, h, shade) }

var shade uint8

// detection is a sample of detection 1 of a two-stage pipeline, classified "green" among
// green, blue, red, with its crop and (when frame) the whole frame.
func detection(t testing.TB, id string, frame bool) payload.Sample {
	t.Helper()
	shade++
	det := 1
	s := payload.Sample{Schema: 1, ID: id, Agent: "line3", Camera: "conveyor", Boot: "b", Reason: "low_confidence",
		Detail: "green 0.41 under 0.5 (colour)", PredictionID: "pred-" + id, FrameID: 7, Detection: &det,
		Captured: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), Created: time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC),
		Models: []payload.ModelRef{{Stage: "detector", Name: "parts"}, {Stage: "classifier", Name: "colour"}},
		Prediction: &payload.Tag{Probability: 0.98, TagName: "part", BoundingBox: &payload.Box{Left: 0.1, Top: 0.2, Width: 0.3, Height: 0.4},
			Classification: &payload.Classification{Model: "colour", Predictions: []payload.Tag{
				{Probability: 0.41, TagName: "green"}, {Probability: 0.4, TagName: "blue"}, {Probability: 0.19, TagName: "red"}}}},
		Crop: &payload.Image{JPEG: base64.StdEncoding.EncodeToString(jpegOf(t, 32, 24, shade)), Width: 32, Height: 24,
			Box: &payload.Box{Left: 0.09, Top: 0.19, Width: 0.32, Height: 0.42}},
	}
	if frame {
		s.Frame = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(jpegOf(t, 100, 80, shade)), Width: 100, Height: 80}
	}
	return s
}

// clock is a settable time for the queue.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t testing.TB, dir string, maxBytes int64, maxAge time.Duration, c *clock) (*Queue, *dataset.Dataset) {
	t.Helper()
	ds, err := dataset.Open(filepath.Join(dir, "dataset"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	q, err := Open(filepath.Join(dir, "review"), maxBytes, maxAge, ds)
	if err != nil {
		t.Fatal(err)
	}
	q.SetLabels(labels)
	if c != nil {
		q.now = c.now
		q.mu.Lock()
		q.prune() // under the test's clock
		q.mu.Unlock()
	}
	return q, ds
}

// labels are the tags of the test's models: more than a sample lists (those under the
// model's threshold are left out of it).
func labels(agent, model string) []string {
	switch model {
	case "colour":
		return []string{"blue", "green", "red", "yellow"}
	case "parts":
		return []string{"part", "screw"}
	}
	return nil
}

func mustAdd(t testing.TB, q *Queue, s payload.Sample) {
	t.Helper()
	added, err := q.Add(s)
	if err != nil || !added {
		t.Fatalf("add %s: %v %v", s.ID, added, err)
	}
}

func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestRestartKeepsQueue(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	q, _ := open(t, dir, 0, 0, c)
	for _, id := range []string{"a", "b", "c"} {
		mustAdd(t, q, detection(t, id, id != "b"))
		c.add(time.Second)
	}
	before := q.List(Filter{})
	frame, err := q.Image("c", ImageFrame)
	if err != nil {
		t.Fatal(err)
	}

	q2, _ := open(t, dir, 0, 0, nil)
	after := q2.List(Filter{})
	if !slices.Equal(ids(after), []string{"c", "b", "a"}) {
		t.Fatalf("after restart %v, want c b a (newest first)", ids(after))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.Tag != "green" || a.Model != "colour" || !slices.Equal(a.Tags, []string{"blue", "green", "red", "yellow"}) ||
			!slices.Equal(a.Listed, []string{"green", "blue", "red"}) || !slices.Equal(a.TagModels, []string{"colour"}) ||
			a.Region == nil || *a.Region != *b.Region || a.HasFrame != b.HasFrame || !a.Queued.Equal(b.Queued) || a.Bytes != b.Bytes {
			t.Errorf("item %s after restart %+v, before %+v", a.ID, a, b)
		}
	}
	again, err := q2.Image("c", ImageFrame)
	if err != nil || !bytes.Equal(again, frame) {
		t.Fatalf("frame after restart: %v", err)
	}
	if _, err := q2.Image("b", ImageFrame); err == nil || !strings.Contains(err.Error(), "full_frame") {
		t.Fatalf("frame of a sample without one: %v", err)
	}
	if st := q2.Stats(); st.Pending != 3 || st.Bytes != q.Stats().Bytes || st.Corrupt != 0 {
		t.Fatalf("stats after restart %+v, before %+v", st, q.Stats())
	}
}

func TestTornRecordIsRemoved(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "good", true))
	mustAdd(t, q, detection(t, "torn", true))
	pending := filepath.Join(dir, "review", PendingDir)
	rec := filepath.Join(pending, "torn.json")
	raw, _ := os.ReadFile(rec)
	if err := os.WriteFile(rec, raw[:len(raw)/2], 0o644); err != nil { // a crash halfway
		t.Fatal(err)
	}
	// what a crash leaves besides: a temporary file, images whose record never came
	os.WriteFile(filepath.Join(pending, "next.crop.jpg.tmp"), []byte("half"), 0o644)
	os.WriteFile(filepath.Join(pending, "orphan.crop.jpg"), jpegOf(t, 8, 8, 1), 0o644)

	q2, _ := open(t, dir, 0, 0, nil)
	if got := ids(q2.List(Filter{})); !slices.Equal(got, []string{"good"}) {
		t.Fatalf("after the crash %v, want [good]", got)
	}
	if st := q2.Stats(); st.Corrupt != 1 {
		t.Fatalf("corrupt %d, want 1", st.Corrupt)
	}
	left, _ := os.ReadDir(pending)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"good.crop.jpg", "good.frame.jpg", "good.json"}) {
		t.Fatalf("files left %v", names)
	}
	// the torn sample may come again (the agent's at-least-once delivery)
	if added, err := q2.Add(detection(t, "torn", false)); !added || err != nil {
		t.Fatalf("re-adding the torn sample: %v %v", added, err)
	}
}

func TestBoundBySizeDropsOldest(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	// measure one sample's size in a queue without bounds
	q0, _ := open(t, t.TempDir(), 0, 0, c)
	mustAdd(t, q0, detection(t, "s0", true))
	one := q0.Stats().Bytes

	dir := t.TempDir()
	q, _ := open(t, dir, 3*one+one/2, 0, c)
	for i := range 5 {
		mustAdd(t, q, detection(t, fmt.Sprintf("s%d", i), true))
		c.add(time.Minute)
	}
	if got := ids(q.List(Filter{})); !slices.Equal(got, []string{"s4", "s3", "s2"}) {
		t.Fatalf("pending %v, want the newest three", got)
	}
	st := q.Stats()
	if st.DroppedSize != 2 || st.DroppedAge != 0 || st.Pending != 3 || st.Bytes > 3*one+one/2 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "review", PendingDir, "s0.crop.jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dropped sample's image still there: %v", err)
	}
	// a sample larger than the whole queue is refused, saying which key to raise
	q1, _ := open(t, t.TempDir(), one/2, 0, c)
	if _, err := q1.Add(detection(t, "big", true)); err == nil || !strings.Contains(err.Error(), "ui.review.max_mb") {
		t.Fatalf("sample over the bound: %v", err)
	}
}

func TestBoundByAgeDropsOldest(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	q, _ := open(t, dir, 0, 24*time.Hour, c)
	mustAdd(t, q, detection(t, "old", false))
	c.add(20 * time.Hour)
	mustAdd(t, q, detection(t, "young", false))
	c.add(5 * time.Hour) // old is 25 h, young 5 h
	if got := ids(q.List(Filter{})); !slices.Equal(got, []string{"young"}) {
		t.Fatalf("pending %v, want [young]", got)
	}
	if st := q.Stats(); st.DroppedAge != 1 || st.DroppedSize != 0 {
		t.Fatalf("stats %+v", st)
	}
	// a restart a day later finds young too old
	c.add(24 * time.Hour)
	q2, _ := open(t, dir, 0, 24*time.Hour, c)
	if got := q2.List(Filter{}); len(got) != 0 || q2.Stats().DroppedAge != 1 {
		t.Fatalf("after restart %v, %+v", ids(got), q2.Stats())
	}
}

func TestDuplicateAdd(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	s := detection(t, "dup", true)
	mustAdd(t, q, s)
	if added, err := q.Add(s); added || err != nil {
		t.Fatalf("pending again: %v %v", added, err)
	}
	if _, err := q.Answer("dup", Answer{Kind: Confirm, Operator: "j.doe"}); err != nil {
		t.Fatal(err)
	}
	if added, err := q.Add(s); added || err != nil {
		t.Fatalf("answered again: %v %v", added, err)
	}
	q2, _ := open(t, dir, 0, 0, nil)
	if added, err := q2.Add(s); added || err != nil {
		t.Fatalf("answered, after a restart: %v %v", added, err)
	}
	op := detection(t, "corr", true)
	op.CorrectTag, op.Reason = "blue", "operator"
	if added, err := q2.Add(op); added || err != nil {
		t.Fatalf("an operator's correction is queued: %v %v", added, err)
	}
	if n := len(q2.List(Filter{})); n != 0 {
		t.Fatalf("%d pending", n)
	}
}

func TestAddRefusesBadSamples(t *testing.T) {
	q, _ := open(t, t.TempDir(), 0, 0, nil)
	for name, c := range map[string]struct {
		edit func(*payload.Sample)
		want string
	}{
		"no id":      {func(s *payload.Sample) { s.ID = "" }, `"id"`},
		"id a path":  {func(s *payload.Sample) { s.ID = "../x" }, `"id"`},
		"no image":   {func(s *payload.Sample) { s.Crop, s.Frame = nil, nil }, `no image`},
		"not base64": {func(s *payload.Sample) { s.Crop.JPEG = "%%%" }, `"crop.jpeg" is not base64`},
		"crop png": {func(s *payload.Sample) {
			s.Crop.JPEG = base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n...."))
		}, `"crop.jpeg" is not a JPEG`},
		"frame junk":  {func(s *payload.Sample) { s.Frame.JPEG = base64.StdEncoding.EncodeToString([]byte{0xFF, 0xD8, 0, 0}) }, `"frame.jpeg" is not a JPEG`},
		"no camera":   {func(s *payload.Sample) { s.Camera = "" }, `"camera"`},
		"only frame!": {func(s *payload.Sample) { s.Crop = nil; s.Frame.JPEG = "AAAA" }, `"frame.jpeg" is not a JPEG`},
	} {
		s := detection(t, "bad", true)
		c.edit(&s)
		added, err := q.Add(s)
		if added || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v %v, want an error with %s", name, added, err, c.want)
		}
	}
	if st := q.Stats(); st.Pending != 0 {
		t.Fatalf("refused samples queued: %+v", st)
	}
}

func TestListFilters(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)}
	q, _ := open(t, t.TempDir(), 0, 0, c)
	for i := range 6 {
		s := detection(t, fmt.Sprintf("f%d", i), false)
		if i%2 == 1 {
			s.Camera = "press"
		}
		if i >= 4 {
			s.Reason = "audit"
		}
		mustAdd(t, q, s)
		c.add(time.Second)
	}
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"f5", "f4", "f3", "f2", "f1", "f0"}},
		{Filter{Camera: "press"}, []string{"f5", "f3", "f1"}},
		{Filter{Reason: "audit"}, []string{"f5", "f4"}},
		{Filter{Camera: "conveyor", Limit: 2}, []string{"f4", "f2"}},
		{Filter{Offset: 2, Limit: 3}, []string{"f3", "f2", "f1"}},
		{Filter{Agent: "other"}, nil},
	} {
		if got := ids(q.List(tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}
