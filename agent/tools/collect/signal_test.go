package collect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondInterruptEndsTheProcess: in a process stuck after its first Ctrl-C (a wait that
// ignores the context), a second Ctrl-C ends it at once. The test runs itself as that
// process.
func TestSecondInterruptEndsTheProcess(t *testing.T) {
	if os.Getenv("CVEDGE_TEST_STUCK_AFTER_SIGNAL") == "1" {
		ctx, stop := UntilSignal(context.Background())
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("stopping")
		time.Sleep(time.Minute) // stuck
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondInterruptEndsTheProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CVEDGE_TEST_STUCK_AFTER_SIGNAL=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()
	defer cmd.Process.Kill()
	await := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the process ended before printing %q", want)
				}
				if strings.TrimSpace(l) == want {
					return
				}
			case <-timeout:
				t.Fatalf("the process did not print %q", want)
			}
		}
	}
	await("ready")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	await("stopping")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("the process ended with %v, want killed by SIGINT", err)
		}
		if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Fatalf("the process ended with %v, want killed by SIGINT", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a second Ctrl-C did not end the process: the signal was swallowed")
	}
}
