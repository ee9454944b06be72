package agent

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/configs"
)

// sampleStore is where the samples the agent sent are kept for late corrections: the
// station's review queue when the station is on, else the store of samples.store; nil when
// neither keeps them. what names it and its bounds, for the messages.
type sampleStore struct {
	q    *review.Queue
	what string
}

// openSampleStore keeps every sample the agent sends, for corrections that come after its
// frame left the ring: in the station's review queue when it is open (one folder, so that an
// answer through either shows in the other), else in samples.store.
func (a *Agent) openSampleStore(cfg *configs.Config) error {
	if a.review != nil {
		r := cfg.UI.Review
		a.kept = &sampleStore{q: a.review, what: fmt.Sprintf("the review queue, ui.review: %d MB, %s", r.MaxMB, r.MaxAge)}
		return nil
	}
	st := cfg.Samples.Store
	if !st.Enabled {
		return nil
	}
	q, err := review.OpenStore(st.Dir, int64(st.MaxMB)<<20, st.MaxAge)
	if err != nil {
		return fmt.Errorf("samples.store.dir: %w", err)
	}
	q.SetLabels(func(agent, model string) []string {
		if agent != cfg.Agent.ID {
			return nil
		}
		return a.labels(model)
	})
	a.kept = &sampleStore{q: q, what: fmt.Sprintf("samples.store: %d MB, %s", st.MaxMB, st.MaxAge)}
	a.keepSamples(q, "samples")
	return nil
}

// keepSamples has every sample the agent sends written into q, off the camera loops.
func (a *Agent) keepSamples(q *review.Queue, component string) {
	a.sampleWriter = newSampleWriter(q, a.log.With("component", component))
	a.env.Review = a.sampleWriter.keep
}

// storedSample finds the stored sample a correction names: by sampleId, else by its part,
// else by its prediction (and detection). review.ErrNotFound when the store does not hold it. A sample
// named with a prediction must be of it (with a part, the prediction is the part's).
func (a *Agent) storedSample(fb payload.Feedback) (review.Stored, error) {
	if a.kept == nil {
		return review.Stored{}, fmt.Errorf("no sample store (samples.store.enabled is off): %w", review.ErrNotFound)
	}
	st, err := a.findStored(fb)
	if errors.Is(err, review.ErrNotFound) { // a sample sent a moment ago may be on its way to the disk still
		if !a.sampleWriter.flush(flushWait) {
			return review.Stored{}, fmt.Errorf("the sample store's disk has not written the samples sent in the last moments within %v: send the correction again shortly, and check the disk of %s", flushWait, a.kept.what)
		}
		st, err = a.findStored(fb)
	}
	if err != nil {
		return st, err
	}
	if fb.SampleID != "" && fb.PartID == "" && fb.PredictionID != "" && st.Item.PredictionID != fb.PredictionID {
		return st, fmt.Errorf("sample %q is of prediction %q, not %q: name one of them, or both as the sample says", fb.SampleID, st.Item.PredictionID, fb.PredictionID)
	}
	return st, nil
}

// findStored looks the sample of a correction up in the store as it is on disk now.
func (a *Agent) findStored(fb payload.Feedback) (review.Stored, error) {
	id, err := fb.SampleID, error(nil)
	switch {
	case id != "":
	case fb.PartID != "":
		id, err = a.kept.q.FindPart(fb.PartID)
	default:
		id, err = a.kept.q.FindPrediction(fb.PredictionID, fb.Detection)
	}
	if err != nil {
		return review.Stored{}, err
	}
	return a.kept.q.Stored(id)
}

// tooOld is the refusal of a correction neither the ring nor the store can answer.
func (a *Agent) tooOld(fb payload.Feedback) error {
	rc := a.c().Ring
	what := fmt.Sprintf("prediction %q", fb.PredictionID)
	if fb.SampleID != "" {
		what = fmt.Sprintf("sample %q", fb.SampleID)
	}
	store := "and no sample store keeps the samples sent (samples.store.enabled is off)"
	if a.kept != nil {
		store = "nor in the sample store (" + a.kept.what + ")"
	}
	return fmt.Errorf("%s is unknown or too old: not in the ring (each camera keeps its last %d frames, for at most %s) %s; send corrections sooner, or raise ring.max_age and the store's max_mb and max_age",
		what, rc.Frames, rc.MaxAge, store)
}

// correctStored answers a correction from a stored sample (its frame has left the ring):
// the operator sample is made of the stored images and what the models said then. A pending
// sample is answered in the store, so that the station shows it answered; one answered
// already (by the station, whose correction this may be) takes only the same tag. A shadow
// candidate is not credited: it may have changed since the sample was made.
func (a *Agent) correctStored(fb payload.Feedback, st review.Stored) {
	it := st.Item
	r := a.runOf(it.Camera)
	if r == nil {
		a.env.Result(fb.ID, "feedback", fmt.Errorf("sample %s is of camera %q, which this agent no longer has: add the camera back to correct its samples", it.ID, it.Camera), nil)
		return
	}
	tag, err := a.storedTag(it, fb.Tag)
	if err != nil {
		a.env.Result(fb.ID, "feedback", err, nil)
		return
	}
	if v := it.Answer; v != nil && !strings.EqualFold(v.Tag, tag) {
		a.env.Result(fb.ID, "feedback", fmt.Errorf("sample %s was answered already (%s %q by %s, %s): one answer a sample; correct it in the data set",
			it.ID, v.Kind, v.Tag, orSomeone(v.Operator), v.Time.Format(time.RFC3339)), nil)
		return
	}
	if it.Answer == nil {
		if _, err := a.kept.q.Answer(it.ID, review.Answer{Kind: review.Correct, Tag: tag, Operator: fb.Operator, Note: fb.Note}); err != nil {
			a.env.Result(fb.ID, "feedback", err, nil)
			return
		}
	}
	s := &payload.Sample{Schema: payload.Schema, ID: payload.NewID(), Agent: it.Agent, Camera: it.Camera, Boot: a.boot,
		Created: time.Now().UTC(), Reason: sampling.Operator, Detail: "corrected by " + orSomeone(fb.Operator),
		PredictionID: it.PredictionID, FrameID: it.FrameID, Detection: it.Detection, PartID: it.PartID, TrackID: it.TrackID,
		Captured: it.Captured, Models: it.Models, Prediction: it.Prediction,
		Crop:       &payload.Image{JPEG: base64.StdEncoding.EncodeToString(st.Crop), Width: it.CropWidth, Height: it.CropHeight, Box: it.Crop},
		CorrectTag: tag, Operator: fb.Operator, Note: fb.Note, FeedbackID: fb.ID}
	if it.HasFrame {
		s.Frame = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(st.Frame), Width: it.FrameWidth, Height: it.FrameHeight}
	}
	r.samples.Send(s)
	a.env.Result(fb.ID, "feedback", nil, map[string]string{"sampleId": s.ID, "camera": it.Camera, "storedSample": it.ID, "predictionId": it.PredictionID})
}

// answerStored marks the stored sample of a correction taken from the ring answered, so that
// the station does not offer it for review again; a sample not stored, or answered already,
// is left as it is.
func (a *Agent) answerStored(fb payload.Feedback, s *payload.Sample) {
	if a.kept == nil {
		return
	}
	find := func() (string, error) {
		if fb.SampleID != "" {
			return fb.SampleID, nil
		}
		return a.kept.q.FindPrediction(s.PredictionID, s.Detection)
	}
	id, err := find()
	if errors.Is(err, review.ErrNotFound) { // the sample corrected may be on its way to the disk still
		if !a.sampleWriter.flush(flushWait) {
			a.log.Warn("correction not recorded in the sample store, whose disk is behind; the station may still offer the sample", "component", "samples", "sample", s.ID)
			return
		}
		id, err = find()
	}
	if err != nil {
		return
	}
	st, err := a.kept.q.Stored(id)
	if err != nil || st.Item.Answer != nil {
		return
	}
	if _, err := a.kept.q.Answer(id, review.Answer{Kind: review.Correct, Tag: s.CorrectTag, Operator: fb.Operator, Note: fb.Note}); err != nil {
		a.log.Warn("correction not recorded in the sample store; the station may still offer the sample", "component", "samples", "sample", id, "err", err)
	}
}

// storedTag is tag as spelled by a model the stored sample is about, or an error that lists
// those models' tags; as Samples.Correction checks a correction from the ring.
func (a *Agent) storedTag(it review.Item, tag string) (string, error) {
	var known []string
	for _, m := range it.TagModels {
		tags := a.labels(m)
		if tags == nil {
			continue
		}
		if t, ok := configs.TagIn(tags, tag); ok {
			return t, nil
		}
		known = append(known, fmt.Sprintf("model %s has %s", m, strings.Join(tags, ", ")))
	}
	if len(known) > 0 {
		return "", fmt.Errorf("tag %q is not a tag of the model this correction is about (%s): send one of those tags, or retrain the model with the new tag first", tag, strings.Join(known, "; "))
	}
	for _, t := range append([]string{it.Tag}, it.Listed...) { // spelled as the sample spelled it
		if strings.EqualFold(t, tag) {
			return t, nil
		}
	}
	return strings.TrimSpace(tag), nil
}

// runOf is the running camera named; nil when there is none.
func (a *Agent) runOf(camera string) *cameraRun {
	for _, r := range a.runsNow() {
		if r.cam.Name() == camera {
			return r
		}
	}
	return nil
}

func orSomeone(s string) string {
	if s == "" {
		return "an operator"
	}
	return s
}
