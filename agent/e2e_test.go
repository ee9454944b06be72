package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// demoConfig writes a config for the demo models and video, publishing to brokerURL, and
// loads it the way `cvedge run` does.
func demoConfig(t *testing.T, brokerURL, extra string) *configs.Config {
	t.Helper()
	demo := testenv.Path("testdata", "demo")
	yaml := fmt.Sprintf(`
agent:
  id: e2e
  log_level: warn
mqtt:
  broker: %s
  client_id: cvedge-e2e-%d
spool:
  dir: %s
http:
  listen: ""
store:
  dir: %s
models:
  parts:
    path: %s
    threshold: 0.5
  colour:
    path: %s
cameras:
  - name: conveyor
    source: %s
    realtime: false   # every frame, as fast as the pipeline takes them
    pipeline:
      detector: parts
      classifier: colour
%s`, brokerURL, time.Now().UnixNano(), filepath.Join(t.TempDir(), "spool"), filepath.Join(t.TempDir(), "models"), filepath.Join(demo, "detector"), filepath.Join(demo, "classifier"), filepath.Join(demo, "conveyor.avi"), extra)
	path := filepath.Join(t.TempDir(), "cvedge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDemoEndToEnd runs the agent on the demo video against a real mosquitto and checks the
// predictions received over MQTT against the video's ground truth.
func TestDemoEndToEnd(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	tr := testenv.DemoTruth(t)
	cfg := demoConfig(t, broker.URL, "")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")

	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	topic := "cvedge/e2e/cameras/conveyor/predictions"
	deadline := time.Now().Add(90 * time.Second)
	for len(col.Get(topic)) < len(tr.Frames) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	got := map[int64]payload.Prediction{}
	for _, raw := range col.Get(topic) {
		var p payload.Prediction
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("bad prediction payload: %v\n%s", err, raw)
		}
		if p.SourcePos == nil {
			t.Fatalf("prediction without sourcePos: %s", raw)
		}
		got[*p.SourcePos] = p
	}
	if len(got) != len(tr.Frames) {
		t.Fatalf("received predictions for %d distinct frames, the video has %d", len(got), len(tr.Frames))
	}

	var parts, detected, classified int
	for _, fr := range tr.Frames {
		p := got[int64(fr.Index)]
		if p.FrameID != uint64(fr.Index+1) || p.Width != tr.Width || p.Height != tr.Height {
			t.Errorf("frame %d: frameId %d size %dx%d", fr.Index, p.FrameID, p.Width, p.Height)
		}
		used := map[int]bool{}
		for _, part := range fr.Parts {
			box := payload.Box{Left: float32(part.Box[0] / float64(tr.Width)), Top: float32(part.Box[1] / float64(tr.Height)),
				Width: float32(part.Box[2] / float64(tr.Width)), Height: float32(part.Box[3] / float64(tr.Height))}
			best, bestIoU := -1, float32(0)
			for i, d := range p.Predictions {
				if iou := iou(box, *d.BoundingBox); iou > bestIoU {
					best, bestIoU = i, iou
				}
			}
			if part.Visible < 0.5 {
				if best >= 0 && bestIoU >= 0.5 {
					used[best] = true // a part entering or leaving may be found; nothing owed
				}
				continue
			}
			parts++
			if best < 0 || bestIoU < 0.7 {
				t.Errorf("frame %d: %s %s part %d at %v not found (best IoU %.2f): %s", fr.Index, part.Colour, part.Shape, part.ID, part.Box, bestIoU, pipeline.Summary(&p))
				continue
			}
			detected++
			used[best] = true
			c := p.Predictions[best].Classification
			if c == nil || len(c.Predictions) == 0 || c.Predictions[0].TagName != part.Colour {
				t.Errorf("frame %d: part %d is %s, classified %+v", fr.Index, part.ID, part.Colour, c)
				continue
			}
			classified++
		}
		for i, d := range p.Predictions {
			if used[i] {
				continue
			}
			// a sliver of a part at the frame edge: its centre must lie on a part
			b := d.BoundingBox
			cx, cy := float64(b.Left+b.Width/2)*float64(tr.Width), float64(b.Top+b.Height/2)*float64(tr.Height)
			onPart := false
			for _, part := range fr.Parts {
				x, y, w, h := part.Box[0]-4, part.Box[1]-4, part.Box[2]+8, part.Box[3]+8
				onPart = onPart || (cx >= x && cx <= x+w && cy >= y && cy <= y+h)
			}
			if !onPart {
				t.Errorf("frame %d: detection %d %+v matches no part", fr.Index, i, *b)
			}
		}
	}
	t.Logf("%d frames, %d visible parts, %d detected with IoU >= 0.7, %d classified right", len(tr.Frames), parts, detected, classified)
	if parts < 100 {
		t.Fatalf("the demo video should show over 100 visible parts, truth has %d", parts)
	}

	col.ValidateAll(t)
	statuses := col.Get("cvedge/e2e/status")
	if len(statuses) == 0 {
		t.Fatal("no status message")
	}
	var first, last payload.Status
	_ = json.Unmarshal(statuses[0], &first)
	_ = json.Unmarshal(statuses[len(statuses)-1], &last)
	if first.State != "online" || len(first.Models) != 2 || len(first.Cameras) != 1 {
		t.Errorf("birth status %s", statuses[0])
	}
	if last.State != "offline" || last.Reason != "stopped" {
		t.Errorf("last status after shutdown %s", statuses[len(statuses)-1])
	}
	for _, m := range first.Models {
		if len(m.SHA256) != 64 || !strings.Contains(m.Iteration, "-") {
			t.Errorf("status model %+v lacks iteration or sha", m)
		}
	}
}

// iou is the intersection over union of two payload boxes (models.Box has the same fields).
func iou(a, b payload.Box) float32 { return models.Box(a).IoU(models.Box(b)) }
