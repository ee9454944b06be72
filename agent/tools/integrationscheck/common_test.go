package integrationscheck

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// The prefix and camera the documented topics are filled in with: the default prefix is
// cvedge/<agent.id> (docs/mqtt.md).
const (
	testAgent  = "line3"
	testCamera = "station2"
)

// docTopic is one row of the topic table of docs/mqtt.md: a topic the agent uses, filled in
// for testAgent and testCamera, and the schema of its payload.
type docTopic struct {
	topic, schema string
}

// docTopics reads the topic table of docs/mqtt.md.
func docTopics(t *testing.T) []docTopic {
	t.Helper()
	raw, err := os.ReadFile(testenv.Path("docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(<prefix>/[^`]*)` \\|.*\\[`([a-z]+)\\.schema\\.json`\\]")
	var out []docTopic
	for _, line := range strings.Split(string(raw), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		topic := strings.NewReplacer("<prefix>", "cvedge/"+testAgent, "<camera>", testCamera).Replace(m[1])
		out = append(out, docTopic{topic: topic, schema: m[2]})
	}
	if len(out) < 10 {
		t.Fatalf("docs/mqtt.md: found %d rows in the topic table, want every topic: the table or this test changed", len(out))
	}
	return out
}

// topicMatches reports whether the MQTT topic filter (with + and #) matches topic.
func topicMatches(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return i == len(f)-1
		}
		if i >= len(tp) {
			return false
		}
		if level != "+" && level != tp[i] {
			return false
		}
	}
	return len(f) == len(tp)
}

// subscribedSchema returns the one schema of the documented topics a subscription matches,
// or an error when it matches none, or topics of several schemas (a parser configured for
// one payload would meet another).
func subscribedSchema(filter string, topics []docTopic) (string, error) {
	seen := map[string]bool{}
	var matched []string
	for _, dt := range topics {
		if topicMatches(filter, dt.topic) {
			seen[dt.schema] = true
			matched = append(matched, dt.topic)
		}
	}
	switch len(seen) {
	case 0:
		return "", fmt.Errorf("topic %q matches none of the topics of docs/mqtt.md (with the default prefix cvedge/<agent.id>)", filter)
	case 1:
		for s := range seen {
			return s, nil
		}
	}
	return "", fmt.Errorf("topic %q matches topics of several payloads: %s", filter, strings.Join(matched, ", "))
}

// variant is one real payload: a message the agent sends, as JSON decoded into any.
type variant struct {
	name string
	doc  any
}

// payloadVariants returns, by schema, payloads built from agent/payload's types in the shapes
// the agent sends (with and without their optional fields), and the examples of docs/mqtt.md;
// each is checked against its schema first, so that the variants are real messages.
func payloadVariants(t *testing.T) map[string][]variant {
	t.Helper()
	now := time.Date(2026, 11, 28, 23, 1, 12, 210000000, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	box := &payload.Box{Left: 0.41, Top: 0.38, Width: 0.12, Height: 0.2}
	decision := payload.Decision{Schema: payload.Schema, Agent: testAgent, Camera: testCamera, PartID: "5b0c9c6e-5f1e-4b55-9d0c-2f1f7e3a9c41",
		TrackID: 17, TagName: "brass", Probability: 0.9312, By: "line", FrameID: 423, Captured: now.Add(-20 * time.Millisecond), Created: now}
	decisionNok := decision
	decisionNok.TagName, decisionNok.Verdict = "steel", "nok"
	start := payload.Part{Schema: payload.Schema, Event: "start", PartID: decision.PartID, TrackID: 17, Agent: testAgent, Camera: testCamera,
		Boot: "3d214837", Created: now.Add(-2 * time.Second), FirstFrameID: 402, FirstSeen: now.Add(-2 * time.Second), Frames: 1, BoundingBox: box}
	end := start
	end.Event, end.Created, end.LastFrameID, end.LastSeen, end.Frames = "end", now.Add(time.Second), 431, at(900*time.Millisecond), 30
	end.TagName, end.Probability, end.Path, end.Votes = "brass", 0.9312, []string{"part", "brass"}, map[string]float32{"brass": 20.49, "steel": 1.1}
	end.BestFrameID, end.DecidedBy, end.Decided, end.Ended = 417, "line", at(0), "unseen"
	endFull := end
	endFull.Verdict, endFull.Lines = "ok", map[string]string{"exit": "forward"}
	endFull.LLM = &payload.PartLLM{State: "answered", FrameID: 406, PredictionID: "9acf21f4-3027-462f-ba03-562937b30f51", Model: "material",
		Tag: "brass", Reason: "yellow, shiny surface", Weight: 7.5}
	endLLMOnly := endFull // a tag only the LLM named: no probability
	endLLMOnly.Probability, endLLMOnly.Votes = 0, map[string]float32{"steel": 1.1}
	fresh := payload.Counts{Schema: payload.Schema, Agent: testAgent, Camera: testCamera, Since: now, Updated: now,
		Tags: map[string]uint64{}, Verdicts: map[string]uint64{}, Lines: map[string]payload.LineCount{}}
	counted := fresh
	counted.Reset, counted.Parts = "shift", 412
	counted.Tags = map[string]uint64{"brass": 398, "steel": 9, "unknown": 5}
	counted.Verdicts = map[string]uint64{"ok": 398, "nok": 14}
	counted.Lines = map[string]payload.LineCount{"exit": {Forward: 410, Backward: 1}}
	empty := payload.Prediction{Schema: payload.Schema, ID: "75b1a460-c86c-4755-9f33-5e18b9ef86b9", Iteration: "", Created: now,
		Agent: testAgent, Camera: testCamera, Boot: "1d209b5a", FrameID: 14, Captured: now.Add(-17 * time.Millisecond), Width: 640, Height: 360,
		LatencyMs: payload.Latency{Queue: 0.015, Preprocess: 1.5, Total: 1.6}, Quality: payload.Quality{Sharpness: 50.7, Brightness: 70.1},
		Models: []payload.ModelRef{}, Predictions: []payload.Tag{}}
	detected := empty
	detected.Iteration = "b43331db-0554-52bc-9c48-3c8a25250027"
	detected.LatencyMs = payload.Latency{Queue: 0.015, Preprocess: 1.569, Detect: 14.391, Classify: 0.529, Total: 16.513}
	detected.Models = []payload.ModelRef{{Stage: "detector", Name: "parts", Format: "detector-yolo", Iteration: detected.Iteration,
		SHA256: "5e026559dbd6bffc1e4a1dae7857510894b83842e66e77644fa4d02fec24bd62"}}
	detected.Predictions = []payload.Tag{{Probability: 0.98, TagName: "part", BoundingBox: box, TrackID: 17}}

	built := map[string][]struct {
		name string
		v    any
	}{
		"decision":   {{"decision without verdicts", decision}, {"decision nok", decisionNok}},
		"part":       {{"part start", start}, {"part end without verdicts", end}, {"part end with verdict, lines, llm", endFull}, {"part end, tag named by the LLM only", endLLMOnly}},
		"counts":     {{"counts after a first start", fresh}, {"counts after a shift reset", counted}},
		"prediction": {{"prediction of an empty belt", empty}, {"prediction with a detection", detected}},
	}
	schemas := testenv.LoadSchemas(t)
	out := map[string][]variant{}
	for schema, list := range built {
		for _, b := range list {
			raw, err := json.Marshal(b.v)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.Validate(schema, raw); err != nil {
				t.Fatalf("the test's %s is not a valid %s message: %v\n%s", b.name, schema, err, raw)
			}
			var doc any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			out[schema] = append(out[schema], variant{name: b.name, doc: doc})
		}
	}
	// the examples of docs/mqtt.md, which the agent's tests check against the schemas too
	text, err := os.ReadFile(testenv.Path("docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- schema: ([a-z]+) -->\\s*```json\\n(.*?)```")
	for _, m := range block.FindAllStringSubmatch(string(text), -1) {
		if _, ok := built[m[1]]; !ok {
			continue
		}
		var doc any
		if err := json.Unmarshal([]byte(m[2]), &doc); err != nil {
			t.Fatalf("docs/mqtt.md example for %s: %v", m[1], err)
		}
		out[m[1]] = append(out[m[1]], variant{name: "docs/mqtt.md's example", doc: doc})
	}
	for schema := range built {
		if len(out[schema]) < 3 {
			t.Fatalf("%s: %d payloads, want the built ones and docs/mqtt.md's example", schema, len(out[schema]))
		}
	}
	return out
}

// jsonPath evaluates the subset of GJSON paths the integrations use: keys separated by dots,
// an array index, and # (an array's length) as the last element. Anything else (wildcards,
// queries, modifiers, escapes) is an error, so that a path this test cannot read is not
// taken as checked.
func jsonPath(doc any, path string) (any, bool, error) {
	if path == "" {
		return nil, false, fmt.Errorf("empty path")
	}
	elems := strings.Split(path, ".")
	cur := doc
	for i, e := range elems {
		if e == "" || strings.Trim(e, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_#") != "" ||
			(strings.Contains(e, "#") && e != "#") {
			return nil, false, fmt.Errorf("path %q: %q is GJSON syntax this check does not read (keys, indexes and a final # only)", path, e)
		}
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[e]
			if !ok {
				return nil, false, nil
			}
			cur = next
		case []any:
			if e == "#" {
				if i != len(elems)-1 {
					return nil, false, fmt.Errorf("path %q: # must be the last element here", path)
				}
				return float64(len(v)), true, nil
			}
			var n int
			if _, err := fmt.Sscanf(e, "%d", &n); err != nil || fmt.Sprint(n) != e {
				return nil, false, nil
			}
			if n < 0 || n >= len(v) {
				return nil, false, nil
			}
			cur = v[n]
		default:
			return nil, false, nil
		}
	}
	return cur, true, nil
}

// schemaSet is docs/schemas, read as JSON to walk property paths.
type schemaSet map[string]map[string]any

func loadSchemaSet(t *testing.T) schemaSet {
	t.Helper()
	entries, err := os.ReadDir(testenv.Path("docs", "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	s := schemaSet{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".schema.json")
		if !ok {
			continue
		}
		raw, err := os.ReadFile(testenv.Path("docs", "schemas", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("docs/schemas/%s: %v", e.Name(), err)
		}
		s[name] = doc
	}
	return s
}

// deref follows a $ref ("common.schema.json#/$defs/x" or "#/$defs/x") from file.
func (s schemaSet) deref(file string, node map[string]any) (string, map[string]any) {
	for i := 0; i < 10; i++ {
		ref, ok := node["$ref"].(string)
		if !ok {
			return file, node
		}
		target, pointer, _ := strings.Cut(ref, "#")
		if target != "" {
			file = strings.TrimSuffix(target, ".schema.json")
		}
		var cur any = s[file]
		for _, p := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
			if p == "" {
				continue
			}
			m, _ := cur.(map[string]any)
			cur = m[p]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			return file, nil
		}
		node = next
	}
	return file, node
}

// property returns the schema of a property path (["llm", "state"]) of the schema called
// name, or false when the schema has no such property.
func (s schemaSet) property(name string, path []string) (map[string]any, bool) {
	file, node := s.deref(name, s[name])
	for _, p := range path {
		if node == nil {
			return nil, false
		}
		props, _ := node["properties"].(map[string]any)
		next, ok := props[p].(map[string]any)
		if !ok {
			extra, isMap := node["additionalProperties"].(map[string]any) // a map: votes, lines
			if !isMap {
				return nil, false
			}
			next = extra
		}
		file, node = s.deref(file, next)
	}
	return node, node != nil
}

// enumValues returns the values of a property's enum, or nil when it has none.
func enumValues(node map[string]any) []string {
	list, _ := node["enum"].([]any)
	var out []string
	for _, v := range list {
		out = append(out, fmt.Sprint(v))
	}
	sort.Strings(out)
	return out
}
