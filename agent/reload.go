package agent

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// ReloadFrom sets where ReloadConfig reads the config: normally the agent's config file.
// Call it before Run.
func (a *Agent) ReloadFrom(load func() (*configs.Config, error)) { a.source = load }

// ReloadResult says what a reload did beside applying the new config.
type ReloadResult struct {
	// RestartNeeded names the sections that changed but keep their old values until a
	// restart.
	RestartNeeded []string
	// KeptSource says, by camera name, why a camera kept its old settings: its new source
	// could not be opened, so the old one goes on running.
	KeptSource map[string]string
	// Cameras and Models count what runs after the reload; Restarted counts the cameras that
	// were opened again (new, or their capture settings changed).
	Cameras, Models, Restarted int
}

// ReloadConfig reads the config again and applies it (Reload), for SIGHUP and the reload
// command; by names which, for the log. systemd hears that the agent is reloading. A config
// that does not load or build is refused and logged, and the running one stays.
func (a *Agent) ReloadConfig(by string) (ReloadResult, error) {
	if a.source == nil {
		return ReloadResult{}, errors.New("this agent was not started from a config file: there is nothing to reload")
	}
	n := ops.NewNotifier()
	n.Send("RELOADING=1")
	defer n.Send("READY=1")
	a.log.Info("reloading the config", "by", by)
	res, err := func() (ReloadResult, error) {
		next, err := a.source()
		if err != nil {
			return ReloadResult{}, err
		}
		return a.Reload(next)
	}()
	if err != nil {
		a.log.Error("reload refused, the running config stays", "by", by, "err", err)
		return res, err
	}
	if len(res.RestartNeeded) > 0 {
		a.log.Warn("these sections changed but take effect only after a restart; they keep their old values", "sections", strings.Join(res.RestartNeeded, ", "))
	}
	return res, nil
}

// Reload applies a new config while the agent runs, in four steps: build (cameras and
// models of the new config, loaded and warmed up), validate, swap (the old pipelines finish
// their frame and stop, the new ones start), stop the old (free its models). If building
// fails, the running config stays and the error says why. The sections agent.id,
// onnxruntime, mqtt, spool, store, http, ui, llm and sparkplug keep their old values until a restart; the
// result names those that differ.
//
// A camera whose capture settings (source, type, device, rotate, roi, loop, realtime, fps,
// reconnect) did not change keeps running through the reload: it is not reopened and loses
// no frame. A camera whose new source parses but cannot be opened keeps its old settings
// and goes on running, while the rest of the new config applies; the result says which
// and why. A model whose settings and export did not change keeps its loaded session.
func (a *Agent) Reload(next *configs.Config) (res ReloadResult, err error) {
	a.life.mu.Lock()
	if a.life.stopping || a.life.loops == nil {
		a.life.mu.Unlock()
		return res, errors.New("the agent is not running")
	}
	a.life.running.Add(1)
	a.life.mu.Unlock()
	defer a.life.running.Done()
	a.life.change.Lock()
	defer a.life.change.Unlock()

	cur := a.c()
	merged := *next
	merged.Cameras = slices.Clone(next.Cameras)
	res.RestartNeeded = keepUntilRestart(&merged, cur)
	old := a.runsNow()
	byName := make(map[string]*cameraRun, len(old))
	for _, r := range old {
		byName[r.cam.Name()] = r
	}
	if err := merged.Validate(); err != nil { // before any source is tried
		return res, err
	}
	if res.KeptSource = a.keepWorkingSources(&merged, byName); len(res.KeptSource) > 0 {
		if err := merged.Validate(); err != nil { // a kept camera may use a model the file dropped
			return res, fmt.Errorf("%w (camera settings kept because their new source cannot be opened: %v)", err, res.KeptSource)
		}
	}
	a.mu.RLock()
	prev := &reuse{runs: byName, stages: a.stages, paths: a.stagePaths, models: cur.Models, ring: cur.Ring}
	a.mu.RUnlock()
	runs, stages, paths, err := a.build(&merged, prev)
	if err != nil {
		return res, err
	}
	res.Restarted = a.swap(old, byName, runs, stages, paths, &merged)
	res.Cameras, res.Models = len(runs), len(stages)
	a.statusChanged(true)
	for _, m := range a.discovery() { // cameras added or removed
		a.out.pub.Send(m)
	}
	a.log.Info("config reloaded", "cameras", len(runs), "reopened", res.Restarted, "models", len(stages), "kept_old_source", len(res.KeptSource))
	return res, nil
}

// keepUntilRestart sets the sections of next that take effect only at a restart back to their
// values in cur, and names those that differed.
func keepUntilRestart(next, cur *configs.Config) (changed []string) {
	keep := func(name string, old, new any, set func()) {
		if !reflect.DeepEqual(old, new) {
			changed = append(changed, name)
		}
		set()
	}
	keep("agent.id", cur.Agent.ID, next.Agent.ID, func() { next.Agent.ID = cur.Agent.ID })
	keep("onnxruntime", cur.ONNXRuntime, next.ONNXRuntime, func() { next.ONNXRuntime = cur.ONNXRuntime })
	keep("mqtt", cur.MQTT, next.MQTT, func() { next.MQTT = cur.MQTT })
	keep("spool", cur.Spool, next.Spool, func() { next.Spool = cur.Spool })
	keep("store", cur.Store, next.Store, func() { next.Store = cur.Store })
	keep("http", cur.HTTP, next.HTTP, func() { next.HTTP = cur.HTTP })
	keep("ui", cur.UI, next.UI, func() { next.UI = cur.UI })
	keep("samples.store", cur.Samples.Store, next.Samples.Store, func() { next.Samples.Store = cur.Samples.Store })
	keep("llm", cur.LLM, next.LLM, func() { next.LLM = cur.LLM })
	keep("sparkplug", cur.Sparkplug, next.Sparkplug, func() { next.Sparkplug = cur.Sparkplug })
	keep("plc", cur.PLC, next.PLC, func() { next.PLC = cur.PLC })
	keep("homeassistant", cur.HomeAssistant, next.HomeAssistant, func() { next.HomeAssistant = cur.HomeAssistant })
	return changed
}

// swap replaces the running cameras old with runs, built for cfg: the old loops finish their
// frame and stop, each camera's counters and (when its ring settings stay) its recent frames
// go on in its new run, the new loops start, and what the new config no longer uses is freed.
// It returns how many cameras were opened again.
func (a *Agent) swap(old []*cameraRun, byName map[string]*cameraRun, runs []*cameraRun, stages map[string]*pipeline.ModelStage, paths map[string]string, cfg *configs.Config) (restarted int) {
	kept := map[*camera.Camera]bool{}
	for _, r := range runs {
		if r.camStarted {
			kept[r.cam] = true
		} else {
			restarted++
		}
	}
	a.life.loops.stop(old, kept) // in-flight frames finish on the old pipelines
	for _, r := range runs {
		if o, ok := byName[r.cam.Name()]; ok { // the camera's counters go on
			r.base = o.counts()
			r.base.QueueMs = nil
		}
		if r.ringFrom != nil { // the ring is this run's now
			r.ringFrom.ringMoved, r.ringFrom = true, nil
		}
	}
	a.mu.Lock()
	oldStages := a.stages
	a.runs, a.stages, a.stagePaths = runs, stages, paths
	a.mu.Unlock()
	a.conf.Store(cfg)
	started := a.startLoops(runs)
	a.life.mu.Lock()
	a.life.loops = started
	a.life.mu.Unlock()
	for _, r := range old {
		r.close()
	}
	freed := restarted > 0
	for name, st := range oldStages {
		if stages[name] != st {
			st.Close()
			freed = true
		}
	}
	if freed {
		models.ReleaseMemory() // what the closed models and cameras freed goes back to the system
	}
	return restarted
}

// ProbeTimeout bounds how long a reload and `cvedge config check` wait for a camera source to
// open and deliver its first frame before they call it one that cannot be opened.
const ProbeTimeout = 10 * time.Second

// keepWorkingSources opens, once, the new source of every running camera whose capture
// settings change in cfg (but a USB device that stays the same, which cannot be opened
// twice). A camera whose new source cannot be opened, or delivers no frame within
// ProbeTimeout, keeps its running settings in cfg, and the reason is returned by camera
// name and logged. A new source that does not parse is left in cfg, for build to refuse.
func (a *Agent) keepWorkingSources(cfg *configs.Config, running map[string]*cameraRun) map[string]string {
	kept := map[string]string{}
	for i, cc := range cfg.Cameras {
		old, ok := running[cc.Name]
		if !ok || sameCapture(old.cfg, cc) {
			continue
		}
		cam, err := camera.New(cc, a.log)
		if err != nil {
			continue // a source that does not parse is a config error: build refuses the reload, naming it
		}
		if cam.Source().Exclusive() && old.cam.Source() == cam.Source() {
			continue // the same device with other settings (USB, GenICam): it cannot be opened twice, so it is not tried beside the running one
		}
		if err = cam.Probe(ProbeTimeout); err == nil {
			continue
		}
		cfg.Cameras[i] = old.cfg
		kept[cc.Name] = fmt.Sprintf("cameras[%d]: %v; the camera keeps running with its old settings", i, err)
		a.log.Warn("reload: the camera keeps its old settings, its new source cannot be opened", "camera", cc.Name, "err", err)
	}
	return kept
}
