package steps

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cvedge/cvedge/configs"
)

// TestLLMBudgetPerDay: llm.per_day caps the calls in any 24 hours, a call older than that
// frees its place, and the caps per minute and hour still hold beneath it.
func TestLLMBudgetPerDay(t *testing.T) {
	cfg := configs.Default().LLM
	cfg.Enabled, cfg.Endpoint, cfg.PerMinute, cfg.PerHour, cfg.PerDay = true, "http://127.0.0.1:1/", 1, 0, 2
	f := NewFallback(&Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{time.Second, false}, // per_minute 1
		{time.Hour, true},
		{2 * time.Hour, false}, // per_day 2
		{23 * time.Hour, false},
		{24*time.Hour + time.Second, true}, // the first call is a day old
		{24*time.Hour + 2*time.Minute, false},
		{25*time.Hour + time.Second, true},
	} {
		if got := f.allow(t0.Add(c.after)); got != c.want {
			t.Errorf("a call %v after the first: allowed %v, want %v", c.after, got, c.want)
		}
	}
}

// TestLLMBudgetRefund: a call allowed but not made (the queue was full) gives its place in
// the day's budget back.
func TestLLMBudgetRefund(t *testing.T) {
	cfg := configs.Default().LLM
	cfg.Enabled, cfg.Endpoint, cfg.PerMinute, cfg.PerHour, cfg.PerDay = true, "http://127.0.0.1:1/", 0, 0, 1
	f := NewFallback(&Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
	t0 := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	if !f.allow(t0) {
		t.Fatal("the first call of the day was refused")
	}
	f.refund(t0)
	if !f.allow(t0.Add(time.Second)) {
		t.Fatal("a call dropped from the queue spent the day's budget")
	}
	if f.allow(t0.Add(2 * time.Second)) {
		t.Fatal("per_day 1 allowed two calls")
	}
}
