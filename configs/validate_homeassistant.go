package configs

import "strings"

// validate checks the homeassistant section. The prefix is checked whenever it is set, so that
// a bad one is reported before the section is turned on.
func (h HomeAssistant) validate(p *problems) {
	const key = "homeassistant.discovery_prefix"
	d := h.DiscoveryPrefix
	switch {
	case d == "":
		p.add(key, "empty: give the discovery prefix of Home Assistant's MQTT integration (default homeassistant)")
	case strings.ContainsAny(d, "+#"):
		p.add(key, "%q must not hold '+' or '#': it is the start of the topics the config messages are published on", d)
	case strings.HasPrefix(d, "/") || strings.HasSuffix(d, "/"):
		p.add(key, "%q must not start or end with '/': write it as Home Assistant's MQTT integration shows it (homeassistant)", d)
	case strings.Contains(d, "//"):
		p.add(key, "%q has an empty topic level ('//'): remove the extra '/'", d)
	case len(d) > 256:
		p.add(key, "is %d characters: give at most 256", len(d))
	}
}
