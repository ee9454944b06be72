package agent

import (
	"context"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/camera"
)

// snapshot is the state the metrics read at each scrape.
func (a *Agent) snapshot() ops.Snapshot {
	s := ops.Snapshot{}
	for _, r := range a.runsNow() {
		st := r.cam.Status()
		s.Cameras = append(s.Cameras, ops.CameraState{Name: r.cam.Name(), State: string(st.State), Read: st.Read, Dropped: st.Dropped,
			Processed: r.processed.Load(), Failed: r.failed.Load(), Gated: r.gated.Load(), Samples: r.samples.snapshot()})
	}
	for _, n := range a.stageNames() {
		stage, ok := a.stageNamed(n)
		if !ok {
			continue
		}
		info := stage.Model().Info
		ms := ops.ModelState{Name: n, Iteration: info.Iteration, SHA256: info.SHA256, Format: string(info.Format), ShadowAgreement: -1}
		if sh := stage.shadowStats(); sh != nil {
			ms.ShadowAgreement = sh.Agreement
		}
		s.Models = append(s.Models, ms)
	}
	if a.pub != nil {
		s.MQTT, s.Spool = a.deliveryStats()
	}
	if l := a.llm.stats(); l != nil {
		s.LLM = map[string]uint64{"answered": l.Answered, "invalid": l.Invalid, "outside_tags": l.OutsideTags, "failed": l.Failed, "over_budget": l.OverBudget, "dropped": l.Dropped}
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
	if a.pub == nil {
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
	ps := a.pub.Stats()
	ms := payload.MQTTStats{Connected: ps.Connected, State: ps.State, LastError: ps.LastError, Queued: ps.Queued, InFlight: ps.InFlight,
		Sent: ps.Sent, Spooled: ps.Spooled, Drained: ps.Drained, Skipped: ps.Skipped, Lost: ps.Lost, SetAside: ps.SetAside}
	ss := payload.SpoolStats{Writable: true, Dropped: a.drops.snapshot()}
	if a.spool != nil {
		h := a.spool.Health()
		ss.Writable, ss.Error, ss.Messages, ss.Bytes, ss.DiskBytes, ss.WriteFailures, ss.CorruptBytes = h.Writable, h.Error, h.Messages, h.Bytes, h.DiskBytes, h.WriteFailures, h.CorruptBytes
	}
	return ms, ss
}

// observe records a processed frame in the metrics.
func (a *Agent) observe(r *cameraRun, msg *payload.Prediction) {
	if a.metrics == nil {
		return
	}
	cam := r.cam.Name()
	l := msg.LatencyMs
	for stage, v := range map[string]float64{"queue": l.Queue, "preprocess": l.Preprocess, "detect": l.Detect, "classify": l.Classify} {
		a.metrics.Stage.WithLabelValues(cam, stage).Observe(v / 1000)
	}
	crops := 0
	detector := len(msg.Models) > 0 && msg.Models[0].Stage == "detector"
	if detector {
		a.metrics.Detections.WithLabelValues(cam).Observe(float64(len(msg.Predictions)))
		for _, d := range msg.Predictions {
			model, tag := msg.Models[0].Name, d.TagName
			if c := d.Classification; c != nil {
				crops++
				for c.Next != nil {
					c = c.Next
				}
				if len(c.Predictions) > 0 {
					model, tag = c.Model, c.Predictions[0].TagName
				}
			}
			a.metrics.Predictions.WithLabelValues(cam, model, tag).Inc()
		}
	} else if len(msg.Predictions) > 0 {
		crops = 1
		model, tag := msg.Models[len(msg.Models)-1].Name, msg.Predictions[0].TagName
		if c := msg.Route; c != nil && len(c.Predictions) > 0 {
			for c.Next != nil {
				c = c.Next
			}
			model, tag = c.Model, c.Predictions[0].TagName
		}
		a.metrics.Predictions.WithLabelValues(cam, model, tag).Inc()
	}
	a.metrics.Crops.WithLabelValues(cam).Observe(float64(crops))
}

// observePublish records the time a prediction took to reach the broker.
func (a *Agent) observePublish(m publish.Message, d time.Duration) {
	if a.metrics != nil && m.Camera != "" {
		a.metrics.Stage.WithLabelValues(m.Camera, "publish").Observe(d.Seconds())
	}
}

// watchdog tells systemd the agent is alive, as long as no camera loop is stuck inside a
// frame for more than half the watchdog interval: a hung pipeline is restarted, not just a
// hung process.
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
				if busy := r.pl.BusySince(); !busy.IsZero() && now.Sub(busy) > every/2 {
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
