package sampling

import (
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

func rules() configs.Samples {
	c := configs.Default().Samples
	c.DedupDistance = 0
	return c
}

func tags(pairs ...any) []payload.Tag {
	var out []payload.Tag
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, payload.Tag{TagName: pairs[i].(string), Probability: float32(pairs[i+1].(float64))})
	}
	return out
}

// detection returns a detector prediction of tag det whose crop the classifier answered.
func detection(det string, p float64, cls ...any) payload.Tag {
	return payload.Tag{TagName: det, Probability: float32(p), BoundingBox: &payload.Box{Width: 0.1, Height: 0.1},
		Classification: &payload.Classification{Model: "material", Predictions: tags(cls...)}}
}

func TestRules(t *testing.T) {
	twoStage := []payload.ModelRef{{Stage: "detector", Name: "parts"}, {Stage: "classifier", Name: "material"}}
	routed := func(d payload.Tag, cls ...any) payload.Tag {
		d.Classification.Next = &payload.Classification{Model: "grade", Predictions: tags(cls...)}
		return d
	}
	cases := []struct {
		name   string
		edit   func(*configs.Samples)
		msg    payload.Prediction
		reason string
		det    int
		detail string
	}{
		{"confident: nothing", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.95, "brass", 0.05)}}, "", 0, ""},
		{"low confidence", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.45, "brass", 0.3, "alu", 0.25)}}, LowConfidence, 0, ""},
		{"small margin", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.54, "brass", 0.46)}}, SmallMargin, 0, ""},
		{"per-model threshold", func(c *configs.Samples) { c.LowConfidence.PerModel = map[string]float64{"material": 0.97} },
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.95, "brass", 0.05)}}, LowConfidence, 0, ""},
		{"disagreement", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("brass", 0.9, "steel", 0.97, "brass", 0.03)}}, Disagreement, 0, ""},
		{"second detection", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.99, "brass", 0.01), detection("part", 0.8, "steel", 0.3, "brass", 0.29, "alu", 0.41)}}, LowConfidence, 1, ""},
		{"rule off", func(c *configs.Samples) { c.SmallMargin.Enabled = false },
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.54, "brass", 0.46)}}, "", 0, ""},
		{"classifier alone", nil,
			payload.Prediction{Models: []payload.ModelRef{{Stage: "classifier", Name: "material"}}, Predictions: tags("steel", 0.4, "brass", 0.35, "alu", 0.25)}, LowConfidence, -1, ""},
		{"detector alone", func(c *configs.Samples) { c.LowConfidence.Threshold = 0.7 },
			payload.Prediction{Models: []payload.ModelRef{{Stage: "detector", Name: "parts"}}, Predictions: []payload.Tag{{TagName: "part", Probability: 0.6, BoundingBox: &payload.Box{}}}}, LowConfidence, 0, ""},
		{"quality gate", nil,
			payload.Prediction{Models: twoStage, Quality: payload.Quality{Gate: "fail", Failed: []string{"too_dark"}}}, QualityGate, -1, ""},
		{"audit everything", func(c *configs.Samples) { c.Audit.Enabled, c.Audit.Rate = true, 1 },
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.95, "brass", 0.05)}}, Audit, 0, ""},
		{"second level low confidence", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{routed(detection("part", 0.9, "steel", 0.95, "brass", 0.05), "A", 0.4, "B", 0.35, "C", 0.25)}}, LowConfidence, 0, "A 0.400 under 0.5 (grade, level 2)"},
		{"second level small margin", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{routed(detection("part", 0.9, "steel", 0.95, "brass", 0.05), "A", 0.52, "B", 0.48)}}, SmallMargin, 0, "(grade, level 2)"},
		{"second level sure", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{routed(detection("part", 0.9, "steel", 0.95, "brass", 0.05), "A", 0.9, "B", 0.1)}}, "", 0, ""},
		{"first level before second", nil,
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{routed(detection("part", 0.9, "steel", 0.45, "brass", 0.3, "alu", 0.25), "A", 0.4, "B", 0.35, "C", 0.25)}}, LowConfidence, 0, "(material)"},
		{"classifier alone, routed level", nil,
			payload.Prediction{Models: []payload.ModelRef{{Stage: "classifier", Name: "material"}}, Predictions: tags("steel", 0.95, "brass", 0.05),
				Route: &payload.Classification{Model: "grade", Predictions: tags("A", 0.3, "B", 0.25, "C", 0.45)}}, LowConfidence, -1, "(grade, level 2)"},
		{"sampling off", func(c *configs.Samples) { c.Enabled = false },
			payload.Prediction{Models: twoStage, Predictions: []payload.Tag{detection("part", 0.9, "steel", 0.45, "brass", 0.3, "alu", 0.25)}}, "", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := rules()
			if c.edit != nil {
				c.edit(&cfg)
			}
			got := New(cfg, 1).Check(&c.msg)
			if c.reason == "" {
				if len(got) != 0 {
					t.Fatalf("want no sample, got %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Reason != c.reason || got[0].Detection != c.det || got[0].Detail == "" || !strings.Contains(got[0].Detail, c.detail) {
				t.Fatalf("want %s on detection %d (%q), got %+v", c.reason, c.det, c.detail, got)
			}
		})
	}
}

func TestAuditRate(t *testing.T) {
	cfg := rules()
	cfg.Audit.Enabled, cfg.Audit.Rate = true, 0.1
	s := New(cfg, 42)
	msg := payload.Prediction{Predictions: tags("steel", 0.99, "brass", 0.01)}
	n := 0
	for i := 0; i < 10000; i++ {
		n += len(s.Check(&msg))
	}
	if n < 900 || n > 1100 {
		t.Fatalf("audit rate 0.1 sampled %d of 10000", n)
	}
}

func TestLimits(t *testing.T) {
	cfg := rules()
	cfg.LowConfidence.PerMinute, cfg.LowConfidence.PerHour = 2, 3
	s := New(cfg, 1)
	t0 := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	admitted := func(at time.Time) bool { return s.Admit(LowConfidence, 0, at) }
	if !admitted(t0) || !admitted(t0.Add(time.Second)) || admitted(t0.Add(2*time.Second)) {
		t.Fatal("the third sample within a minute was admitted")
	}
	if !admitted(t0.Add(61 * time.Second)) {
		t.Fatal("a new minute did not admit a sample")
	}
	if admitted(t0.Add(3 * time.Minute)) {
		t.Fatal("the fourth sample within an hour was admitted")
	}
	if !admitted(t0.Add(61 * time.Minute)) {
		t.Fatal("a new hour did not admit a sample")
	}
	if !s.Admit(SmallMargin, 0, t0.Add(2*time.Second)) {
		t.Fatal("limits are per rule")
	}
}

func TestDedup(t *testing.T) {
	cfg := rules()
	cfg.DedupDistance, cfg.DedupWindow = 4, time.Minute
	cfg.LowConfidence.PerMinute, cfg.LowConfidence.PerHour = 0, 0
	s := New(cfg, 1)
	t0 := time.Now()
	if !s.Admit(LowConfidence, 0xFFFF0000FFFF0000, t0) {
		t.Fatal("first sample refused")
	}
	if s.Admit(LowConfidence, 0xFFFF0000FFFF000F, t0.Add(time.Second)) { // 4 bits apart
		t.Fatal("a near-identical image was admitted")
	}
	if !s.Admit(LowConfidence, 0x0000FFFF0000FFFF, t0.Add(2*time.Second)) {
		t.Fatal("a different image was refused")
	}
	if !s.Admit(LowConfidence, 0xFFFF0000FFFF000F, t0.Add(2*time.Minute)) {
		t.Fatal("the same image after the window was refused")
	}
}

// TestLimiterWindows: the caps per minute and per hour, and a daily one, each over its own
// sliding window; Undo takes back the last event counted.
func TestLimiterWindows(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	l := NewLimiter(2, 3)
	for i, c := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {time.Second, true}, {2 * time.Second, false}, {time.Minute, true}, {2 * time.Minute, false}, {time.Hour + time.Second, true}} {
		if got := l.Allow(t0.Add(c.after)); got != c.want {
			t.Errorf("per minute 2, per hour 3: event %d at +%v allowed %v, want %v", i, c.after, got, c.want)
		}
	}
	d := NewDailyLimiter(2)
	if !d.Allow(t0) || !d.Allow(t0.Add(time.Hour)) || d.Allow(t0.Add(23*time.Hour)) {
		t.Error("per day 2: a third event within the day was allowed, or one of the first two refused")
	}
	if !d.Allow(t0.Add(24 * time.Hour)) { // the first is a day old
		t.Error("per day 2: an event a day after the first was refused")
	}
	d.Undo(t0.Add(24 * time.Hour))
	if !d.Allow(t0.Add(24*time.Hour + time.Second)) {
		t.Error("Undo did not take the last event back")
	}
}
