package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/configs"
)

// newLogger builds the process logger: JSON when stderr is not a terminal (systemd), text on
// a terminal, or as configured.
func newLogger(c configs.Agent, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	format := c.LogFormat
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(ops.NewLimitedHandler(h, 10*time.Second)) // a failing camera does not flood the journal
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
