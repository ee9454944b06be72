package homeassistant_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// render evaluates a value template of the subset the package documents against payload, as
// Home Assistant's Jinja would: value_json is the payload decoded. It fails on anything outside
// the subset, on a syntax error, and where Jinja would raise, or render an undefined value
// (which Home Assistant logs as a warning).
func render(tpl string, payload []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // a number renders as the payload wrote it, as Python's json gives it
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return "", fmt.Errorf("payload is not JSON: %w", err)
	}
	body, ok := strings.CutPrefix(tpl, "{{ ")
	if body, ok = strings.CutSuffix(body, " }}"); !ok || strings.Contains(body, "{{") || strings.Contains(body, "{%") {
		return "", fmt.Errorf("template %q is not one {{ expression }}", tpl)
	}
	p := &parser{src: body, doc: doc}
	v, err := p.pipeline()
	if err != nil {
		return "", fmt.Errorf("template %q: %w", tpl, err)
	}
	if p.skip(); p.pos != len(p.src) {
		return "", fmt.Errorf("template %q: unexpected %q at %d", tpl, p.src[p.pos:], p.pos)
	}
	if _, undef := v.(undefined); undef {
		return "", fmt.Errorf("template %q renders an undefined value on this payload (Home Assistant logs a warning)", tpl)
	}
	return str(v), nil
}

// undefined is Jinja's Undefined, with the reason.
type undefined struct{ why string }

type parser struct {
	src string
	pos int
	doc any
}

func (p *parser) skip() {
	for p.pos < len(p.src) && p.src[p.pos] == ' ' {
		p.pos++
	}
}

func (p *parser) eat(s string) bool {
	p.skip()
	if strings.HasPrefix(p.src[p.pos:], s) {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *parser) ident() string {
	p.skip()
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || p.pos > start && c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	return p.src[start:p.pos]
}

// pipeline: primary ('|' filter)*
func (p *parser) pipeline() (any, error) {
	v, err := p.primary()
	if err != nil {
		return nil, err
	}
	for p.eat("|") {
		name := p.ident()
		var args []any
		kw := map[string]any{}
		if p.eat("(") {
			for !p.eat(")") {
				if len(args)+len(kw) > 0 && !p.eat(",") {
					return nil, fmt.Errorf("expected ',' in the arguments of %s", name)
				}
				save := p.pos
				if k := p.ident(); k != "" && p.eat("=") {
					a, err := p.literal()
					if err != nil {
						return nil, err
					}
					kw[k] = a
					continue
				}
				p.pos = save
				a, err := p.literal()
				if err != nil {
					return nil, err
				}
				args = append(args, a)
			}
		}
		if v, err = filter(name, v, args, kw); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// primary: '(' pipeline ')' | value_json path | literal
func (p *parser) primary() (any, error) {
	if p.eat("(") {
		v, err := p.pipeline()
		if err != nil {
			return nil, err
		}
		if !p.eat(")") {
			return nil, fmt.Errorf("missing ')'")
		}
		return v, nil
	}
	save := p.pos
	if p.ident() != "value_json" {
		p.pos = save
		return p.literal()
	}
	v := p.doc
	for {
		var key string
		switch {
		case p.eat("."):
			key = p.ident()
			if key == "" {
				return nil, fmt.Errorf("a name must follow '.'")
			}
		case p.eat("["):
			k, err := p.literal()
			if err != nil {
				return nil, err
			}
			s, ok := k.(string)
			if !ok || !p.eat("]") {
				return nil, fmt.Errorf("only ['key'] subscripts are in the subset")
			}
			key = s
		default:
			return v, nil
		}
		switch m := v.(type) {
		case undefined:
			return nil, fmt.Errorf("UndefinedError: %s has no attribute %q", m.why, key)
		case map[string]any:
			if x, ok := m[key]; ok {
				v = x
			} else {
				v = undefined{why: fmt.Sprintf("no %q", key)}
			}
		default: // None, a number, a string, a list: Jinja's getattr gives Undefined
			v = undefined{why: fmt.Sprintf("%s has no %q", str(v), key)}
		}
	}
}

// literal: 'string' | number | [] | {} | true | false
func (p *parser) literal() (any, error) {
	p.skip()
	switch {
	case p.eat("[]"):
		return []any{}, nil
	case p.eat("{}"):
		return map[string]any{}, nil
	case p.pos < len(p.src) && p.src[p.pos] == '\'':
		var b strings.Builder
		for p.pos++; p.pos < len(p.src); p.pos++ {
			c := p.src[p.pos]
			switch c {
			case '\\':
				p.pos++
				if p.pos < len(p.src) {
					b.WriteByte(p.src[p.pos])
				}
			case '\'':
				p.pos++
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return nil, fmt.Errorf("unterminated string")
	}
	switch w := p.ident(); w {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "":
	default:
		return nil, fmt.Errorf("%q is outside the subset", w)
	}
	start := p.pos
	for p.pos < len(p.src) && (p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.') {
		p.pos++
	}
	if start == p.pos {
		return nil, fmt.Errorf("expected a value at %q", p.src[start:])
	}
	return json.Number(p.src[start:p.pos]), nil
}

func filter(name string, v any, args []any, kw map[string]any) (any, error) {
	switch name {
	case "default": // default(value, boolean=false)
		if len(args) < 1 || len(args) > 2 || len(kw) > 0 {
			return nil, fmt.Errorf("default takes a value and an optional true")
		}
		if _, undef := v.(undefined); undef {
			return args[0], nil
		}
		if len(args) == 2 && args[1] == true && !truthy(v) {
			return args[0], nil
		}
		return v, nil
	case "selectattr": // selectattr('attr', 'eq', value)
		if len(args) != 3 || args[1] != "eq" || len(kw) > 0 {
			return nil, fmt.Errorf("selectattr is in the subset as selectattr('attr', 'eq', value)")
		}
		list, err := iterable(v)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, x := range list {
			if m, ok := x.(map[string]any); ok && m[args[0].(string)] == args[2] {
				out = append(out, x)
			}
		}
		return out, nil
	case "map": // map(attribute='attr')
		attr, ok := kw["attribute"].(string)
		if !ok || len(args) > 0 || len(kw) != 1 {
			return nil, fmt.Errorf("map is in the subset as map(attribute='attr')")
		}
		list, err := iterable(v)
		if err != nil {
			return nil, err
		}
		out := []any{}
		for _, x := range list {
			if m, ok := x.(map[string]any); ok {
				if y, ok := m[attr]; ok {
					out = append(out, y)
					continue
				}
			}
			out = append(out, undefined{why: fmt.Sprintf("no %q", attr)})
		}
		return out, nil
	case "first", "list":
		if len(args)+len(kw) > 0 {
			return nil, fmt.Errorf("%s takes no arguments", name)
		}
		list, err := iterable(v)
		if err != nil {
			return nil, err
		}
		if name == "list" {
			return list, nil
		}
		if len(list) == 0 {
			return undefined{why: "no first item, sequence was empty"}, nil
		}
		return list[0], nil
	case "tojson":
		if _, undef := v.(undefined); undef {
			return nil, fmt.Errorf("tojson of an undefined value")
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	return nil, fmt.Errorf("filter %q is outside the subset", name)
}

func iterable(v any) ([]any, error) {
	switch l := v.(type) {
	case []any:
		return l, nil
	case undefined:
		return nil, fmt.Errorf("UndefinedError: iterating an undefined value (%s)", l.why)
	}
	return nil, fmt.Errorf("TypeError: %s is not iterable here", str(v))
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, _ := x.Float64()
		return f != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// str is how Jinja prints a value.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case json.Number:
		return x.String()
	case undefined:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
