package agent

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// TestCountsOfTheCamerasNow: the counts published on (re)connection and reset by
// reset-counts are those of the cameras that track parts now; a camera that a reload removed
// or whose tracking it turned off keeps its counts, unpublished, until it is back.
func TestCountsOfTheCamerasNow(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &publish.Recorder{}
	a := &Agent{log: log, env: &steps.Env{Agent: "a", Prefix: "p", Pub: rec, Log: log}}
	cfg := configs.Default()
	a.conf.Store(&cfg)
	run := func(name string, tracks bool) *cameraRun {
		cc := configs.DefaultCamera()
		cc.Name, cc.Source, cc.Type, cc.Pipeline.Detector, cc.Tracking.Enabled = name, "0", "usb", "det", tracks
		cam, err := camera.New(cc, log)
		if err != nil {
			t.Fatal(err)
		}
		a.countsOf(cc, &cfg)
		return &cameraRun{cam: cam, cfg: cc}
	}
	a.runs = []*cameraRun{run("line1", true), run("line2", true)}
	if got := len(a.onConnect()) - 1; got != 2 {
		t.Fatalf("%d counts messages on connecting, want 2", got)
	}
	a.runs = []*cameraRun{a.runs[0], run("line2", false)} // a reload turned line2's tracking off
	msgs := a.onConnect()
	if len(msgs) != 2 || msgs[1].Topic != "p/cameras/line1/counts" {
		t.Errorf("after the reload: %+v", msgs)
	}
	if err := a.resetCounts("line2"); err == nil {
		t.Error("reset-counts of a camera that no longer counts parts was taken")
	}
}
