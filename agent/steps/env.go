// Package steps holds the per-frame steps that follow the models (see pipeline.Step), one
// file each: track, vote, shadow, snapshot, samples, llm, collect, ring, count, publish, parts, metrics,
// trigger, log. Each owns its state and counters; the daemon lists them for each camera from
// the config (agent/run.go, stepsFor). The steps send what they make through a Sender (the
// MQTT publisher, or a publish.Recorder in tests); they never read the config file, run no
// model of their own but the shadow candidate, and hold no cgo (pixels go through preprocess).
package steps

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/configs"
)

// Sender takes a message for the broker and never blocks (publish.Publisher, or a
// publish.Recorder in tests).
type Sender interface {
	Send(publish.Message)
}

// Env is what the steps of every camera share: whose messages they make, and where they go.
type Env struct {
	// Agent and Boot name the agent and its boot in every message.
	Agent, Boot string
	// Prefix is mqtt.topic_prefix.
	Prefix string
	// MaxPayloadKB is mqtt.max_payload_kb: images are made to fit in it (0: no bound).
	MaxPayloadKB int
	// Pub takes the messages; it may be set after the steps are made, before they run.
	Pub Sender
	// Review keeps each sample sent for the operator station's review queue; nil: none.
	Review func(payload.Sample)
	Log    *slog.Logger
}

// Topic returns the full topic of path under the prefix.
func (e *Env) Topic(path string) string { return e.Prefix + "/" + path }

// Result publishes the answer to a command or feedback message on <prefix>/commands/results.
func (e *Env) Result(id, command string, err error, detail map[string]string) {
	res := payload.Result{Schema: payload.Schema, Agent: e.Agent, ID: id, Command: command, OK: err == nil, Time: time.Now().UTC(), Detail: detail}
	if err != nil {
		res.Error = configs.Redact(err.Error()) // an error may quote a URL with its key
	}
	e.sendResult(res)
}

// PredictionResult sends the successful result of a command answered with prediction msg:
// its id and frame id as the result's predictionId and frameId, and the id in
// detail.predictionId too.
func (e *Env) PredictionResult(id, command string, msg *payload.Prediction, detail map[string]string) {
	if detail == nil {
		detail = map[string]string{}
	}
	detail["predictionId"] = msg.ID
	e.sendResult(payload.Result{Schema: payload.Schema, Agent: e.Agent, ID: id, Command: command, OK: true, Time: time.Now().UTC(),
		PredictionID: msg.ID, FrameID: msg.FrameID, Detail: detail})
}

func (e *Env) sendResult(res payload.Result) {
	body, _ := json.Marshal(res)
	e.Pub.Send(publish.Message{Topic: e.Topic("commands/results"), QoS: 1, Payload: body, Class: spool.Predictions})
}

// payloadOverhead is room kept for a message's JSON around its base64 images.
const payloadOverhead = 8 << 10

// ImageBytes is the most bytes each of n JPEG images in one message may take: limit, or less
// when mqtt.max_payload_kb would not take n such images (base64 makes 4 bytes of 3).
func (e *Env) ImageBytes(limit, n int) int {
	payloadMax := e.MaxPayloadKB << 10
	if payloadMax <= 0 {
		return limit
	}
	return min(limit, max(1, (payloadMax-payloadOverhead)*3/4/n))
}
