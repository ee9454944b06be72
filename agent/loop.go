package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/camera"
)

// loop processes one camera's frames, as its trigger mode says, until the camera ends or ctx
// ends. The frames go through the pipeline one ahead (see Stream).
func (a *Agent) loop(ctx context.Context, r *cameraRun) {
	var next time.Time // earliest start of the next frame (interval, max_fps)
	topic := a.Topic("cameras/" + r.cam.Name() + "/predictions")
	trig, err := Stream(ctx, r.pl, func(ctx context.Context) (*camera.Frame, *trigger, error) {
		switch r.cfg.Trigger {
		case "interval":
			if !sleepUntil(ctx, next) {
				return nil, nil, ctx.Err()
			}
			next = time.Now().Add(r.cfg.Interval)
			f, err := r.cam.NextAfter(ctx, time.Now())
			return f, nil, err
		case "mqtt":
			select {
			case t := <-r.triggers:
				f, err := r.cam.NextAfter(ctx, t.at)
				return f, &t, err
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		default:
			if r.cfg.MaxFPS > 0 {
				if !sleepUntil(ctx, next) {
					return nil, nil, ctx.Err()
				}
				next = time.Now().Add(time.Duration(float64(time.Second) / r.cfg.MaxFPS))
			}
			f, err := r.cam.Next(ctx)
			return f, nil, err
		}
	}, func(f *camera.Frame, trig *trigger, msg *payload.Prediction, err error) {
		a.handle(r, topic, f, trig, msg, err)
	})
	if trig != nil {
		a.result(trig.id, payload.CmdTrigger, fmt.Errorf("camera %q delivered no frame: %v", r.cam.Name(), err), nil)
	}
	if errors.Is(err, io.EOF) && ctx.Err() == nil {
		a.log.Info("camera finished: no more frames", "camera", r.cam.Name(), "state", r.cam.Status().State)
	}
}

// handle does what follows the models for one frame: snapshots, samples, the LLM fallback,
// collection, the ring, publishing on topic and the trigger's result. It owns f.
func (a *Agent) handle(r *cameraRun, topic string, f *camera.Frame, trig *trigger, msg *payload.Prediction, err error) {
	switch {
	case errors.Is(err, errGated):
		r.gated.Add(1)
		a.serveSnapshots(r, f, nil)
		a.sampleRules(r, f, msg)
		f.Close()
		if trig != nil {
			a.result(trig.id, payload.CmdTrigger, err, nil)
		}
		return
	case err != nil:
		a.serveSnapshots(r, f, nil)
		f.Close()
		if n := r.failed.Add(1); n == 1 || n%100 == 0 {
			a.log.Error("frame not processed", "camera", r.cam.Name(), "err", err, "failures", n)
		}
		if trig != nil {
			a.result(trig.id, payload.CmdTrigger, err, nil)
		}
		return
	}
	if trig != nil {
		msg.TriggerID = trig.id
	}
	a.serveSnapshots(r, f, msg)
	a.sampleRules(r, f, msg)
	a.askLLM(r, f, msg)
	if r.dataset != nil && msg.Quality.Gate != "fail" {
		col := r.cfg.Collect
		if (trig != nil && col.OnTrigger) || (col.Every > 0 && time.Since(r.lastCollect) >= col.Every) {
			r.lastCollect = time.Now()
			a.collectImages(r, f, msg)
		}
	}
	r.ring.push(f, msg) // the ring owns f now
	r.count(msg)
	body, err := json.Marshal(msg)
	if err != nil {
		a.log.Error("prediction not encoded", "camera", r.cam.Name(), "err", err)
		return
	}
	a.pub.Send(publish.Message{Topic: topic, QoS: byte(a.c().MQTT.QoS), Payload: body, Class: spool.Predictions, Camera: r.cam.Name()})
	a.observe(r, msg)
	if trig != nil {
		a.result(trig.id, payload.CmdTrigger, nil, map[string]string{"predictionId": msg.ID, "frameId": fmt.Sprint(msg.FrameID)})
	}
	if a.c().Agent.LogPredictions {
		a.log.Info("prediction", "camera", r.cam.Name(), "frame", msg.FrameID, "ms", msg.LatencyMs.Total, "result", Summary(msg))
	}
}

// sleepUntil waits until t; it reports false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
