package configs

import (
	"strings"
	"testing"
)

// llmRoute is a config whose classifier routes rare_line to a model of type: llm.
const llmRoute = `
agent: {id: cell1}
llm: {enabled: true, endpoint: 'http://127.0.0.1:11434/v1/chat/completions', per_day: 200, structured: json_object, prompt_price: 0.0025, completion_price: 0.01}
models:
  det: {path: det.zip}
  lines: {path: lines.zip}
  rare_llm:
    type: llm
    tags: [gizmo-7, gizmo-9]
    prompt: Tell the gizmos apart by their holes.
cameras:
  - name: cam1
    source: "0"
    pipeline: {detector: det, classifier: lines, routes: {rare_line: rare_llm}}
`

// TestLLMModelLoads: a model of type: llm with tags and a prompt, named by a route, loads,
// and so do the llm keys of its budget, answer format and prices.
func TestLLMModelLoads(t *testing.T) {
	c, err := Load(write(t, llmRoute))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Models["rare_llm"]
	if !m.IsLLM() || strings.Join(m.Tags, ",") != "gizmo-7,gizmo-9" || m.Path != "" || c.Models["det"].IsLLM() {
		t.Fatalf("%+v", m)
	}
	if l := c.LLM; l.PerDay != 200 || l.Structured != "json_object" || l.PromptPrice != 0.0025 || l.CompletionPrice != 0.01 {
		t.Fatalf("%+v", l)
	}
	if d := Default().LLM; d.PerDay != 500 || d.Structured != "auto" {
		t.Fatalf("defaults %+v", d)
	}
}

// TestLLMModelRefused: each mistake with a model of type: llm is named by its key.
func TestLLMModelRefused(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"no tags", "tags: [gizmo-7, gizmo-9]", "", "models.rare_llm.tags: empty"},
		{"no prompt", "prompt: Tell the gizmos apart by their holes.", "", "models.rare_llm.prompt: empty"},
		{"a path", "type: llm", "type: llm\n    path: x.zip", "models.rare_llm.path:"},
		{"an export's setting", "type: llm", "type: llm\n    input_size: 224", "models.rare_llm: format, input_size and project describe an ONNX export"},
		{"a fallback's tags", "type: llm", "type: llm\n    llm: {tags: [a]}", "models.rare_llm: a model of type: llm takes no llm: fallback"},
		{"a tag twice", "[gizmo-7, gizmo-9]", "[gizmo-7, GIZMO-7]", "models.rare_llm.tags[1]:"},
		{"bad type", "type: llm", "type: gpt", `models.rare_llm.type: "gpt" is not one of onnx, llm`},
		{"as detector", "detector: det,", "detector: rare_llm,", "cameras[0].pipeline.detector: \"rare_llm\" is of type: llm"},
		{"as classifier", "classifier: lines,", "classifier: rare_llm,", "cameras[0].pipeline.classifier: \"rare_llm\" is of type: llm"},
		{"llm off", "enabled: true,", "enabled: false,", "cameras[0].pipeline.routes.rare_line: \"rare_llm\" is of type: llm: set llm.enabled"},
		{"tags on onnx", "lines: {path: lines.zip}", "lines: {path: lines.zip, prompt: x}", "models.lines: tags and prompt belong to a model of type: llm"},
		{"bad structured", "structured: json_object", "structured: yaml", `llm.structured: "yaml" is not one of auto, json_schema, json_object, off`},
		{"negative per_day", "per_day: 200", "per_day: -1", "llm.per_day: -1 must be 0"},
		{"negative price", "prompt_price: 0.0025", "prompt_price: -1", "llm: prompt_price (-1)"},
	}
	for _, c := range cases {
		yaml := strings.Replace(llmRoute, c.from, c.to, 1)
		if yaml == llmRoute {
			t.Fatalf("%s: %q not in the config", c.name, c.from)
		}
		_, err := Load(write(t, yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
