package agent

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/camera"
)

// CameraStats are one camera's counters since the agent started, across reloads.
type CameraStats struct {
	Name string
	// Dropped counts the frames the camera dropped because the pipeline was busy; Overflow
	// the frames of a hardware-triggered camera its full trigger_queue lost.
	Dropped, Overflow uint64
	pipeline.Counts
}

// Stats returns the counters of the cameras running now: what the stats message, the
// metrics and cvedge bench read.
func (a *Agent) Stats() []CameraStats {
	var out []CameraStats
	for _, r := range a.runsNow() {
		st := r.cam.Status()
		out = append(out, CameraStats{Name: r.cam.Name(), Dropped: st.Dropped, Overflow: st.Overflow, Counts: r.counts()})
	}
	return out
}

// statusMessage builds the retained status.
func (a *Agent) statusMessage(state, reason string) publish.Message {
	return a.statusMessageOf(a.status(state, reason))
}

// statusMessageOf is the retained status message of st.
func (a *Agent) statusMessageOf(st payload.Status) publish.Message {
	body, _ := json.Marshal(st)
	return publish.Message{Topic: a.Topic("status"), QoS: 1, Retained: true, Payload: body}
}

// status is the agent's status: its cameras' states and its models.
func (a *Agent) status(state, reason string) payload.Status {
	host, _ := os.Hostname()
	st := payload.Status{Schema: payload.Schema, Agent: a.c().Agent.ID, State: state, Reason: camera.Redact(reason), Version: Version,
		Host: host, Boot: a.boot, Started: &a.started, Updated: time.Now().UTC()}
	for _, r := range a.runsNow() {
		s := r.cam.Status()
		st.Cameras = append(st.Cameras, payload.CameraStatus{Name: r.cam.Name(), Kind: string(r.cam.Source().Kind), State: string(s.State), Reason: camera.Redact(s.Reason), Read: s.Read, Dropped: s.Dropped, Skipped: s.Skipped, Overflow: s.Overflow})
	}
	for _, n := range a.stageNames() {
		if stage, ok := a.stageNamed(n); ok {
			info := stage.Model().Info
			st.Models = append(st.Models, payload.ModelStatus{Name: n, Format: string(info.Format), Iteration: info.Iteration, SHA256: info.SHA256, Labels: len(info.Labels)})
		}
	}
	return st
}

// statsLoop publishes the stats message every mqtt.stats_interval until ctx ends.
func (a *Agent) statsLoop(ctx context.Context) {
	t := time.NewTicker(a.c().MQTT.StatsInterval)
	defer t.Stop()
	last := map[string]pipeline.Counts{} // by camera name: a reload carries a camera's counters over
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st, marks := a.stats(now, now.Sub(prev).Seconds(), last)
			a.lastStats.Store(&st)
			a.statsTaken(st)
			body, _ := json.Marshal(st)
			prev, last = now, marks
			a.out.pub.Send(publish.Message{Topic: a.Topic("stats"), QoS: 0, Payload: body})
			for _, pc := range a.countsNow() { // a shift may have begun
				pc.Tick(now)
			}
		}
	}
}

// stats builds the stats message at now, secs after the last one, whose counts were last;
// it returns the counts of now too, for the next one (only the cameras running now).
func (a *Agent) stats(now time.Time, secs float64, last map[string]pipeline.Counts) (payload.Stats, map[string]pipeline.Counts) {
	st := payload.Stats{Schema: payload.Schema, Agent: a.c().Agent.ID, Boot: a.boot, Time: now.UTC(),
		UptimeS: payload.Round(now.Sub(a.started).Seconds(), 1), Interval: payload.Round(secs, 3)}
	seen := make(map[string]pipeline.Counts, len(last))
	for _, r := range a.runsNow() {
		cur, before := r.counts(), last[r.cam.Name()]
		if cur.Processed < before.Processed {
			before = pipeline.Counts{}
		}
		frames := cur.Processed - before.Processed
		cs := r.cam.Status()
		c := payload.CameraStats{Name: r.cam.Name(), State: string(cs.State), FPS: payload.Round(float64(frames)/secs, 2),
			Read: cs.Read, Dropped: cs.Dropped, Skipped: cs.Skipped, Overflow: cs.Overflow, Failed: cur.Failed, Gated: cur.Gated, Samples: cur.Samples,
			Unchanged: cur.Unchanged}
		if frames > 0 {
			c.InferenceMs = payload.Round(float64(cur.InferUs-before.InferUs)/1000/float64(frames), 3)
		}
		seen[r.cam.Name()] = pipeline.Counts{Processed: cur.Processed, InferUs: cur.InferUs}
		st.Cameras = append(st.Cameras, c)
	}
	for _, n := range a.stageNames() {
		if stage, ok := a.stageNamed(n); ok {
			ms := payload.ModelStats{Name: n, Iteration: stage.Ref().Iteration, Shadow: stage.ShadowStats()}
			var first bool
			if ms.ShadowSummary, first = stage.ShadowSummary(); first {
				a.keepShadowSummary(n, ms.ShadowSummary)
			}
			st.Models = append(st.Models, ms)
		}
	}
	st.LLM = a.llm.Stats()
	st.MQTT, st.Spool = a.deliveryStats()
	return st, seen
}

// snapshot is the state the metrics read at each scrape.
func (a *Agent) snapshot() ops.Snapshot {
	s := ops.Snapshot{}
	for _, r := range a.runsNow() {
		st, n := r.cam.Status(), r.counts()
		s.Cameras = append(s.Cameras, ops.CameraState{Name: r.cam.Name(), State: string(st.State), Read: st.Read, Dropped: st.Dropped,
			Skipped: st.Skipped, Overflow: st.Overflow, Processed: n.Processed, Failed: n.Failed, Gated: n.Gated, Samples: n.Samples,
			Unchanged: n.Unchanged})
	}
	for _, name := range a.stageNames() {
		stage, ok := a.stageNamed(name)
		if !ok {
			continue
		}
		info := stage.Model().Info
		ms := ops.ModelState{Name: name, Iteration: info.Iteration, SHA256: info.SHA256, Format: string(info.Format), ShadowAgreement: -1}
		if sh := stage.ShadowStats(); sh != nil {
			ms.ShadowAgreement = sh.Agreement
		}
		s.Models = append(s.Models, ms)
	}
	if a.out.pub != nil {
		s.MQTT, s.Spool = a.deliveryStats()
	}
	if l := a.llm.Stats(); l != nil {
		s.LLM = map[string]uint64{"answered": l.Answered, "invalid": l.Invalid, "outside_tags": l.OutsideTags, "failed": l.Failed, "over_budget": l.OverBudget, "dropped": l.Dropped}
		s.LLMTokens = map[string]uint64{"prompt": l.PromptTokens, "completion": l.CompletionTokens}
		s.LLMCost = l.Cost
	}
	return s
}

// readiness lists why the agent is not ready: models not loaded, no camera online, or
// neither the broker nor the spool able to take messages.
func (a *Agent) readiness() []string {
	var why []string
	online := false
	for _, r := range a.runsNow() {
		if r.cam.Status().State == camera.StateOnline {
			online = true
		}
	}
	if !online {
		why = append(why, "no camera is online")
	}
	for _, r := range a.runsNow() {
		for _, name := range []string{r.cfg.Pipeline.Detector, r.cfg.Pipeline.Classifier} {
			if _, ok := a.stageNamed(name); name != "" && !ok {
				why = append(why, "model "+name+" is not loaded")
			}
		}
	}
	if a.out.pub == nil {
		return append(why, "the MQTT publisher is not running")
	}
	ms, ss := a.deliveryStats()
	if ms.State != "connected" && ms.State != "connecting" {
		why = append(why, "MQTT broker "+ms.State+": "+ms.LastError)
	} else if ms.LastError != "" {
		why = append(why, "MQTT broker: "+ms.LastError)
	}
	if !ss.Writable {
		why = append(why, "the spool cannot write: "+ss.Error)
	} else if !ms.Connected && ss.Bytes >= int64(a.c().Spool.MaxMB)<<20 {
		why = append(why, "the MQTT broker is not connected and the spool is full")
	}
	return why
}

// deliveryStats reads the publisher's and the spool's state.
func (a *Agent) deliveryStats() (payload.MQTTStats, payload.SpoolStats) {
	ps := a.out.pub.Stats()
	ms := payload.MQTTStats{Connected: ps.Connected, State: ps.State, LastError: ps.LastError, Queued: ps.Queued, InFlight: ps.InFlight,
		Sent: ps.Sent, Spooled: ps.Spooled, Drained: ps.Drained, Skipped: ps.Skipped, Lost: ps.Lost, SetAside: ps.SetAside}
	ss := payload.SpoolStats{Writable: true, Dropped: a.out.drops.Snapshot()}
	if a.out.spool != nil {
		h := a.out.spool.Health()
		ss.Writable, ss.Error, ss.Messages, ss.Bytes, ss.DiskBytes, ss.WriteFailures, ss.CorruptBytes = h.Writable, h.Error, h.Messages, h.Bytes, h.DiskBytes, h.WriteFailures, h.CorruptBytes
	}
	return ms, ss
}

// observePublish records the time a prediction took to reach the broker.
func (a *Agent) observePublish(m publish.Message, d time.Duration) {
	if a.metrics != nil && m.Camera != "" {
		a.metrics.Stage.WithLabelValues(m.Camera, "publish").Observe(d.Seconds())
	}
}

// watchdog tells systemd the agent is alive, as long as no camera loop is stuck inside a
// frame (in the models or in a step after them, such as the shadow candidate) for more than
// half the watchdog interval: a hung pipeline is restarted, not just a hung process.
func (a *Agent) watchdog(ctx context.Context, n *ops.Notifier, every time.Duration) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			healthy := true
			for _, r := range a.runsNow() {
				if busy := r.busySince(); !busy.IsZero() && now.Sub(busy) > every/2 {
					healthy = false
					a.log.Error("a camera pipeline is stuck in a frame; not feeding the watchdog", "camera", r.cam.Name(), "for", now.Sub(busy).Round(time.Second))
				}
			}
			if healthy {
				n.Send("WATCHDOG=1")
			}
		}
	}
}
