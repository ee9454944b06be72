package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/llm"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/preprocess"
)

// fallback asks the LLM about low-confidence classifications, in its own goroutine, within
// a budget of calls; an answer is published as a follow-up, and a disagreement as a sample.
type fallback struct {
	client *llm.Client
	jobs   chan llmJob
	done   chan struct{}
	budget *sampling.Limiter
	mu     sync.Mutex // guards budget

	asked, answered, agreed, invalid, outside, failed, overBudget, dropped atomic.Uint64
}

// llmJob is one question: a crop, what the classifier said, and where it came from.
type llmJob struct {
	run       *cameraRun
	msg       *payload.Prediction
	detection int // -1: the whole frame
	tags      []string
	prompt    string
	jpeg      []byte
	size      image.Point
	crop      *payload.Box
	modelTag  string
	modelProb float32
}

func (a *Agent) startFallback() {
	c := a.c().LLM
	if !c.Enabled {
		return
	}
	a.llm = &fallback{
		client: &llm.Client{Endpoint: c.Endpoint, Model: c.Model, Key: os.Getenv(c.KeyEnv), KeyHeader: c.KeyHeader, HTTP: &http.Client{Timeout: c.Timeout}},
		jobs:   make(chan llmJob, c.Queue),
		done:   make(chan struct{}),
		budget: sampling.NewLimiter(c.PerMinute, c.PerHour),
	}
	if a.llm.client.Key == "" {
		a.log.Warn("LLM fallback without a key: nothing in the environment variable", "key_env", c.KeyEnv)
	}
	go func() {
		defer close(a.llm.done)
		for j := range a.llm.jobs {
			a.ask(j)
		}
	}()
}

// stopFallback lets the calls in flight finish and stops the goroutine.
func (a *Agent) stopFallback() {
	if a.llm != nil {
		close(a.llm.jobs)
		<-a.llm.done
	}
}

// askLLM queues a question for every classification of msg that stays under its model's
// threshold, while the budget lasts. It runs on the camera's goroutine and never waits.
func (a *Agent) askLLM(r *cameraRun, f *camera.Frame, msg *payload.Prediction) {
	if a.llm == nil {
		return
	}
	consider := func(det int, c *payload.Classification, region image.Rectangle) {
		mc, ok := a.c().Models[c.Model]
		if !ok || mc.LLM.Prompt == "" || len(c.Predictions) == 0 || float64(c.Predictions[0].Probability) >= mc.LLM.Below {
			return
		}
		a.llm.mu.Lock()
		allowed := a.llm.budget.Allow(time.Now())
		a.llm.mu.Unlock()
		if !allowed {
			a.llm.overBudget.Add(1)
			return
		}
		jpeg, err := preprocess.EncodeJPEG(f.Mat(), region, 85, a.c().LLM.MaxImageKB<<10)
		if err != nil {
			a.llm.failed.Add(1)
			return
		}
		tags := mc.LLM.Tags
		if len(tags) == 0 {
			for _, t := range c.Predictions {
				tags = append(tags, t.TagName)
			}
		}
		full := f.Bounds()
		fw, fh := float32(full.Dx()), float32(full.Dy())
		j := llmJob{run: r, msg: msg, detection: det, tags: tags, prompt: mc.LLM.Prompt, jpeg: jpeg, size: region.Size(),
			crop:     &payload.Box{Left: float32(region.Min.X) / fw, Top: float32(region.Min.Y) / fh, Width: float32(region.Dx()) / fw, Height: float32(region.Dy()) / fh},
			modelTag: c.Predictions[0].TagName, modelProb: c.Predictions[0].Probability}
		select {
		case a.llm.jobs <- j:
		default:
			a.llm.dropped.Add(1)
		}
	}
	if len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox == nil { // classifier alone
		ref := msg.Models[len(msg.Models)-1]
		consider(-1, &payload.Classification{Model: ref.Name, Iteration: ref.Iteration, Predictions: msg.Predictions}, f.Bounds())
		return
	}
	for i := range msg.Predictions {
		if c := msg.Predictions[i].Classification; c != nil {
			consider(i, c, a.sampleRegion(r, f, msg, i))
		}
	}
}

// ask calls the LLM for one job and publishes what it says.
func (a *Agent) ask(j llmJob) {
	a.llm.asked.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), a.c().LLM.Timeout)
	defer cancel()
	start := time.Now()
	ans, err := a.llm.client.Ask(ctx, j.prompt, j.tags, j.jpeg)
	switch {
	case errors.Is(err, llm.ErrOutsideTag):
		a.llm.outside.Add(1)
	case errors.Is(err, llm.ErrInvalid):
		a.llm.invalid.Add(1)
	case err != nil:
		a.llm.failed.Add(1)
	}
	if err != nil {
		a.log.Warn("LLM fallback: no usable answer", "camera", j.run.cam.Name(), "prediction", j.msg.ID, "err", err)
		return
	}
	a.llm.answered.Add(1)
	agrees := ans.Tag == j.modelTag
	if agrees {
		a.llm.agreed.Add(1)
	}
	fu := payload.FollowUp{Schema: payload.Schema, ID: newID(), Agent: a.c().Agent.ID, Camera: j.run.cam.Name(), Boot: a.boot,
		Created: time.Now().UTC(), PredictionID: j.msg.ID, FrameID: j.msg.FrameID, Source: "llm", Model: a.c().LLM.Model,
		Tag: ans.Tag, Reason: ans.Reason, ModelTag: j.modelTag, ModelProbability: j.modelProb, Agrees: agrees,
		LatencyMs: ms(time.Since(start))}
	if j.detection >= 0 {
		d := j.detection
		fu.Detection = &d
	}
	body, _ := json.Marshal(fu)
	a.pub.Send(publish.Message{Topic: a.Topic("cameras/" + j.run.cam.Name() + "/followups"), QoS: 1, Payload: body, Class: spool.Predictions})
	if agrees {
		return
	}
	s := &payload.Sample{Schema: payload.Schema, ID: newID(), Agent: a.c().Agent.ID, Camera: j.run.cam.Name(), Boot: a.boot,
		Created: time.Now().UTC(), Reason: "llm", Detail: fmt.Sprintf("the LLM says %s (%s); the model said %s %.3f", ans.Tag, ans.Reason, j.modelTag, j.modelProb),
		PredictionID: j.msg.ID, FrameID: j.msg.FrameID, Captured: j.msg.Captured, Models: j.msg.Models,
		Crop: &payload.Image{JPEG: base64.StdEncoding.EncodeToString(j.jpeg), Width: j.size.X, Height: j.size.Y, Box: j.crop}}
	if j.detection >= 0 {
		d := j.detection
		s.Detection = &d
		p := j.msg.Predictions[d]
		s.Prediction = &p
	}
	a.sendSample(j.run, s)
}

func (f *fallback) stats() *payload.LLMStats {
	if f == nil {
		return nil
	}
	return &payload.LLMStats{Asked: f.asked.Load(), Answered: f.answered.Load(), Agreed: f.agreed.Load(), Invalid: f.invalid.Load(),
		OutsideTags: f.outside.Load(), Failed: f.failed.Load(), OverBudget: f.overBudget.Load(), Dropped: f.dropped.Load()}
}
