package agent

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
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

// openReview opens the station's review queue (ui.review.dir) and the data set its answers
// go to (ui.review.dataset); every sample the agent sends is kept there until reviewed.
func (a *Agent) openReview(cfg *configs.Config) error {
	ds, err := dataset.Open(cfg.UI.Review.Dataset)
	if err != nil {
		return fmt.Errorf("ui.review.dataset: %w", err)
	}
	q, err := review.Open(cfg.UI.Review.Dir, int64(cfg.UI.Review.MaxMB)<<20, cfg.UI.Review.MaxAge, ds)
	if err != nil {
		ds.Close()
		return fmt.Errorf("ui.review.dir: %w", err)
	}
	q.SetLabels(func(agent, model string) []string {
		if agent != cfg.Agent.ID {
			return nil
		}
		return a.labels(model)
	})
	a.review, a.answers = q, ds
	a.keepSamples(q, "ui")
	return nil
}

// sendFeedback publishes an operator's correction from the station on this agent's
// feedback topic, where it is taken like any other (docs/mqtt.md, Feedback).
func (a *Agent) sendFeedback(agent string, fb payload.Feedback) error {
	if agent != a.c().Agent.ID {
		return fmt.Errorf("sample of agent %q: this station sends corrections to %q only", agent, a.c().Agent.ID)
	}
	if a.out.pub == nil {
		return errors.New("not connected to the broker yet")
	}
	body, err := json.Marshal(fb)
	if err != nil {
		return err
	}
	a.out.pub.Send(publish.Message{Topic: a.Topic("feedback"), QoS: 1, Payload: body})
	return nil
}
