package configs

import (
	"errors"
	"strings"
	"testing"
)

// TestYAMLSyntaxErrorNamesTheKey: a config that is not valid YAML is refused with the file,
// the line, the key path around it and a hint, wherever the fault is.
func TestYAMLSyntaxErrorNamesTheKey(t *testing.T) {
	const head = "agent: {id: cell1}\nmodels:\n  parts: {path: parts.zip}\n"
	cases := []struct {
		name, yaml string
		line       string
		key        string
		hint       string
	}{
		{"deeper indent under mqtt", head + "mqtt:\n  broker: tcp://127.0.0.1:1883\n   qos: 1\n",
			"line 6", "(at mqtt.qos)", "indent the keys of one section alike"},
		{"shallower indent under mqtt", head + "mqtt:\n  broker: tcp://127.0.0.1:1883\n qos: 1\ncameras: []\n",
			"line 6", "(at mqtt.qos)", "in the same column"},
		{"a tab", head + "mqtt:\n\tbroker: tcp://127.0.0.1:1883\n",
			"line 5", "(at mqtt.broker)", "replace the tab with spaces"},
		{"an unclosed quote in a camera's source", head + "cameras:\n  - name: a\n    source: \"0\"\n    pipeline: {detector: parts}\n" +
			"  - name: b\n    source: \"rtsp://viewer:secret@10.0.0.5/stream1\n    pipeline: {detector: parts}\n",
			"line 9", "(at cameras[1].source)", "close it on the same line"},
		{"an unclosed list in a camera", head + "cameras:\n  - name: a\n    source: \"0\"\n    roi: [0, 0, 10\n    pipeline: {detector: parts}\n",
			"line 7", "(at cameras[0].roi)", "not closed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, c.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded a config that is not YAML")
			}
			msg := err.Error()
			for _, want := range []string{"config " + path + ": " + c.line + " " + c.key, "not valid YAML", c.hint} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error shows the camera password: %q", msg)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("error %q is not a *SyntaxError", msg)
			}
		})
	}
}

// TestKeyAtLine: the key path of a line, from the indentation alone.
func TestKeyAtLine(t *testing.T) {
	text := "agent:\n  id: x\ncameras:\n- name: a\n  source: b\n- name: c\n  pipeline:\n    detector: d\n" +
		"mqtt:\n  tls:\n    ca_file: x   # a comment\n\n  broker: y\n"
	lines := strings.Split(text, "\n")
	for n, want := range map[int]string{1: "agent", 2: "agent.id", 3: "cameras", 5: "cameras[0].source",
		6: "cameras[1].name", 8: "cameras[1].pipeline.detector", 11: "mqtt.tls.ca_file", 12: "mqtt.tls.ca_file", 13: "mqtt.broker"} {
		if got := keyAtLine(lines, n); got != want {
			t.Errorf("line %d: %q, want %q", n, got, want)
		}
	}
}

// FuzzCheckSyntax: any text gives either no error or a SyntaxError with a line in the text,
// and never a panic.
func FuzzCheckSyntax(f *testing.F) {
	for _, s := range []string{"mqtt:\n  a: 1\n   b: 2\n", "mqtt:\n\tb: 1\n", "cameras:\n  - source: \"x\n", "a: [1, 2\n",
		"- - - x: y\n  :\n", "\"a\": 'b'\n  - c\n", "", ":::\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		err := checkSyntax([]byte(text))
		var se *SyntaxError
		if err == nil {
			return
		}
		if !errors.As(err, &se) || se.Line < 1 || se.Line > strings.Count(text, "\n")+1 || se.Hint == "" {
			t.Fatalf("%q: %v", text, err)
		}
	})
}
