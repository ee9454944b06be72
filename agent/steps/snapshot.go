package steps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/preprocess"
)

// SnapshotMaxBytes bounds a snapshot JPEG; larger frames are scaled down.
const SnapshotMaxBytes = 1 << 20

// Snapshots answers the snapshot commands of one camera with its next frame, processed or
// not, on <prefix>/cameras/<camera>/snapshot.
type Snapshots struct {
	env     *Env
	camera  string
	waiting chan string // the ids of the commands waiting for the next frame
}

// NewSnapshots returns the snapshot step of camera.
func NewSnapshots(env *Env, camera string) *Snapshots {
	return &Snapshots{env: env, camera: camera, waiting: make(chan string, 4)}
}

// Request queues snapshot command id for the next frame; it fails when too many wait.
func (s *Snapshots) Request(id string) error {
	select {
	case s.waiting <- id:
		return nil
	default:
		return fmt.Errorf("camera %q has %d snapshots waiting; try again", s.camera, cap(s.waiting))
	}
}

func (s *Snapshots) Name() string { return "snapshot" }

// Handle answers every waiting command with f.
func (s *Snapshots) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil {
		msg = nil // not published: there is no prediction to link
	}
	for {
		select {
		case id := <-s.waiting:
			s.answer(id, f, msg)
		default:
			return
		}
	}
}

func (s *Snapshots) answer(id string, f *pipeline.Frame, msg *payload.Prediction) {
	topic := s.env.Topic("cameras/" + s.camera + "/snapshot")
	jpeg, err := preprocess.EncodeJPEG(f.Mat(), image.Rectangle{}, 90, s.env.ImageBytes(SnapshotMaxBytes, 1))
	if err != nil {
		s.env.Result(id, payload.CmdSnapshot, err, nil)
		return
	}
	b := f.Bounds()
	snap := payload.Snapshot{Schema: payload.Schema, Agent: s.env.Agent, Camera: s.camera, CommandID: id,
		Boot: s.env.Boot, Captured: f.Captured, Width: b.Dx(), Height: b.Dy(), JPEG: base64.StdEncoding.EncodeToString(jpeg)}
	detail := map[string]string{"topic": topic}
	if msg != nil {
		snap.FrameID, snap.PredictionID = msg.FrameID, msg.ID
	}
	body, _ := json.Marshal(snap)
	s.env.Pub.Send(publish.Message{Topic: topic, QoS: 1, Payload: body, Class: spool.Predictions})
	if msg != nil {
		s.env.PredictionResult(id, payload.CmdSnapshot, msg, detail)
		return
	}
	s.env.Result(id, payload.CmdSnapshot, nil, detail)
}
