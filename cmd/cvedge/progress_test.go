package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/cvedge/cvedge/agent/testenv"
)

// openPTY opens a pseudo-terminal: term is the terminal a command writes to, and read
// returns what it wrote once term is closed.
func openPTY(t *testing.T) (term *os.File, read func() string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		testenv.Missing(t, "a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { // drains the terminal, so that a command writing to it never blocks
		defer close(done)
		io.Copy(&buf, master) // ends with EIO once term is closed
	}()
	return term, func() string {
		term.Close()
		<-done
		return buf.String()
	}
}

// TestProgressOnlyOnTerminal: the progress line is drawn on a terminal, ended once the work
// is done, and nothing at all is written to a pipe or a file.
func TestProgressOnlyOnTerminal(t *testing.T) {
	var piped bytes.Buffer
	p := newProgress(&piped)
	for n := 1; n <= 3; n++ {
		p.update("models alone", n, 3)
	}
	p.done()
	if piped.Len() != 0 {
		t.Errorf("progress written to a pipe: %q", piped.String())
	}
	term, read := openPTY(t)
	p = newProgress(term)
	for n := 1; n <= 3; n++ {
		p.update("models alone", n, 3)
	}
	p = newProgress(term) // not within 100 ms of the last line drawn
	p.step("end to end", 1, 30)
	p.done() // cut short
	out := read()
	if !strings.Contains(out, "\rmodels alone [==============================] 3/3\r\n") || !strings.Contains(out, "\rend to end [=") ||
		!strings.HasSuffix(out, "1/30\r\n") {
		t.Errorf("on a terminal: %q", out)
	}
}

// TestBenchProgressOnTerminal: cvedge bench draws the progress of each of its phases on a
// terminal (TestBench checks that it draws nothing on a pipe).
func TestBenchProgressOnTerminal(t *testing.T) {
	needRuntime(t)
	term, read := openPTY(t)
	var out bytes.Buffer
	code := run([]string{"bench", "--detector", testenv.Path("testdata", "demo", "detector"), "--classifier", testenv.Path("testdata", "demo", "classifier"),
		"--source", testenv.Path("testdata", "demo", "conveyor.avi"), "--frames", "5", "--cameras", "1", "--fps", "5", "--seconds", "1"}, &out, term)
	drawn := read()
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, drawn)
	}
	for _, want := range []string{"\rpipeline frames [", "] 15/15\r\n", "\rmodels alone [", "\rend to end [", "] 5/5\r\n", "\rmodels alone, again [", "\rcameras [", "] 1/1\r\n"} {
		if !strings.Contains(drawn, want) {
			t.Errorf("%q not drawn:\n%q", want, drawn)
		}
	}
	if strings.Contains(out.String(), "\r") {
		t.Errorf("progress on stdout:\n%s", out.String())
	}
}
