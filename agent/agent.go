// Package agent is the long-running cvedge agent: it wires cameras, models and the MQTT
// publisher from a validated config, runs one pipeline goroutine per camera and shuts
// everything down in order.
//
// Start-up builds sink first (spool, broker, publisher), then sources; models are loaded by
// New. Shutdown stops the sources, lets each pipeline finish its frame, drains the
// publisher (spooling what the broker does not take in time) and frees the models. The
// agent holds no cgo of its own: pixels stay in camera and preprocess, inference in models.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvedge/cvedge/agent/broker"
	"github.com/cvedge/cvedge/agent/collect"
	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sampling"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/models/store"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/preprocess"
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
	boot    string
	started time.Time

	// mu guards runs and stages, which Reload replaces; read them with runsNow, stageNamed
	// and stageNames once Run has started.
	mu     sync.RWMutex
	runs   []*cameraRun
	stages map[string]*ModelStage
	loops  *loops
	// stagePaths holds the export each stage was loaded from, by model name, so that a
	// reload keeps a model whose settings and export did not change (guarded by mu).
	stagePaths map[string]string
	// frameIDs holds the last frame id of each camera name for the whole boot (guarded by
	// mu): a reload makes new pipelines, which go on numbering from it.
	frameIDs map[string]*atomic.Uint64

	pub     *publish.Publisher
	spool   *spool.Store
	dead    *spool.DeadLetter
	drops   tally // spool drops by "class/reason"
	store   *store.Store
	metrics *ops.Metrics
	// lifecycle serializes model changes (activate, rollback, add) and reloads; lifecycleWG
	// waits for those still running at shutdown.
	lifecycle   sync.Mutex
	lifecycleWG sync.WaitGroup
	lcMu        sync.Mutex // guards stopping and lifecycleWG.Add
	stopping    bool
	llm         *fallback // nil: no LLM fallback
	// source reads the config again for ReloadConfig; nil: nothing to reload from.
	source func() (*configs.Config, error)
	// cmds: commands.allow, signatures, and the remote add in flight
	cmds commandState
}

// RuntimeOptions turns the onnxruntime config into the runtime's options.
func RuntimeOptions(c configs.ONNXRuntime, log *slog.Logger) models.Options {
	return models.Options{Library: c.Library, IntraOpThreads: c.IntraOpThreads, InterOpThreads: c.InterOpThreads,
		GraphOptimization: c.GraphOptimization, NoMemoryArena: !c.MemoryArena, NoSpinning: !c.Spinning, ExecutionProvider: c.ExecutionProvider, DeviceID: c.DeviceID, Log: log}
}

// c is the config in force.
func (a *Agent) c() *configs.Config { return a.conf.Load() }

// New loads every model the cameras use and checks every camera source. Nothing runs yet;
// call Run, or Close to free what New loaded.
func New(cfg *configs.Config, log *slog.Logger) (a *Agent, err error) {
	a = &Agent{log: log, stages: map[string]*ModelStage{}, boot: newID()[:8]}
	a.conf.Store(cfg)
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.rt, err = models.NewRuntime(RuntimeOptions(cfg.ONNXRuntime, log))
	if err != nil {
		return nil, err
	}
	log.Info("onnxruntime loaded", "version", a.rt.Version(), "library", a.rt.Library)
	if a.store, err = store.Open(cfg.Store.Dir); err != nil {
		return nil, fmt.Errorf("store.dir: %w", err)
	}
	a.runs, a.stages, a.stagePaths, err = a.build(cfg, nil)
	return a, err
}

// reuse is what a reload may take over from the running config: a camera whose capture
// settings did not change keeps running, and a model whose settings and export did not
// change keeps its loaded session.
type reuse struct {
	runs   map[string]*cameraRun // by camera name
	stages map[string]*ModelStage
	paths  map[string]string        // the export each stage was loaded from
	models map[string]configs.Model // the running config's models
}

// sameCapture reports whether a camera configured as b reads exactly what one configured as
// a does: everything but what happens to the frames afterwards is the same.
func sameCapture(a, b configs.Camera) bool {
	for _, c := range []*configs.Camera{&a, &b} {
		c.Trigger, c.Interval, c.MaxFPS, c.Sampling = "", 0, 0, false
		c.QualityGate, c.Collect, c.Pipeline = configs.QualityGate{}, configs.Collect{}, configs.Pipeline{}
	}
	return reflect.DeepEqual(a, b)
}

// build makes the cameras and loads the models of cfg: the part of the agent a reload
// replaces. It takes over from prev (nil at start) the running cameras and the loaded models
// that cfg leaves as they are. It returns the export each model was loaded from. On error
// it frees what it loaded, and nothing of prev.
func (a *Agent) build(cfg *configs.Config, prev *reuse) (runs []*cameraRun, stages map[string]*ModelStage, paths map[string]string, err error) {
	stages, paths = map[string]*ModelStage{}, map[string]string{}
	if prev == nil {
		prev = &reuse{}
	}
	defer func() {
		if err != nil {
			for _, r := range runs {
				r.close()
			}
			for name, st := range stages {
				if prev.stages[name] != st {
					st.Close()
				}
			}
			runs, stages, paths = nil, nil, nil
		}
	}()
	for i, cc := range cfg.Cameras {
		var cam *camera.Camera
		started := false
		if old, ok := prev.runs[cc.Name]; ok && sameCapture(old.cfg, cc) {
			cam, started = old.cam, true // it keeps running: no frame lost, no reopening
		} else if cam, err = camera.New(cc, a.log); err != nil {
			return runs, stages, paths, fmt.Errorf("cameras[%d].source: %w", i, err)
		}
		r := &cameraRun{cam: cam, camStarted: started, cfg: cc, snapshots: make(chan string, 4), triggers: make(chan trigger, 16), ring: &ring{cfg: cfg.Ring}}
		if cc.Sampling && cfg.Samples.Enabled {
			r.sampler = sampling.New(cfg.Samples, uint64(i)+uint64(time.Now().UnixNano()))
		}
		if cc.Collect.Enabled {
			if r.dataset, err = collect.OpenDataset(cc.Collect.Dir); err != nil {
				return append(runs, r), stages, paths, fmt.Errorf("cameras[%d].collect.dir: %w", i, err)
			}
			r.dataset.SetQuota(int64(cc.Collect.MaxMB) << 20)
		}
		runs = append(runs, r)
	}
	used := map[string]bool{}
	for i, cc := range cfg.Cameras {
		type role struct {
			key, name string
			detector  bool
		}
		roles := []role{{"detector", cc.Pipeline.Detector, true}, {"classifier", cc.Pipeline.Classifier, false}}
		for tag, name := range cc.Pipeline.Routes {
			roles = append(roles, role{"routes." + tag, name, false})
		}
		for _, r := range roles {
			if r.name == "" {
				continue
			}
			used[r.name] = true
			st, err := a.loadStage(cfg, stages, paths, prev, r.name)
			if err != nil {
				return runs, stages, paths, err
			}
			if st.Detector() != r.detector {
				want := "a classifier"
				if r.detector {
					want = "a detector"
				}
				return runs, stages, paths, fmt.Errorf("cameras[%d].pipeline.%s: model %q is a %s, not %s", i, r.key, r.name, st.Model().Info.Format, want)
			}
		}
	}
	for name := range cfg.Models {
		if !used[name] {
			a.log.Warn("model configured but used by no camera; not loaded", "model", name)
		}
	}
	return runs, stages, paths, nil
}

// loadStage loads a model once into stages, however many cameras use it: the model store's
// active iteration when it has one, else the configured path. A configured shadow starts
// with it. A model of prev with the same settings and export is taken over as it is.
func (a *Agent) loadStage(cfg *configs.Config, stages map[string]*ModelStage, paths map[string]string, prev *reuse, name string) (*ModelStage, error) {
	if st, ok := stages[name]; ok {
		return st, nil
	}
	mc := cfg.Models[name]
	st, err := a.store.State(name)
	if err != nil {
		return nil, err
	}
	if st.Active != "" {
		if mc.Path, err = a.store.ExportPath(name, st.Active); err != nil {
			return nil, err
		}
	} else if mc.Path == "" {
		return nil, fmt.Errorf("models.%s.path: empty, and the model store (%s) has no active iteration of %q: give the export's path, or add one with `cvedge models add`", name, cfg.Store.Dir, name)
	}
	if old, ok := prev.stages[name]; ok && prev.paths[name] == mc.Path && reflect.DeepEqual(prev.models[name], cfg.Models[name]) {
		stages[name], paths[name] = old, mc.Path
		return old, nil
	}
	stage, err := LoadStage(a.rt, name, mc)
	if err != nil {
		return nil, fmt.Errorf("models.%s: %w", name, err)
	}
	m := stage.Model()
	stages[name], paths[name] = stage, mc.Path
	if sh := mc.Shadow; sh.Iteration != "" || sh.Path != "" {
		if err := a.startShadow(name, stage, mc); err != nil {
			return nil, err
		}
	}
	a.log.Info("model loaded", "model", name, "format", m.Info.Format, "iteration", m.Info.Iteration,
		"input", fmt.Sprintf("%dx%d %s", m.Info.Input.Width, m.Info.Input.Height, m.Info.Input.Pixels.Order), "labels", len(m.Info.Labels))
	return stage, nil
}

// startShadow loads the candidate iteration of a model and runs it beside the active one.
func (a *Agent) startShadow(name string, stage *ModelStage, mc configs.Model) error {
	sc := mc
	sc.Path = mc.Shadow.Path
	if mc.Shadow.Iteration != "" {
		p, err := a.store.ExportPath(name, mc.Shadow.Iteration)
		if err != nil {
			return fmt.Errorf("models.%s.shadow.iteration: %w", name, err)
		}
		sc.Path = p
	}
	m, err := models.Load(a.rt, name, sc)
	if err != nil {
		return fmt.Errorf("models.%s.shadow: %w", name, err)
	}
	if err := stage.SetShadow(m, mc.Shadow.MaxPerSecond); err != nil {
		m.Close()
		return fmt.Errorf("models.%s.shadow: %w", name, err)
	}
	a.log.Info("shadow run", "model", name, "active", stage.Ref().Iteration, "candidate", m.Info.Iteration, "max_per_second", mc.Shadow.MaxPerSecond)
	return nil
}

// Topic returns the full topic for a path under the configured prefix.
func (a *Agent) Topic(path string) string { return a.c().MQTT.TopicPrefix + "/" + path }

// Run starts the spool, the broker (when embedded), the publisher, the HTTP server, the
// cameras and their pipelines, and runs until ctx ends. Then it shuts down in order and
// frees everything; the Agent cannot run again.
func (a *Agent) Run(ctx context.Context) error {
	defer a.Close()
	cfg := a.c()
	a.started = time.Now().UTC()
	if err := a.openSpool(); err != nil {
		return err
	}
	if cfg.MQTT.Embedded.Enabled {
		b, err := broker.Start(cfg.MQTT.Embedded.Listen, quiet(a.log))
		switch {
		case errors.Is(err, broker.ErrAddressInUse) && cfg.MQTT.Embedded.AllowExisting:
			a.log.Warn("embedded broker not started: the address is taken, publishing to the broker already there",
				"address", cfg.MQTT.Embedded.Listen, "broker", configs.Redact(cfg.MQTT.Broker))
		case err != nil:
			return err
		default:
			defer b.Close()
		}
	}
	a.metrics = ops.NewMetrics(a.snapshot)
	if cfg.HTTP.Listen != "" {
		srv, err := ops.Serve(cfg.HTTP.Listen, a.metrics, a.readiness, a.log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	will, _ := json.Marshal(payload.Status{Schema: payload.Schema, Agent: cfg.Agent.ID, State: "offline", Reason: "connection lost", Boot: a.boot, Updated: time.Now().UTC()})
	pub, err := publish.Connect(cfg.MQTT, publish.Options{
		Will:       &publish.Message{Topic: a.Topic("status"), QoS: 1, Retained: true, Payload: will},
		OnConnect:  func() []publish.Message { return []publish.Message{a.statusMessage("online", "")} },
		Spool:      a.spool,
		DeadLetter: a.dead,
		Subscriptions: map[string]func([]byte){
			a.Topic("commands"): a.onCommand,
			a.Topic("feedback"): a.onFeedback,
		},
		Observe: a.observePublish,
	}, a.log)
	if err != nil {
		return err
	}
	a.pub = pub
	a.startFallback()
	started := a.startLoops(a.runs, a.stages)
	a.lcMu.Lock() // a reload command may come as soon as the publisher is connected
	a.loops = started
	a.lcMu.Unlock()

	bgCtx, stopBackground := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	if cfg.MQTT.StatsInterval > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			a.statsLoop(bgCtx)
		}()
	}
	notify := ops.NewNotifier()
	notify.Send("READY=1")
	if every := ops.WatchdogInterval(); every > 0 && notify != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			a.watchdog(bgCtx, notify, every)
		}()
	}
	a.log.Info("agent running", "agent", cfg.Agent.ID, "cameras", len(a.runsNow()), "topic_prefix", cfg.MQTT.TopicPrefix, "broker", configs.Redact(cfg.MQTT.Broker), "spool", cfg.Spool.Dir)

	<-ctx.Done()
	notify.Send("STOPPING=1")
	a.log.Info("stopping: finishing in-flight frames and flushing MQTT")
	a.lcMu.Lock()
	a.stopping = true
	a.lcMu.Unlock()
	// a remote add in flight ends now and answers "cancelled"
	a.cmds.stop()
	a.lifecycleWG.Wait() // a reload or model change in progress finishes first
	a.loops.stop(a.runsNow(), nil)
	stopBackground()
	bg.Wait()
	a.stopFallback()
	drain, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := pub.Close(drain, a.statusMessage("offline", "stopped")); err != nil {
		a.log.Warn("MQTT shutdown incomplete", "err", err)
	}
	st := pub.Stats()
	a.log.Info("stopped", "sent", st.Sent, "spooled", st.Spooled, "lost", st.Lost, "left_in_spool", a.spool.Len())
	return nil
}

// loops are the running camera goroutines of one set of runs.
type loops struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// pipelines builds the pipeline of each camera that has none yet, from stages. Each numbers
// its frames on from the last frame id of its camera in this boot.
func (a *Agent) pipelines(runs []*cameraRun, stages map[string]*ModelStage) {
	for _, r := range runs {
		if r.pl != nil {
			continue
		}
		var det, cls Stage
		if r.cfg.Pipeline.Detector != "" {
			det = stages[r.cfg.Pipeline.Detector]
		}
		if r.cfg.Pipeline.Classifier != "" {
			cls = stages[r.cfg.Pipeline.Classifier]
		}
		r.pl = NewPipeline(a.c().Agent.ID, a.boot, r.cam.Name(), det, cls, float32(r.cfg.Pipeline.CropPadding))
		r.pl.NumberFrom(a.frameCounter(r.cam.Name()))
		r.pl.Gate = r.cfg.QualityGate
		r.pl.Thresholds = r.cfg.Pipeline.Thresholds
		r.pl.VoteOver(r.cfg.Pipeline.Vote)
		if len(r.cfg.Pipeline.Routes) > 0 {
			r.pl.Routes = map[string]Stage{}
			for tag, name := range r.cfg.Pipeline.Routes {
				r.pl.Routes[tag] = stages[name]
			}
		}
	}
}

// frameCounter returns the frame id counter of the camera named name, the same for the
// whole boot.
func (a *Agent) frameCounter(name string) *atomic.Uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.frameIDs == nil {
		a.frameIDs = map[string]*atomic.Uint64{}
	}
	c, ok := a.frameIDs[name]
	if !ok {
		c = new(atomic.Uint64)
		a.frameIDs[name] = c
	}
	return c
}

// startLoops builds each camera's pipeline from stages (where not built yet), starts the
// cameras not running yet, and starts each camera's loop.
func (a *Agent) startLoops(runs []*cameraRun, stages map[string]*ModelStage) *loops {
	a.pipelines(runs, stages)
	ctx, cancel := context.WithCancel(context.Background())
	l := &loops{cancel: cancel}
	for _, r := range runs {
		if !r.camStarted {
			r.cam.OnStatus(func(camera.Status) { a.pub.Send(a.statusMessage("online", "")) })
			// not under ctx: a camera that a reload keeps outlives these loops; Close stops it
			r.cam.Start(context.Background())
			r.camStarted = true
		}
		r.hasher = preprocess.NewHasher()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer r.hasher.Close()
			defer r.pl.Close()
			a.loop(ctx, r)
		}()
	}
	return l
}

// stop ends the loops, letting each finish its frame, and stops the cameras, except those in
// keep (taken over by a reload).
func (l *loops) stop(runs []*cameraRun, keep map[*camera.Camera]bool) {
	l.cancel()
	l.wg.Wait()
	for _, r := range runs {
		if !keep[r.cam] {
			r.cam.Close()
		}
	}
}

// runsNow returns the cameras running now.
func (a *Agent) runsNow() []*cameraRun {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.runs
}

// stageNamed returns the stage serving model name now.
func (a *Agent) stageNamed(name string) (*ModelStage, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st, ok := a.stages[name]
	return st, ok
}

// openSpool opens the on-disk spool and counts what its bounds drop.
func (a *Agent) openSpool() error {
	order := []string{spool.Samples, spool.Predictions}
	if a.c().Spool.DropFirst == spool.Predictions {
		order = []string{spool.Predictions, spool.Samples}
	}
	s, err := spool.Open(a.c().Spool.Dir, spool.Options{
		MaxBytes:  int64(a.c().Spool.MaxMB) << 20,
		MaxAge:    a.c().Spool.MaxAge,
		DropOrder: order,
		OnDrop: func(class, reason string) {
			if n := a.drops.add(class + "/" + reason); n == 1 || n%100 == 0 {
				a.log.Warn("spool full or too old: message dropped", "class", class, "reason", reason, "dropped_total", n)
			}
		},
		OnRepair: func(msg string) { a.log.Warn("spool repaired after a crash", "detail", msg) },
	})
	if err != nil {
		return fmt.Errorf("spool.dir: %w (the agent must be able to write there)", err)
	}
	a.spool = s
	dl := filepath.Join(a.c().Spool.Dir, "deadletter")
	if a.dead, err = spool.OpenDeadLetter(dl, int64(a.c().Spool.DeadLetterMB)<<20); err != nil {
		return fmt.Errorf("spool.dir: %w (the agent must be able to write there)", err)
	}
	if n := s.Len(); n > 0 {
		a.log.Info("spool holds messages from before; delivering them once connected", "messages", n, "bytes", s.Bytes())
	}
	return nil
}

// statusMessage builds the retained status.
func (a *Agent) statusMessage(state, reason string) publish.Message {
	host, _ := os.Hostname()
	st := payload.Status{Schema: payload.Schema, Agent: a.c().Agent.ID, State: state, Reason: camera.Redact(reason), Version: Version,
		Host: host, Boot: a.boot, Started: &a.started, Updated: time.Now().UTC()}
	for _, r := range a.runsNow() {
		s := r.cam.Status()
		st.Cameras = append(st.Cameras, payload.CameraStatus{Name: r.cam.Name(), Kind: string(r.cam.Source().Kind), State: string(s.State), Reason: camera.Redact(s.Reason), Read: s.Read, Dropped: s.Dropped})
	}
	for _, n := range a.stageNames() {
		stage, ok := a.stageNamed(n)
		if !ok {
			continue
		}
		info := stage.Model().Info
		st.Models = append(st.Models, payload.ModelStatus{Name: n, Format: string(info.Format), Iteration: info.Iteration, SHA256: info.SHA256, Labels: len(info.Labels)})
	}
	body, _ := json.Marshal(st)
	return publish.Message{Topic: a.Topic("status"), QoS: 1, Retained: true, Payload: body}
}

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

// Close frees the recent frames, the spool, the models and the onnxruntime library. Run
// calls it; call it yourself only when Run is never called.
func (a *Agent) Close() {
	for _, r := range a.runs {
		r.close()
	}
	if a.spool != nil {
		if err := a.spool.Close(); err != nil {
			a.log.Warn("closing the spool", "err", err)
		}
		a.spool = nil
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

// tally counts events by key (spool drops by "class/reason", samples by reason); it is safe
// for concurrent use.
type tally struct {
	mu sync.Mutex
	n  map[string]uint64
}

// add counts one event of key and returns the count so far.
func (t *tally) add(key string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]uint64{}
	}
	t.n[key]++
	return t.n[key]
}

// snapshot copies the counts (an empty map, never nil, when nothing was counted).
func (t *tally) snapshot() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.n))
	for k, v := range t.n {
		out[k] = v
	}
	return out
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
