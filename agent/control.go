package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/collect"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// cameraRun is one camera with its pipeline and counters.
type cameraRun struct {
	cam *camera.Camera
	cfg configs.Camera
	pl  *Pipeline

	// camStarted: cam runs already (a reload took it over), so it is not started again.
	// ringMoved: a reload handed ring on to the camera's next run, which closes it.
	camStarted, ringMoved bool

	processed atomic.Uint64
	failed    atomic.Uint64
	inferUs   atomic.Uint64 // model time (detect + classify), microseconds, since start

	// snapshots holds the ids of snapshot commands waiting for the next frame.
	snapshots chan string
	// triggers holds the triggers of a camera in trigger mode mqtt.
	triggers chan trigger
	gated    atomic.Uint64

	ring    *ring
	sampler *sampling.Sampler // nil: sampling off for this camera
	hasher  *preprocess.Hasher
	samples tally // samples sent by reason

	// queue keeps the queue latency (ms) of the last 1000 frames, for cvedge bench.
	queueMu sync.Mutex
	queue   []float64

	dataset     *collect.Dataset // nil: no data collection
	lastCollect time.Time
	quotaWarned bool
}

// trigger is one trigger command: process the next fresh frame after at.
type trigger struct {
	id string
	at time.Time
}

// queueMs returns the queue latencies of the recent frames.
func (r *cameraRun) queueMs() []float64 {
	r.queueMu.Lock()
	defer r.queueMu.Unlock()
	return append([]float64(nil), r.queue...)
}

// close frees what the run holds beside its camera: the recent frames and the data set.
func (r *cameraRun) close() {
	if !r.ringMoved {
		r.ring.close()
	}
	if r.dataset != nil {
		r.dataset.Close()
	}
}

func (r *cameraRun) count(msg *payload.Prediction) {
	r.queueMu.Lock()
	if len(r.queue) >= 1000 {
		r.queue = r.queue[1:]
	}
	r.queue = append(r.queue, msg.LatencyMs.Queue)
	r.queueMu.Unlock()
	r.processed.Add(1)
	r.inferUs.Add(uint64(math.Round((msg.LatencyMs.Detect + msg.LatencyMs.Classify) * 1000)))
}

// snapshotMaxBytes bounds a snapshot JPEG; larger frames are scaled down.
const snapshotMaxBytes = 1 << 20

// onCommand takes a message from <prefix>/commands. Every command gets a result, also a
// malformed one; nothing in a command can stop the agent.
func (a *Agent) onCommand(raw []byte) {
	cmd, signed, err := payload.ParseSignedCommand(raw)
	if err == nil {
		err = a.admit(cmd, signed)
	}
	if err != nil {
		a.log.Warn("command refused", "id", cmd.ID, "command", cmd.Command, "err", err)
		a.result(cmd.ID, cmd.Command, err, nil)
		return
	}
	switch cmd.Command {
	case payload.CmdSnapshot:
		r, err := a.run(cmd.Camera)
		if err != nil {
			a.result(cmd.ID, cmd.Command, err, nil)
			return
		}
		select {
		case r.snapshots <- cmd.ID: // answered by the camera loop with the next frame
		default:
			a.result(cmd.ID, cmd.Command, fmt.Errorf("camera %q has %d snapshots waiting; try again", cmd.Camera, cap(r.snapshots)), nil)
		}
	case payload.CmdTrigger:
		r, err := a.run(cmd.Camera)
		if err != nil {
			a.result(cmd.ID, cmd.Command, err, nil)
			return
		}
		if r.cfg.Trigger != "mqtt" {
			a.result(cmd.ID, cmd.Command, fmt.Errorf("camera %q has trigger %q and takes no trigger commands (set trigger: mqtt)", cmd.Camera, r.cfg.Trigger), nil)
			return
		}
		select {
		case r.triggers <- trigger{id: cmd.ID, at: time.Now()}: // answered by the camera loop
		default:
			a.result(cmd.ID, cmd.Command, fmt.Errorf("camera %q has %d triggers waiting; slow down", cmd.Camera, cap(r.triggers)), nil)
		}
	case payload.CmdActivate, payload.CmdRollback, payload.CmdAdd, payload.CmdReload:
		a.lcMu.Lock()
		defer a.lcMu.Unlock()
		if a.stopping {
			a.result(cmd.ID, cmd.Command, errors.New("the agent is stopping"), nil)
			return
		}
		if cmd.Command == payload.CmdAdd {
			if busy := a.cmds.startAdd(cmd.ID); busy != "" {
				a.result(cmd.ID, cmd.Command, fmt.Errorf("the remote add %s is still running; send this one again after its result", busy), nil)
				return
			}
		}
		a.lifecycleWG.Add(1)
		go func() { // loading models and downloads take a while: not on paho's goroutine
			defer a.lifecycleWG.Done()
			if cmd.Command == payload.CmdAdd {
				defer a.cmds.doneAdd()
			}
			if cmd.Command == payload.CmdReload {
				a.reloadCommand(cmd)
				return
			}
			a.lifecycleCommand(cmd)
		}()
	default:
		a.result(cmd.ID, cmd.Command, fmt.Errorf("command %q is not available in cvedge %s", cmd.Command, Version), nil)
	}
}

// reloadCommand answers the reload command: the config file read and applied again, as
// on SIGHUP. detail.restartNeeded names the sections that keep their old values until a
// restart; detail.keptSource says which cameras kept their old source, and why.
func (a *Agent) reloadCommand(cmd payload.Command) {
	res, err := a.ReloadConfig("command " + cmd.ID)
	var detail map[string]string
	if err == nil {
		detail = map[string]string{"cameras": fmt.Sprint(res.Cameras), "models": fmt.Sprint(res.Models), "reopened": fmt.Sprint(res.Restarted)}
		if len(res.RestartNeeded) > 0 {
			detail["restartNeeded"] = strings.Join(res.RestartNeeded, ", ")
		}
		if len(res.KeptSource) > 0 {
			var kept []string
			for name, why := range res.KeptSource {
				kept = append(kept, name+": "+why)
			}
			sort.Strings(kept)
			detail["keptSource"] = strings.Join(kept, "; ")
		}
	}
	a.result(cmd.ID, cmd.Command, err, detail)
}

// result publishes the answer to a command or feedback message.
func (a *Agent) result(id, command string, err error, detail map[string]string) {
	res := payload.Result{Schema: payload.Schema, Agent: a.c().Agent.ID, ID: id, Command: command, OK: err == nil, Time: time.Now().UTC(), Detail: detail}
	if err != nil {
		res.Error = err.Error()
	}
	body, _ := json.Marshal(res)
	a.pub.Send(publish.Message{Topic: a.Topic("commands/results"), QoS: 1, Payload: body, Class: spool.Predictions})
}

// serveSnapshots answers the snapshot commands waiting for camera r with frame f, whose
// prediction is msg (nil when the frame could not be processed).
func (a *Agent) serveSnapshots(r *cameraRun, f *camera.Frame, msg *payload.Prediction) {
	for {
		select {
		case id := <-r.snapshots:
			topic := a.Topic("cameras/" + r.cam.Name() + "/snapshot")
			jpeg, err := preprocess.EncodeJPEG(f.Mat(), image.Rectangle{}, 90, a.imageBytes(snapshotMaxBytes, 1))
			if err != nil {
				a.result(id, payload.CmdSnapshot, err, nil)
				continue
			}
			b := f.Bounds()
			snap := payload.Snapshot{Schema: payload.Schema, Agent: a.c().Agent.ID, Camera: r.cam.Name(), CommandID: id,
				Boot: a.boot, Captured: f.Captured, Width: b.Dx(), Height: b.Dy(), JPEG: base64.StdEncoding.EncodeToString(jpeg)}
			detail := map[string]string{"topic": topic}
			if msg != nil {
				snap.FrameID, snap.PredictionID = msg.FrameID, msg.ID
				detail["predictionId"] = msg.ID
			}
			body, _ := json.Marshal(snap)
			a.pub.Send(publish.Message{Topic: topic, QoS: 1, Payload: body, Class: spool.Predictions})
			a.result(id, payload.CmdSnapshot, nil, detail)
		default:
			return
		}
	}
}

// statsLoop publishes the stats message every interval until ctx ends.
func (a *Agent) statsLoop(ctx context.Context) {
	every := a.c().MQTT.StatsInterval
	t := time.NewTicker(every)
	defer t.Stop()
	type mark struct{ processed, inferUs uint64 }
	last := map[string]mark{} // by camera name: a reload carries a camera's counters over
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			secs := now.Sub(prev).Seconds()
			prev = now
			st := payload.Stats{Schema: payload.Schema, Agent: a.c().Agent.ID, Boot: a.boot, Time: now.UTC(),
				UptimeS: round(now.Sub(a.started).Seconds(), 1), Interval: round(secs, 3)}
			seen := make(map[string]mark, len(last))
			for _, r := range a.runsNow() {
				cur := mark{r.processed.Load(), r.inferUs.Load()}
				prevMark := last[r.cam.Name()]
				if cur.processed < prevMark.processed {
					prevMark = mark{}
				}
				frames := cur.processed - prevMark.processed
				cs := r.cam.Status()
				c := payload.CameraStats{Name: r.cam.Name(), State: string(cs.State), FPS: round(float64(frames)/secs, 2),
					Read: cs.Read, Dropped: cs.Dropped, Failed: r.failed.Load(), Gated: r.gated.Load(), Samples: r.samples.snapshot()}
				if frames > 0 {
					c.InferenceMs = round(float64(cur.inferUs-prevMark.inferUs)/1000/float64(frames), 3)
				}
				seen[r.cam.Name()] = cur
				st.Cameras = append(st.Cameras, c)
			}
			last = seen // only the cameras running now: nothing of a reloaded-away run is kept
			for _, n := range a.stageNames() {
				if stage, ok := a.stageNamed(n); ok {
					st.Models = append(st.Models, payload.ModelStats{Name: n, Iteration: stage.Ref().Iteration, Shadow: stage.shadowStats()})
				}
			}
			st.LLM = a.llm.stats()
			st.MQTT, st.Spool = a.deliveryStats()
			body, _ := json.Marshal(st)
			a.pub.Send(publish.Message{Topic: a.Topic("stats"), QoS: 0, Payload: body})
		}
	}
}
