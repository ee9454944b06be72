package steps

import (
	"context"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
)

// triggerResult answers the trigger command that asked for a frame: its prediction's id and
// frame id, or why there is none.
type triggerResult struct{ env *Env }

// NewTriggerResult returns the step that answers trigger commands, or nil when the camera
// takes none (trigger is not "mqtt").
func NewTriggerResult(env *Env, trigger string) pipeline.Step {
	if trigger != "mqtt" {
		return nil
	}
	return &triggerResult{env: env}
}

func (s *triggerResult) Name() string { return "trigger" }

func (s *triggerResult) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Trigger == nil {
		return
	}
	if f.Err != nil || msg == nil {
		s.env.Result(f.Trigger.ID, payload.CmdTrigger, f.Err, nil)
		return
	}
	s.env.PredictionResult(f.Trigger.ID, payload.CmdTrigger, msg, nil)
}
