package configs

import (
	"strings"
	"time"
)

// validate checks the sparkplug section. The ids are checked whenever they are set, so that
// a bad one is reported before the section is turned on.
func (s Sparkplug) validate(p *problems) {
	for key, id := range map[string]string{"sparkplug.group_id": s.GroupID, "sparkplug.edge_node_id": s.EdgeNodeID} {
		switch {
		case id == "" && s.Enabled:
			p.add(key, "empty: Sparkplug names the edge node by group id and edge node id in every topic; give one (edge_node_id defaults to agent.id)")
		case strings.ContainsAny(id, "+#/"):
			p.add(key, "%q must not hold '+', '#' or '/' (Sparkplug forbids them: it is one MQTT topic level)", id)
		case len(id) > 256:
			p.add(key, "is %d characters: give at most 256", len(id))
		}
	}
	if s.DataInterval < 10*time.Millisecond || s.DataInterval > time.Hour {
		p.add("sparkplug.data_interval", "%v must be from 10ms to 1h (how often changed metrics are published)", s.DataInterval)
	}
	if s.Broker != "" {
		checkBroker(p, "sparkplug.broker", s.Broker, "; empty uses mqtt.broker")
	} else if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.TLS != (TLS{}) {
		p.add("sparkplug.broker", "empty, but sparkplug has its own username, password or tls: set sparkplug.broker to the broker they are for, or remove them (without a broker, Sparkplug uses mqtt.broker with the mqtt section's credentials and tls)")
	}
	checkCredentials(p, "sparkplug", s.Password, s.PasswordFile, s.TLS)
}
