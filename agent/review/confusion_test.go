package review

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
)

func TestConfusionOverAPeriod(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	line := func(hours int, camera, kind, predicted, answered string, regions ...dataset.Region) string {
		raw, err := json.Marshal(logLine{Time: day.Add(time.Duration(hours) * time.Hour), SampleID: "s" + strings.Repeat("x", hours%5) + camera,
			Agent: "line3", Camera: camera, Kind: kind, Predicted: predicted, Answered: answered, Regions: regions})
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	box := payload.Box{Width: 0.1, Height: 0.1}
	log := strings.Join([]string{
		line(1, "conveyor", Correct, "green", "blue"),
		line(2, "conveyor", Correct, "green", "blue"),
		line(3, "conveyor", Correct, "green", "blue"),
		`{"time": "2026-11-20T04:00:00Z", "sampleId": "torn", "kind": "corr`, // cut short by a crash
		line(5, "conveyor", Correct, "blue", "green"),
		line(6, "conveyor", Confirm, "green", "green"),
		line(7, "conveyor", Confirm, "green", "green"),
		`not json at all`,
		line(8, "conveyor", FalseDetection, "red", ""),
		line(9, "conveyor", Missed, "", "", dataset.Region{Tag: "red", Box: box}, dataset.Region{Tag: "blue", Box: box}),
		`{"time": "2026-11-20T10:00:00Z", "sampleId": "x", "kind": "shrug"}`, // a kind this version does not know
		line(11, "press", Correct, "green", "red"),                           // another camera
		line(30, "conveyor", Correct, "red", "blue"),                         // after the period
		"",
		`{"time": "2026-11-20T12:00:00Z", "sampleId": "../x", "kind": "confirm"}`,
		"\x00\xff\xfe",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "review", AnswersLog), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	c := q.Confusion(day, day.Add(24*time.Hour), "", "conveyor")
	if c.Answers != 8 || c.BadLines != 5 {
		t.Fatalf("answers %d, bad lines %d; want 8 and 5", c.Answers, c.BadLines)
	}
	want := map[string]map[string]int{
		"green": {"blue": 3, "green": 2},
		"blue":  {"green": 1},
		"red":   {NoPart: 1},
		NoPart:  {"red": 1, "blue": 1},
	}
	if !reflect.DeepEqual(c.Counts, want) {
		t.Fatalf("counts %v, want %v", c.Counts, want)
	}
	if !slices.Equal(c.Tags, []string{"blue", "green", "red", NoPart}) {
		t.Fatalf("tags %v", c.Tags)
	}
	wantTotals := []TagTotal{{"blue", 1, 4, 0}, {"green", 5, 3, 2}, {"red", 1, 1, 0}, {NoPart, 2, 1, 0}}
	if !slices.Equal(c.Totals, wantTotals) {
		t.Fatalf("totals %v, want %v", c.Totals, wantTotals)
	}
	wantPairs := []Pair{{"green", "blue", 3}, {"(no part)", "blue", 1}, {"(no part)", "red", 1}, {"blue", "green", 1}, {"red", NoPart, 1}}
	if !slices.Equal(c.Confused, wantPairs) {
		t.Fatalf("confused %v, want %v", c.Confused, wantPairs)
	}

	// no bounds: every camera, every time
	if all := q.Confusion(time.Time{}, time.Time{}, "", ""); all.Answers != 10 || all.Counts["red"]["blue"] != 1 || all.Counts["green"]["red"] != 1 {
		t.Fatalf("all: %+v", all)
	}
	// the bad lines never stop the queue from opening, and are counted
	q2, _ := open(t, dir, 0, 0, nil)
	if st := q2.Stats(); st.BadLogLines != 5 {
		t.Fatalf("bad log lines %d", st.BadLogLines)
	}
	if none := q2.Confusion(day, day.Add(time.Hour), "other", ""); none.Answers != 0 || len(none.Tags) != 0 || none.Confused == nil {
		t.Fatalf("empty: %+v", none)
	}
}

// An answer appended after a crash tore the log's last line stays readable.
func TestAnswerAfterTornLogLine(t *testing.T) {
	dir := t.TempDir()
	q, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q, detection(t, "one", false))
	if _, err := q.Answer("one", Answer{Kind: Confirm}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "review", AnswersLog), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time": "2026-11-20T04:00:00Z", "sampleId": "to`)
	f.Close()

	q2, _ := open(t, dir, 0, 0, nil)
	mustAdd(t, q2, detection(t, "two", false))
	if _, err := q2.Answer("two", Answer{Kind: Correct, Tag: "red"}); err != nil {
		t.Fatal(err)
	}
	c := q2.Confusion(time.Time{}, time.Time{}, "", "")
	if c.Answers != 2 || c.BadLines != 1 || c.Counts["green"]["red"] != 1 {
		t.Fatalf("%+v", c)
	}
}
