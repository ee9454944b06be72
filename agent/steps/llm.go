package steps

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
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// Fallback asks an LLM about low-confidence classifications of every camera, on one goroutine
// of its own, within one budget of calls; an answer is published as a follow-up on
// <prefix>/cameras/<camera>/followups, and a disagreement as a sample. Start runs the
// goroutine, Stop ends it once the calls queued are done.
type Fallback struct {
	env    *Env
	cfg    configs.LLM
	client *llm.Client
	jobs   chan llmJob
	done   chan struct{}
	budget *sampling.Limiter
	mu     sync.Mutex // guards budget

	asked, answered, agreed, invalid, outside, failed, overBudget, dropped atomic.Uint64
}

// llmJob is one question: a crop, what the classifier said, and where it came from.
type llmJob struct {
	samples   *Samples
	camera    string
	msg       *payload.Prediction
	detection int // -1: the whole frame
	tags      []string
	prompt    string
	jpeg      []byte
	size      image.Point
	crop      *payload.Box
	modelTag  string
	modelProb float32
	part      partRef // the tracked part asked about, if any
}

// partRef is the part a question is about: its trackId, the tags above the level asked, and
// where it is; q is nil for a question about one frame.
type partRef struct {
	q     *PartQuestions
	track uint64
	above []string
	box   payload.Box
}

// NewFallback returns the LLM fallback of cfg, or nil when it is off. The key is read from
// the environment variable cfg.KeyEnv.
func NewFallback(env *Env, cfg configs.LLM) *Fallback {
	if !cfg.Enabled {
		return nil
	}
	f := &Fallback{
		env:    env,
		cfg:    cfg,
		client: &llm.Client{Endpoint: cfg.Endpoint, Model: cfg.Model, Key: os.Getenv(cfg.KeyEnv), KeyHeader: cfg.KeyHeader, HTTP: &http.Client{Timeout: cfg.Timeout}},
		jobs:   make(chan llmJob, cfg.Queue),
		done:   make(chan struct{}),
		budget: sampling.NewLimiter(cfg.PerMinute, cfg.PerHour),
	}
	if f.client.Key == "" {
		env.Log.Warn("LLM fallback without a key: nothing in the environment variable", "key_env", cfg.KeyEnv)
	}
	return f
}

// Start runs the goroutine that asks the questions.
func (f *Fallback) Start() {
	if f == nil {
		return
	}
	go func() {
		defer close(f.done)
		for j := range f.jobs {
			f.ask(j)
		}
	}()
}

// Stop lets the calls queued finish and ends the goroutine. No step may queue afterwards.
func (f *Fallback) Stop() {
	if f != nil {
		close(f.jobs)
		<-f.done
	}
}

// Stats returns the fallback's counters for the stats message, or nil when it is off.
func (f *Fallback) Stats() *payload.LLMStats {
	if f == nil {
		return nil
	}
	return &payload.LLMStats{Asked: f.asked.Load(), Answered: f.answered.Load(), Agreed: f.agreed.Load(), Invalid: f.invalid.Load(),
		OutsideTags: f.outside.Load(), Failed: f.failed.Load(), OverBudget: f.overBudget.Load(), Dropped: f.dropped.Load()}
}

// askLLM is the step of one camera: it queues the questions of its frames.
type askLLM struct {
	f       *Fallback
	samples *Samples
	camera  string
	models  map[string]configs.Model // by name: each model's llm prompt, tags and threshold
	parts   *PartQuestions           // the questions about tracked parts, for their decisions
}

// NewLLM returns the LLM step of a camera whose samples are samples, or nil when f is nil
// (the fallback is off). A detection with a trackId is asked about once per part, and the
// answer goes to the part's decision through parts.
func NewLLM(f *Fallback, samples *Samples, camera string, models map[string]configs.Model, parts *PartQuestions) pipeline.Step {
	if f == nil {
		return nil
	}
	return &askLLM{f: f, samples: samples, camera: camera, models: models, parts: parts}
}

func (s *askLLM) Name() string { return "llm" }

// Handle queues a question for every detection (or the whole frame) whose classification,
// at the first level or a routed level after it, stays under its model's llm.below, while
// the budget lasts: about the first such level. A tracked part is asked about once, on a
// frame where it is wholly in view when it comes to be. It never waits.
func (s *askLLM) Handle(_ context.Context, f *pipeline.Frame, msg *payload.Prediction) {
	if f.Err != nil || msg == nil {
		return
	}
	if len(msg.Predictions) > 0 && msg.Predictions[0].BoundingBox == nil { // classifier alone
		var ref payload.ModelRef // the classifier's (the routes' come after it)
		for _, m := range msg.Models {
			if m.Stage == "classifier" {
				ref = m
				break
			}
		}
		top := &payload.Classification{Model: ref.Name, Iteration: ref.Iteration, Predictions: msg.Predictions, Uncertain: msg.Uncertain, Next: msg.Route}
		if c, _ := s.doubt(top); c != nil {
			s.consider(f, msg, -1, c, f.Bounds(), partRef{})
		}
		return
	}
	for i := range msg.Predictions {
		d := &msg.Predictions[i]
		c, level := s.doubt(d.Classification)
		if c == nil {
			continue
		}
		var part partRef
		if d.TrackID != 0 && s.parts != nil && d.BoundingBox != nil {
			if !s.parts.wants(d.TrackID, touchesEdge(msg.Width, msg.Height, *d.BoundingBox)) {
				continue
			}
			part = partRef{q: s.parts, track: d.TrackID, above: above(*d, level), box: *d.BoundingBox}
		}
		s.consider(f, msg, i, c, s.samples.Region(f.Frame, msg, i), part)
	}
}

// doubt is the first level of classification top, or of the levels routed after it, whose
// answer stays under its model's llm.below (with a prompt), and its depth (0: top); nil when
// there is none.
func (s *askLLM) doubt(top *payload.Classification) (*payload.Classification, int) {
	level := 0
	for c := top; c != nil && len(c.Predictions) > 0; c = c.Next {
		if mc, ok := s.models[c.Model]; ok && mc.LLM.Prompt != "" && float64(c.Predictions[0].Probability) < mc.LLM.Below {
			return c, level
		}
		level++
	}
	return nil, 0
}

// above is the tags of detection d above its classification level: the detector's, then
// those of the levels before it.
func above(d payload.Tag, level int) []string {
	path := []string{d.TagName}
	for c := d.Classification; c != nil && len(path) <= level; c = c.Next {
		path = append(path, c.Predictions[0].TagName)
	}
	return path
}

// consider queues the question about classification c (uncertain) of detection det, when
// the budget allows. A part asked about is marked asked only once its question is queued: a
// later frame may ask when this one cannot.
func (s *askLLM) consider(f *pipeline.Frame, msg *payload.Prediction, det int, c *payload.Classification, region image.Rectangle, part partRef) {
	fb := s.f
	mc := s.models[c.Model]
	fb.mu.Lock()
	allowed := fb.budget.Allow(time.Now())
	fb.mu.Unlock()
	if !allowed {
		fb.overBudget.Add(1)
		return
	}
	jpeg, err := preprocess.EncodeJPEG(f.Mat(), region, 85, fb.cfg.MaxImageKB<<10)
	if err != nil {
		fb.failed.Add(1)
		return
	}
	tags := mc.LLM.Tags
	if len(tags) == 0 {
		for _, t := range c.Predictions {
			tags = append(tags, t.TagName)
		}
	}
	j := llmJob{samples: s.samples, camera: s.camera, msg: msg, detection: det, tags: tags, prompt: mc.LLM.Prompt, jpeg: jpeg, size: region.Size(),
		crop: relative(region, f.Bounds()), modelTag: c.Predictions[0].TagName, modelProb: c.Predictions[0].Probability, part: part}
	if part.q != nil { // before the answer can come
		part.q.asking(part.track, payload.PartLLM{State: LLMPending, FrameID: msg.FrameID, PredictionID: msg.ID, Model: c.Model}, part.above, part.box)
	}
	select {
	case fb.jobs <- j:
	default:
		fb.dropped.Add(1)
		if part.q != nil {
			part.q.unask(part.track)
		}
	}
}

// ask calls the LLM for one job and publishes what it says.
func (f *Fallback) ask(j llmJob) {
	f.asked.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()
	start := time.Now()
	ans, err := f.client.Ask(ctx, j.prompt, j.tags, j.jpeg)
	switch {
	case errors.Is(err, llm.ErrOutsideTag):
		f.outside.Add(1)
	case errors.Is(err, llm.ErrInvalid):
		f.invalid.Add(1)
	case err != nil:
		f.failed.Add(1)
	}
	if j.part.q != nil {
		j.part.q.answer(j.part.track, err == nil, ans.Tag, ans.Reason)
	}
	if err != nil {
		f.env.Log.Warn("LLM fallback: no usable answer", "camera", j.camera, "prediction", j.msg.ID, "err", err)
		return
	}
	f.answered.Add(1)
	agrees := ans.Tag == j.modelTag
	if agrees {
		f.agreed.Add(1)
	}
	f.followUp(j, ans, agrees, payload.Ms(time.Since(start)))
	if !agrees {
		j.samples.Send(disagreement(f.env, j, ans))
	}
}

// followUp publishes the LLM's answer to job j.
func (f *Fallback) followUp(j llmJob, ans llm.Answer, agrees bool, ms float64) {
	fu := payload.FollowUp{Schema: payload.Schema, ID: payload.NewID(), Agent: f.env.Agent, Camera: j.camera, Boot: f.env.Boot,
		Created: time.Now().UTC(), PredictionID: j.msg.ID, FrameID: j.msg.FrameID, Source: "llm", Model: f.cfg.Model,
		Tag: ans.Tag, Reason: ans.Reason, ModelTag: j.modelTag, ModelProbability: j.modelProb, Agrees: agrees, LatencyMs: ms}
	if j.detection >= 0 {
		d := j.detection
		fu.Detection = &d
	}
	body, _ := json.Marshal(fu)
	f.env.Pub.Send(publish.Message{Topic: f.env.Topic("cameras/" + j.camera + "/followups"), QoS: 1, Payload: body, Class: spool.Predictions})
}

// disagreement is the sample of a crop where the LLM and the model disagree.
func disagreement(env *Env, j llmJob, ans llm.Answer) *payload.Sample {
	s := &payload.Sample{Schema: payload.Schema, ID: payload.NewID(), Agent: env.Agent, Camera: j.camera, Boot: env.Boot,
		Created: time.Now().UTC(), Reason: "llm", Detail: fmt.Sprintf("the LLM says %s (%s); the model said %s %.3f", ans.Tag, ans.Reason, j.modelTag, j.modelProb),
		PredictionID: j.msg.ID, FrameID: j.msg.FrameID, Captured: j.msg.Captured, Models: j.msg.Models,
		Crop: &payload.Image{JPEG: base64.StdEncoding.EncodeToString(j.jpeg), Width: j.size.X, Height: j.size.Y, Box: j.crop}}
	if j.detection >= 0 {
		d := j.detection
		s.Detection = &d
		p := j.msg.Predictions[d]
		s.Prediction = &p
	}
	return s
}
