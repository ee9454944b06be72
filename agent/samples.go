package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"sync"
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

// ring keeps one camera's recent frames with their predictions, so that an operator's
// correction can be answered with the image. It owns the frames it holds and closes them
// when they leave.
type ring struct {
	cfg   configs.Ring
	mu    sync.Mutex
	items []ringItem // oldest first
	bytes int64
}

type ringItem struct {
	f     *camera.Frame
	msg   *payload.Prediction
	bytes int64
}

// push keeps f (taking ownership) with its prediction, and lets the oldest frames go until
// the bounds hold.
func (r *ring) push(f *camera.Frame, msg *payload.Prediction) {
	b := f.Bounds()
	m := f.Mat()
	size := int64(b.Dx() * b.Dy() * m.Channels())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, ringItem{f: f, msg: msg, bytes: size})
	r.bytes += size
	maxBytes := int64(r.cfg.MaxMB) << 20
	for len(r.items) > 1 && (len(r.items) > r.cfg.Frames || r.bytes > maxBytes || time.Since(r.items[0].msg.Captured) > r.cfg.MaxAge) {
		r.drop()
	}
}

func (r *ring) drop() {
	r.items[0].f.Close()
	r.bytes -= r.items[0].bytes
	r.items[0] = ringItem{}
	r.items = r.items[1:]
}

// with calls fn, under the ring's lock, with the frame and prediction of prediction id; it
// reports false when the ring no longer (or never) held it.
func (r *ring) with(id string, fn func(f *camera.Frame, msg *payload.Prediction)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.items) - 1; i >= 0; i-- {
		it := r.items[i]
		if it.msg.ID == id {
			if time.Since(it.msg.Captured) > r.cfg.MaxAge {
				return false
			}
			fn(it.f, it.msg)
			return true
		}
	}
	return false
}

// close frees every frame.
func (r *ring) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.items) > 0 {
		r.drop()
	}
}

// sampleRules runs the sampling rules on a processed frame and sends what they admit. It
// runs on the camera's goroutine.
func (a *Agent) sampleRules(r *cameraRun, f *camera.Frame, msg *payload.Prediction) {
	if r.sampler == nil {
		return
	}
	for _, c := range r.sampler.Check(msg) {
		region := a.sampleRegion(r, f, msg, c.Detection)
		if !r.sampler.Admit(c.Reason, r.hasher.DHash(f.Mat(), region), time.Now()) {
			continue
		}
		s := a.newSample(r, f, msg, c.Detection, region)
		s.Reason, s.Detail = c.Reason, c.Detail
		a.sendSample(r, s)
	}
}

// sampleRegion is the pixel region a sample shows: the padded crop of a detection, or the
// whole frame.
func (a *Agent) sampleRegion(r *cameraRun, f *camera.Frame, msg *payload.Prediction, det int) image.Rectangle {
	full := f.Bounds()
	if det < 0 || det >= len(msg.Predictions) || msg.Predictions[det].BoundingBox == nil {
		return full
	}
	b := msg.Predictions[det].BoundingBox
	return preprocess.CropRect(full, full.Dx(), full.Dy(), b.Left, b.Top, b.Width, b.Height, float32(r.cfg.Pipeline.CropPadding))
}

// newSample builds a sample of detection det (or the whole frame) with its images.
func (a *Agent) newSample(r *cameraRun, f *camera.Frame, msg *payload.Prediction, det int, region image.Rectangle) *payload.Sample {
	s := &payload.Sample{Schema: payload.Schema, ID: newID(), Agent: a.c().Agent.ID, Camera: r.cam.Name(), Boot: a.boot,
		Created: time.Now().UTC(), FrameID: msg.FrameID, Captured: msg.Captured, Models: msg.Models}
	if msg.FrameID > 0 { // published: dashboards know it by this id
		s.PredictionID = msg.ID
	}
	switch {
	case det >= 0 && det < len(msg.Predictions):
		d := det
		s.Detection = &d
		p := msg.Predictions[det]
		s.Prediction = &p
	case len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox == nil: // classifier alone: its tags
		top := msg.Predictions[0]
		ref := msg.Models[len(msg.Models)-1]
		s.Prediction = &payload.Tag{Probability: top.Probability, TagName: top.TagName,
			Classification: &payload.Classification{Model: ref.Name, Iteration: ref.Iteration, Predictions: msg.Predictions}}
	}
	sc := a.c().Samples
	full := f.Bounds()
	images := 1
	if sc.FullFrame && region != full {
		images = 2
	}
	maxBytes := a.imageBytes(sc.MaxImageKB<<10, images)
	crop, err := preprocess.EncodeJPEG(f.Mat(), region, sc.JPEGQuality, maxBytes)
	if err != nil {
		s.ImageOmitted = true
	} else {
		s.Crop = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(crop), Width: region.Dx(), Height: region.Dy()}
		if region != full {
			fw, fh := float32(full.Dx()), float32(full.Dy())
			s.Crop.Box = &payload.Box{Left: float32(region.Min.X) / fw, Top: float32(region.Min.Y) / fh, Width: float32(region.Dx()) / fw, Height: float32(region.Dy()) / fh}
		}
	}
	if sc.FullFrame && region != full {
		if whole, err := preprocess.EncodeJPEG(f.Mat(), full, sc.JPEGQuality, maxBytes); err == nil {
			s.Frame = &payload.Image{JPEG: base64.StdEncoding.EncodeToString(whole), Width: full.Dx(), Height: full.Dy()}
		} else {
			s.ImageOmitted = true
		}
	}
	return s
}

func (a *Agent) sendSample(r *cameraRun, s *payload.Sample) {
	body, err := json.Marshal(s)
	if err != nil {
		a.log.Error("sample not encoded", "camera", r.cam.Name(), "err", err)
		return
	}
	a.pub.Send(publish.Message{Topic: a.Topic("cameras/" + r.cam.Name() + "/samples"), QoS: 1, Payload: body, Class: spool.Samples})
	r.samples.add(s.Reason)
}

// onFeedback takes an operator's correction from <prefix>/feedback and answers it with a
// confirmed misclassification sample, or an error result.
func (a *Agent) onFeedback(raw []byte) {
	fb, err := payload.ParseFeedback(raw)
	if err != nil {
		a.log.Warn("feedback refused", "id", fb.ID, "err", err)
		a.result(fb.ID, "feedback", err, nil)
		return
	}
	for _, r := range a.runsNow() {
		var s *payload.Sample
		var serr error
		found := r.ring.with(fb.PredictionID, func(f *camera.Frame, msg *payload.Prediction) {
			s, serr = a.operatorSample(r, f, msg, fb)
		})
		if !found {
			continue
		}
		if serr != nil {
			a.result(fb.ID, "feedback", serr, nil)
			return
		}
		a.sendSample(r, s)
		a.result(fb.ID, "feedback", nil, map[string]string{"sampleId": s.ID, "camera": r.cam.Name()})
		return
	}
	rc := a.c().Ring
	a.result(fb.ID, "feedback", fmt.Errorf("prediction %q is unknown or too old: each camera keeps its last %d frames, for at most %s (ring)", fb.PredictionID, rc.Frames, rc.MaxAge), nil)
}

func (a *Agent) operatorSample(r *cameraRun, f *camera.Frame, msg *payload.Prediction, fb payload.Feedback) (*payload.Sample, error) {
	det := -1
	boxes := len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox != nil
	switch {
	case boxes && fb.Detection == nil && len(msg.Predictions) == 1:
		det = 0
	case boxes && fb.Detection == nil:
		return nil, fmt.Errorf("prediction %q has %d detections: say which one is wrong in \"detection\" (0-%d)", msg.ID, len(msg.Predictions), len(msg.Predictions)-1)
	case boxes && *fb.Detection >= len(msg.Predictions):
		return nil, fmt.Errorf("prediction %q has %d detections; \"detection\" %d is not one of them", msg.ID, len(msg.Predictions), *fb.Detection)
	case boxes:
		det = *fb.Detection
	case fb.Detection != nil:
		return nil, fmt.Errorf("prediction %q has no detections; leave \"detection\" out", msg.ID)
	case len(msg.Predictions) == 0:
		return nil, errors.New("the prediction found nothing to correct")
	}
	s := a.newSample(r, f, msg, det, a.sampleRegion(r, f, msg, det))
	s.Reason, s.Detail = sampling.Operator, "corrected by "+orUnknown(fb.Operator)
	// evidence for a candidate iteration: was it right where the active one was corrected?
	var c *payload.Classification
	var sh *payload.ShadowAnswer
	if s.Prediction != nil {
		c = s.Prediction.Classification
	}
	if c != nil {
		sh = c.Shadow
	}
	if det < 0 && msg.Shadow != nil {
		sh = msg.Shadow
	}
	if sh != nil && c != nil {
		if stage, ok := a.stageNamed(c.Model); ok {
			stage.shadowReview(sh.TagName, fb.Tag)
		}
	}
	s.CorrectTag, s.Operator, s.Note, s.FeedbackID = fb.Tag, fb.Operator, fb.Note, fb.ID
	return s, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an operator"
	}
	return s
}

// collectImages saves the frame, or each detection's crop, into the camera's data set.
func (a *Agent) collectImages(r *cameraRun, f *camera.Frame, msg *payload.Prediction) {
	col := r.cfg.Collect
	entry := func(p *payload.Tag) collect.Entry {
		e := collect.Entry{SampleID: newID(), Agent: a.c().Agent.ID, Camera: r.cam.Name(), Reason: "collect",
			PredictionID: msg.ID, Captured: msg.Captured, Models: msg.Models, Prediction: p}
		if p != nil {
			e.Region = p.BoundingBox
		}
		return e
	}
	var regions []image.Rectangle
	var entries []collect.Entry
	if col.What == "crops" {
		for i := range msg.Predictions {
			if msg.Predictions[i].BoundingBox == nil {
				continue
			}
			p := msg.Predictions[i]
			regions = append(regions, a.sampleRegion(r, f, msg, i))
			entries = append(entries, entry(&p))
		}
	} else {
		regions = append(regions, f.Bounds())
		entries = append(entries, entry(nil))
	}
	for i, region := range regions {
		jpeg, err := preprocess.EncodeJPEG(f.Mat(), region, col.JPEGQuality, 0)
		if err != nil {
			a.log.Warn("image not saved", "camera", r.cam.Name(), "err", err)
			continue
		}
		_, _, err = r.dataset.AddJPEG(entries[i], jpeg, nil)
		switch {
		case errors.Is(err, collect.ErrQuota):
			if !r.quotaWarned {
				r.quotaWarned = true
				a.log.Warn("data collection stopped: the quota is reached", "camera", r.cam.Name(), "dir", col.Dir, "max_mb", col.MaxMB)
			}
			return
		case err != nil:
			a.log.Error("image not saved", "camera", r.cam.Name(), "dir", col.Dir, "err", err)
			return
		}
	}
}

// payloadOverhead is room kept for a message's JSON around its base64 images.
const payloadOverhead = 8 << 10

// imageBytes is the most bytes each of n JPEG images in one message may take: limit, or
// less when mqtt.max_payload_kb would not take n such images (base64 makes 4 bytes of 3).
func (a *Agent) imageBytes(limit, n int) int {
	payloadMax := a.c().MQTT.MaxPayloadKB << 10
	if payloadMax <= 0 {
		return limit
	}
	return min(limit, max(1, (payloadMax-payloadOverhead)*3/4/n))
}
