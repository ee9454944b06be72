package payload

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in, id, err string
	}{
		{`{"id":"a1","command":"snapshot","camera":"c"}`, "a1", ""},
		{`{"id":"a7","command":"snapshot","camera":"c","annotate":true}`, "a7", ""},
		{`{"id":"a8","command":"snapshot","camera":"c","annotate":"yes"}`, "a8", "not a valid JSON object"},
		{`{"id":"a9","command":"trigger","camera":"c","annotate":true}`, "a9", `"annotate" is for snapshot; leave it out of trigger`},
		{`{"id":"a2","command":"activate","model":"m","iteration":"it"}`, "a2", ""},
		{`{"id":"a3","command":"activate","model":"m"}`, "a3", `needs "iteration"`},
		{`{"id":"a4","command":"rollback"}`, "a4", `needs "model"`},
		{`{"id":"a5","command":"reload","extra":true}`, "a5", `unknown field "extra"`},
		{`{"command":"reload"}`, "", `"id" "" must be`},
		{`{"id":"` + strings.Repeat("x", 300) + `","command":"reload"}`, strings.Repeat("x", 128), "must be"},
		{`{"id":7,"command":"reload"}`, "", "not a valid JSON object"},
		{`null`, "", `"id" "" must be`},
		{``, "", "not a valid JSON object"},
		{`{"id":"a6","command":"reload"}x`, "a6", "data after the object"},
		{strings.Repeat(" ", 70000), "", "larger than"},
	}
	for _, c := range cases {
		cmd, err := ParseCommand([]byte(c.in))
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseCommand(%.40q): error %v, want %q", c.in, err, c.err)
		}
		if cmd.ID != c.id {
			t.Errorf("ParseCommand(%.40q): id %q, want %q", c.in, cmd.ID, c.id)
		}
	}
}

// TestOversizedNotDecoded: a command or feedback message over the bound is refused without
// being decoded: a flood of large ones (MQTT allows 256 MiB) must not cost many times their
// size each.
func TestOversizedNotDecoded(t *testing.T) {
	raw := []byte(`{"id":"x","p":[` + strings.Repeat("1.5,", 4<<20) + `1.5]}`) // 16 MiB
	for name, parse := range map[string]func([]byte) (string, error){
		"command":  func(b []byte) (string, error) { c, err := ParseCommand(b); return c.ID, err },
		"feedback": func(b []byte) (string, error) { f, err := ParseFeedback(b); return f.ID, err },
	} {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		id, err := parse(raw)
		runtime.ReadMemStats(&m1)
		if err == nil || !strings.Contains(err.Error(), "larger than") || id != "" {
			t.Errorf("%s: id %q, error %v", name, id, err)
		}
		if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: refusing a message of %d MiB allocated %d MiB", name, len(raw)>>20, grew>>20)
		}
	}
}

func TestParseFeedback(t *testing.T) {
	cases := []struct {
		in, err string
	}{
		{`{"id":"f","predictionId":"p","tag":"red"}`, ""},
		{`{"id":"f","predictionId":"p","tag":"red","detection":2,"operator":"o","note":"n"}`, ""},
		{`{"id":"f","tag":"red"}`, `"predictionId" must name`},
		{`{"id":"f","predictionId":"p","tag":"  "}`, `"tag" must be`},
		{`{"id":"f","predictionId":"p","tag":"red","detection":-3}`, `"detection" -3`},
		{`{"id":"f","predictionId":"p","tag":"red","colour":"x"}`, `unknown field "colour"`},
		{`{"id":"f","partId":"5b0c9c6e-5f1e-4b55-9d0c-2f1f7e3a9c41","tag":"red"}`, ""},
		{`{"id":"f","partId":"p1","predictionId":"p","tag":"red"}`, `"predictionId" or "partId", not both`},
		{`{"id":"f","partId":"p1","tag":"red","detection":0}`, `leave "detection" out of a correction by "partId"`},
		{`{"id":"f","partId":"a b","tag":"red"}`, `"partId" must name the part`},
		{`{"id":"f","partId":"","tag":"red"}`, `"predictionId" must name`},
		{`{"id":"f","sampleId":"f1320fa4-e3b4","tag":"red"}`, ""},
		{`{"id":"f","sampleId":"f1320fa4-e3b4","predictionId":"p","detection":1,"tag":"red"}`, ""},
		{`{"id":"f","sampleId":"f1320fa4-e3b4","partId":"p1","tag":"red"}`, ""},
		{`{"id":"f","sampleId":"../../etc/passwd","tag":"red"}`, `"sampleId" must be the "id" of a sample`},
		{`{"id":"f","sampleId":"` + strings.Repeat("a", 129) + `","tag":"red"}`, `"sampleId" must be the "id" of a sample`},
		{`{"id":"f","sampleId":"s","predictionId":"a b","tag":"red"}`, `"predictionId" must name`},
		{`{"id":"f","sampleId":"s","detection":0,"tag":"red"}`, `leave "detection" out of a correction by "sampleId" alone`},
	}
	for _, c := range cases {
		_, err := ParseFeedback([]byte(c.in))
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseFeedback(%q): error %v, want %q", c.in, err, c.err)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`{"id":"a","command":"snapshot","camera":"c"}`, `{"id":"a","command":"snapshot","camera":"c","annotate":true}`, `{"id":"a","command":"activate","model":"m","iteration":"i"}`, `{`, `[]`, `{"id":"\u0000"}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseCommand(raw)
		if err == nil && (c.ID == "" || c.Command == "") {
			t.Fatalf("accepted %q without id or command", raw)
		}
		if len(c.ID) > 128 {
			t.Fatalf("id of %d bytes would be echoed", len(c.ID))
		}
	})
}

func FuzzParseFeedback(f *testing.F) {
	for _, s := range []string{`{"id":"f","predictionId":"p","tag":"red","detection":0}`, `{"id":"f"}`, `{"detection":1e99}`, `"x"`,
		`{"id":"f","partId":"5b0c9c6e-5f1e-4b55-9d0c-2f1f7e3a9c41","tag":"red"}`, `{"id":"f","partId":"p","predictionId":"p","tag":"red"}`,
		`{"id":"f","partId":"p","tag":"red","detection":0}`, `{"id":"f","partId":"\u0000","tag":"red"}`,
		`{"id":"f","sampleId":"f1320fa4-e3b4","tag":"red"}`, `{"id":"f","sampleId":"s","predictionId":"p","detection":0,"tag":"red"}`,
		`{"id":"f","sampleId":"a/../b","tag":"red"}`, `{"id":"f","sampleId":"s","detection":1,"tag":"red"}`, `{"id":"f","sampleId":"` + strings.Repeat("x", 200) + `","tag":"red"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fb, err := ParseFeedback(raw)
		named := fb.PredictionID != "" || fb.PartID != "" || fb.SampleID != ""
		if err == nil && (fb.ID == "" || !named || (fb.PredictionID != "" && fb.PartID != "") || strings.TrimSpace(fb.Tag) == "") {
			t.Fatalf("accepted %q without id, tag, or one of predictionId, partId and sampleId", raw)
		}
		if err == nil && fb.SampleID != "" && fb.PredictionID == "" && fb.Detection != nil {
			t.Fatalf("accepted %q: a detection with a sampleId alone", raw)
		}
		if err == nil && fb.SampleID != "" && !sampleIDRE.MatchString(fb.SampleID) {
			t.Fatalf("accepted %q: a sampleId that cannot name a stored sample", raw)
		}
		if err == nil && fb.PartID != "" && fb.Detection != nil {
			t.Fatalf("accepted %q: a detection with a partId", raw)
		}
	})
}

func FuzzParseSample(f *testing.F) {
	good := `{"schema":1,"id":"s1","agent":"a","camera":"c","boot":"b","created":"2026-01-01T00:00:00Z","reason":"operator","detail":"","captured":"2026-01-01T00:00:00Z","models":[],"correctTag":"red","crop":{"jpeg":"/9j/4AAQ","width":1,"height":1}}`
	f.Add([]byte(good))
	f.Add([]byte(strings.Replace(good, "/9j/4AAQ", "iVBORw0K", 1)))
	f.Add([]byte(`{"schema":2}`))
	f.Add([]byte(`{"schema":1,"id":"s1","agent":"a","camera":"c","reason":"audit"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := ParseSample(raw)
		if err == nil && (s.ID == "" || s.Agent == "" || (s.Crop == nil && s.Frame == nil && !s.ImageOmitted)) {
			t.Fatalf("accepted %q", raw)
		}
	})
}

func TestParseSample(t *testing.T) {
	base := `{"schema":1,"id":"s1","agent":"a","camera":"c","reason":"operator","crop":{"jpeg":"%s","width":1,"height":1}}`
	if _, err := ParseSample([]byte(fmt.Sprintf(base, "/9j/4AAQ"))); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		fmt.Sprintf(base, "iVBORw0K"):                                    "is not a base64 JPEG",
		`{"schema":2,"id":"s1"}`:                                         "schema 2",
		`{"schema":1,"id":"s1","agent":"a","camera":"c","reason":"x"}`:   "no image",
		`{"schema":1,"id":"../x","agent":"a","camera":"c","reason":"x"}`: "not a valid id",
		`[`: "not a sample",
	} {
		if _, err := ParseSample([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
