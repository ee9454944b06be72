package agent

import (
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/steps"
)

// stationView is what the operator station shows of this agent: its status, its last stats,
// and for each camera that tracks parts its counts and last decisions.
func (a *Agent) stationView() station.View {
	v := station.AgentView{Status: a.status("online", ""), Stats: a.lastStats.Load()}
	for _, pc := range a.countsNow() {
		c := pc.Snapshot()
		if v.Counts == nil {
			v.Counts, v.Decisions = map[string]payload.Counts{}, map[string][]payload.Decision{}
		}
		v.Counts[c.Camera] = c
		v.Decisions[c.Camera] = pc.Recent()
	}
	if a.live != nil {
		for _, r := range a.runsNow() {
			v.Live = append(v.Live, r.cam.Name())
		}
	}
	return station.View{Agents: []station.AgentView{v}}
}

// liveSink is where the live step hands its frames: the station's hub, or none (ui off).
func (a *Agent) liveSink() steps.LiveSink {
	if a.live == nil {
		return nil
	}
	return a.live
}
