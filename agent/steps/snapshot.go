package steps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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
// not, on <prefix>/cameras/<camera>/snapshot; with its boxes and labels drawn when the
// command asks (annotate) and the frame has a prediction.
type Snapshots struct {
	env     *Env
	camera  string
	waiting chan snapshotRequest // the commands waiting for the next frame
}

// snapshotRequest is one snapshot command waiting for the next frame.
type snapshotRequest struct {
	id       string
	annotate bool
}

// NewSnapshots returns the snapshot step of camera.
func NewSnapshots(env *Env, camera string) *Snapshots {
	return &Snapshots{env: env, camera: camera, waiting: make(chan snapshotRequest, 4)}
}

// Request queues snapshot command id for the next frame, to be sent with the frame's boxes
// and labels drawn when annotate; it fails when too many wait.
func (s *Snapshots) Request(id string, annotate bool) error {
	select {
	case s.waiting <- snapshotRequest{id: id, annotate: annotate}:
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
		case r := <-s.waiting:
			s.answer(r, f, msg)
		default:
			return
		}
	}
}

func (s *Snapshots) answer(r snapshotRequest, f *pipeline.Frame, msg *payload.Prediction) {
	id := r.id
	topic := s.env.Topic("cameras/" + s.camera + "/snapshot")
	detail := map[string]string{"topic": topic}
	maxBytes := s.env.ImageBytes(SnapshotMaxBytes, 1)
	var jpeg []byte
	var err error
	switch {
	case r.annotate && msg != nil:
		jpeg, err = preprocess.EncodeMarkedJPEG(f.Mat(), Marks(msg, f.Bounds()), 0, 90, maxBytes)
		detail["annotated"] = "true"
	case r.annotate:
		jpeg, err = preprocess.EncodeJPEG(f.Mat(), image.Rectangle{}, 90, maxBytes)
		detail["annotated"] = "false"
		detail["annotation"] = "sent without boxes: " + notProcessed(f.Err)
	default:
		jpeg, err = preprocess.EncodeJPEG(f.Mat(), image.Rectangle{}, 90, maxBytes)
	}
	if err != nil {
		s.env.Result(id, payload.CmdSnapshot, err, nil)
		return
	}
	b := f.Bounds()
	snap := payload.Snapshot{Schema: payload.Schema, Agent: s.env.Agent, Camera: s.camera, CommandID: id,
		Boot: s.env.Boot, Captured: f.Captured, Width: b.Dx(), Height: b.Dy(), JPEG: base64.StdEncoding.EncodeToString(jpeg)}
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

// notProcessed says why a frame has no prediction to draw (err is the frame's Err), for a
// snapshot's detail.
func notProcessed(err error) string {
	switch {
	case errors.Is(err, pipeline.ErrGated):
		return "the quality gate kept the frame from the models"
	case errors.Is(err, pipeline.ErrUnchanged):
		return "the motion gate kept the frame from the models: the picture had not changed"
	case err != nil:
		return "the models failed on the frame"
	}
	return "the frame has no prediction"
}
