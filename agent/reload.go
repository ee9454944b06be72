package agent

import (
	"errors"
	"reflect"
	"strings"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/configs"
)

// ReloadFrom sets where ReloadConfig reads the config: normally the agent's config file.
// Call it before Run.
func (a *Agent) ReloadFrom(load func() (*configs.Config, error)) { a.source = load }

// ReloadConfig reads the config again and applies it (Reload), for SIGHUP and the reload
// command; by names which, for the log. systemd hears that the agent is reloading. A config
// that does not load or build is refused and logged, and the running one stays. It returns
// the sections that changed but keep their old values until a restart.
func (a *Agent) ReloadConfig(by string) ([]string, error) {
	if a.source == nil {
		return nil, errors.New("this agent was not started from a config file: there is nothing to reload")
	}
	n := ops.NewNotifier()
	n.Send("RELOADING=1")
	defer n.Send("READY=1")
	a.log.Info("reloading the config", "by", by)
	restart, err := func() ([]string, error) {
		next, err := a.source()
		if err != nil {
			return nil, err
		}
		return a.Reload(next)
	}()
	if err != nil {
		a.log.Error("reload refused, the running config stays", "by", by, "err", err)
		return restart, err
	}
	if len(restart) > 0 {
		a.log.Warn("these sections changed but take effect only after a restart; they keep their old values", "sections", strings.Join(restart, ", "))
	}
	return restart, nil
}

// Reload applies a new config while the agent runs, in four steps: build (cameras and
// models of the new config, loaded and warmed up), validate, swap (the old cameras finish
// their frame and stop, the new ones start), stop the old (free its models). If building
// fails, the running config stays and the error says why. The sections agent.id,
// onnxruntime, mqtt, spool, store, http and llm keep their old values until a restart; the
// returned list names those that differ.
func (a *Agent) Reload(next *configs.Config) (needRestart []string, err error) {
	a.lcMu.Lock()
	if a.stopping || a.loops == nil {
		a.lcMu.Unlock()
		return nil, errors.New("the agent is not running")
	}
	a.lifecycleWG.Add(1)
	a.lcMu.Unlock()
	defer a.lifecycleWG.Done()
	a.lifecycle.Lock()
	defer a.lifecycle.Unlock()

	cur := a.c()
	merged := *next
	keep := func(name string, old, new any, set func()) {
		if !reflect.DeepEqual(old, new) {
			needRestart = append(needRestart, name)
		}
		set()
	}
	keep("agent.id", cur.Agent.ID, next.Agent.ID, func() { merged.Agent.ID = cur.Agent.ID })
	keep("onnxruntime", cur.ONNXRuntime, next.ONNXRuntime, func() { merged.ONNXRuntime = cur.ONNXRuntime })
	keep("mqtt", cur.MQTT, next.MQTT, func() { merged.MQTT = cur.MQTT })
	keep("spool", cur.Spool, next.Spool, func() { merged.Spool = cur.Spool })
	keep("store", cur.Store, next.Store, func() { merged.Store = cur.Store })
	keep("http", cur.HTTP, next.HTTP, func() { merged.HTTP = cur.HTTP })
	keep("llm", cur.LLM, next.LLM, func() { merged.LLM = cur.LLM })
	if err := merged.Validate(); err != nil {
		return needRestart, err
	}
	runs, stages, err := a.build(&merged)
	if err != nil {
		return needRestart, err
	}
	old := a.runsNow()
	a.loops.stop(old) // in-flight frames finish on the old pipelines
	a.mu.Lock()
	oldStages := a.stages
	a.runs, a.stages = runs, stages
	a.mu.Unlock()
	a.conf.Store(&merged)
	a.loops = a.startLoops(runs, stages)
	for _, r := range old {
		r.close()
	}
	for _, st := range oldStages {
		st.Close()
	}
	a.pub.Send(a.statusMessage("online", ""))
	a.log.Info("config reloaded", "cameras", len(runs), "models", len(stages))
	return needRestart, nil
}
