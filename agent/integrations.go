package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cvedge/cvedge/agent/homeassistant"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/plc"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/sparkplug"
	"github.com/cvedge/cvedge/configs"
)

// integrations are the plant systems the agent speaks to beside its own MQTT, each optional
// (docs/integrations.md). They hear the same facts the agent publishes: its status when a
// camera or model changes, its stats, and each camera's decisions and counts.
type integrations struct {
	spb *sparkplug.Node // nil: sparkplug off
	plc *plc.Server     // nil: plc.modbus off
	// stop ends the PLC server's heartbeat
	stop context.CancelFunc
	// haMu guards haCameras: the cameras last announced to Home Assistant, kept in haFile
	// (spool.dir/homeassistant.json) so that a camera removed while the agent was stopped
	// is removed from Home Assistant at the next start.
	haMu      sync.Mutex
	haCameras []string
	haFile    string
}

// startIntegrations starts those cfg turns on. Each connects or listens in the background;
// only settings that can never work fail here.
func (a *Agent) startIntegrations(cfg *configs.Config) error {
	if cfg.Sparkplug.Enabled {
		n, err := sparkplug.Start(cfg, a.log)
		if err != nil {
			return err
		}
		a.plant.spb = n
		n.Poll(func() { // the counts as they are now, before each birth and data message
			for _, pc := range a.countsNow() {
				n.Counts(pc.Snapshot())
			}
		})
	}
	if cfg.PLC.Modbus.Enabled {
		var names []string
		for _, r := range a.runsNow() {
			names = append(names, r.cam.Name())
		}
		s, err := plc.New(cfg.PLC.Modbus, names, a.log)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.Start(ctx); err != nil {
			cancel()
			s.Close()
			return err
		}
		a.plant.plc, a.plant.stop = s, cancel
		for _, pc := range a.countsNow() {
			s.Counts(pc.Snapshot())
		}
	}
	if cfg.HomeAssistant.Enabled && cfg.Spool.Dir != "" {
		a.plant.haFile = filepath.Join(cfg.Spool.Dir, "homeassistant.json")
		if raw, err := os.ReadFile(a.plant.haFile); err == nil {
			if err := json.Unmarshal(raw, &a.plant.haCameras); err != nil {
				a.log.Warn("homeassistant: the cameras announced before cannot be read; entities of cameras removed since stay in Home Assistant", "file", a.plant.haFile, "err", err)
			}
		}
	}
	a.statusChanged(false)
	return nil
}

// discovery is Home Assistant's discovery messages (homeassistant.enabled): the configs of
// the cameras of now, and the removal of those announced before that are gone. The agent
// sends them after each connection and after a reload.
func (a *Agent) discovery() []publish.Message {
	cfg := a.c()
	if !cfg.HomeAssistant.Enabled {
		return nil
	}
	a.plant.haMu.Lock()
	defer a.plant.haMu.Unlock()
	msgs := homeassistant.Messages(cfg, a.status("online", ""), a.plant.haCameras)
	a.plant.haCameras = homeassistant.Cameras(cfg)
	if a.plant.haFile != "" {
		raw, _ := json.Marshal(a.plant.haCameras)
		if err := os.WriteFile(a.plant.haFile, raw, 0o640); err != nil {
			a.log.Warn("homeassistant: the cameras announced cannot be kept; a camera removed while the agent is stopped will stay in Home Assistant", "file", a.plant.haFile, "err", err)
		}
	}
	return msgs
}

// statusChanged tells the integrations the agent's status (cameras, models) and, when send,
// publishes it on <prefix>/status too.
func (a *Agent) statusChanged(send bool) {
	st := a.status("online", "")
	if send {
		a.out.pub.Send(a.statusMessageOf(st))
	}
	if s := a.plant.plc; s != nil {
		runs := a.runsNow()
		names := make([]string, len(runs))
		for i, r := range runs {
			names[i] = r.cam.Name()
		}
		s.SetCameras(names) // the same cameras: nothing moves
		for _, r := range runs {
			s.Tags(r.cam.Name(), a.decidingLabels(r.cfg.Pipeline))
		}
		s.Status(st)
	}
	if n := a.plant.spb; n != nil {
		n.Status(st)
		for _, r := range a.runsNow() {
			n.CameraModels(r.cam.Name(), a.modelsOf(r.cfg.Pipeline))
		}
	}
}

// statsTaken tells the integrations the stats just made.
func (a *Agent) statsTaken(st payload.Stats) {
	if n := a.plant.spb; n != nil {
		n.Stats(st)
	}
	if s := a.plant.plc; s != nil {
		s.Stats(st)
	}
}

// decided tells the integrations a camera's decision and its counts after it.
func (a *Agent) decided(d payload.Decision, c payload.Counts) {
	if n := a.plant.spb; n != nil {
		n.Decision(d)
		n.Counts(c)
	}
	if s := a.plant.plc; s != nil {
		s.Counts(c)
		s.Decision(d)
	}
}

// stopIntegrations ends their sessions cleanly (Sparkplug: DDEATH and NDEATH; the PLC
// server: offline, then closed), within ctx.
func (a *Agent) stopIntegrations(ctx context.Context) {
	if s := a.plant.plc; s != nil {
		s.Status(a.status("offline", "stopped"))
		a.plant.stop()
		if err := s.Close(); err != nil {
			a.log.Warn("plc: closing the Modbus server", "err", err)
		}
		a.plant.plc = nil
	}
	if n := a.plant.spb; n != nil {
		if err := n.Close(ctx); err != nil {
			a.log.Warn("sparkplug: the session did not end cleanly", "err", err)
		}
	}
}

// modelsOf are the models a camera's pipeline runs, as its predictions name them.
func (a *Agent) modelsOf(p configs.Pipeline) []payload.ModelRef {
	names := []string{p.Detector, p.Classifier}
	for _, tag := range slices.Sorted(maps.Keys(p.Routes)) {
		names = append(names, p.Routes[tag])
	}
	var out []payload.ModelRef
	for _, name := range names {
		if st, ok := a.stageNamed(name); ok && name != "" {
			out = append(out, st.Ref())
		}
	}
	return out
}

// decidingLabels are the tags of the model that decides a camera's parts: its classifier's,
// else its detector's.
func (a *Agent) decidingLabels(p configs.Pipeline) []string {
	return a.labels(cmp.Or(p.Classifier, p.Detector))
}
