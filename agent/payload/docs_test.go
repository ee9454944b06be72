package payload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// schemaEnum is one enum of a schema in docs/schemas: where it is (cameras[].state) and its
// values.
type schemaEnum struct {
	path   []string
	values []string
}

// enums lists the enums of a JSON Schema document, by property path; the conditions of
// allOf/if are left out (they repeat values of an enum listed elsewhere).
func enums(path []string, node any, out *[]schemaEnum) {
	m, ok := node.(map[string]any)
	if !ok {
		return
	}
	if list, ok := m["enum"].([]any); ok {
		e := schemaEnum{path: append([]string(nil), path...)}
		for _, v := range list {
			if s, ok := v.(string); ok {
				e.values = append(e.values, s)
			}
		}
		*out = append(*out, e)
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for name, sub := range props {
			enums(append(path, name), sub, out)
		}
	}
	if items, ok := m["items"]; ok {
		p := append([]string(nil), path...)
		if len(p) > 0 {
			p[len(p)-1] += "[]"
		}
		enums(p, items, out)
	}
	if defs, ok := m["$defs"].(map[string]any); ok {
		for name, sub := range defs {
			enums(append(path, name), sub, out)
		}
	}
}

// mqttSection returns the text of docs/mqtt.md that documents schema name: from its
// "<!-- schema: name -->" marker to the next marker or heading.
func mqttSection(doc, name string) (string, bool) {
	_, rest, ok := strings.Cut(doc, "<!-- schema: "+name+" -->")
	if !ok {
		return "", false
	}
	end := len(rest)
	for _, stop := range []string{"<!-- schema:", "\n## ", "\n### "} {
		if i := strings.Index(rest, stop); i >= 0 && i < end {
			end = i
		}
	}
	return rest[:end], true
}

// tableRows returns the rows of the field tables in a section, each with the field names its
// first cell gives, full paths: "`cameras[].read`, `dropped`" names cameras[].read and
// cameras[].dropped.
func tableRows(section string) (rows []string, names [][]string) {
	tick := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0]
		var ns []string
		prefix := ""
		for _, m := range tick.FindAllStringSubmatch(first, -1) {
			n := m[1]
			if i := strings.LastIndexAny(n, ".]"); i >= 0 {
				prefix = n[:i+1]
				if prefix[len(prefix)-1] == ']' {
					prefix += "."
				}
			} else {
				n = prefix + n
			}
			ns = append(ns, n)
		}
		rows, names = append(rows, line), append(names, ns)
	}
	return rows, names
}

func readDocs(t *testing.T) (string, map[string]any) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "schemas", "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas in docs/schemas: %v", err)
	}
	schemas := map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s any
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		schemas[strings.TrimSuffix(filepath.Base(f), ".schema.json")] = s
	}
	return string(doc), schemas
}

// TestMQTTDocsListEveryEnumValue: for every enum of a message schema in docs/schemas (a
// sample's reason, a camera's state, the MQTT state, ...), a row of the field table of that
// message in docs/mqtt.md that names the field lists every value.
func TestMQTTDocsListEveryEnumValue(t *testing.T) {
	doc, schemas := readDocs(t)
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	checked := 0
	for _, name := range names {
		section, ok := mqttSection(doc, name)
		if !ok {
			// common.schema.json holds definitions the messages share (a model's stage and
			// format); docs/models.md describes them
			if name != "common" {
				t.Errorf("docs/mqtt.md has no <!-- schema: %s --> section", name)
			}
			continue
		}
		var es []schemaEnum
		enums(nil, schemas[name], &es)
		rows, _ := tableRows(section)
		for _, e := range es {
			field := strings.TrimSuffix(e.path[len(e.path)-1], "[]")
			full := strings.TrimSuffix(strings.Join(e.path, "."), "[]")
			var best []string
			found := false
			for _, row := range rows {
				if !strings.Contains(row, "`"+field+"`") && !strings.Contains(row, "`"+full+"`") {
					continue
				}
				var missing []string
				for _, v := range e.values {
					if !strings.Contains(row, "`"+v+"`") {
						missing = append(missing, v)
					}
				}
				if len(missing) == 0 {
					found = true
					break
				}
				if best == nil || len(missing) < len(best) {
					best = missing
				}
			}
			if !found && valueTable(section, field, e.values) {
				found = true
			}
			checked++
			if !found {
				t.Errorf("docs/mqtt.md, %s: no row naming `%s` lists every value of docs/schemas/%s.schema.json's %s; missing: %s",
					name, field, name, full, strings.Join(best, ", "))
			}
		}
	}
	if checked < 8 {
		t.Fatalf("only %d enums checked: the schemas or the test lost them", checked)
	}
}

// valueTable reports whether section has a table whose first column is headed field and
// whose rows start with each of values: | command | ... | then | `snapshot` | ... |.
func valueTable(section, field string, values []string) bool {
	listed := map[string]bool{}
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "| "+field+" |"):
			in = true
		case in && strings.HasPrefix(line, "|"):
			first := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0])
			listed[strings.Trim(first, "`")] = true
		default:
			in = false
		}
	}
	for _, v := range values {
		if !listed[v] {
			return false
		}
	}
	return true
}

// TestStatsDocsNameEverySection: the stats table of docs/mqtt.md has a row for every part of
// the stats message (cameras, models, llm, mqtt, spool) and for each field of a camera.
func TestStatsDocsNameEverySection(t *testing.T) {
	doc, schemas := readDocs(t)
	section, ok := mqttSection(doc, "stats")
	if !ok {
		t.Fatal("docs/mqtt.md has no stats section")
	}
	_, names := tableRows(section)
	named := map[string]bool{}
	for _, ns := range names {
		for _, n := range ns {
			named[n] = true
			named[strings.TrimSuffix(n, "[]")] = true
			if head, _, ok := strings.Cut(n, "."); ok {
				named[strings.TrimSuffix(head, "[]")+":part"] = true
			}
		}
	}
	props := schemas["stats"].(map[string]any)["properties"].(map[string]any)
	var missing []string
	for name, p := range props {
		kind, _ := p.(map[string]any)["type"].(string)
		if kind != "object" && kind != "array" {
			continue
		}
		if !named[name] && !named[name+":part"] {
			missing = append(missing, name)
		}
	}
	camera := props["cameras"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	for field := range camera {
		if field == "name" || field == "state" { // as in the status message
			continue
		}
		if !named["cameras[]."+field] {
			missing = append(missing, "cameras[]."+field)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/mqtt.md, Stats: the table has no row for %s", strings.Join(missing, ", "))
	}
}
