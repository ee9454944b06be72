package agent

import (
	"encoding/json"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
)

// ShadowSummary is what the agent keeps in the model store (shadow-summary.json of the
// model's folder) once a candidate was compared models.<name>.shadow.summary_after times,
// for `cvedge models shadow-summary`.
type ShadowSummary struct {
	Model  string    `json:"model"`
	Agent  string    `json:"agent"`
	Active string    `json:"active"` // the serving iteration it was compared with
	Time   time.Time `json:"time"`
	After  int       `json:"summaryAfter"`
	payload.ShadowStats
}

// keepShadowSummary logs the shadow summary of model once, and keeps it in the store.
func (a *Agent) keepShadowSummary(model string, sum *payload.ShadowStats) {
	cfg := a.c()
	active := ""
	if st, ok := a.stageNamed(model); ok {
		active = st.Ref().Iteration
	}
	a.log.Info("shadow summary", "model", model, "candidate", sum.Iteration, "active", active, "compared", sum.Compared,
		"agreed", sum.Agreed, "agreement", sum.Agreement, "by_tag", sum.ByTag, "reviewed", sum.Reviewed, "candidate_right", sum.CandidateRight)
	raw, err := json.MarshalIndent(ShadowSummary{Model: model, Agent: cfg.Agent.ID, Active: active, Time: time.Now().UTC(),
		After: cfg.Models[model].Shadow.SummaryAfter, ShadowStats: *sum}, "", "  ")
	if err == nil {
		err = a.store.WriteShadowSummary(model, raw)
	}
	if err != nil {
		a.log.Warn("shadow summary not kept in the model store; it is in this log and the stats", "model", model, "dir", cfg.Store.Dir, "err", err)
	}
}
