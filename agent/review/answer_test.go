package review

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
)

// logLines reads the answers log of the queue in dir.
func logLines(t *testing.T, dir string) []logLine {
	t.Helper()
	var out []logLine
	bad, err := readLog(filepath.Join(dir, "review", AnswersLog), func(l logLine) { out = append(out, l) })
	if err != nil || bad != 0 {
		t.Fatalf("answers log: %d bad lines, %v", bad, err)
	}
	return out
}

func index(t *testing.T, dir string) map[string]dataset.Entry {
	t.Helper()
	entries, err := dataset.ReadIndex(filepath.Join(dir, "dataset"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]dataset.Entry{}
	for _, e := range entries {
		out[e.SampleID] = e
	}
	return out
}

// sameFile checks that the data set file rel holds want.
func sameFile(t *testing.T, dir, rel string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, "dataset", filepath.FromSlash(rel)))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("data set file %s: %v (equal %v)", rel, err, bytes.Equal(got, want))
	}
}

func decoded(t *testing.T, img *payload.Image) []byte {
	raw, err := base64.StdEncoding.DecodeString(img.JPEG)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestAnswerConfirmAndCorrect(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	conf, corr, part := detection(t, "conf", true), detection(t, "corr", false), detection(t, "part", false)
	part.PartID, part.Detection = "part-9", nil
	for _, s := range []payload.Sample{conf, corr, part} {
		mustAdd(t, q, s)
	}

	r, err := q.Answer("conf", Answer{Kind: Confirm, Operator: "j.doe"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != Confirm || r.Predicted != "green" || r.Answered != "green" || r.Feedback != nil || len(r.Entries) != 1 {
		t.Fatalf("confirm: %+v", r)
	}
	r, err = q.Answer("corr", Answer{Kind: Correct, Tag: "BLUE", Operator: "j.doe", Note: "blue paint"})
	if err != nil {
		t.Fatal(err)
	}
	wantFB := payload.Feedback{ID: "review-corr", PredictionID: "pred-corr", Tag: "blue", Detection: corr.Detection, Operator: "j.doe", Note: "blue paint"}
	if r.Kind != Correct || r.Answered != "blue" || r.Feedback == nil || *r.Feedback.Detection != 1 {
		t.Fatalf("correct: %+v", r)
	}
	fb := *r.Feedback
	fb.Detection, wantFB.Detection = nil, nil
	if fb != wantFB {
		t.Fatalf("feedback %+v, want %+v", fb, wantFB)
	}
	raw, _ := jsonOf(r.Feedback)
	if _, err := payload.ParseFeedback(raw); err != nil { // the agent takes it as it is
		t.Fatalf("the agent refuses the feedback %s: %v", raw, err)
	}
	r, err = q.Answer("part", Answer{Kind: Correct, Tag: "red"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Feedback == nil || r.Feedback.PartID != "part-9" || r.Feedback.PredictionID != "" || r.Feedback.Detection != nil {
		t.Fatalf("correction of a part: %+v", r.Feedback)
	}
	raw, _ = jsonOf(r.Feedback)
	if _, err := payload.ParseFeedback(raw); err != nil {
		t.Fatalf("the agent refuses the feedback %s: %v", raw, err)
	}

	idx := index(t, dir)
	if e := idx["conf"]; e.Tag != "green" || e.File != "green/conf.jpg" || e.FrameFile != "frames/conf.jpg" || e.Verdict != Confirm ||
		e.Operator != "j.doe" || e.Region == nil || *e.Region != *conf.Prediction.BoundingBox || e.Reason != "low_confidence" {
		t.Errorf("confirm entry %+v", e)
	}
	sameFile(t, dir, "green/conf.jpg", decoded(t, conf.Crop))
	sameFile(t, dir, "frames/conf.jpg", decoded(t, conf.Frame))
	if e := idx["corr"]; e.Tag != "blue" || e.File != "blue/corr.jpg" || e.FrameFile != "" || e.Verdict != Correct {
		t.Errorf("correct entry %+v", e)
	}
	sameFile(t, dir, "blue/corr.jpg", decoded(t, corr.Crop))
	if e := idx["part"]; e.Tag != "red" || e.File != "red/part.jpg" {
		t.Errorf("part entry %+v", e)
	}

	lines := logLines(t, dir)
	if len(lines) != 3 {
		t.Fatalf("%d answers logged", len(lines))
	}
	if l := lines[1]; l.SampleID != "corr" || l.Kind != Correct || l.Operator != "j.doe" || l.Predicted != "green" || l.Answered != "blue" ||
		l.Camera != "conveyor" || l.Agent != "line3" || l.Model != "colour" || l.Time.IsZero() {
		t.Errorf("log line %+v", l)
	}
	if st := q.Stats(); st.Pending != 0 || st.Answered != 3 {
		t.Fatalf("stats %+v", st)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "review", PendingDir)); len(left) != 0 {
		t.Fatalf("files left in the queue: %v", left)
	}
	if _, err := q.Answer("conf", Answer{Kind: Confirm}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("answering twice: %v", err)
	}
}

func TestAnswerCorrectToPredictedIsConfirm(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "same", false))
	r, err := q.Answer("same", Answer{Kind: Correct, Tag: "Green"})
	if err != nil || r.Kind != Confirm || r.Feedback != nil || index(t, dir)["same"].Verdict != Confirm {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestAnswerMissed(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	s := detection(t, "miss", true)
	mustAdd(t, q, s)
	boxes := []dataset.Region{
		{Tag: "red", Box: payload.Box{Left: 0.5, Top: 0.5, Width: 0.2, Height: 0.25}},
		{Tag: "Blue", Box: payload.Box{Left: 0, Top: 0, Width: 0.1, Height: 0.1}},
	}
	r, err := q.Answer("miss", Answer{Kind: Missed, Boxes: boxes, Operator: "a.b"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != Missed || r.Feedback != nil || len(r.Entries) != 2 {
		t.Fatalf("%+v", r)
	}
	idx := index(t, dir)
	first, second := idx["miss-missed-1"], idx["miss-missed-2"]
	if first.Tag != "red" || first.File != "red/miss-missed-1.jpg" || first.FrameFile != "frames/miss-missed-1.jpg" || first.Verdict != Missed ||
		len(first.Regions) != 2 || first.Regions[1].Tag != "blue" || first.Regions[0].Box != boxes[0].Box || *first.Region != boxes[0].Box {
		t.Errorf("first entry %+v", first)
	}
	if second.Tag != "blue" || second.File != "blue/miss-missed-2.jpg" || second.FrameFile != "" || len(second.Regions) != 0 || *second.Region != boxes[1].Box {
		t.Errorf("second entry %+v", second)
	}
	sameFile(t, dir, first.FrameFile, decoded(t, s.Frame))
	crop, err := os.ReadFile(filepath.Join(dir, "dataset", "red", "miss-missed-1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(crop))
	if err != nil || cfg.Width != 20 || cfg.Height != 20 { // 0.2 x 0.25 of 100 x 80
		t.Fatalf("cut-out %dx%d, %v; want 20x20", cfg.Width, cfg.Height, err)
	}
	l := logLines(t, dir)[0]
	if l.Kind != Missed || l.Predicted != "" || len(l.Regions) != 2 || l.Operator != "a.b" {
		t.Fatalf("log %+v", l)
	}
}

func TestAnswerFalseDetection(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	s := detection(t, "ghost", true)
	mustAdd(t, q, s)
	r, err := q.Answer("ghost", Answer{Kind: FalseDetection, Operator: "j.doe"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Predicted != "green" || r.Answered != "" || r.Feedback != nil {
		t.Fatalf("%+v", r)
	}
	e := index(t, dir)["ghost"]
	if e.Tag != NegativeTag || e.File != "Negative/ghost.jpg" || e.FrameFile != "frames/ghost.jpg" || e.Region != nil || e.Verdict != FalseDetection ||
		e.Prediction == nil || e.Prediction.BoundingBox == nil {
		t.Fatalf("entry %+v", e)
	}
	sameFile(t, dir, e.File, decoded(t, s.Crop))
}

func TestAnswerRefused(t *testing.T) {
	dir := t.TempDir()
	q, ds := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "d", false))
	gate := detection(t, "gate", true)
	gate.Reason, gate.Prediction, gate.Detection, gate.PredictionID = "quality_gate", nil, nil, ""
	gate.Crop = gate.Frame // the whole frame
	gate.Crop.Box = nil
	gate.Frame = nil
	mustAdd(t, q, gate)
	for _, c := range []struct {
		id   string
		a    Answer
		want string
	}{
		{"d", Answer{Kind: Correct, Tag: "purple"}, `tag "purple" is not offered for sample d (model colour has blue, green, red, yellow)`},
		{"d", Answer{Kind: Correct}, `"tag" must be the right tag`},
		{"d", Answer{Kind: "wrong"}, `give confirm, correct, missed or false-detection`},
		{"d", Answer{Kind: Missed, Boxes: []dataset.Region{{Tag: "red", Box: payload.Box{Width: 0.1, Height: 0.1}}}}, "only the crop"},
		{"gate", Answer{Kind: Missed}, `needs "boxes"`},
		{"gate", Answer{Kind: Missed, Boxes: []dataset.Region{{Tag: "red", Box: payload.Box{Left: 0.95, Width: 0.5, Height: 0.1}}}}, "box 1 (left 0.95"},
		{"gate", Answer{Kind: Confirm}, "no prediction to confirm"},
		{"gate", Answer{Kind: FalseDetection}, "not a detection"},
		{"nope", Answer{Kind: Confirm}, "not in the review queue"},
	} {
		_, err := q.Answer(c.id, c.a)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", c.id, c.a, err, c.want)
		}
		// a refusal says so (the station answers 400); a sample no longer pending is not one
		if refused := errors.Is(err, ErrRefused); refused == (c.id == "nope") {
			t.Errorf("%s %+v: ErrRefused in the chain: %v", c.id, c.a, refused)
		}
	}
	if ds.Len() != 0 || q.Stats().Pending != 2 {
		t.Fatalf("a refused answer wrote %d entries; %d pending", ds.Len(), q.Stats().Pending)
	}
	// a sample without a tag list takes any tag, and a missed part on its whole frame
	r, err := q.Answer("gate", Answer{Kind: Missed, Boxes: []dataset.Region{{Tag: "scratch", Box: payload.Box{Left: 0.5, Top: 0.5, Width: 0.5, Height: 0.5}}}})
	if err != nil || len(r.Entries) != 1 || r.Entries[0].File != "scratch/gate-missed-1.jpg" || r.Entries[0].FrameFile == "" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestConcurrentAddAndAnswer(t *testing.T) {
	dir := t.TempDir()
	q, ds := open(t, dir, 0, 0, nil)
	const n = 40
	samples := make([]payload.Sample, n)
	for i := range samples {
		samples[i] = detection(t, fmt.Sprintf("c%02d", i), i%2 == 0)
	}
	var wg sync.WaitGroup
	var answered sync.Map
	for w := range 4 {
		wg.Go(func() { // adders: each sample twice, from two workers
			for i := w % 2; i < n; i += 2 {
				if _, err := q.Add(samples[i]); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() { // answerers: whatever is pending
			for range 200 {
				for _, it := range q.List(Filter{Limit: 5}) {
					if _, err := q.Answer(it.ID, Answer{Kind: Correct, Tag: "red", Operator: fmt.Sprint("op", w)}); err == nil {
						if _, dup := answered.LoadOrStore(it.ID, true); dup {
							t.Errorf("%s answered twice", it.ID)
						}
					} else if !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
					q.Image(it.ID, ImageCrop)
				}
			}
		})
	}
	wg.Wait()
	for _, it := range q.List(Filter{}) {
		if _, err := q.Answer(it.ID, Answer{Kind: Confirm}); err != nil {
			t.Fatal(err)
		}
	}
	if ds.Len() != n || len(logLines(t, dir)) != n || q.Stats().Answered != n || q.Stats().Pending != 0 {
		t.Fatalf("data set %d, log %d, stats %+v; want %d each", ds.Len(), len(logLines(t, dir)), q.Stats(), n)
	}
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

// The tags offered are the model's, not the sample's list (which leaves out the tags under
// the model's threshold); without the model's tags any tag is taken.
func TestAnswerTagsAreTheModels(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "y", false))
	if r, err := q.Answer("y", Answer{Kind: Correct, Tag: "yellow"}); err != nil || r.Answered != "yellow" {
		t.Fatalf("a tag of the model the sample did not list: %+v %v", r, err)
	}
	mustAdd(t, q, detection(t, "m", true))
	bad := []dataset.Region{{Tag: "part", Box: payload.Box{Width: 0.2, Height: 0.2}}, {Tag: "purple", Box: payload.Box{Left: 0.5, Top: 0.5, Width: 0.2, Height: 0.2}}}
	if _, err := q.Answer("m", Answer{Kind: Missed, Boxes: bad}); err == nil || !strings.Contains(err.Error(), `box 2: tag "purple"`) {
		t.Fatalf("missed part with a tag no model has: %v", err)
	}
	bad[1].Tag = "Screw" // another of the detector's tags
	if r, err := q.Answer("m", Answer{Kind: Missed, Boxes: bad}); err != nil || r.Entries[0].Tag != "part" || r.Entries[1].Tag != "screw" {
		t.Fatalf("missed parts with the detector's tags: %+v %v", r, err)
	}

	// tags not known when the sample came, known when it is answered
	q.SetLabels(nil)
	mustAdd(t, q, detection(t, "late", false))
	mustAdd(t, q, detection(t, "free", false))
	if it, _ := q.Get("late"); len(it.Tags) != 0 {
		t.Fatalf("tags %v without labels", it.Tags)
	}
	if r, err := q.Answer("free", Answer{Kind: Correct, Tag: "purple"}); err != nil || r.Answered != "purple" {
		t.Fatalf("no tags known: %+v %v", r, err)
	}
	mustAdd(t, q, detection(t, "spelt", false))
	if r, err := q.Answer("spelt", Answer{Kind: Correct, Tag: "BLUE"}); err != nil || r.Answered != "blue" || r.Entries[0].File != "blue/spelt.jpg" {
		t.Fatalf("no tags known, a tag the sample listed: %+v %v", r, err)
	}
	q.SetLabels(labels)
	if _, err := q.Answer("late", Answer{Kind: Correct, Tag: "purple"}); err == nil || !strings.Contains(err.Error(), "not offered") {
		t.Fatalf("tags known at the answer: %v", err)
	}
}
