package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a progress line of long work (eval's models, bench's phases) on a terminal,
// and nothing elsewhere: piped or redirected, stderr stays quiet.
type progress struct {
	w       io.Writer
	on      bool
	last    time.Time
	pending bool // a line is drawn and not ended
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, on: isTerminal(w)}
}

// step redraws the line of name at n of total, at most every 100 ms, and always at the end.
func (p *progress) step(name string, n, total int) {
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && n < total) {
		return
	}
	p.last = time.Now()
	width := 30
	fill := width * min(n, total) / max(total, 1)
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, total)
	p.pending = true
}

// done ends the line drawn, if any.
func (p *progress) done() {
	if p.pending {
		fmt.Fprintln(p.w)
		p.pending = false
	}
}

// update is the progress of a command's work: a step, and the end of the line once a model
// (eval) or a phase (bench) is done. The caller calls done when the work stops early.
func (p *progress) update(name string, n, total int) {
	p.step(name, n, total)
	if n >= total {
		p.done()
	}
}
