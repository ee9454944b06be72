//go:build matprofile

package agent_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/preprocess"
)

// TestFailuresFreeEveryMat: an agent whose build fails part way (the second camera's data
// set folder cannot be made), and one whose Run fails before its cameras start (the spool
// folder cannot be made), free every Mat they made: the first camera's pipeline and samples,
// the models. A daemon refusing reload after reload for months must not grow.
func TestFailuresFreeEveryMat(t *testing.T) {
	testenv.EndToEnd(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := preprocess.LiveMats()

	cfg := demoConfig(t, "tcp://127.0.0.1:1", "    sampling: true\n")
	cfg.Samples.Enabled = true
	second := cfg.Cameras[0]
	second.Name = "second"
	second.Collect.Enabled, second.Collect.Dir, second.Collect.Every = true, filepath.Join(blocker, "data"), time.Second
	cfg.Cameras = append(cfg.Cameras, second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(cfg, log); err == nil || !strings.Contains(err.Error(), "cameras[1].collect.dir") {
		t.Fatalf("a data set folder under a file: %v", err)
	}
	if n := preprocess.LiveMats() - before; n != 0 {
		t.Fatalf("a build that failed left %d Mats", n)
	}

	cfg = demoConfig(t, "tcp://127.0.0.1:1", "    sampling: true\n")
	cfg.Samples.Enabled = true
	cfg.Spool.Dir = filepath.Join(blocker, "spool")
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "spool.dir") {
		t.Fatalf("a spool folder under a file: %v", err)
	}
	if n := preprocess.LiveMats() - before; n != 0 {
		t.Fatalf("a Run that failed before the cameras started left %d Mats", n)
	}
}
