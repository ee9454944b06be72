package integrationscheck

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// nodeREDFile is the flow, under the repository root.
var nodeREDFile = []string{"docs", "integrations", "node-red-reject-gate.json"}

// nodeREDCore are the node types the flow may use: those of Node-RED itself, so that the flow
// imports without installing a palette.
var nodeREDCore = map[string]bool{"tab": true, "mqtt in": true, "mqtt out": true, "mqtt-broker": true, "json": true, "switch": true,
	"function": true, "delay": true, "debug": true, "change": true, "comment": true}

// flowNode is one node of a Node-RED flow, with the fields the checks read.
type flowNode struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Z            string     `json:"z"`
	Name         string     `json:"name"`
	Topic        string     `json:"topic"`
	Broker       string     `json:"broker"`
	BrokerHost   string     `json:"-"`
	Port         string     `json:"port"`
	Property     string     `json:"property"`
	PropertyType string     `json:"propertyType"`
	Rules        []flowRule `json:"rules"`
	Func         string     `json:"func"`
	Outputs      *int       `json:"outputs"`
	Wires        [][]string `json:"wires"`
}

type flowRule struct {
	T  string `json:"t"`
	V  any    `json:"v"`
	VT string `json:"vt"`
}

func loadFlow(t *testing.T) []flowNode {
	t.Helper()
	raw, err := os.ReadFile(testenv.Path(nodeREDFile...))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []flowNode
	if err := json.Unmarshal(raw, &nodes); err != nil {
		t.Fatalf("%s: not an array of Node-RED nodes: %v", strings.Join(nodeREDFile, "/"), err)
	}
	// "broker" is the host on an mqtt-broker node and the config node's id on the others
	var hosts []struct {
		Broker string `json:"broker"`
	}
	json.Unmarshal(raw, &hosts)
	for i := range nodes {
		if nodes[i].Type == "mqtt-broker" {
			nodes[i].BrokerHost, nodes[i].Broker = hosts[i].Broker, ""
		}
	}
	return nodes
}

var (
	// payloadRead is msg.payload.a.b in a function's code; payloadCompare the same compared
	// with a string.
	payloadRead    = regexp.MustCompile(`msg\.payload((?:\.[A-Za-z_$][A-Za-z0-9_$]*)+)`)
	payloadCompare = regexp.MustCompile(`msg\.payload((?:\.[A-Za-z_$][A-Za-z0-9_$]*)+)\s*[!=]==?\s*["']([^"']*)["']`)
	payloadAssign  = regexp.MustCompile(`msg\.payload\s*=[^=]`)
)

// checkField checks a path read from a cvedge payload of schema name, and a value compared
// with it, against docs/schemas.
func checkField(s schemaSet, schema, where string, path []string, value string) error {
	node, ok := s.property(schema, path)
	if !ok {
		return fmt.Errorf("%s reads msg.payload.%s: the %s payload has no such field (docs/schemas/%s.schema.json)", where, strings.Join(path, "."), schema, schema)
	}
	if enum := enumValues(node); value != "" && enum != nil && !slices.Contains(enum, value) {
		return fmt.Errorf("%s compares msg.payload.%s with %q: the %s payload's values are %s", where, strings.Join(path, "."), value, schema, strings.Join(enum, ", "))
	}
	return nil
}

// checkFlow checks a Node-RED flow: unique ids, wires to existing nodes (as many outputs as
// wires), core node types, an mqtt-broker on localhost:1883, subscriptions to cvedge's
// documented topics, every msg.payload field a switch or function reads (while the payload
// is still cvedge's message) a field of that message, and a nok decision reaching an mqtt
// out node.
func checkFlow(nodes []flowNode, s schemaSet, topics []docTopic) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	byID := map[string]*flowNode{}
	for i := range nodes {
		n := &nodes[i]
		if n.ID == "" || byID[n.ID] != nil {
			fail("node %q (%s): id empty or used twice", n.ID, n.Type)
		}
		byID[n.ID] = n
		if !nodeREDCore[n.Type] {
			fail("node %s: type %q is not one of Node-RED's own nodes", n.ID, n.Type)
		}
	}
	schemaOf := map[string][]string{} // node id -> schemas of the cvedge payloads reaching it
	for i := range nodes {
		n := &nodes[i]
		isConfig := n.Type == "tab" || n.Type == "mqtt-broker"
		if !isConfig {
			if z := byID[n.Z]; z == nil || z.Type != "tab" {
				fail("node %s: z %q is not a tab of the flow", n.ID, n.Z)
			}
		}
		if n.Outputs != nil && len(n.Wires) != *n.Outputs {
			fail("node %s: %d outputs, %d wire lists", n.ID, *n.Outputs, len(n.Wires))
		}
		if n.Type == "switch" && len(n.Rules) != len(n.Wires) {
			fail("switch %s: %d rules, %d outputs", n.ID, len(n.Rules), len(n.Wires))
		}
		for _, out := range n.Wires {
			for _, to := range out {
				if target := byID[to]; target == nil || target.Type == "tab" || target.Type == "mqtt-broker" {
					fail("node %s is wired to %q, which is not a node of the flow", n.ID, to)
				}
			}
		}
		switch n.Type {
		case "mqtt-broker":
			if n.BrokerHost != "localhost" && n.BrokerHost != "127.0.0.1" || n.Port != "1883" {
				fail("mqtt-broker %s: %s:%s, want localhost:1883", n.ID, n.BrokerHost, n.Port)
			}
		case "mqtt in", "mqtt out":
			if b := byID[n.Broker]; b == nil || b.Type != "mqtt-broker" {
				fail("%s %s: broker %q is not an mqtt-broker node of the flow", n.Type, n.ID, n.Broker)
			}
		}
		if n.Type == "mqtt in" {
			schema, err := subscribedSchema(n.Topic, topics)
			if err != nil {
				fail("mqtt in %s: %v", n.ID, err)
				continue
			}
			schemaOf[n.ID] = append(schemaOf[n.ID], schema)
		}
	}
	// carry the schemas along the wires through the nodes that keep cvedge's payload
	keeps := map[string]bool{"mqtt in": true, "json": true, "switch": true, "delay": true, "debug": true}
	for changed := true; changed; {
		changed = false
		for i := range nodes {
			n := &nodes[i]
			if !keeps[n.Type] {
				continue
			}
			for _, out := range n.Wires {
				for _, to := range out {
					for _, sc := range schemaOf[n.ID] {
						if byID[to] != nil && !slices.Contains(schemaOf[to], sc) {
							schemaOf[to] = append(schemaOf[to], sc)
							changed = true
						}
					}
				}
			}
		}
	}
	reads := 0
	for i := range nodes {
		n := &nodes[i]
		for _, schema := range schemaOf[n.ID] {
			switch n.Type {
			case "switch":
				path, ok := strings.CutPrefix(n.Property, "payload.")
				if n.PropertyType != "msg" || !ok {
					fail("switch %s tests msg.%s: test a field of cvedge's payload, payload.<field>", n.ID, n.Property)
					continue
				}
				for _, r := range n.Rules {
					v := ""
					if r.VT == "str" && (r.T == "eq" || r.T == "neq") {
						v = fmt.Sprint(r.V)
					}
					reads++
					if err := checkField(s, schema, "switch "+n.ID, strings.Split(path, "."), v); err != nil {
						errs = append(errs, err)
					}
				}
			case "function":
				code := n.Func
				if loc := payloadAssign.FindStringIndex(code); loc != nil {
					code = code[:loc[0]] // after that, msg.payload is the function's own
				}
				for _, m := range payloadRead.FindAllStringSubmatch(code, -1) {
					reads++
					if err := checkField(s, schema, "function "+n.ID, strings.Split(m[1][1:], "."), ""); err != nil {
						errs = append(errs, err)
					}
				}
				for _, m := range payloadCompare.FindAllStringSubmatch(code, -1) {
					if err := checkField(s, schema, "function "+n.ID, strings.Split(m[1][1:], "."), m[2]); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
	}
	if reads < 5 {
		fail("only %d payload fields read by switch and function nodes behind an mqtt in: the flow or this check lost them", reads)
	}
	// a nok decision reaches the gate: from the switch's nok output to an mqtt out
	gate := false
	for i := range nodes {
		n := &nodes[i]
		if n.Type != "switch" || !slices.Contains(schemaOf[n.ID], "decision") || n.Property != "payload.verdict" {
			continue
		}
		for k, r := range n.Rules {
			if r.T != "eq" || fmt.Sprint(r.V) != "nok" || k >= len(n.Wires) {
				continue
			}
			seen := map[string]bool{}
			queue := slices.Clone(n.Wires[k])
			for len(queue) > 0 {
				id := queue[0]
				queue = queue[1:]
				if seen[id] || byID[id] == nil {
					continue
				}
				seen[id] = true
				if byID[id].Type == "mqtt out" {
					gate = true
				}
				for _, out := range byID[id].Wires {
					queue = append(queue, out...)
				}
			}
		}
	}
	if !gate {
		fail("no nok decision reaches an mqtt out node (the reject gate)")
	}
	return errs
}

// TestNodeREDFlow: docs/integrations/node-red-reject-gate.json is a flow Node-RED imports
// (ids, wires, core nodes, a broker on localhost:1883) that subscribes to the decisions and
// parts topics of docs/mqtt.md and reads only fields the Decision and Part payloads have.
func TestNodeREDFlow(t *testing.T) {
	nodes := loadFlow(t)
	s, topics := loadSchemaSet(t), docTopics(t)
	for _, err := range checkFlow(nodes, s, topics) {
		t.Error(err)
	}
	subscribed := map[string]bool{}
	for _, n := range nodes {
		if n.Type == "mqtt in" {
			if schema, err := subscribedSchema(n.Topic, topics); err == nil {
				subscribed[schema] = true
			}
		}
	}
	if !subscribed["decision"] || !subscribed["part"] {
		t.Errorf("the flow subscribes to %v, want the decisions and the parts", subscribed)
	}
}

// TestNodeREDCheckFindsFaults: the flow check reports a field the payload lacks, a value its
// enum does not have, a wire to a missing node, a topic cvedge does not publish, and a nok
// that reaches no gate.
func TestNodeREDCheckFindsFaults(t *testing.T) {
	s, topics := loadSchemaSet(t), docTopics(t)
	if errs := checkFlow(loadFlow(t), s, topics); len(errs) > 0 {
		t.Fatalf("the flow itself fails: %v", errs)
	}
	edit := func(id string, f func(*flowNode)) []flowNode {
		nodes := loadFlow(t)
		for i := range nodes {
			if nodes[i].ID == id {
				f(&nodes[i])
				return nodes
			}
		}
		t.Fatalf("no node %s in the flow", id)
		return nil
	}
	for _, c := range []struct {
		name  string
		nodes []flowNode
		want  string
	}{
		{"a field renamed", edit("cvedge_reject_fn", func(n *flowNode) {
			n.Func = strings.Replace(n.Func, "msg.payload.captured", "msg.payload.capturedAt", 1)
		}),
			"msg.payload.capturedAt: the decision payload has no such field"},
		{"a nested field", edit("cvedge_count_fn", func(n *flowNode) { n.Func = "const s = msg.payload.llm.status;\n" + n.Func }),
			"msg.payload.llm.status: the part payload has no such field"},
		{"a verdict cvedge never sends", edit("cvedge_verdict_switch", func(n *flowNode) { n.Rules[0].V = "NOK" }), `with "NOK"`},
		{"an event compared in code", edit("cvedge_count_fn", func(n *flowNode) { n.Func = "if (msg.payload.event === \"stop\") return null;\n" + n.Func }),
			`compares msg.payload.event with "stop"`},
		{"a wire to nowhere", edit("cvedge_parts_json", func(n *flowNode) { n.Wires = [][]string{{"gone"}} }), `wired to "gone"`},
		{"a topic cvedge does not use", edit("cvedge_decisions_in", func(n *flowNode) { n.Topic = "cvedge/+/camera/+/decisions" }), "matches none"},
		{"a subscription to two payloads", edit("cvedge_parts_in", func(n *flowNode) { n.Topic = "cvedge/+/cameras/+/#" }), "several payloads"},
		{"a nok that reaches no gate", edit("cvedge_verdict_switch", func(n *flowNode) { n.Wires[0] = []string{} }), "reaches an mqtt out"},
		{"a broker elsewhere", edit("cvedge_broker", func(n *flowNode) { n.Port = "8883" }), "want localhost:1883"},
	} {
		if errs := checkFlow(c.nodes, s, topics); !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s: errors %v, want one saying %q", c.name, errs, c.want)
		}
	}
}
