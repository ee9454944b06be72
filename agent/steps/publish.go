package steps

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
)

// publishStep publishes each processed frame's prediction on
// <prefix>/cameras/<camera>/predictions at mqtt.qos, and the unchanged reports of the motion
// gate.
type publishStep struct {
	env    *Env
	camera string
	topic  string
	qos    byte
}

// NewPublish returns the step that publishes camera's predictions at qos.
func NewPublish(env *Env, camera string, qos byte) pipeline.Step {
	return &publishStep{env: env, camera: camera, topic: env.Topic("cameras/" + camera + "/predictions"), qos: qos}
}

func (s *publishStep) Name() string { return "publish" }

func (s *publishStep) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if (f.Err != nil && !pipeline.UnchangedReport(f.Err, msg)) || msg == nil {
		return
	}
	body, err := json.Marshal(msg)
	if err != nil {
		s.env.Log.Error("prediction not encoded", "camera", s.camera, "err", err)
		return
	}
	s.env.Pub.Send(publish.Message{Topic: s.topic, QoS: s.qos, Payload: body, Class: spool.Predictions, Camera: s.camera})
}

// logStep writes each processed frame's prediction into the log in one line
// (agent.log_predictions).
type logStep struct {
	camera string
	log    *slog.Logger
}

// NewLog returns the step that logs camera's predictions, or nil when on is false.
func NewLog(on bool, camera string, log *slog.Logger) pipeline.Step {
	if !on {
		return nil
	}
	return &logStep{camera: camera, log: log}
}

func (s *logStep) Name() string { return "log" }

func (s *logStep) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err == nil && msg != nil {
		s.log.Info("prediction", "camera", s.camera, "frame", msg.FrameID, "ms", msg.LatencyMs.Total, "result", pipeline.Summary(msg))
	}
}
