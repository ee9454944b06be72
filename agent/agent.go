// Package agent is the cvedge daemon: it builds the cameras, the models, their pipelines and
// steps from a validated config, runs one goroutine per camera, takes commands and feedback
// over MQTT, reloads the config and swaps model iterations while running, reports its health,
// and shuts everything down in order.
//
// What happens to one frame is not here: the models' work is agent/pipeline, and what
// follows them (publish, samples, the ring, ...) is one step each in agent/steps; the daemon
// only lists the steps of each camera (stepsFor, in build.go). It holds no cgo: pixels stay in
// camera and preprocess, inference in models.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// Version and Commit are set at build time with -ldflags -X.
var (
	Version = "dev"
	Commit  = "unknown"
)

// ShutdownTimeout bounds how long Run waits for the broker to take queued messages when it
// stops; the rest is spooled.
const ShutdownTimeout = 10 * time.Second

// Agent is one configured cvedge agent.
type Agent struct {
	conf    atomic.Pointer[configs.Config] // replaced whole by Reload; read with c()
	log     *slog.Logger
	rt      *models.Runtime
	store   *store.Store
	boot    string
	started time.Time

	// mu guards runs, stages, stagePaths and counters, which Reload replaces; read them
	// with runsNow, stageNamed and stageNames once Run has started.
	mu     sync.RWMutex
	runs   []*cameraRun
	stages map[string]*pipeline.ModelStage
	// stagePaths holds the export each stage was loaded from, by model name, so that a
	// reload keeps a model whose settings and export did not change.
	stagePaths map[string]string
	// counters hold, by "frames/<camera>" and "tracks/<camera>", the last frame id and track
	// id of each camera for the whole boot: a reload makes new pipelines and steps, which go
	// on numbering from them.
	counters map[string]*atomic.Uint64
	// partCounts hold the part counts of each camera that tracks, by camera name, for the
	// whole boot (and across restarts, in spool.dir/counts).
	partCounts map[string]*steps.PartCounts

	// plant are the plant integrations turned on (Sparkplug B, ...).
	plant integrations
	// lastStats is the last stats message, for the operator station; nil before the first.
	lastStats atomic.Pointer[payload.Stats]
	// live carries annotated frames to the operator station's viewers; nil: ui off.
	live *station.Hub
	// review is the station's review queue, and answers the data set its answers go to;
	// nil: ui off.
	review  *review.Queue
	answers *dataset.Dataset
	// kept keeps the samples sent, for corrections after their frame left the ring: the
	// review queue, or samples.store; nil: none.
	kept *sampleStore
	// sampleWriter writes the samples sent into the review queue or samples.store, off the
	// camera loops; nil when neither keeps them.
	sampleWriter *sampleWriter
	// noShadows: a desk tool's pipeline (OpenCameraPipeline) runs no shadow candidate, not
	// even the model store's.
	noShadows bool

	env     *steps.Env      // what the steps of every camera share
	llm     *steps.Fallback // nil: no LLM fallback
	metrics *ops.Metrics
	out     delivery
	life    lifecycle
	// source reads the config again for ReloadConfig; nil: nothing to reload from.
	source func() (*configs.Config, error)
	// cmds: commands.allow, signatures, and the remote add in flight
	cmds commandState
}

// delivery is the way out: the publisher, and the spool that holds what the broker does not
// take yet.
type delivery struct {
	pub   *publish.Publisher
	spool *spool.Store
	dead  *spool.DeadLetter
	drops ops.Tally // spool drops by "class/reason"
}

// lifecycle serializes what changes the running agent: model changes (activate, rollback,
// add) and reloads, and lets shutdown wait for those in progress.
type lifecycle struct {
	change   sync.Mutex     // held by one change at a time
	running  sync.WaitGroup // the changes in progress, for shutdown
	mu       sync.Mutex     // guards stopping, loops and running.Add
	stopping bool
	loops    *loops // the camera goroutines running now
}

// c is the config in force.
func (a *Agent) c() *configs.Config { return a.conf.Load() }

// New loads every model the cameras use and checks every camera source. Nothing runs yet;
// call Run, or Close to free what New loaded.
func New(cfg *configs.Config, log *slog.Logger) (a *Agent, err error) {
	a = &Agent{log: log, stages: map[string]*pipeline.ModelStage{}, boot: payload.NewID()[:8]}
	a.conf.Store(cfg)
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.rt, err = models.NewRuntime(models.RuntimeOptions(cfg.ONNXRuntime, log))
	if err != nil {
		return nil, err
	}
	log.Info("onnxruntime loaded", "version", a.rt.Version(), "library", a.rt.Library)
	if a.store, err = store.Open(cfg.Store.Dir); err != nil {
		return nil, fmt.Errorf("store.dir: %w", err)
	}
	a.env = &steps.Env{Agent: cfg.Agent.ID, Boot: a.boot, Prefix: cfg.MQTT.TopicPrefix, MaxPayloadKB: cfg.MQTT.MaxPayloadKB, Log: log}
	a.llm = steps.NewFallback(a.env, cfg.LLM)
	a.metrics = ops.NewMetrics(a.snapshot)
	if cfg.UI.Enabled && cfg.HTTP.Listen != "" {
		a.live = station.NewHub()
		if err := a.openReview(cfg); err != nil {
			return a, err
		}
	}
	if err := a.openSampleStore(cfg); err != nil {
		return a, err
	}
	a.runs, a.stages, a.stagePaths, err = a.build(cfg, nil)
	return a, err
}

// Topic returns the full topic for a path under the configured prefix.
func (a *Agent) Topic(path string) string { return a.env.Topic(path) }

// runsNow returns the cameras running now.
func (a *Agent) runsNow() []*cameraRun {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.runs
}

// stageNamed returns the stage serving model name now.
func (a *Agent) stageNamed(name string) (*pipeline.ModelStage, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st, ok := a.stages[name]
	return st, ok
}

// stageNames lists the models loaded now, sorted.
func (a *Agent) stageNames() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	names := make([]string, 0, len(a.stages))
	for n := range a.stages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// run finds the camera named name.
func (a *Agent) run(name string) (*cameraRun, error) {
	var names []string
	for _, r := range a.runsNow() {
		if r.cam.Name() == name {
			return r, nil
		}
		names = append(names, r.cam.Name())
	}
	return nil, fmt.Errorf("no camera %q (cameras: %s)", name, strings.Join(names, ", "))
}

// counter returns the counter of kind ("frames", "tracks") of the camera named name, the
// same for the whole boot.
func (a *Agent) counter(kind, name string) *atomic.Uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counters == nil {
		a.counters = map[string]*atomic.Uint64{}
	}
	c, ok := a.counters[kind+"/"+name]
	if !ok {
		c = new(atomic.Uint64)
		a.counters[kind+"/"+name] = c
	}
	return c
}

// countsOf returns the part counts of camera cc, read from spool.dir/counts on first use, or nil
// when the camera does not track parts.
func (a *Agent) countsOf(cc configs.Camera, cfg *configs.Config) *steps.PartCounts {
	if !cc.Tracks() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if pc, ok := a.partCounts[cc.Name]; ok {
		pc.SetResets(cfg.Counts.ResetAt)
		return pc
	}
	dir := "" // no spool folder (a config made in code, not loaded): in memory only
	if cfg.Spool.Dir != "" {
		dir = filepath.Join(cfg.Spool.Dir, "counts")
	}
	pc, err := steps.OpenPartCounts(a.env, cc.Name, dir, cfg.Counts.ResetAt, time.Now())
	if err != nil {
		a.log.Warn("part counts start from zero", "camera", cc.Name, "err", err)
	}
	pc.OnDecision(a.decided)
	if a.partCounts == nil {
		a.partCounts = map[string]*steps.PartCounts{}
	}
	a.partCounts[cc.Name] = pc
	return pc
}

// countsNow returns the part counts of the cameras that track parts now (a camera a reload
// removed, or whose tracking it turned off, keeps its counts until it is back, unpublished).
func (a *Agent) countsNow() []*steps.PartCounts {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*steps.PartCounts, 0, len(a.partCounts))
	for _, r := range a.runs {
		if pc, ok := a.partCounts[r.cam.Name()]; ok && r.cfg.Tracks() {
			out = append(out, pc)
		}
	}
	return out
}

// Close frees the cameras' runs, the spool, the models and the onnxruntime library. Run
// calls it; call it yourself only when Run is never called.
func (a *Agent) Close() {
	for _, r := range a.runs {
		r.close()
	}
	if a.sampleWriter != nil {
		a.sampleWriter.stop() // the samples queued are written before the review's data set closes
	}
	if a.answers != nil {
		if err := a.answers.Close(); err != nil {
			a.log.Warn("closing the review answers' data set", "err", err)
		}
		a.answers = nil
	}
	if a.out.spool != nil {
		if err := a.out.spool.Close(); err != nil {
			a.log.Warn("closing the spool", "err", err)
		}
		a.out.spool = nil
	}
	for name, st := range a.stages {
		st.Close()
		delete(a.stages, name)
	}
	if a.rt != nil {
		a.rt.Close()
		a.rt = nil
	}
}

// quiet passes on warnings and errors only (the embedded broker is chatty at info).
func quiet(log *slog.Logger) *slog.Logger {
	return slog.New(minLevel{log.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
