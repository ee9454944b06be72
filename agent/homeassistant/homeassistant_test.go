package homeassistant_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/homeassistant"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// config is an agent line3 with the cameras of docs/mqtt.md's examples: conveyor and station2
// count parts with verdicts; plain counts parts without verdicts; overview runs a classifier
// alone (no parts, no counts).
func config() *configs.Config {
	c := configs.Default()
	c.Agent.ID = "line3"
	c.MQTT.TopicPrefix = "acme/plant1/line3"
	c.HomeAssistant.Enabled = true
	cam := func(name, detector, classifier string, ok ...string) configs.Camera {
		k := configs.DefaultCamera()
		k.Name, k.Pipeline.Detector, k.Pipeline.Classifier = name, detector, classifier
		k.Verdicts.OK = ok
		return k
	}
	c.Cameras = []configs.Camera{
		cam("conveyor", "parts", "colour", "green", "blue"),
		cam("station2", "parts", "material", "brass"),
		cam("plain", "parts", ""),
		cam("overview", "", "colour"),
	}
	return &c
}

func status(cfg *configs.Config) payload.Status {
	st := payload.Status{Schema: payload.Schema, Agent: cfg.Agent.ID, State: "online", Version: "v1.2.3", Updated: time.Now().UTC()}
	for i, c := range cfg.Cameras {
		st.Cameras = append(st.Cameras, payload.CameraStatus{Name: c.Name, Kind: "file", State: homeassistant.CameraStates[i%len(homeassistant.CameraStates)], Read: uint64(10 * i)})
	}
	return st
}

var (
	topicRE    = regexp.MustCompile(`^homeassistant/(sensor|binary_sensor)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$`)
	entityIDRE = regexp.MustCompile(`^(sensor|binary_sensor)\.[a-z0-9]+(_[a-z0-9]+)*$`)
)

// decode returns the config messages (by topic) and the removals of msgs, checking what every
// message must be: retained, QoS 1, on a well-formed discovery topic, given once.
func decode(t *testing.T, msgs []publish.Message) (configs map[string]map[string]any, removed map[string]bool) {
	t.Helper()
	configs, removed = map[string]map[string]any{}, map[string]bool{}
	for _, m := range msgs {
		if !m.Retained || m.QoS != 1 || m.Class != "" {
			t.Errorf("%s: retained %v, QoS %d, class %q; want retained, QoS 1, not spooled", m.Topic, m.Retained, m.QoS, m.Class)
		}
		if !topicRE.MatchString(m.Topic) {
			t.Errorf("topic %q is not <prefix>/<component>/<node_id>/<object_id>/config with ids of [a-zA-Z0-9_-]", m.Topic)
		}
		if configs[m.Topic] != nil || removed[m.Topic] {
			t.Errorf("topic %s given twice", m.Topic)
		}
		if len(m.Payload) == 0 {
			removed[m.Topic] = true
			continue
		}
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Errorf("%s: payload is not a JSON object: %v", m.Topic, err)
			continue
		}
		configs[m.Topic] = c
	}
	return configs, removed
}

// TestConfigMessages: every config message has the keys Home Assistant needs for its
// component, unique ids are unique, each camera is one device attached to the agent's, and a
// camera gets the entities its pipeline feeds (none that would stay unknown forever).
func TestConfigMessages(t *testing.T) {
	cfg := config()
	st := status(cfg)
	cfgs, removed := decode(t, homeassistant.Messages(cfg, st, nil))
	want := map[string][]string{
		"conveyor": homeassistant.Keys(), "station2": homeassistant.Keys(),
		"plain":    {"state", "fps", "parts", "last_tag", "last_probability"},
		"overview": {"state", "fps"},
	}
	ids, entityIDs := map[string]string{}, map[string]string{}
	got := map[string][]string{}
	agentDevice := ""
	statusTopic := cfg.MQTT.TopicPrefix + "/status"
	for topic, c := range cfgs {
		component := strings.Split(topic, "/")[1]
		for _, key := range []string{"name", "unique_id", "default_entity_id", "state_topic", "value_template", "device", "origin", "qos"} {
			if _, ok := c[key]; !ok {
				t.Errorf("%s: no %q", topic, key)
			}
		}
		uid, _ := c["unique_id"].(string)
		if prev, dup := ids[uid]; dup || uid == "" {
			t.Errorf("unique_id %q of %s is also that of %s", uid, topic, prev)
		}
		ids[uid] = topic
		eid, _ := c["default_entity_id"].(string)
		if !entityIDRE.MatchString(eid) || !strings.HasPrefix(eid, component+".") {
			t.Errorf("%s: default_entity_id %q is not a %s entity id", topic, eid, component)
		}
		if prev, dup := entityIDs[eid]; dup {
			t.Errorf("default_entity_id %q of %s is also that of %s", eid, topic, prev)
		}
		entityIDs[eid] = topic
		if s, _ := c["state_topic"].(string); !strings.HasPrefix(s, cfg.MQTT.TopicPrefix+"/") || strings.ContainsAny(s, "+#") {
			t.Errorf("%s: state_topic %q is not one of the agent's topics", topic, s)
		}
		if o, _ := c["origin"].(map[string]any); o["name"] != "cvedge" || o["sw_version"] != st.Version {
			t.Errorf("%s: origin %v", topic, c["origin"])
		}
		dev, _ := c["device"].(map[string]any)
		idents, _ := dev["identifiers"].([]any)
		if len(idents) == 0 || dev["name"] == "" || dev["manufacturer"] != "cvedge" || dev["model"] == nil || dev["sw_version"] != st.Version {
			t.Errorf("%s: device %v", topic, dev)
		}
		switch component {
		case "binary_sensor":
			if c["payload_on"] != "online" || c["payload_off"] != "offline" || c["device_class"] != "connectivity" || c["state_topic"] != statusTopic {
				t.Errorf("%s: the agent's status: %v", topic, c)
			}
			if _, ok := c["availability"]; ok {
				t.Errorf("%s: the agent's status has an availability: it would be unavailable when the agent is offline, not off", topic)
			}
			agentDevice, _ = idents[0].(string)
			continue
		case "sensor":
		default:
			t.Errorf("%s: unexpected component", topic)
			continue
		}
		av, _ := c["availability"].([]any)
		if len(av) != 1 {
			t.Errorf("%s: availability %v; want the agent's status", topic, c["availability"])
		} else if a, _ := av[0].(map[string]any); a["topic"] != statusTopic || a["payload_available"] != "online" || a["payload_not_available"] != "offline" || a["value_template"] == nil {
			t.Errorf("%s: availability %v", topic, a)
		}
		if sc := c["state_class"]; sc != nil && sc != "measurement" && sc != "total_increasing" {
			t.Errorf("%s: state_class %v", topic, sc)
		}
		if c["device_class"] == "enum" {
			if opts, _ := c["options"].([]any); len(opts) == 0 {
				t.Errorf("%s: an enum sensor without options", topic)
			}
		}
		// uid: cvedge_<agent>_<camera>_<key>
		cam, key := "", ""
		for name := range want {
			for _, k := range homeassistant.Keys() {
				if uid == "cvedge_line3_"+name+"_"+k {
					cam, key = name, k
				}
			}
		}
		if cam == "" {
			t.Errorf("%s: unique_id %q is not cvedge_<agent>_<camera>_<entity>", topic, uid)
			continue
		}
		got[cam] = append(got[cam], key)
		if dev["via_device"] == nil || dev["name"] != "line3 "+cam || idents[0] != "cvedge_line3_"+cam {
			t.Errorf("%s: device %v; want the camera's, via the agent's", topic, dev)
		}
		switch key {
		case "parts", "parts_ok", "parts_nok":
			if c["state_class"] != "total_increasing" || c["state_topic"] != cfg.MQTT.TopicPrefix+"/cameras/"+cam+"/counts" {
				t.Errorf("%s: a counter reads the counts and is total_increasing: %v", topic, c)
			}
		case "fps":
			if c["entity_category"] != "diagnostic" || c["state_topic"] != cfg.MQTT.TopicPrefix+"/stats" {
				t.Errorf("%s: fps is a diagnostic from the stats: %v", topic, c)
			}
		}
	}
	if agentDevice != "cvedge_line3" {
		t.Errorf("the agent's device is %q; want cvedge_line3", agentDevice)
	}
	for _, c := range cfgs {
		if dev := c["device"].(map[string]any); dev["via_device"] != nil && dev["via_device"] != agentDevice {
			t.Errorf("via_device %v is not the agent's device %s", dev["via_device"], agentDevice)
		}
	}
	for cam, keys := range want {
		slices.Sort(keys)
		slices.Sort(got[cam])
		if !slices.Equal(keys, got[cam]) {
			t.Errorf("camera %s has entities %v; want %v", cam, got[cam], keys)
		}
	}
	// what a camera does not have is removed (a reload may have taken its verdicts away)
	if n := len(removed); n != 3+6 {
		t.Errorf("%d removals; want the 3 entities plain lacks and the 6 overview lacks: %v", n, removed)
	}
	for topic := range removed {
		if !strings.Contains(topic, "/plain_") && !strings.Contains(topic, "/overview_") {
			t.Errorf("removal of %s, an entity its camera has", topic)
		}
	}
}

// TestRemovedCamera: after a reload that removed a camera, every entity it had gets an empty
// retained message on the very topic its config was on; the cameras kept lose nothing.
func TestRemovedCamera(t *testing.T) {
	before := config()
	after := config()
	after.Cameras = slices.DeleteFunc(after.Cameras, func(c configs.Camera) bool { return c.Name == "conveyor" })
	had, _ := decode(t, homeassistant.Messages(before, status(before), nil))
	cfgs, removed := decode(t, homeassistant.Messages(after, status(after), homeassistant.Cameras(before)))
	n := 0
	for topic, c := range had {
		if !strings.HasPrefix(c["unique_id"].(string), "cvedge_line3_conveyor_") {
			if cfgs[topic] == nil {
				t.Errorf("%s (%s) is no longer announced", topic, c["unique_id"])
			}
			continue
		}
		n++
		if !removed[topic] || cfgs[topic] != nil {
			t.Errorf("%s of the removed camera is not removed", topic)
		}
	}
	if n != len(homeassistant.Keys()) {
		t.Errorf("conveyor had %d entities; want %d", n, len(homeassistant.Keys()))
	}
	// without the previous cameras, nothing of conveyor is removed (Home Assistant would keep it)
	_, removed = decode(t, homeassistant.Messages(after, status(after), nil))
	for topic := range removed {
		if strings.Contains(topic, "/conveyor_") {
			t.Errorf("%s removed without being in previous", topic)
		}
	}
}

// templates returns, for each config, its templates on the topic they read: the value
// template on state_topic, the attributes template on json_attributes_topic and the
// availability templates on their topics.
type tmpl struct{ entity, field, topic, text string }

func templates(cfgs map[string]map[string]any) []tmpl {
	var out []tmpl
	for _, c := range cfgs {
		uid := c["unique_id"].(string)
		state := c["state_topic"].(string)
		out = append(out, tmpl{uid, "value_template", state, c["value_template"].(string)})
		if a, ok := c["json_attributes_template"].(string); ok {
			// without json_attributes_topic, Home Assistant never renders it: the topic it
			// reads is missing, and "" matches no sample
			topic, _ := c["json_attributes_topic"].(string)
			out = append(out, tmpl{uid, "json_attributes_template", topic, a})
		}
		av, _ := c["availability"].([]any)
		for _, a := range av {
			m := a.(map[string]any)
			out = append(out, tmpl{uid, "availability.value_template", m["topic"].(string), m["value_template"].(string)})
		}
	}
	return out
}

// TestTemplatesOnPayloads: every template, evaluated as Home Assistant's Jinja would on the
// payloads the agent sends (built from agent/payload's types, with and without their optional
// parts) and on the examples of docs/mqtt.md, gives the value in the payload; a camera missing
// from a shared message gives "" (ignored) for a number and "None" (unknown) for a state.
func TestTemplatesOnPayloads(t *testing.T) {
	cfg := config()
	cfgs, _ := decode(t, homeassistant.Messages(cfg, status(cfg), nil))
	prefix := cfg.MQTT.TopicPrefix
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	online := status(cfg)
	will := payload.Status{Schema: payload.Schema, Agent: "line3", State: "offline", Reason: "connection lost", Updated: time.Now().UTC()}
	stats := payload.Stats{Schema: payload.Schema, Agent: "line3", Cameras: []payload.CameraStats{{Name: "station2", FPS: 12.5}, {Name: "conveyor", FPS: 9.75}}}
	counts := payload.Counts{Schema: payload.Schema, Agent: "line3", Camera: "conveyor", Parts: 7, Tags: map[string]uint64{"green": 5, "red": 2}, Verdicts: map[string]uint64{"ok": 5, "nok": 2}}
	fresh := payload.Counts{Schema: payload.Schema, Agent: "line3", Camera: "conveyor"} // no part yet: null maps
	decision := payload.Decision{Schema: payload.Schema, Agent: "line3", Camera: "conveyor", PartID: "p-1", TagName: "red", Probability: 0.875, Verdict: "nok", By: "line"}
	noVerdict := decision
	noVerdict.Verdict = ""

	type sample struct {
		what    string
		topic   string // the agent's topic, below the prefix
		payload []byte
	}
	samples := []sample{
		{"status online", "status", mustJSON(online)},
		{"last will", "status", mustJSON(will)},
		{"stats", "stats", mustJSON(stats)},
		{"stats without cameras", "stats", mustJSON(payload.Stats{Schema: payload.Schema, Agent: "line3"})},
		{"counts", "cameras/conveyor/counts", mustJSON(counts)},
		{"fresh counts", "cameras/conveyor/counts", mustJSON(fresh)},
		{"decision", "cameras/conveyor/decisions", mustJSON(decision)},
		{"decision without verdict", "cameras/conveyor/decisions", mustJSON(noVerdict)},
	}
	for name, topic := range map[string]string{"status": "status", "stats": "stats", "counts": "cameras/station2/counts", "decision": "cameras/station2/decisions"} {
		samples = append(samples, sample{"docs/mqtt.md " + name, topic, docsExample(t, name)})
	}

	rendered, attrs := 0, 0
	for _, s := range samples {
		var doc map[string]any
		if err := json.Unmarshal(s.payload, &doc); err != nil {
			t.Fatal(err)
		}
		for _, tp := range templates(cfgs) {
			if tp.topic != prefix+"/"+s.topic {
				continue
			}
			got, err := render(tp.text, s.payload)
			if err != nil {
				t.Errorf("%s %s on %s: %v", tp.entity, tp.field, s.what, err)
				continue
			}
			rendered++
			if tp.field == "json_attributes_template" {
				attrs++
			}
			cam, key := split(tp.entity)
			if want, ok := expect(t, cam, key, tp.field, doc); !ok {
				t.Errorf("%s %s on %s: nothing to compare with", tp.entity, tp.field, s.what)
			} else if !same(got, want) {
				t.Errorf("%s %s on %s gives %q; want %q\ntemplate: %s", tp.entity, tp.field, s.what, got, want, tp.text)
			}
		}
	}
	t.Logf("%d templates evaluated", rendered)
	if attrs < 2*4 { // state and parts of 4 cameras on status, counts and docs' examples
		t.Errorf("only %d attribute templates evaluated", attrs)
	}
	if rendered < 40 {
		t.Errorf("only %d templates evaluated: the samples do not reach the entities' topics", rendered)
	}
}

// split returns the camera and key of a unique id ("" camera for the agent's).
func split(uid string) (cam, key string) {
	rest := strings.TrimPrefix(uid, "cvedge_line3_")
	if rest == "status" {
		return "", "status"
	}
	for _, k := range homeassistant.Keys() {
		if c, ok := strings.CutSuffix(rest, "_"+k); ok && (cam == "" || len(k) > len(key)) {
			cam, key = c, k
		}
	}
	return cam, key
}

// expect is what a template should give on doc, read from doc itself.
func expect(t *testing.T, cam, key, field string, doc map[string]any) (string, bool) {
	entry := func() map[string]any {
		list, _ := doc["cameras"].([]any)
		for _, e := range list {
			if m := e.(map[string]any); m["name"] == cam {
				return m
			}
		}
		return nil
	}
	jsonOf := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	if field == "availability.value_template" || key == "status" {
		return doc["state"].(string), true
	}
	if field == "json_attributes_template" {
		switch key {
		case "state":
			if e := entry(); e != nil {
				return jsonOf(e), true
			}
			return "{}", true
		case "parts":
			if tags, _ := doc["tags"].(map[string]any); len(tags) > 0 {
				return jsonOf(tags), true
			}
			return "{}", true
		}
		return "", false
	}
	switch key {
	case "state", "fps":
		if e := entry(); e != nil {
			return num(e[map[string]string{"state": "state", "fps": "fps"}[key]]), true
		}
		if key == "state" {
			return "None", true
		}
		return "", true
	case "parts":
		return num(doc["parts"]), true
	case "parts_ok", "parts_nok":
		v, _ := doc["verdicts"].(map[string]any)
		if n, ok := v[strings.TrimPrefix(key, "parts_")]; ok {
			return num(n), true
		}
		return "0", true
	case "last_tag":
		return doc["tagName"].(string), true
	case "last_verdict":
		if v, ok := doc["verdict"].(string); ok {
			return v, true
		}
		return "None", true
	case "last_probability":
		return num(doc["probability"]), true
	}
	return "", false
}

func num(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// same compares a rendered value with the expected one: numbers as numbers, JSON as JSON.
func same(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := strconv.ParseFloat(got, 64)
	w, err2 := strconv.ParseFloat(want, 64)
	if err1 == nil && err2 == nil {
		return g == w
	}
	var gj, wj any
	if json.Unmarshal([]byte(got), &gj) == nil && json.Unmarshal([]byte(want), &wj) == nil {
		a, _ := json.Marshal(gj)
		b, _ := json.Marshal(wj)
		return string(a) == string(b)
	}
	return false
}

// docsExample returns the example of schema name in docs/mqtt.md.
func docsExample(t *testing.T, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(testenv.Path("docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(text), "<!-- schema: "+name+" -->\n```json\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatalf("docs/mqtt.md has no %s example", name)
	}
	return []byte(block)
}

// TestEvaluatorSubset: the test's evaluator refuses what is outside the documented subset, and
// follows Jinja where it matters: a missing field is undefined (an error to render), an
// attribute of an undefined value raises, an attribute of null is undefined, first of nothing
// is undefined.
func TestEvaluatorSubset(t *testing.T) {
	doc := []byte(`{"a": {"b": 2.50, "n": null}, "cameras": [{"name": "x", "fps": 3}]}`)
	for tpl, want := range map[string]string{
		"{{ value_json.a.b }}":                            "2.50",
		"{{ value_json.a['b'] }}":                         "2.50",
		"{{ value_json.a.n.c | default(0) }}":             "0",
		"{{ value_json.a.n | default('z', true) }}":       "z",
		"{{ value_json.a.n | default('z') }}":             "None",
		"{{ value_json.q | default({}, true) | tojson }}": "{}",
		"{{ value_json.cameras | selectattr('name', 'eq', 'x') | map(attribute='fps') | first }}":               "3",
		"{{ value_json.cameras | selectattr('name', 'eq', 'y') | map(attribute='fps') | first | default('') }}": "",
	} {
		if got, err := render(tpl, doc); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", tpl, got, err, want)
		}
	}
	for _, tpl := range []string{
		"{{ value_json.q }}",                 // undefined
		"{{ value_json.q.r | default(0) }}",  // attribute of undefined raises
		"{{ value_json.a.b | int }}",         // outside the subset
		"{% if value_json.a %}1{% endif %}",  // statements
		"{{ value_json.cameras | first }} x", // text around
		"{{ value_json.cameras | selectattr('name', 'ne', 'x') | list }}",
		"{{ value_json.cameras | selectattr('name', 'eq', 'y') | first | tojson }}",
	} {
		if got, err := render(tpl, doc); err == nil {
			t.Errorf("%s: %q; want an error", tpl, got)
		}
	}
}

// FuzzCameraName: whatever a camera is called, its topics are well formed, its entity ids valid
// and its templates select it, and only it, from a status.
func FuzzCameraName(f *testing.F) {
	for _, s := range []string{"conveyor", "Line-A_2", "a'b", `back\slash`, "dots.and spaces", "ünï", "__x__", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" || name == "other" {
			return
		}
		cfg := config()
		cfg.Cameras = cfg.Cameras[:1]
		cfg.Cameras[0].Name = name
		st := payload.Status{Schema: 1, Agent: "line3", State: "online", Cameras: []payload.CameraStatus{{Name: "other", State: "stopped"}, {Name: name, State: "reconnecting"}}}
		body, _ := json.Marshal(st)
		for _, m := range homeassistant.Messages(cfg, st, nil) {
			if !topicRE.MatchString(m.Topic) {
				t.Fatalf("topic %q", m.Topic)
			}
			var c map[string]any
			if json.Unmarshal(m.Payload, &c) != nil {
				t.Fatalf("%s: payload %q", m.Topic, m.Payload)
			}
			if !entityIDRE.MatchString(c["default_entity_id"].(string)) {
				t.Fatalf("default_entity_id %q", c["default_entity_id"])
			}
			if strings.HasSuffix(c["unique_id"].(string), "_state") {
				if got, err := render(c["value_template"].(string), body); err != nil || got != "reconnecting" {
					t.Fatalf("state of %q: %q, %v", name, got, err)
				}
			}
		}
	})
}

// TestDocsListTheEntities: docs/integrations.md's Home Assistant section has a row for every
// entity a camera may have, and states each value template the package uses for a camera's
// own topics.
func TestDocsListTheEntities(t *testing.T) {
	text, err := os.ReadFile(testenv.Path("docs", "integrations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n## Home Assistant\n")
	if !ok {
		t.Fatal("docs/integrations.md has no ## Home Assistant section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	section = strings.ReplaceAll(section, `\|`, "|")
	for _, key := range homeassistant.Keys() {
		if !regexp.MustCompile("(?m)^\\| (`[a-z_]+`, )?`" + key + "`").MatchString(section) {
			t.Errorf("docs/integrations.md, Home Assistant: no row for entity %s", key)
		}
	}
	cfg := config()
	cfgs, _ := decode(t, homeassistant.Messages(cfg, status(cfg), nil))
	for _, c := range cfgs {
		uid := c["unique_id"].(string)
		if !strings.HasPrefix(uid, "cvedge_line3_conveyor_") || strings.HasSuffix(uid, "_ok") || strings.HasSuffix(uid, "_nok") {
			continue
		}
		if v := c["value_template"].(string); !strings.Contains(section, v) && !strings.Contains(v, "value_json.cameras") {
			t.Errorf("docs/integrations.md, Home Assistant: the template of %s, %s, is not stated", uid, v)
		}
	}
	if !strings.Contains(section, cfgs["homeassistant/sensor/cvedge_line3/conveyor_state/config"]["value_template"].(string)) {
		t.Errorf("docs/integrations.md, Home Assistant: the state template (for camera conveyor) is not stated")
	}
}
