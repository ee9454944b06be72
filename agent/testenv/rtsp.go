package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// debianPython is the interpreter with Debian's GObject bindings (python3-gi): a python3
// earlier on PATH (a virtual environment) lacks them.
const debianPython = "/usr/bin/python3"

// RTSPServer is a real RTSP server (GStreamer's gst-rtsp-server, agent/testenv/rtspserver.py)
// serving a stamped H.264 stream on a loopback port, started for one test.
type RTSPServer struct {
	// Port is the server's TCP port on 127.0.0.1; it stays the same across Kill and Start.
	Port int
	// URL is the stream's address, with the user and password when the server asks for them.
	URL            string
	user, password string

	mu     sync.Mutex
	setups []string // the Transport header of each SETUP request, in order
	cmd    *exec.Cmd
	done   chan struct{}
}

// RTSPStampBlock and RTSPStampBits describe the stamp rtspserver.py draws on each frame:
// the first row of RTSPStampBits blocks of RTSPStampBlock pixels holds the low 32 bits of the
// Unix time in milliseconds at which the frame was made, most significant bit first, white
// for 1.
const (
	RTSPStampBlock = 8
	RTSPStampBits  = 32
)

// RTSPServerScript returns the path of the server script, or reports what it needs missing.
func RTSPServerScript(tb testing.TB) string {
	tb.Helper()
	script := Path("agent", "testenv", "rtspserver.py")
	if _, err := os.Stat(debianPython); err != nil {
		Missing(tb, "%s (Debian's python3, with python3-gi)", debianPython)
	}
	out, err := exec.Command(debianPython, script, "--port", "1", "--check").CombinedOutput()
	if err != nil {
		Missing(tb, "the RTSP test server's packages (run scripts/setup.sh): %s", strings.TrimSpace(string(out)))
	}
	return script
}

// StartRTSP starts the RTSP server on a free loopback port, with RTSP Basic authentication
// when user is set, and stops it when the test ends.
func StartRTSP(tb testing.TB, user, password string) *RTSPServer {
	tb.Helper()
	RTSPServerScript(tb)
	s := &RTSPServer{Port: FreePort(tb), user: user, password: password}
	cred := ""
	if user != "" {
		cred = user + ":" + password + "@"
	}
	s.URL = fmt.Sprintf("rtsp://%s127.0.0.1:%d/stream1", cred, s.Port)
	s.Start(tb)
	tb.Cleanup(s.Kill)
	return s
}

// Start (re)starts the server process on its port and waits until it listens.
func (s *RTSPServer) Start(tb testing.TB) {
	tb.Helper()
	args := []string{RTSPServerScript(tb), "--port", fmt.Sprint(s.Port)}
	if s.user != "" {
		args = append(args, "--user", s.user, "--password", s.password)
	}
	cmd := exec.Command(debianPython, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting the RTSP server: %v", err)
	}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if t, ok := strings.CutPrefix(line, "setup "); ok {
				s.mu.Lock()
				s.setups = append(s.setups, t)
				s.mu.Unlock()
			} else if strings.HasPrefix(line, "ready ") {
				ready <- line
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-done:
		tb.Fatalf("the RTSP server on 127.0.0.1:%d ended before it listened (port taken?)", s.Port)
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		tb.Fatalf("the RTSP server did not listen on 127.0.0.1:%d within 20s", s.Port)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
}

// Kill ends the server process at once (SIGKILL, as a camera that loses power) and waits for
// it. The port is free again when it returns.
func (s *RTSPServer) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Freeze stops the server process (SIGSTOP): its connections stay open and nothing answers
// or streams, as with a hung camera. It is thawed (SIGCONT) when the test ends.
func (s *RTSPServer) Freeze(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		tb.Fatal("the RTSP server is not running")
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("freezing the RTSP server: %v", err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGCONT) })
}

// Setups returns the Transport header of every SETUP request the server received, across
// restarts: "RTP/AVP/TCP;unicast;interleaved=0-1" for TCP, "RTP/AVP;unicast;client_port=..."
// for UDP.
func (s *RTSPServer) Setups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.setups...)
}
