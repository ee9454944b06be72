package agent

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
)

// onCommand takes a message from <prefix>/commands. Every command gets a result, also a
// malformed one; nothing in a command can stop the agent.
func (a *Agent) onCommand(raw []byte) {
	cmd, signed, err := payload.ParseSignedCommand(raw)
	if err == nil {
		err = a.admit(cmd, signed)
	}
	if err != nil {
		a.log.Warn("command refused", "id", cmd.ID, "command", cmd.Command, "err", err)
		a.env.Result(cmd.ID, cmd.Command, err, nil)
		return
	}
	switch cmd.Command {
	case payload.CmdSnapshot, payload.CmdTrigger:
		if err := a.cameraCommand(cmd); err != nil {
			a.env.Result(cmd.ID, cmd.Command, err, nil)
		}
	case payload.CmdActivate, payload.CmdRollback, payload.CmdAdd, payload.CmdReload:
		a.changeCommand(cmd)
	case payload.CmdResetCounts:
		a.env.Result(cmd.ID, cmd.Command, a.resetCounts(cmd.Camera), nil)
	default:
		a.env.Result(cmd.ID, cmd.Command, fmt.Errorf("command %q is not available in cvedge %s", cmd.Command, Version), nil)
	}
}

// onBusy answers a command or a correction that came while publish.InboxSize others on its
// topic still waited to be handled: refused, naming its id, to be sent again.
func (a *Agent) onBusy(topic string, raw []byte) {
	err := fmt.Errorf("%d earlier messages on %s are still waiting to be handled; send this one again after their results", publish.InboxSize, topic)
	if topic == a.Topic("feedback") {
		fb, _ := payload.ParseFeedback(raw)
		a.env.Result(fb.ID, "feedback", err, nil)
		return
	}
	cmd, _, _ := payload.ParseSignedCommand(raw)
	a.env.Result(cmd.ID, cmd.Command, err, nil)
}

// resetCounts starts the part counts of camera (every camera when "") again from zero.
func (a *Agent) resetCounts(camera string) error {
	n := 0
	for _, pc := range a.countsNow() {
		if camera == "" || pc.Snapshot().Camera == camera {
			pc.Reset("command", time.Now())
			n++
		}
	}
	if n == 0 && camera != "" {
		return fmt.Errorf("camera %q counts no parts: name a camera with a detector and tracking", camera)
	}
	return nil
}

// cameraCommand queues a snapshot or trigger command for its camera's loop, which answers
// it with the next frame.
func (a *Agent) cameraCommand(cmd payload.Command) error {
	r, err := a.run(cmd.Camera)
	if err != nil {
		return err
	}
	if cmd.Command == payload.CmdSnapshot {
		return r.snaps.Request(cmd.ID, cmd.Annotate)
	}
	if r.cfg.Trigger != "mqtt" {
		return fmt.Errorf("camera %q has trigger %q and takes no trigger commands (set trigger: mqtt)", cmd.Camera, r.cfg.Trigger)
	}
	select {
	case r.triggers <- pipeline.Trigger{ID: cmd.ID, At: time.Now()}:
		return nil
	default:
		return fmt.Errorf("camera %q has %d triggers waiting; slow down", cmd.Camera, cap(r.triggers))
	}
}

// maxChanges bounds the model changes and reloads queued or running at once: each holds a
// goroutine, and they run one after another, so a flood of commands must not pile them up.
const maxChanges = 4

// changeCommand runs a model change or a reload off the goroutine that takes commands
// (loading models and downloads take a while), unless the agent is stopping, a remote add is
// in flight, or maxChanges are queued already. Reloads, activates and rollbacks run one
// after another, in the order they came; an add downloads beside them.
func (a *Agent) changeCommand(cmd payload.Command) {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	if a.life.stopping {
		a.env.Result(cmd.ID, cmd.Command, errors.New("the agent is stopping"), nil)
		return
	}
	if !a.cmds.startChange(maxChanges) {
		a.env.Result(cmd.ID, cmd.Command, fmt.Errorf("%d model changes or reloads are still queued; send this one again after their results", maxChanges), nil)
		return
	}
	if cmd.Command == payload.CmdAdd {
		if busy := a.cmds.startAdd(cmd.ID); busy != "" {
			a.cmds.doneChange()
			a.env.Result(cmd.ID, cmd.Command, fmt.Errorf("the remote add %s is still running; send this one again after its result", busy), nil)
			return
		}
	}
	if cmd.Command == payload.CmdAdd { // it downloads beside the others
		a.life.running.Go(func() {
			defer a.cmds.doneChange()
			defer a.cmds.doneAdd()
			a.lifecycleCommand(cmd)
		})
		return
	}
	prev, mine := a.cmds.nextTurn()
	a.life.running.Go(func() {
		defer a.cmds.doneChange()
		defer close(mine)
		<-prev
		if cmd.Command == payload.CmdReload {
			a.reloadCommand(cmd)
			return
		}
		a.lifecycleCommand(cmd)
	})
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
	a.env.Result(cmd.ID, cmd.Command, err, detail)
}

// onFeedback takes an operator's correction from <prefix>/feedback and answers it with a
// confirmed misclassification sample, or an error result. A candidate iteration running in
// shadow is credited when it said what the operator says. A correction whose frame has left
// the ring is answered from the sample store, when it holds the sample (correctStored).
func (a *Agent) onFeedback(raw []byte) {
	fb, err := payload.ParseFeedback(raw)
	if err != nil {
		a.log.Warn("feedback refused", "id", fb.ID, "err", err)
		a.env.Result(fb.ID, "feedback", err, nil)
		return
	}
	runs := a.runsNow()
	var part steps.EndedPart // a correction by partId: the part, whose best frame it corrects
	if fb.PartID != "" {
		r, p, err := endedPart(runs, fb.PartID, a.c().Ring.MaxAge)
		if err != nil { // forgotten (or a restart since): a sample of it may be stored
			if st, serr := a.storedSample(fb); serr == nil {
				a.correctStored(fb, st)
			} else {
				a.env.Result(fb.ID, "feedback", err, nil)
			}
			return
		}
		runs, part, fb.PredictionID = []*cameraRun{r}, p, p.PredictionID
	}
	var stored *review.Stored
	if fb.SampleID != "" && fb.PredictionID == "" { // the sample's prediction may still be in the ring
		st, err := a.storedSample(fb)
		if err != nil {
			a.feedbackNotFound(fb, err)
			return
		}
		stored, fb.PredictionID, fb.Detection = &st, st.Item.PredictionID, st.Item.Detection
	}
	for _, r := range runs {
		var s *payload.Sample
		var serr error
		found := fb.PredictionID != "" && r.ring.With(fb.PredictionID, func(f *camera.Frame, msg *payload.Prediction) {
			if part.PartID != "" {
				det := steps.DetectionOfTrack(msg, part.TrackID)
				if det < 0 {
					serr = fmt.Errorf("part %q has no detection in its best frame %d (prediction %q): correct that prediction by predictionId", part.PartID, part.FrameID, part.PredictionID)
					return
				}
				fb.Detection = &det
			}
			if s, serr = r.samples.Correction(f, msg, fb, a.labels); serr == nil {
				a.creditShadow(s, msg, fb.Tag)
			}
		})
		if !found {
			continue
		}
		if serr != nil {
			a.env.Result(fb.ID, "feedback", serr, nil)
			return
		}
		a.answerStored(fb, s)
		r.samples.Send(s)
		detail := map[string]string{"sampleId": s.ID, "camera": r.cam.Name()}
		if part.PartID != "" {
			detail["predictionId"] = part.PredictionID
		}
		a.env.Result(fb.ID, "feedback", nil, detail)
		return
	}
	if stored == nil {
		st, err := a.storedSample(fb)
		switch {
		case err != nil && part.PartID != "" && errors.Is(err, review.ErrNotFound):
			rc := a.c().Ring
			a.env.Result(fb.ID, "feedback", fmt.Errorf("part %q: its best frame %d (prediction %q) is no longer kept, nor a sample of it: each camera keeps its last %d frames, for at most %s (ring); send corrections sooner, or raise ring.frames and ring.max_mb", part.PartID, part.FrameID, part.PredictionID, rc.Frames, rc.MaxAge), nil)
			return
		case err != nil:
			a.feedbackNotFound(fb, err)
			return
		}
		stored = &st
	}
	a.correctStored(fb, *stored)
}

// feedbackNotFound answers a correction the sample store could not answer: too old, or
// the store's own error.
func (a *Agent) feedbackNotFound(fb payload.Feedback, err error) {
	if errors.Is(err, review.ErrNotFound) {
		err = a.tooOld(fb)
	}
	a.env.Result(fb.ID, "feedback", err, nil)
}

// endedPart finds the part partID among the parts the cameras of runs ended recently (each
// remembered for maxAge), or says why it cannot be corrected.
func endedPart(runs []*cameraRun, partID string, maxAge time.Duration) (*cameraRun, steps.EndedPart, error) {
	for _, r := range runs {
		if p, ok := r.ended.Find(partID); ok {
			return r, p, nil
		}
	}
	return nil, steps.EndedPart{}, fmt.Errorf("part %q is unknown, still in view, or ended too long ago: each camera remembers its last %d ended parts, for at most %s (ring.max_age); send the correction once the part's end event is out and sooner, or name its prediction by predictionId",
		partID, steps.MaxEndedParts, maxAge)
}

// labels are the tags of the model named as it serves now; nil when there is no such model.
func (a *Agent) labels(model string) []string {
	st, ok := a.stageNamed(model)
	if !ok {
		return nil
	}
	if m := st.Model(); m != nil {
		return m.Info.Labels
	}
	return nil
}

// creditShadow counts an operator's correction against the answer of the candidate that ran
// in shadow on the same region, if one did.
func (a *Agent) creditShadow(s *payload.Sample, msg *payload.Prediction, correct string) {
	model, sh := steps.ShadowAnswer(s, msg)
	if sh == nil {
		return
	}
	if stage, ok := a.stageNamed(model); ok {
		stage.ShadowReview(sh.TagName, correct)
	}
}
