package testenv

import (
	"bytes"
	"strings"
	"sync"
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
