package ops

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimitedHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLimitedHandler(slog.NewTextHandler(&buf, nil), time.Minute))
	cam := log.With("camera", "dock")
	for i := 0; i < 5; i++ {
		cam.Error("frame not processed", "err", "timeout")
	}
	cam.Error("frame not processed", "err", "bad frame") // another error: passes
	log.With("camera", "gate").Error("frame not processed", "err", "timeout")
	for i := 0; i < 3; i++ {
		log.Info("prediction") // info is never limited
	}
	out := buf.String()
	if n := strings.Count(out, "frame not processed"); n != 3 {
		t.Fatalf("%d errors passed, want 3:\n%s", n, out)
	}
	if strings.Count(out, "prediction") != 3 {
		t.Fatalf("info limited:\n%s", out)
	}
	// after the window the next one says how many were held back
	h := NewLimitedHandler(slog.NewTextHandler(&buf, nil), time.Minute)
	buf.Reset()
	t0 := time.Now()
	for i := 0; i < 4; i++ {
		r := slog.NewRecord(t0.Add(time.Duration(i)*time.Second), slog.LevelWarn, "broker lost", 0)
		h.Handle(context.Background(), r)
	}
	h.Handle(context.Background(), slog.NewRecord(t0.Add(2*time.Minute), slog.LevelWarn, "broker lost", 0))
	if !strings.Contains(buf.String(), "suppressed=3") || strings.Count(buf.String(), "broker lost") != 2 {
		t.Fatalf("after the window:\n%s", buf.String())
	}
}
