package testenv

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// LogBuffer collects log output written from many goroutines (an agent's slog handler).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count is how many times s occurs in what was written.
func (l *LogBuffer) Count(s string) int { return strings.Count(l.String(), s) }

// SlowLog is a logger that discards what it is given, Delay after each line: a busy box,
// where whatever a goroutine does after logging comes late.
func SlowLog(delay time.Duration) *slog.Logger {
	return slog.New(slog.NewTextHandler(SlowWriter{W: io.Discard, Delay: delay}, nil))
}

// SlowWriter writes each line to W after Delay.
type SlowWriter struct {
	W     io.Writer
	Delay time.Duration
}

func (s SlowWriter) Write(b []byte) (int, error) {
	time.Sleep(s.Delay)
	return s.W.Write(b)
}
