// Package homeassistant builds the MQTT discovery messages that make the agent and its
// cameras appear in Home Assistant as devices with entities, without any YAML there
// (docs/integrations.md, "Home Assistant").
//
// Each entity reads a topic the agent publishes anyway: the retained status (camera state, and
// the availability of every entity: the status is the agent's last will), the retained counts
// (parts counted), the decisions (last tag, verdict, probability) and the stats (fps). A
// value_template picks its value out of the JSON, so nothing more is published per frame. The
// templates keep to a small subset of Jinja, which the tests evaluate against the agent's own
// payloads:
//
//	{{ value_json.a.b }}                          a field
//	{{ value_json.a.b | default(x) }}             a field that may be missing
//	{{ value_json.cameras | default([], true) | selectattr('name', 'eq', 'cam') | map(attribute='f') | first | default(x) }}
//	                                              a field of one camera in a list of cameras
//	{{ ... | first | default({}, true) | tojson }} one camera's entry, as attributes
//
// A camera missing from a status or stats message (the last will has no cameras) renders ""
// for a number, which Home Assistant ignores (the value stays), and "None" for a state, which
// Home Assistant shows as unknown.
//
// Messages gives the configs, and the removals of the entities of the cameras announced before
// that are gone (the agent keeps that list across restarts). The agent publishes them: this
// package only builds them. It is pure Go.
package homeassistant

import (
	"encoding/json"
	"strings"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/configs"
)

// CameraStates are the values of a camera's state in the status (camera.State): the options of
// the camera's state entity.
var CameraStates = []string{"starting", "online", "reconnecting", "ended", "stopped"}

// Verdicts are the values of a part's verdict.
var Verdicts = []string{"ok", "nok"}

// Entity is one entity of a camera (or of the agent, Camera ""), as announced.
type Entity struct {
	Camera string
	// Key names the entity within its camera: parts, parts_ok, parts_nok, last_tag,
	// last_verdict, last_probability, state, fps; status for the agent.
	Key string
	// Component is the Home Assistant platform: sensor or binary_sensor.
	Component string
	// Topic is the discovery config topic; Config the config message (nil: the entity is
	// removed).
	Topic  string
	Config map[string]any
}

// kind describes one entity a camera may have.
type kind struct {
	key, component, name string
	// topic is the agent topic it reads, below the prefix, for camera cam.
	topic func(cam string) string
	// has says whether a camera has it.
	has func(configs.Camera) bool
	// config fills the entity's own keys, for camera cam.
	config func(cam string, c map[string]any)
}

func always(configs.Camera) bool { return true }

func agentTopic(path string) func(string) string { return func(string) string { return path } }

func cameraTopic(path string) func(string) string {
	return func(cam string) string { return "cameras/" + cam + "/" + path }
}

func tracks(c configs.Camera) bool { return c.Tracks() }

func judges(c configs.Camera) bool {
	return c.Tracks() && (len(c.Verdicts.OK) > 0 || len(c.Verdicts.NOK) > 0)
}

// kinds are the entities of a camera, in the order they are announced.
var kinds = []kind{
	{key: "state", component: "sensor", name: "State", topic: agentTopic("status"), has: always, config: func(cam string, c map[string]any) {
		c["value_template"] = cameraField(cam, "state", "'None'")
		c["json_attributes_topic"] = c["state_topic"]
		c["json_attributes_template"] = cameraEntry(cam)
		c["device_class"] = "enum"
		c["options"] = CameraStates
		c["icon"] = "mdi:cctv"
	}},
	{key: "fps", component: "sensor", name: "FPS", topic: agentTopic("stats"), has: always, config: func(cam string, c map[string]any) {
		c["value_template"] = cameraField(cam, "fps", "''")
		c["state_class"] = "measurement"
		c["unit_of_measurement"] = "fps"
		c["entity_category"] = "diagnostic"
		c["icon"] = "mdi:speedometer"
	}},
	{key: "parts", component: "sensor", name: "Parts", topic: cameraTopic("counts"), has: tracks, config: func(_ string, c map[string]any) {
		c["value_template"] = "{{ value_json.parts }}"
		c["state_class"] = "total_increasing"
		c["unit_of_measurement"] = "parts"
		c["json_attributes_topic"] = c["state_topic"]
		c["json_attributes_template"] = "{{ value_json.tags | default({}, true) | tojson }}"
		c["icon"] = "mdi:counter"
	}},
	{key: "parts_ok", component: "sensor", name: "Parts OK", topic: cameraTopic("counts"), has: judges, config: func(_ string, c map[string]any) {
		c["value_template"] = "{{ value_json.verdicts.ok | default(0) }}"
		c["state_class"] = "total_increasing"
		c["unit_of_measurement"] = "parts"
		c["icon"] = "mdi:check-circle-outline"
	}},
	{key: "parts_nok", component: "sensor", name: "Parts NOK", topic: cameraTopic("counts"), has: judges, config: func(_ string, c map[string]any) {
		c["value_template"] = "{{ value_json.verdicts.nok | default(0) }}"
		c["state_class"] = "total_increasing"
		c["unit_of_measurement"] = "parts"
		c["icon"] = "mdi:close-circle-outline"
	}},
	{key: "last_tag", component: "sensor", name: "Last tag", topic: cameraTopic("decisions"), has: tracks, config: func(_ string, c map[string]any) {
		c["value_template"] = "{{ value_json.tagName }}"
		c["json_attributes_topic"] = c["state_topic"]
		c["force_update"] = true
		c["icon"] = "mdi:tag-outline"
	}},
	{key: "last_verdict", component: "sensor", name: "Last verdict", topic: cameraTopic("decisions"), has: judges, config: func(_ string, c map[string]any) {
		c["value_template"] = "{{ value_json.verdict | default('None') }}"
		c["device_class"] = "enum"
		c["options"] = Verdicts
		c["force_update"] = true
		c["icon"] = "mdi:scale-balance"
	}},
	{key: "last_probability", component: "sensor", name: "Last probability", topic: cameraTopic("decisions"), has: tracks, config: func(_ string, c map[string]any) {
		c["value_template"] = "{{ value_json.probability }}"
		c["state_class"] = "measurement"
		c["suggested_display_precision"] = 2
		c["force_update"] = true
		c["icon"] = "mdi:percent-outline"
	}},
}

// Keys are the keys of a camera's entities, every one a camera may have.
func Keys() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.key
	}
	return out
}

// Messages returns the discovery messages for the agent of cfg, whose status st is (its
// version names the software of the devices): retained, QoS 1, one per entity; and an empty
// retained message (which removes an entity from Home Assistant) for each entity a camera of
// cfg does not have (parts_ok without verdicts, say), and for every entity of each camera in
// previous (the cameras announced before, by name) that cfg no longer has. Publish them after
// every (re)connection and after every reload.
func Messages(cfg *configs.Config, st payload.Status, previous []string) []publish.Message {
	var out []publish.Message
	for _, e := range Entities(cfg, st, previous) {
		m := publish.Message{Topic: e.Topic, QoS: 1, Retained: true, Payload: []byte{}}
		if e.Config != nil {
			m.Payload, _ = json.Marshal(e.Config) // maps of strings, numbers and lists: cannot fail
		}
		out = append(out, m)
	}
	return out
}

// Entities is what Messages publishes, before it is encoded.
func Entities(cfg *configs.Config, st payload.Status, previous []string) []Entity {
	h := cfg.HomeAssistant
	node := NodeID(cfg.Agent.ID)
	agentDev := map[string]any{"identifiers": []string{node}, "name": "cvedge " + cfg.Agent.ID, "manufacturer": "cvedge", "model": "cvedge agent"}
	if st.Version != "" {
		agentDev["sw_version"] = st.Version
	}
	origin := map[string]any{"name": "cvedge"}
	if st.Version != "" {
		origin["sw_version"] = st.Version
	}
	statusTopic := cfg.MQTT.TopicPrefix + "/status"
	availability := []map[string]any{{"topic": statusTopic, "value_template": "{{ value_json.state }}", "payload_available": "online", "payload_not_available": "offline"}}

	var out []Entity
	// the agent itself: connected or not. No availability: it is the availability.
	out = append(out, Entity{Key: "status", Component: "binary_sensor", Topic: topic(h.DiscoveryPrefix, "binary_sensor", node, "agent_status"), Config: map[string]any{
		"name": "Status", "unique_id": node + "_status", "default_entity_id": "binary_sensor." + slug(node+"_status"),
		"state_topic": statusTopic, "value_template": "{{ value_json.state }}", "payload_on": "online", "payload_off": "offline",
		"device_class": "connectivity", "entity_category": "diagnostic", "json_attributes_topic": statusTopic,
		"device": agentDev, "origin": origin, "qos": 1,
	}})
	sources := map[string]string{}
	for _, c := range st.Cameras {
		sources[c.Name] = c.Kind
	}
	names := map[string]bool{}
	for _, cam := range cfg.Cameras {
		names[cam.Name] = true
		dev := map[string]any{"identifiers": []string{node + "_" + cam.Name}, "name": cfg.Agent.ID + " " + cam.Name, "manufacturer": "cvedge",
			"model": "camera", "via_device": node}
		if k := sources[cam.Name]; k != "" {
			dev["model"] = k + " camera"
		}
		if st.Version != "" {
			dev["sw_version"] = st.Version
		}
		for _, k := range kinds {
			e := Entity{Camera: cam.Name, Key: k.key, Component: k.component, Topic: topic(h.DiscoveryPrefix, k.component, node, ObjectID(cam.Name+"_"+k.key))}
			if k.has(cam) {
				uid := node + "_" + cam.Name + "_" + k.key
				c := map[string]any{"name": k.name, "unique_id": uid, "default_entity_id": k.component + "." + slug(uid),
					"state_topic":  cfg.MQTT.TopicPrefix + "/" + k.topic(cam.Name),
					"availability": availability, "device": dev, "origin": origin, "qos": 1}
				k.config(cam.Name, c)
				e.Config = c
			}
			out = append(out, e)
		}
	}
	for _, name := range previous {
		if names[name] {
			continue
		}
		for _, k := range kinds {
			out = append(out, Entity{Camera: name, Key: k.key, Component: k.component, Topic: topic(h.DiscoveryPrefix, k.component, node, ObjectID(name+"_"+k.key))})
		}
	}
	return out
}

// Cameras returns the names of cfg's cameras: what to pass as previous to the next Messages.
func Cameras(cfg *configs.Config) []string {
	out := make([]string, 0, len(cfg.Cameras))
	for _, c := range cfg.Cameras {
		out = append(out, c.Name)
	}
	return out
}

// NodeID is the node id of agent id in the discovery topics, and the identifier of its device.
func NodeID(agent string) string { return ObjectID("cvedge_" + agent) }

// ObjectID makes s a valid discovery topic level: every character outside [a-zA-Z0-9_-]
// becomes '_'. (Agent and camera names are already made of those: configs checks them.)
func ObjectID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// slug makes s the object part of a Home Assistant entity id: lower case letters, digits and
// single '_', none at either end.
func slug(s string) string {
	var b strings.Builder
	under := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(c)
			continue
		}
		under = true
	}
	return b.String()
}

func topic(prefix, component, node, object string) string {
	return prefix + "/" + component + "/" + node + "/" + object + "/config"
}

// quote writes s as a Jinja string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// cameraField is the template of field f of camera cam in a message with a list of cameras
// (status, stats), missing when the camera is not in the list.
func cameraField(cam, f, missing string) string {
	return "{{ value_json.cameras | default([], true) | selectattr('name', 'eq', " + quote(cam) + ") | map(attribute=" + quote(f) + ") | first | default(" + missing + ") }}"
}

// cameraEntry is the template of camera cam's whole entry in the status: its attributes (kind,
// reason, frames read and dropped).
func cameraEntry(cam string) string {
	return "{{ value_json.cameras | default([], true) | selectattr('name', 'eq', " + quote(cam) + ") | first | default({}, true) | tojson }}"
}
