package configs

import (
	"strings"
	"testing"
)

// TestHomeAssistantDefaults: off, with Home Assistant's own default discovery prefix; the file
// and the environment set both keys.
func TestHomeAssistantDefaults(t *testing.T) {
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HomeAssistant; h.Enabled || h.DiscoveryPrefix != "homeassistant" {
		t.Errorf("homeassistant defaults: %+v", h)
	}
	c, err = Load(write(t, minimal+"homeassistant: {enabled: true, discovery_prefix: plant/ha}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HomeAssistant; !h.Enabled || h.DiscoveryPrefix != "plant/ha" {
		t.Errorf("homeassistant: %+v", h)
	}
	t.Setenv("CVEDGE_HOMEASSISTANT_DISCOVERY_PREFIX", "from-env")
	if c, err = Load(write(t, minimal)); err != nil || c.HomeAssistant.DiscoveryPrefix != "from-env" {
		t.Errorf("CVEDGE_HOMEASSISTANT_DISCOVERY_PREFIX: %v, %+v", err, c)
	}
}

// TestBadHomeAssistantConfigs: each bad prefix is refused with the key named, also while the
// section is off.
func TestBadHomeAssistantConfigs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"empty", "homeassistant: {enabled: true, discovery_prefix: ''}\n", "homeassistant.discovery_prefix: empty"},
		{"plus", "homeassistant: {discovery_prefix: 'ha+'}\n", `homeassistant.discovery_prefix: "ha+" must not hold '+' or '#'`},
		{"hash", "homeassistant: {enabled: true, discovery_prefix: 'ha/#'}\n", `homeassistant.discovery_prefix: "ha/#" must not hold`},
		{"leading slash", "homeassistant: {discovery_prefix: '/homeassistant'}\n", `homeassistant.discovery_prefix: "/homeassistant" must not start or end with '/'`},
		{"trailing slash", "homeassistant: {discovery_prefix: 'homeassistant/'}\n", "must not start or end with '/'"},
		{"empty level", "homeassistant: {discovery_prefix: 'plant//ha'}\n", "homeassistant.discovery_prefix: \"plant//ha\" has an empty topic level"},
		{"unknown key", "homeassistant: {prefix: x}\n", "homeassistant.prefix: unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, minimal+c.yaml))
			if err == nil {
				t.Fatalf("accepted; want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}
