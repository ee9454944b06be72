package configs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// docDefault is one default that a docs page states for a config key.
type docDefault struct {
	page, key, value string
	row              string // the first key named in the table row, if any (low_confidence)
}

// printedKeys returns every key of the effective config with its value as `cvedge config
// print` writes it: the top-level defaults under their paths (http.listen), a model entry's
// under models.<key> and a camera entry's under cameras.<key>.
func printedKeys(t *testing.T) map[string]any {
	t.Helper()
	cfg := Default()
	cfg.Models = map[string]Model{"m": DefaultModel()}
	cfg.Cameras = []Camera{DefaultCamera()}
	var buf bytes.Buffer
	if err := cfg.Print(&buf); err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(buf.Bytes(), &tree); err != nil {
		t.Fatalf("config print is not YAML: %v\n%s", err, buf.String())
	}
	out := map[string]any{}
	models := tree["models"].(map[string]any)
	cams := tree["cameras"].([]any)
	delete(tree, "models")
	delete(tree, "cameras")
	leaves("", tree, out)
	leaves("models", models["m"].(map[string]any), out)
	leaves("cameras", cams[0].(map[string]any), out)
	return out
}

// leaves flattens a YAML tree into dotted keys; lists and empty maps are leaves.
func leaves(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := join(prefix, k)
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			leaves(key, sub, out)
			continue
		}
		out[key] = v
	}
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	// a key in backticks, then within the same clause "default" and a value: `mqtt.qos`
	// (default 1), (`mqtt.queue_size`, default 1024), `crop_padding` (a fraction of its
	// size, default 0.1), `commands.signed` (default: `add`, `activate`, `reload`)
	keyDefault = regexp.MustCompile("`([a-z][a-z0-9_]*(?:\\.[a-z][a-z0-9_]*)*)`\\s*[(,]\\s*[^()`]*?\\bdefault:?\\s+(" +
		"`[^`]+`(?:,\\s*`[^`]+`)*" +
		"|[0-9][0-9.]*(?:\\s*(?:ms|s|m|h|seconds?|minutes?|hours?|days?)\\b)?" +
		"|true\\b|false\\b)")
	spelled = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|seconds?|minutes?|hours?|days?)$`)
)

// statedDefaults reads the defaults a markdown page states: in prose (`key` ... default X),
// and in tables with a "default" or "key (default)" column. Code blocks are left out.
func statedDefaults(page, text string) []docDefault {
	var out []docDefault
	var para []string
	flush := func() {
		if len(para) > 0 {
			out = append(out, prose(page, strings.Join(para, " "), "")...)
			para = nil
		}
	}
	var header []string
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			flush()
			inCode = !inCode
		case inCode:
		case strings.HasPrefix(trimmed, "|"):
			flush()
			cells := strings.Split(strings.Trim(trimmed, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			switch {
			case header == nil:
				header = cells
			case strings.HasPrefix(cells[0], "---"):
			default:
				out = append(out, tableRow(page, header, cells)...)
			}
		case trimmed == "":
			flush()
			header = nil
		default:
			header = nil
			para = append(para, trimmed)
		}
	}
	flush()
	return out
}

func prose(page, text, row string) []docDefault {
	var out []docDefault
	for _, m := range keyDefault.FindAllStringSubmatch(text, -1) {
		out = append(out, docDefault{page: page, key: m[1], value: m[2], row: row})
	}
	return out
}

func tableRow(page string, header, cells []string) []docDefault {
	row := ""
	if m := backticked.FindStringSubmatch(cells[0]); m != nil {
		row = m[1]
	}
	var out []docDefault
	for i, h := range header {
		if i >= len(cells) {
			break
		}
		switch h {
		case "default": // | `intra_op_threads` | cores − 1, at least 1 | ...
			if row != "" {
				out = append(out, docDefault{page: page, key: row, value: cells[i], row: row})
			}
		case "key (default)": // | ... | `store.max_download_mb` (512) |
			if m := regexp.MustCompile("^`([^`]+)` \\(([^)]+)\\)$").FindStringSubmatch(cells[i]); m != nil {
				out = append(out, docDefault{page: page, key: m[1], value: m[2], row: row})
			}
		default:
			for _, d := range prose(page, cells[i], row) {
				out = append(out, d)
			}
		}
	}
	return out
}

// resolve finds the config key a page means: a dotted key as it is, else the one key that
// ends in it, preferring the table row's (samples.low_confidence.threshold) and the page's
// section (models.threshold on models.md).
func resolve(d docDefault, keys map[string]any) (string, error) {
	if _, ok := keys[d.key]; ok {
		return d.key, nil
	}
	var found []string
	for k := range keys {
		if strings.HasSuffix(k, "."+d.key) {
			found = append(found, k)
		}
	}
	narrow := func(keep func(string) bool) {
		var kept []string
		for _, k := range found {
			if keep(k) {
				kept = append(kept, k)
			}
		}
		if len(kept) > 0 {
			found = kept
		}
	}
	if len(found) > 1 && d.row != "" && d.row != d.key {
		narrow(func(k string) bool { return strings.Contains(k, "."+d.row+".") })
	}
	section := map[string]string{"models.md": "models.", "cameras.md": "cameras.", "operations.md": "onnxruntime."}[d.page]
	if len(found) > 1 && section != "" {
		narrow(func(k string) bool { return strings.HasPrefix(k, section) })
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no config key %s: name it as configs/cvedge.yaml does", d.key)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s could be any of %s: name the full key", d.key, strings.Join(found, ", "))
}

// sameValue compares what a page states with the printed value.
func sameValue(doc string, got any) bool {
	doc = strings.TrimSpace(doc)
	if list, ok := got.([]any); ok {
		var want []string
		for _, m := range backticked.FindAllStringSubmatch(doc, -1) {
			want = append(want, m[1])
		}
		var have []string
		for _, v := range list {
			have = append(have, fmt.Sprint(v))
		}
		return strings.Join(want, ",") == strings.Join(have, ",")
	}
	doc = strings.Trim(doc, "`")
	if doc == "cores − 1, at least 1" {
		doc = strconv.Itoa(max(1, runtime.NumCPU()-1))
	}
	if m := spelled.FindStringSubmatch(doc); m != nil {
		n, _ := strconv.ParseFloat(m[1], 64)
		unit := map[byte]time.Duration{'s': time.Second, 'h': time.Hour, 'd': 24 * time.Hour}[m[2][0]]
		switch {
		case m[2] == "ms":
			unit = time.Millisecond
		case m[2] == "m" || strings.HasPrefix(m[2], "minute"):
			unit = time.Minute
		}
		d, err := time.ParseDuration(fmt.Sprint(got))
		return err == nil && d == time.Duration(n*float64(unit))
	}
	if want, err := strconv.ParseFloat(doc, 64); err == nil {
		have, err := strconv.ParseFloat(fmt.Sprint(got), 64)
		return err == nil && have == want
	}
	return doc == fmt.Sprint(got)
}

// TestDocsStateTheDefaults: every default the docs pages state for a config key (in prose,
// "`mqtt.qos` (default 1)", and in tables) is the one configs.Default and `cvedge config
// print` give.
func TestDocsStateTheDefaults(t *testing.T) {
	keys := printedKeys(t)
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs pages in ../docs: %v", err)
	}
	checked := map[string]bool{}
	for _, path := range pages {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page := filepath.Base(path)
		for _, d := range statedDefaults(page, string(text)) {
			key, err := resolve(d, keys)
			if err != nil {
				t.Errorf("docs/%s: `%s` (default %s): %v", page, d.key, d.value, err)
				continue
			}
			checked[key] = true
			if !sameValue(d.value, keys[key]) {
				t.Errorf("docs/%s says %s defaults to %s; configs.Default has %v", page, key, d.value, keys[key])
			}
		}
	}
	// the statements this test must at least find, so that a change of wording cannot
	// quietly turn it off
	for _, key := range []string{"http.listen", "mqtt.qos", "mqtt.queue_size", "mqtt.inflight", "mqtt.stats_interval",
		"spool.max_mb", "spool.max_age", "spool.drop_first", "commands.max_age", "commands.signed",
		"store.max_download_mb", "onnxruntime.intra_op_threads", "onnxruntime.graph_optimization",
		"models.nms_iou", "models.input_size", "samples.low_confidence.threshold"} {
		if !checked[key] {
			t.Errorf("the docs no longer state the default of %s where this test looks (`%s` (default X) or a default column)", key, key)
		}
	}
}

// TestCameraDocsListTheDefaults: the block of docs/cameras.md that lists every camera key
// "with its default" holds the defaults of a camera entry (its name, source and models are
// examples, not defaults).
func TestCameraDocsListTheDefaults(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "docs", "cameras.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(text), "Every key, with its default:")
	_, block, ok2 := strings.Cut(after, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/cameras.md: no yaml block after \"Every key, with its default:\"")
	}
	var doc struct {
		Cameras []map[string]any `yaml:"cameras"`
	}
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil || len(doc.Cameras) != 1 {
		t.Fatalf("docs/cameras.md: the defaults block is not one camera in YAML: %v", err)
	}
	stated := map[string]any{}
	leaves("cameras", doc.Cameras[0], stated)
	keys := printedKeys(t)
	examples := map[string]bool{"cameras.name": true, "cameras.source": true, "cameras.pipeline.detector": true, "cameras.pipeline.classifier": true}
	for key, val := range stated {
		if examples[key] {
			continue
		}
		got, ok := keys[key]
		if m, isMap := val.(map[string]any); !ok && isMap && len(m) == 0 && hasUnder(keys, key) {
			continue // device: {}, a section described further down the page
		}
		if !ok {
			t.Errorf("docs/cameras.md lists %s, which a camera entry does not have", key)
			continue
		}
		if fmt.Sprint(val) != fmt.Sprint(got) && !sameValue(fmt.Sprint(val), got) {
			t.Errorf("docs/cameras.md says %s defaults to %v; DefaultCamera has %v", key, val, got)
		}
	}
}

func hasUnder(keys map[string]any, prefix string) bool {
	for k := range keys {
		if strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

// TestDocsNameTheDebMakeBuilds: every .deb file name in README.md and docs/*.md is one `make
// deb` builds: dist/cvedge_<version>_<arch>.deb, where the version is a placeholder, a glob,
// or the Makefile's version of an untagged commit (0.0.0+git<commit>), and a path to install
// from is under dist/.
func TestDocsNameTheDebMakeBuilds(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(makefile), "0.0.0+git$(COMMIT)") || !strings.Contains(string(makefile), "--target dist/") {
		t.Fatal("the Makefile no longer builds dist/cvedge_0.0.0+git<commit>_<arch>.deb on an untagged commit: update this test and the docs")
	}
	version := regexp.MustCompile(`^(<[a-z]+>|\*|0\.0\.0\+git[0-9a-f]{7,40})$`)
	arch := regexp.MustCompile(`^(<arch>|\*|amd64|arm64)$`)
	name := regexp.MustCompile("(\\S*?)cvedge_([^\\s`]*?)\\.deb")
	pages, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	pages = append(pages, filepath.Join("..", "README.md"))
	found := 0
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllStringSubmatch(string(text), -1) {
			found++
			dir, rest := strings.TrimLeft(m[1], "`("), m[2]
			parts := strings.Split(rest, "_")
			if len(parts) != 2 || !version.MatchString(parts[0]) || !arch.MatchString(parts[1]) {
				t.Errorf("%s: %s is not a name make deb gives: cvedge_<version>_<arch>.deb, the version 0.0.0+git<commit> on an untagged commit", page, m[0])
			}
			if strings.HasPrefix(dir, "./") && dir != "./dist/" {
				t.Errorf("%s: %s: make deb writes it to dist/", page, m[0])
			}
		}
	}
	if found == 0 {
		t.Fatal("no .deb named in the docs")
	}
}

// logLine is a log line of the README: its time, level, message and attributes in order.
type logLine struct {
	time  time.Time
	level slog.Level
	msg   string
	attrs []slog.Attr
}

func attrOf(key, val string, quoted bool) slog.Attr {
	if !quoted {
		if n, err := strconv.ParseInt(val, 10, 64); err == nil {
			return slog.Int64(key, n)
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			return slog.Float64(key, f)
		}
	}
	return slog.String(key, val)
}

// parseTextLine reads a line as slog's text handler writes it: key=value pairs, a value
// quoted when it needs to be, starting with time, level and msg.
func parseTextLine(line string) (logLine, error) {
	var l logLine
	var keys []string
	rest := line
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return l, fmt.Errorf("%q is not key=value", rest)
		}
		val, quoted := "", strings.HasPrefix(after, `"`)
		if quoted {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return l, fmt.Errorf("%s: %v", key, err)
			}
			val, _ = strconv.Unquote(q)
			after = after[len(q):]
		} else {
			val, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		rest = strings.TrimPrefix(after, " ")
		keys = append(keys, key)
		switch key {
		case "time":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return l, fmt.Errorf("time=%s: %v", val, err)
			}
			l.time = t
		case "level":
			if err := l.level.UnmarshalText([]byte(val)); err != nil {
				return l, err
			}
		case "msg":
			l.msg = val
		default:
			l.attrs = append(l.attrs, attrOf(key, val, quoted))
		}
	}
	if len(keys) < 3 || strings.Join(keys[:3], " ") != "time level msg" {
		return l, fmt.Errorf("it starts with %v; slog's text handler starts every line with time, level and msg", keys[:min(3, len(keys))])
	}
	return l, nil
}

// parseJSONLine reads a line as slog's JSON handler writes it.
func parseJSONLine(line string) (logLine, error) {
	var l logLine
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return l, fmt.Errorf("not a JSON object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return l, err
		}
		key := tok.(string)
		keys = append(keys, key)
		var val any
		if err := dec.Decode(&val); err != nil {
			return l, err
		}
		s := fmt.Sprint(val)
		switch key {
		case "time":
			if l.time, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return l, err
			}
		case "level":
			if err := l.level.UnmarshalText([]byte(s)); err != nil {
				return l, err
			}
		case "msg":
			l.msg = s
		default:
			_, isString := val.(string)
			l.attrs = append(l.attrs, attrOf(key, s, isString))
		}
	}
	if len(keys) < 3 || strings.Join(keys[:3], " ") != "time level msg" {
		return l, fmt.Errorf("it starts with %v; slog's JSON handler starts every object with time, level and msg", keys[:min(3, len(keys))])
	}
	return l, nil
}

// TestReadmeLogLinesAreSlogs: the log lines README.md shows under "What `make run` shows"
// are what slog's text handler (a terminal) and JSON handler (otherwise; cmd/cvedge/log.go)
// write for one record, and both show the same record.
func TestReadmeLogLinesAreSlogs(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### What `make run` shows")
	section, _, _ = strings.Cut(section, "\n### ")
	if !ok {
		t.Fatal("README.md has no \"What `make run` shows\"")
	}
	var text, js string
	for _, block := range strings.Split(section, "```\n")[1:] {
		line := strings.TrimSpace(block)
		switch {
		case strings.HasPrefix(line, "{") && js == "":
			js = line
		case strings.Contains(line, "msg=") && text == "":
			text = line
		}
	}
	if text == "" || js == "" {
		t.Fatalf("README.md, What `make run` shows: want a text log line and a JSON one; found %q and %q", text, js)
	}
	replay := func(l logLine, h func(*bytes.Buffer) slog.Handler) string {
		var buf bytes.Buffer
		r := slog.NewRecord(l.time, l.level, l.msg, 0)
		r.AddAttrs(l.attrs...)
		if err := h(&buf).Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(buf.String())
	}
	tl, err := parseTextLine(text)
	if err != nil {
		t.Fatalf("README.md's text log line: %v\n%s", err, text)
	}
	if got := replay(tl, func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }); got != text {
		t.Errorf("README.md's text log line is not what slog writes:\nREADME %s\nslog   %s", text, got)
	}
	jl, err := parseJSONLine(js)
	if err != nil {
		t.Fatalf("README.md's JSON log line: %v\n%s", err, js)
	}
	if got := replay(jl, func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }); got != js {
		t.Errorf("README.md's JSON log line is not what slog writes:\nREADME %s\nslog   %s", js, got)
	}
	if fmt.Sprint(tl.msg, tl.attrs) != fmt.Sprint(jl.msg, jl.attrs) || !tl.time.Truncate(time.Millisecond).Equal(jl.time.Truncate(time.Millisecond)) {
		t.Errorf("README.md's text and JSON lines show different records:\n%s\n%s", text, js)
	}
}
