package steps

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// collectStep saves frames, or each detection's crop, into the camera's data set
// (cameras[].collect), every so often or on each trigger, up to the set's quota.
type collectStep struct {
	cfg         configs.Collect
	agent       string
	camera      string
	samples     *Samples // for the crop regions
	ds          *dataset.Dataset
	log         *slog.Logger
	last        time.Time
	quotaWarned bool
}

// NewCollect opens the data set of cfg and returns the collect step of camera, or nil (and no
// error) when collection is off. The step closes the data set.
func NewCollect(cfg configs.Collect, agent, camera string, samples *Samples, log *slog.Logger) (pipeline.Step, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	ds, err := dataset.Open(cfg.Dir)
	if err != nil {
		return nil, err
	}
	ds.SetQuota(int64(cfg.MaxMB) << 20)
	return &collectStep{cfg: cfg, agent: agent, camera: camera, samples: samples, ds: ds, log: log}, nil
}

func (s *collectStep) Name() string { return "collect" }

func (s *collectStep) Close() { s.ds.Close() }

func (s *collectStep) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil || msg.Quality.Gate == "fail" {
		return
	}
	if (f.Trigger != nil && s.cfg.OnTrigger) || (s.cfg.Every > 0 && time.Since(s.last) >= s.cfg.Every) {
		s.last = time.Now()
		s.save(f, msg)
	}
}

// save writes the frame, or each detection's crop, into the data set.
func (s *collectStep) save(f *pipeline.Frame, msg *payload.Prediction) {
	entry := func(p *payload.Tag) dataset.Entry {
		e := dataset.Entry{SampleID: payload.NewID(), Agent: s.agent, Camera: s.camera, Reason: "collect",
			PredictionID: msg.ID, Captured: msg.Captured, Models: msg.Models, Prediction: p}
		if p != nil {
			e.Region = p.BoundingBox
		}
		return e
	}
	var regions []image.Rectangle
	var entries []dataset.Entry
	if s.cfg.What == "crops" {
		for i := range msg.Predictions {
			if msg.Predictions[i].BoundingBox == nil {
				continue
			}
			p := msg.Predictions[i]
			regions = append(regions, s.samples.Region(f.Frame, msg, i))
			entries = append(entries, entry(&p))
		}
	} else {
		regions = append(regions, f.Bounds())
		entries = append(entries, entry(nil))
	}
	for i, region := range regions {
		jpeg, err := preprocess.EncodeJPEG(f.Mat(), region, s.cfg.JPEGQuality, 0)
		if err != nil {
			s.log.Warn("image not saved", "camera", s.camera, "err", err)
			continue
		}
		_, _, err = s.ds.AddJPEG(entries[i], jpeg, nil)
		switch {
		case errors.Is(err, dataset.ErrQuota):
			if !s.quotaWarned {
				s.quotaWarned = true
				s.log.Warn("data collection stopped: the quota is reached", "camera", s.camera, "dir", s.cfg.Dir, "max_mb", s.cfg.MaxMB)
			}
			return
		case err != nil:
			s.log.Error("image not saved", "camera", s.camera, "dir", s.cfg.Dir, "err", err)
			return
		}
	}
}
