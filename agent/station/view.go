package station

import "github.com/cvedge/cvedge/agent/payload"

// View is what the page shows beside the pictures: the same messages the agent publishes
// over MQTT (status, stats, part counts, decisions), so the page and a plant dashboard never
// disagree, and cvedge review can build it from the broker alone.
type View struct {
	// Agents are the agents shown, each with its cameras.
	Agents []AgentView `json:"agents"`
}

// AgentView is one agent: its retained status, its latest stats, and per camera its part
// counts and last decisions (newest first).
type AgentView struct {
	Status    payload.Status                `json:"status"`
	Stats     *payload.Stats                `json:"stats,omitempty"`
	Counts    map[string]payload.Counts     `json:"counts,omitempty"`
	Decisions map[string][]payload.Decision `json:"decisions,omitempty"`
	// Live lists the cameras whose live picture this station can show.
	Live []string `json:"live,omitempty"`
}
