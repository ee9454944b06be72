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

// Fallback asks an LLM, on one goroutine of its own, within one budget of calls for every
// camera: about low-confidence classifications (a second opinion: published as a follow-up on
// <prefix>/cameras/<camera>/followups, a disagreement as a sample, and weighed in a part's
// decision), and about the regions that routes send to a model of type: llm (the answer is
// the region's final tag: a follow-up that completes the prediction, or the part's
// decision). Start runs the goroutine, Stop ends it once the calls queued are done.
type Fallback struct {
	env    *Env
	cfg    configs.LLM
	client *llm.Client
	jobs   chan llmJob
	done   chan struct{}
	budget *sampling.Limiter
	day    *sampling.Limiter // llm.per_day; nil: no daily cap
	lost   *sampling.Limiter // the samples of a route's regions the LLM could not answer
	mu     sync.Mutex        // guards budget, day and lost

	asked, answered, agreed, invalid, outside, failed, overBudget, dropped atomic.Uint64
	promptTokens, completionTokens                                         atomic.Uint64
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
	route     string  // the model entry of type: llm that a route sent the region to ("": the fallback)
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
		env: env,
		cfg: cfg,
		client: &llm.Client{Endpoint: cfg.Endpoint, Model: cfg.Model, Key: os.Getenv(cfg.KeyEnv), KeyHeader: cfg.KeyHeader,
			HTTP: &http.Client{Timeout: cfg.Timeout}, Structured: cfg.Structured},
		jobs:   make(chan llmJob, cfg.Queue),
		done:   make(chan struct{}),
		budget: sampling.NewLimiter(cfg.PerMinute, cfg.PerHour),
		lost:   sampling.NewLimiter(lostCap(cfg.PerMinute, 6), lostCap(cfg.PerHour, 60)),
	}
	if cfg.PerDay > 0 {
		f.day = sampling.NewDailyLimiter(cfg.PerDay)
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
	st := &payload.LLMStats{Asked: f.asked.Load(), Answered: f.answered.Load(), Agreed: f.agreed.Load(), Invalid: f.invalid.Load(),
		OutsideTags: f.outside.Load(), Failed: f.failed.Load(), OverBudget: f.overBudget.Load(), Dropped: f.dropped.Load(),
		PromptTokens: f.promptTokens.Load(), CompletionTokens: f.completionTokens.Load()}
	st.Cost = payload.Round((float64(st.PromptTokens)*f.cfg.PromptPrice+float64(st.CompletionTokens)*f.cfg.CompletionPrice)/1000, 6)
	return st
}

// allow reports whether one more call fits the budget now (per minute, hour and day), and
// counts it if so.
func (f *Fallback) allow(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.day != nil && !f.day.Allow(now) {
		return false
	}
	if !f.budget.Allow(now) {
		if f.day != nil {
			f.day.Undo(now)
		}
		return false
	}
	return true
}

// refund takes back the day's count of a call allowed at now but not made (the queue was
// full). The per-minute and per-hour counts stay spent: those windows are short.
func (f *Fallback) refund(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.day != nil {
		f.day.Undo(now)
	}
}

// lostCap is a cap of the samples of unanswered routes: the budget's own when it is lower
// than def, else def (also when the budget has none for that window, per_day alone).
func lostCap(budget, def int) int {
	if budget > 0 && budget < def {
		return budget
	}
	return def
}

// keepLost reports whether the crop of a route's region the LLM could not answer may go out
// as a sample now: at most 6 a minute and 60 an hour (the budget's rates when lower), so
// that an endpoint down or a spent budget does not flood the samples.
func (f *Fallback) keepLost(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lost.Allow(now)
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

// Handle queues a question for every detection (or the whole frame) that a route sent to a
// model of type: llm, and for every one whose classification, at the first level or a
// routed level after it, stays under its model's llm.below, while the budget lasts: about the
// first such level. A tracked part is asked about once, on a frame where it is wholly in
// view when it comes to be. It never waits.
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
		if c, routed := s.routed(top); c != nil {
			s.consider(f, msg, -1, c, f.Bounds(), partRef{}, routed)
		} else if c, _ := s.doubt(top); c != nil {
			s.consider(f, msg, -1, c, f.Bounds(), partRef{}, "")
		}
		return
	}
	for i := range msg.Predictions {
		d := &msg.Predictions[i]
		c, routed := s.routed(d.Classification)
		level := 0
		if c == nil {
			if c, level = s.doubt(d.Classification); c == nil {
				continue
			}
		}
		var part partRef
		if d.TrackID != 0 && s.parts != nil && d.BoundingBox != nil {
			if !s.parts.wants(d.TrackID, touchesEdge(msg.Width, msg.Height, *d.BoundingBox), routed, time.Now()) {
				continue
			}
			path := above(*d, level)
			if routed != "" {
				path = append([]string{d.TagName}, routedPath(d.Classification)...)
			}
			part = partRef{q: s.parts, track: d.TrackID, above: path, box: *d.BoundingBox}
		}
		s.consider(f, msg, i, c, s.samples.Region(f.Frame, msg, i), part, routed)
	}
}

// routed is the level of classification top that a route sent to a model of type: llm (its
// predictions are empty: the LLM names the tag), with the tag that routed it; nil when none.
func (s *askLLM) routed(top *payload.Classification) (*payload.Classification, string) {
	for c := top; c != nil && len(c.Predictions) > 0; c = c.Next {
		if n := c.Next; n != nil && len(n.Predictions) == 0 && s.models[n.Model].IsLLM() {
			return n, c.Predictions[0].TagName
		}
	}
	return nil, ""
}

// routedPath is the tags of the levels of top above the one a route sent to the LLM.
func routedPath(top *payload.Classification) []string {
	var path []string
	for c := top; c != nil && len(c.Predictions) > 0; c = c.Next {
		path = append(path, c.Predictions[0].TagName)
	}
	return path
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

// LLM outcomes of a route's region or part that got no answer (the follow-up's or the part's
// llm reason).
const (
	ReasonTimeout     = "llm_timeout"     // the part was decided before the answer came
	ReasonUnavailable = "llm_unavailable" // the endpoint failed: down, refused, timed out
	ReasonInvalid     = "llm_invalid"     // the answer was not one of the tags in the JSON asked for
	ReasonOverBudget  = "llm_over_budget" // not asked: the budget was spent, or the queue full
)

// LLMOverBudget is the state of a part's question that was not asked: the budget was spent.
const LLMOverBudget = "over_budget"

// consider queues the question about classification c of detection det (uncertain, or a
// level that a route sent to the LLM with the tag routed), when the budget allows. A part
// asked about is marked asked only once its question is queued: a later frame may ask when
// this one cannot; a route's question that cannot be asked is the part's, or the region's,
// outcome at once (unknown, llm_over_budget), with its crop as a sample.
func (s *askLLM) consider(f *pipeline.Frame, msg *payload.Prediction, det int, c *payload.Classification, region image.Rectangle, part partRef, routed string) {
	fb := s.f
	mc := s.models[c.Model]
	now := time.Now()
	unasked := func() { // a route's question that cannot be asked: its outcome now
		if routed == "" {
			return
		}
		if part.q != nil {
			part.q.asking(part.track, payload.PartLLM{State: LLMOverBudget, Reason: ReasonOverBudget, Route: true, FrameID: msg.FrameID, PredictionID: msg.ID, Model: c.Model}, part.above, part.box, routed, now)
		}
		j := llmJob{samples: s.samples, camera: s.camera, msg: msg, detection: det, size: region.Size(), crop: relative(region, f.Bounds()), modelTag: routed, route: c.Model, part: part}
		if part.q == nil { // every region gets its outcome; only the samples are limited
			fb.followUp(j, llm.Answer{Tag: Unknown, Reason: ReasonOverBudget}, false, 0)
		}
		if !fb.keepLost(now) {
			return
		}
		if jpeg, err := preprocess.EncodeJPEG(f.Mat(), region, 85, fb.cfg.MaxImageKB<<10); err == nil {
			j.jpeg = jpeg
			j.samples.Send(unanswered(fb.env, j, ReasonOverBudget))
		}
	}
	if !fb.allow(now) {
		fb.overBudget.Add(1)
		unasked()
		return
	}
	jpeg, err := preprocess.EncodeJPEG(f.Mat(), region, 85, fb.cfg.MaxImageKB<<10)
	if err != nil {
		fb.failed.Add(1)
		return
	}
	tags, prompt := mc.LLM.Tags, mc.LLM.Prompt
	if routed != "" {
		tags, prompt = mc.Tags, mc.Prompt
	} else if len(tags) == 0 {
		for _, t := range c.Predictions {
			tags = append(tags, t.TagName)
		}
	}
	j := llmJob{samples: s.samples, camera: s.camera, msg: msg, detection: det, tags: tags, prompt: prompt, jpeg: jpeg, size: region.Size(),
		crop: relative(region, f.Bounds()), part: part}
	if routed != "" {
		j.modelTag, j.route = routed, c.Model
	} else {
		j.modelTag, j.modelProb = c.Predictions[0].TagName, c.Predictions[0].Probability
	}
	if part.q != nil { // before the answer can come
		part.q.asking(part.track, payload.PartLLM{State: LLMPending, Route: routed != "", FrameID: msg.FrameID, PredictionID: msg.ID, Model: c.Model}, part.above, part.box, routed, now)
	}
	select {
	case fb.jobs <- j:
	default:
		fb.dropped.Add(1)
		fb.refund(now)     // not asked: the day's budget is not spent on it
		if part.q != nil { // a later frame of the part may ask
			part.q.unask(part.track)
		} else { // a region is not asked about again
			unasked()
		}
	}
}

// ask calls the LLM for one job and publishes what it says.
func (f *Fallback) ask(j llmJob) {
	f.asked.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()
	start := time.Now()
	ans, usage, err := f.client.Ask(ctx, j.prompt, j.tags, j.jpeg)
	f.promptTokens.Add(usage.PromptTokens)
	f.completionTokens.Add(usage.CompletionTokens)
	reason := ReasonUnavailable
	switch {
	case errors.Is(err, llm.ErrOutsideTag):
		f.outside.Add(1)
		reason = ReasonInvalid
	case errors.Is(err, llm.ErrInvalid):
		f.invalid.Add(1)
		reason = ReasonInvalid
	case err != nil:
		f.failed.Add(1)
	}
	if j.part.q != nil {
		if err != nil && j.route != "" {
			ans.Reason = reason
		}
		j.part.q.answer(j.part.track, j.route, err == nil, ans.Tag, ans.Reason)
	}
	if err != nil {
		f.env.Log.Warn("LLM: no usable answer", "camera", j.camera, "prediction", j.msg.ID, "route", j.route, "err", err)
		if j.route != "" { // the region's outcome, and its image kept
			if j.part.q == nil {
				f.followUp(j, llm.Answer{Tag: Unknown, Reason: reason}, false, payload.Ms(time.Since(start)))
			}
			if f.keepLost(time.Now()) {
				j.samples.Send(unanswered(f.env, j, reason))
			}
		}
		return
	}
	f.answered.Add(1)
	if j.route != "" {
		if j.part.q == nil { // a part's answer goes out with its decision
			f.followUp(j, ans, false, payload.Ms(time.Since(start)))
		}
		return
	}
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
		Tag: ans.Tag, Reason: ans.Reason, ModelTag: j.modelTag, ModelProbability: j.modelProb, Agrees: agrees, LatencyMs: ms, Route: j.route}
	if j.detection >= 0 {
		d := j.detection
		fu.Detection = &d
	}
	body, _ := json.Marshal(fu)
	f.env.Pub.Send(publish.Message{Topic: f.env.Topic("cameras/" + j.camera + "/followups"), QoS: 1, Payload: body, Class: spool.Predictions})
}

// disagreement is the sample of a crop where the LLM and the model disagree.
func disagreement(env *Env, j llmJob, ans llm.Answer) *payload.Sample {
	return llmSample(env, j, fmt.Sprintf("the LLM says %s (%s); the model said %s %.3f", ans.Tag, ans.Reason, j.modelTag, j.modelProb))
}

// unanswered is the sample of a crop that a route sent to the LLM, which gave no answer
// (reason): the image of the rare part is kept for labelling.
func unanswered(env *Env, j llmJob, reason string) *payload.Sample {
	return llmSample(env, j, fmt.Sprintf("routed as %s to %s; no answer from the LLM: %s", j.modelTag, j.route, reason))
}

// llmSample is the sample of job j's crop, with detail.
func llmSample(env *Env, j llmJob, detail string) *payload.Sample {
	s := &payload.Sample{Schema: payload.Schema, ID: payload.NewID(), Agent: env.Agent, Camera: j.camera, Boot: env.Boot,
		Created: time.Now().UTC(), Reason: "llm", Detail: detail,
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
