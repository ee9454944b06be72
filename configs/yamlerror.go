package configs

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SyntaxError is a config file that is not valid YAML: the line the parser stopped at, the
// key path around it (cameras[0].source, mqtt) and a hint at the usual cause.
type SyntaxError struct {
	Line int
	Key  string // the key on the line, or the nearest enclosing one; empty at the top
	Hint string
	Err  error // the YAML parser's own error
}

func (e *SyntaxError) Error() string {
	where := fmt.Sprintf("line %d", e.Line)
	if e.Key != "" {
		where += " (at " + e.Key + ")"
	}
	msg := strings.TrimPrefix(e.Err.Error(), "yaml: ")
	msg = yamlLine.ReplaceAllString(msg, "")
	return fmt.Sprintf("%s: not valid YAML: %s: %s", where, msg, e.Hint)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// checkSyntax parses data as YAML and returns a *SyntaxError when it is not; errors of types
// (a list where a map belongs) are left to the decoder, which names the key.
func checkSyntax(data []byte) error {
	var node yaml.Node
	err := yaml.Unmarshal(data, &node)
	var typeErr *yaml.TypeError
	if err == nil || errors.As(err, &typeErr) {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		if parserError(msg) {
			line++ // the parser's errors give the line counted from 0, its scanner's from 1
		}
	}
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		line = len(lines)
	}
	return &SyntaxError{Line: line, Key: keyAtLine(lines, line), Hint: syntaxHint(msg, lines[line-1]), Err: err}
}

// parserError reports whether msg is one of the YAML parser's errors (not its scanner's):
// go.yaml.in/yaml/v3 writes their line counted from 0.
func parserError(msg string) bool {
	for _, p := range []string{"did not find expected <document start>", "did not find expected node content",
		"did not find expected key", "did not find expected '-' indicator", "did not find expected ',' or ']'",
		"did not find expected ',' or '}'"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func syntaxHint(msg, line string) string {
	switch {
	case strings.Contains(line, "\t") && strings.Contains(msg, "cannot start any token"):
		return "a tab: YAML indents with spaces only; replace the tab with spaces"
	case strings.Contains(msg, "mapping values are not allowed"):
		return "a key indented deeper than the key before it, or a value with ': ' in it: indent the keys of one section alike, and quote such a value"
	case strings.Contains(msg, "did not find expected key"):
		return "a key out of line with the others of its section: start the keys of one section in the same column"
	case strings.Contains(msg, "end of stream") || strings.Contains(msg, "quoted scalar"):
		return "a quote opened here and never closed: close it on the same line"
	case strings.Contains(msg, "did not find expected ',' or ']'") || strings.Contains(msg, "did not find expected ',' or '}'"):
		return "a [list] or {map} not closed: close it on the same line, or write it as indented lines"
	case strings.Contains(msg, "did not find expected '-' indicator"):
		return "a list item out of line: start every '- ' of a list in the same column"
	case strings.Contains(msg, "cannot start any token"):
		return "a value that starts with a character YAML reserves (@, `, %): quote the value"
	}
	return "compare the layout with configs/cvedge.yaml"
}

var yamlKey = regexp.MustCompile(`^("[^"]*"|'[^']*'|[^\s:#"'{}\[\],][^:#]*?)\s*:(\s|$)`)

// keyAtLine returns the key path of the key on line n (1-based) of a YAML text that may not
// parse, from the indentation of the lines up to it: the key on that line, or the nearest
// enclosing one (mqtt, cameras[0].source).
func keyAtLine(lines []string, n int) string {
	type frame struct {
		indent int
		key    string // "" for a list item
		index  int
		leaf   bool // the key has its value on its line, so nothing nests under it
	}
	var stack []frame
	last := map[string]int{} // items seen per list, by the path and indent of the list
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.key == "" {
				fmt.Fprintf(&b, "[%d]", f.index)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		return b.String()
	}
	for i := 0; i < n && i < len(lines); i++ {
		text := strings.TrimRight(lines[i], " \t\r")
		content := strings.TrimLeft(text, " \t")
		indent := len(text) - len(content)
		if content == "" || strings.HasPrefix(content, "#") || content == "---" {
			continue
		}
		if content == "-" || strings.HasPrefix(content, "- ") {
			for len(stack) > 0 && (stack[len(stack)-1].indent > indent || stack[len(stack)-1].leaf ||
				(stack[len(stack)-1].indent == indent && stack[len(stack)-1].key == "")) {
				stack = stack[:len(stack)-1]
			}
			list := path() + "@" + strconv.Itoa(indent)
			idx, seen := last[list]
			if seen {
				idx++
			}
			last[list] = idx
			stack = append(stack, frame{indent: indent, index: idx})
			rest := strings.TrimLeft(strings.TrimPrefix(content, "-"), " \t")
			indent += len(content) - len(rest)
			content = rest
		} else {
			for len(stack) > 0 && (stack[len(stack)-1].indent >= indent || stack[len(stack)-1].leaf) {
				stack = stack[:len(stack)-1]
			}
		}
		if m := yamlKey.FindStringSubmatch(content); m != nil {
			key := strings.Trim(strings.TrimSpace(m[1]), `"'`)
			// a list under this key starts a new count
			for k := range last {
				if strings.HasPrefix(k, join(path(), key)+"@") {
					delete(last, k)
				}
			}
			value := strings.TrimSpace(content[len(m[0]):])
			stack = append(stack, frame{indent: indent, key: key, leaf: value != "" && !strings.HasPrefix(value, "#")})
		}
	}
	return path()
}
