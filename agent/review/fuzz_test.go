package review

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
)

func FuzzParseRecord(f *testing.F) {
	det := 0
	good, _ := marshalRecord(&Item{V: recordVersion, ID: "f1320fa4-e3b4", Agent: "demo", Camera: "conveyor", Reason: "low_confidence",
		PredictionID: "p", Detection: &det, Queued: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC), Tag: "green", Tags: []string{"green", "blue"},
		Region: &payload.Box{Left: 0.1, Top: 0.1, Width: 0.2, Height: 0.2}, CropWidth: 10, CropHeight: 10})
	f.Add(good)
	answered, _ := marshalRecord(&Item{V: recordVersion, ID: "a1", Agent: "demo", Camera: "conveyor", Queued: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC),
		Answer: &Verdict{Time: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC), Kind: Correct, Tag: "blue", Operator: "j.doe"}})
	f.Add(answered)
	f.Add(bytes.Replace(answered, []byte(`"correct"`), []byte(`"maybe"`), 1))
	f.Add(bytes.Replace(answered, []byte(`"2026-11-29T09:00:00Z"`), []byte(`"0000-01-01T00:00:00-01:00"`), 1))
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"v": 2, "id": "x", "agent": "a", "camera": "c", "queued": "2026-11-29T08:00:00Z"}`))
	f.Add([]byte(`{"v": 1, "id": "../../etc/passwd", "agent": "a", "camera": "c", "queued": "2026-11-29T08:00:00Z"}`))
	f.Add([]byte(`{"v": 1, "id": "x", "agent": "a", "camera": "c", "queued": "2026-11-29T08:00:00Z", "bytes": -1}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		it, err := parseRecord(raw)
		if err != nil {
			return
		}
		if !idRE.MatchString(it.ID) || it.Agent == "" || it.Camera == "" || it.Queued.IsZero() || it.Bytes < 0 {
			t.Fatalf("accepted %+v", it)
		}
		if it.Answer != nil && !knownKind(it.Answer.Kind) {
			t.Fatalf("accepted an answer of kind %q", it.Answer.Kind)
		}
		again, err := marshalRecord(&it)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseRecord(again); err != nil {
			t.Fatalf("a record written back does not read: %v", err)
		}
	})
}

func FuzzScanLog(f *testing.F) {
	good, _ := json.Marshal(logLine{Time: time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC), SampleID: "s1", Agent: "a", Camera: "c",
		Kind: Correct, Predicted: "green", Answered: "blue"})
	f.Add(append(good, '\n'))
	f.Add(append(append(good, '\n'), good[:20]...))
	f.Add([]byte("\n\n{}\n" + `{"time": "2026-11-29T08:00:00Z", "sampleId": "s", "kind": "missed", "regions": [{"tag": "red", "left": 0.1}]}` + "\n"))
	f.Add([]byte(`{"time": "2026-11-29T08:00:00Z", "sampleId": "s", "kind": "nope"}`))
	f.Add(bytes.Repeat([]byte("x"), maxLogLine+10))
	f.Fuzz(func(t *testing.T, raw []byte) {
		lines := 0
		bad, err := scanLog(bytes.NewReader(raw), func(l logLine) {
			lines++
			if !knownKind(l.Kind) || !idRE.MatchString(l.SampleID) {
				t.Fatalf("accepted %+v", l)
			}
			_ = l.pairs()
		})
		if err != nil {
			t.Fatalf("reading from memory failed: %v", err)
		}
		if n := bytes.Count(raw, []byte("\n")) + 1; lines+bad > n {
			t.Fatalf("%d answers and %d bad lines out of %d lines", lines, bad, n)
		}
	})
}
