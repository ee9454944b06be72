package integrationscheck

import (
	"fmt"
	"regexp"
	"strings"
)

// A small PromQL scanner: enough to find the metric names, label matchers and grouping labels
// of the dashboard's queries, and to refuse what it does not understand rather than let it
// through unchecked.

var grafanaVariable = regexp.MustCompile(`\$(?:\{([a-zA-Z_][a-zA-Z0-9_]*)[^}]*\}|([a-zA-Z_][a-zA-Z0-9_]*))`)

// promMatcher is one label matcher of a selector: camera=~"$camera".
type promMatcher struct{ label, op, value string }

// promToken is a token of a PromQL expression.
type promToken struct {
	kind     byte // 'i' identifier, '(' ')' ',' punctuation, 'v' Grafana variable, 'o' anything else
	text     string
	call     bool // an identifier followed by (
	matchers []promMatcher
}

// promSelector is a metric selector found in an expression, at token index at.
type promSelector struct {
	metric   string
	matchers []promMatcher
	at       int
}

// promGrouping is a by/without/on/ignoring label list, and the token range its labels must
// exist on (from, to inclusive); an on/ignoring list covers the whole expression.
type promGrouping struct {
	keyword  string
	labels   []string
	from, to int
}

// promExpr is what the scanner found in an expression.
type promExpr struct {
	selectors  []promSelector
	groupings  []promGrouping
	vars       []string
	aggregates bool
}

var promAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}

var promKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "Inf": true, "NaN": true, "inf": true, "nan": true}

func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isIdent(c byte) bool      { return isIdentStart(c) || c >= '0' && c <= '9' }

// lexPromQL splits expr into tokens.
func lexPromQL(expr string) ([]promToken, error) {
	var toks []promToken
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			s, n, err := promString(expr[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, promToken{kind: 'o', text: s})
			i += n
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			toks = append(toks, promToken{kind: 'o', text: expr[i : i+j+1]})
			i += j + 1
		case c == '{':
			ms, n, err := promMatchers(expr[i:])
			if err != nil {
				return nil, err
			}
			if len(toks) == 0 || toks[len(toks)-1].kind != 'i' || toks[len(toks)-1].call || toks[len(toks)-1].matchers != nil {
				return nil, fmt.Errorf("a selector without a metric name at %d: name the metric", i)
			}
			toks[len(toks)-1].matchers = ms
			i += n
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, promToken{kind: c, text: string(c)})
			i++
		case c == '$':
			j := i + 1
			if j < len(expr) && expr[j] == '{' {
				k := strings.IndexByte(expr[j:], '}')
				if k < 0 {
					return nil, fmt.Errorf("unclosed ${ at %d", i)
				}
				toks = append(toks, promToken{kind: 'v', text: strings.SplitN(expr[j+1:j+k], ":", 2)[0]})
				i = j + k + 1
				continue
			}
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			toks = append(toks, promToken{kind: 'v', text: expr[i+1 : j]})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			toks = append(toks, promToken{kind: 'i', text: expr[i:j], call: k < len(expr) && expr[k] == '('})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(expr) && (isIdent(expr[j]) || expr[j] == '.' || (expr[j] == '-' || expr[j] == '+') && (expr[j-1]|0x20) == 'e') {
				j++
			}
			toks = append(toks, promToken{kind: 'o', text: expr[i:j]})
			i = j
		case strings.IndexByte("+-*/%^=!<>", c) >= 0:
			j := i + 1
			if j < len(expr) && expr[j] == '=' {
				j++
			}
			toks = append(toks, promToken{kind: 'o', text: expr[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return toks, nil
}

// promString reads a quoted string at the start of s: its value and length.
func promString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case s[i] == q:
			return b.String(), i + 1, nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unclosed string %s", s)
}

// promMatchers reads {label op "value", ...} at the start of s.
func promMatchers(s string) ([]promMatcher, int, error) {
	ms := []promMatcher{}
	i := 1
	skip := func() {
		for i < len(s) && s[i] == ' ' {
			i++
		}
	}
	for {
		skip()
		if i < len(s) && s[i] == '}' {
			return ms, i + 1, nil
		}
		j := i
		for j < len(s) && isIdent(s[j]) {
			j++
		}
		if j == i {
			return nil, 0, fmt.Errorf("a label name expected in %s", s)
		}
		m := promMatcher{label: s[i:j]}
		i = j
		skip()
		for _, op := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(s[i:], op) {
				m.op = op
				break
			}
		}
		if m.op == "" {
			return nil, 0, fmt.Errorf("a matcher operator expected after %s in %s", m.label, s)
		}
		i += len(m.op)
		skip()
		if i >= len(s) || strings.IndexByte("\"'`", s[i]) < 0 {
			return nil, 0, fmt.Errorf("a quoted value expected for %s in %s", m.label, s)
		}
		v, n, err := promString(s[i:])
		if err != nil {
			return nil, 0, err
		}
		m.value = v
		ms = append(ms, m)
		i += n
		skip()
		if i < len(s) && s[i] == ',' {
			i++
		}
	}
}

// scanPromQL finds the selectors, groupings and variables of expr.
func scanPromQL(expr string) (promExpr, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return promExpr{}, err
	}
	match := make([]int, len(toks))
	var stack []int
	for i, t := range toks {
		switch t.kind {
		case '(':
			stack = append(stack, i)
		case ')':
			if len(stack) == 0 {
				return promExpr{}, fmt.Errorf("unbalanced ) in %s", expr)
			}
			open := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			match[open], match[i] = i, open
		}
	}
	if len(stack) > 0 {
		return promExpr{}, fmt.Errorf("unbalanced ( in %s", expr)
	}
	var out promExpr
	// Grafana's variables, in matchers, ranges or anywhere else: $name, ${name}, ${name:format}
	for _, m := range grafanaVariable.FindAllStringSubmatch(expr, -1) {
		out.vars = append(out.vars, m[1]+m[2])
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind != 'i':
		case promKeywords[t.text]:
			switch t.text {
			case "offset":
				return out, fmt.Errorf("offset is not read by this check: %s", expr)
			case "by", "without", "on", "ignoring", "group_left", "group_right":
				if i+1 >= len(toks) || toks[i+1].kind != '(' {
					if t.text == "group_left" || t.text == "group_right" {
						continue
					}
					return out, fmt.Errorf("%s without a label list in %s", t.text, expr)
				}
				g := promGrouping{keyword: t.text, from: 0, to: len(toks) - 1}
				closeAt := match[i+1]
				for _, l := range toks[i+2 : closeAt] {
					if l.kind == 'i' {
						g.labels = append(g.labels, l.text)
					} else if l.kind != ',' {
						return out, fmt.Errorf("%s (...) holds %q, not a label name, in %s", t.text, l.text, expr)
					}
				}
				if t.text == "by" || t.text == "without" {
					switch {
					case i > 0 && toks[i-1].kind == 'i' && promAggregations[toks[i-1].text]: // sum by (l) (expr)
						if closeAt+1 >= len(toks) || toks[closeAt+1].kind != '(' {
							return out, fmt.Errorf("%s %s (...) without its argument in %s", toks[i-1].text, t.text, expr)
						}
						g.from, g.to = closeAt+1, match[closeAt+1]
					case i > 0 && toks[i-1].kind == ')': // sum (expr) by (l)
						g.from, g.to = match[i-1], i-1
					default:
						return out, fmt.Errorf("%s not after an aggregation in %s", t.text, expr)
					}
				}
				out.groupings = append(out.groupings, g)
				i = closeAt
			}
		case t.call:
			if promAggregations[t.text] {
				out.aggregates = true
			}
		case promAggregations[t.text]:
			out.aggregates = true
		default:
			out.selectors = append(out.selectors, promSelector{metric: t.text, matchers: t.matchers, at: i})
		}
	}
	return out, nil
}
