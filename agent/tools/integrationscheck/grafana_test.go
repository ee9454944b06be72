package integrationscheck

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
)

// grafanaFile is the dashboard, under the repository root.
var grafanaFile = []string{"docs", "integrations", "grafana-cvedge.json"}

// targetLabels are the labels Prometheus adds to every series it scrapes from a target; the
// agent does not serve them.
var targetLabels = map[string]bool{"instance": true, "job": true}

// family is a metric family the agent serves: its type and label names.
type family struct {
	typ    dto.MetricType
	labels map[string]bool
}

// servedFamilies registers the agent's metrics (ops.NewMetrics) with a snapshot in which
// every part is present (a camera, a model with a shadow, spool drops, LLM calls), observes
// each metric updated as frames are processed once, and gathers them, as a scrape would.
func servedFamilies(t *testing.T) map[string]family {
	t.Helper()
	m := ops.NewMetrics(func() ops.Snapshot {
		return ops.Snapshot{
			Cameras: []ops.CameraState{{Name: "station2", State: "online", Read: 10, Processed: 9, Dropped: 1, Samples: map[string]uint64{"low_confidence": 1}}},
			Models:  []ops.ModelState{{Name: "parts", Iteration: "b43331db", SHA256: "5e02", Format: "detector-yolo", ShadowAgreement: 0.97}},
			MQTT:    payload.MQTTStats{Connected: true, State: "connected", Sent: 9},
			Spool:   payload.SpoolStats{Writable: true, Dropped: map[string]uint64{"samples/bytes": 1}},
			LLM:     map[string]uint64{"answered": 1},
		}
	})
	m.Stage.WithLabelValues("station2", "detect").Observe(0.014)
	m.Detections.WithLabelValues("station2").Observe(1)
	m.Crops.WithLabelValues("station2").Observe(1)
	m.Predictions.WithLabelValues("station2", "parts", "brass").Inc()
	m.Parts.WithLabelValues("station2", "brass", "ok").Inc()
	m.DecisionLatency.WithLabelValues("station2", "line").Observe(0.02)
	got, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, f := range got {
		fam := family{typ: f.GetType(), labels: map[string]bool{}}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				fam.labels[l.GetName()] = true
			}
		}
		out[f.GetName()] = fam
	}
	n := 0
	for name := range out {
		if strings.HasPrefix(name, "cvedge_") {
			n++
		}
	}
	if n < 20 {
		t.Fatalf("the registry served %d cvedge_ families: the test's snapshot or observations miss some", n)
	}
	return out
}

// seriesLabels returns the labels a series name used in PromQL has: a family's, or a
// histogram's _bucket (with le), _sum or _count.
func seriesLabels(name string, fams map[string]family) (map[string]bool, error) {
	if f, ok := fams[name]; ok {
		if f.typ == dto.MetricType_HISTOGRAM || f.typ == dto.MetricType_SUMMARY {
			return nil, fmt.Errorf("%s is a %s: query its _bucket, _sum or _count series", name, strings.ToLower(f.typ.String()))
		}
		return f.labels, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		f, ok := fams[base]
		if !ok || f.typ != dto.MetricType_HISTOGRAM && !(f.typ == dto.MetricType_SUMMARY && suffix != "_bucket") {
			continue
		}
		labels := map[string]bool{}
		for l := range f.labels {
			labels[l] = true
		}
		if suffix == "_bucket" {
			labels["le"] = true
		}
		return labels, nil
	}
	return nil, fmt.Errorf("the agent serves no metric %s (agent/ops/metrics.go)", name)
}

// metricRows reads the metrics table of docs/operations.md: each metric's row.
func metricRows(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(testenv.Path("docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	tick := regexp.MustCompile("`(cvedge_[a-z_]+)`")
	rows := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `cvedge_") {
			continue
		}
		first := strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0]
		for _, m := range tick.FindAllStringSubmatch(first, -1) {
			rows[m[1]] = line
		}
	}
	if len(rows) < 20 {
		t.Fatalf("docs/operations.md: %d metric rows found, want the whole metrics table", len(rows))
	}
	return rows
}

var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// checkPromQL checks one query of the dashboard against the served metrics: every series
// exists, every label matched, grouped by or shown in the legend is on the series it applies
// to, every fixed label value is one docs/operations.md documents for that metric, and every
// variable is defined.
func checkPromQL(expr, legend string, fams map[string]family, rows map[string]string, vars map[string]bool) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pe, err := scanPromQL(expr)
	if err != nil {
		return []error{err}
	}
	if len(pe.selectors) == 0 {
		fail("no metric in %s", expr)
	}
	labelsAt := map[int]map[string]bool{}
	for _, s := range pe.selectors {
		labels, err := seriesLabels(s.metric, fams)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		labelsAt[s.at] = labels
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.metric, "_bucket"), "_sum"), "_count")
		if _, ok := fams[s.metric]; ok {
			base = s.metric
		}
		for _, m := range s.matchers {
			if !labels[m.label] && !targetLabels[m.label] {
				fail("%s has no label %s (it has %s)", s.metric, m.label, keys(labels))
			}
			if (m.op == "=" || m.op == "!=") && !strings.Contains(m.value, "$") && !strings.Contains(rows[base], "`"+m.value+"`") {
				fail("%s{%s%s%q}: docs/operations.md does not list %q as a value of %s", s.metric, m.label, m.op, m.value, m.value, m.label)
			}
		}
	}
	for _, g := range pe.groupings {
		for _, s := range pe.selectors {
			labels, ok := labelsAt[s.at]
			if !ok || s.at < g.from || s.at > g.to {
				continue
			}
			for _, l := range g.labels {
				if !labels[l] && !targetLabels[l] {
					fail("%s (%s) in %s: %s has no label %s", g.keyword, strings.Join(g.labels, ", "), expr, s.metric, l)
				}
			}
		}
	}
	for _, v := range pe.vars {
		if !vars[v] {
			fail("variable $%s in %s is not defined", v, expr)
		}
	}
	// the legend's labels: those grouped by when the query aggregates, else the series'
	var grouped []string
	for _, g := range pe.groupings {
		if g.keyword == "by" {
			grouped = append(grouped, g.labels...)
		}
	}
	for _, m := range legendLabel.FindAllStringSubmatch(legend, -1) {
		l := m[1]
		if pe.aggregates {
			if !slices.Contains(grouped, l) {
				fail("legend {{%s}} of %s: the query aggregates, and not by %s", l, expr, l)
			}
			continue
		}
		for _, s := range pe.selectors {
			if labels, ok := labelsAt[s.at]; ok && !labels[l] && !targetLabels[l] {
				fail("legend {{%s}} of %s: %s has no label %s", l, expr, s.metric, l)
			}
		}
	}
	return errs
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	UID           string                      `json:"uid"`
	Title         string                      `json:"title"`
	SchemaVersion int                         `json:"schemaVersion"`
	Panels        []grafanaPanel              `json:"panels"`
	Templating    struct{ List []grafanaVar } `json:"templating"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *grafanaDatasource       `json:"datasource"`
	GridPos    struct{ X, Y, W, H int } `json:"gridPos"`
	Targets    []struct {
		Datasource   *grafanaDatasource `json:"datasource"`
		RefID        string             `json:"refId"`
		Expr         string             `json:"expr"`
		LegendFormat string             `json:"legendFormat"`
	} `json:"targets"`
	Panels []json.RawMessage `json:"panels"`
}

type grafanaVar struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Query      json.RawMessage    `json:"query"`
}

// queryText is a variable's query: a string, or {"query": "..."} (Grafana 10's editor).
func (v grafanaVar) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	json.Unmarshal(v.Query, &q)
	return q.Query
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(testenv.Path(grafanaFile...))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", strings.Join(grafanaFile, "/"), err)
	}
	return d
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// checkDashboard checks every query of d (panels and variables) against the served metrics,
// and what an import needs: the DS_PROMETHEUS input used by every panel, query and variable,
// a camera variable from label_values, unique panel ids, and a grid where no panel overlaps
// another or leaves the 24 columns.
func checkDashboard(d dashboard, fams map[string]family, rows map[string]string) (checked int, errs []error) {
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		fail("__inputs must be the one Prometheus datasource input DS_PROMETHEUS, have %+v", d.Inputs)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		fail("uid %q, title %q, schemaVersion %d: an import into Grafana 10 or 11 needs a uid, a title and schemaVersion 36 or later", d.UID, d.Title, d.SchemaVersion)
	}
	ds := func(where string, s *grafanaDatasource) {
		if s == nil || s.Type != "prometheus" || s.UID != "${DS_PROMETHEUS}" {
			fail("%s: datasource %+v, want {prometheus ${DS_PROMETHEUS}}", where, s)
		}
	}
	vars := map[string]bool{"__interval": true, "__rate_interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	camera := false
	for _, v := range d.Templating.List {
		ds("variable "+v.Name, v.Datasource)
		m := labelValues.FindStringSubmatch(v.queryText())
		if v.Type != "query" || m == nil {
			fail("variable %s: want a query variable label_values(<series>, <label>), have %s", v.Name, v.queryText())
			continue
		}
		camera = camera || v.Name == "camera" && m[2] == "camera"
		checked++
		for _, err := range checkPromQL(m[1], "{{"+m[2]+"}}", fams, rows, vars) {
			fail("variable %s: %v", v.Name, err)
		}
	}
	if !camera {
		fail("no camera variable from label_values(..., camera)")
	}
	ids := map[int]bool{}
	type rect struct {
		title      string
		x, y, w, h int
	}
	var rects []rect
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			fail("panel %q: id %d is 0 or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			fail("panel %q: gridPos %+v is outside the 24 columns", p.Title, g)
		}
		for _, r := range rects {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				fail("panel %q %+v overlaps panel %q", p.Title, g, r.title)
			}
		}
		rects = append(rects, rect{p.Title, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			if len(p.Panels) > 0 {
				fail("row %q is collapsed with panels inside: this check reads top-level panels only", p.Title)
			}
			continue
		}
		ds("panel "+p.Title, p.Datasource)
		if len(p.Targets) == 0 {
			fail("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			ds(fmt.Sprintf("panel %q, query %s", p.Title, tg.RefID), tg.Datasource)
			checked++
			for _, err := range checkPromQL(tg.Expr, tg.LegendFormat, fams, rows, vars) {
				fail("panel %q, query %s: %v", p.Title, tg.RefID, err)
			}
		}
	}
	return checked, errs
}

// TestGrafanaDashboard: every PromQL query of docs/integrations/grafana-cvedge.json reads
// metrics and labels the agent serves (ops.NewMetrics, gathered as a scrape), and the
// dashboard imports: one Prometheus input, a camera variable, a grid without overlaps.
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	fams, rows := servedFamilies(t), metricRows(t)
	checked, errs := checkDashboard(d, fams, rows)
	for _, err := range errs {
		t.Error(err)
	}
	if checked < 30 {
		t.Fatalf("only %d queries checked: the dashboard or this test lost some", checked)
	}
	// the families the dashboard must show (the list)
	used := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			pe, _ := scanPromQL(tg.Expr)
			for _, s := range pe.selectors {
				used[s.metric] = true
			}
		}
	}
	for _, want := range []string{"cvedge_parts_total", "cvedge_frames_processed_total", "cvedge_stage_seconds_bucket",
		"cvedge_frames_dropped_total", "cvedge_frames_skipped_total", "cvedge_frames_overflow_total", "cvedge_spool_messages",
		"cvedge_spool_dropped_total", "cvedge_mqtt_state", "cvedge_part_decision_latency_seconds_bucket", "cvedge_llm_calls_total"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// TestGrafanaCheckFindsFaults: the dashboard check reports a renamed metric, a label the
// metric lacks, le outside a histogram's buckets, a grouping by a missing label, a value
// docs/operations.md does not list, an undefined variable, a legend label the aggregation
// drops, and overlapping panels.
func TestGrafanaCheckFindsFaults(t *testing.T) {
	fams, rows := servedFamilies(t), metricRows(t)
	vars := map[string]bool{"camera": true, "instance": true}
	for _, c := range []struct{ expr, legend, want string }{
		{`sum(rate(cvedge_parts_decided_total[5m]))`, "", "no metric cvedge_parts_decided_total"},
		{`sum(rate(cvedge_mqtt_messages_total{camera="a"}[5m]))`, "", "has no label camera"},
		{`sum by (le) (rate(cvedge_stage_seconds_count[5m]))`, "", "has no label le"},
		{`sum by (stage) (rate(cvedge_frames_read_total[5m]))`, "", "has no label stage"},
		{`sum(rate(cvedge_stage_seconds_bucket{stage="inference"}[5m]))`, "", `does not list "inference"`},
		{`sum(rate(cvedge_parts_total{camera=~"$line"}[5m]))`, "", "$line"},
		{`sum by (camera) (rate(cvedge_parts_total[5m]))`, "{{tag}}", "legend {{tag}}"},
		{`rate(cvedge_stage_seconds[5m])`, "", "is a histogram"},
		{`rate(cvedge_parts_total_sum[5m])`, "", "no metric cvedge_parts_total_sum"},
		{`sum(rate({__name__="cvedge_parts_total"}[5m]))`, "", "without a metric name"},
	} {
		errs := checkPromQL(c.expr, c.legend, fams, rows, vars)
		if !strings.Contains(fmt.Sprint(errs), c.want) {
			t.Errorf("%s: errors %v, want one saying %q", c.expr, errs, c.want)
		}
	}
	d := loadDashboard(t)
	if _, errs := checkDashboard(d, fams, rows); len(errs) > 0 {
		t.Fatalf("the dashboard itself fails: %v", errs)
	}
	d.Panels[2].GridPos = d.Panels[1].GridPos
	d.Panels[3].Targets[0].Expr = strings.Replace(d.Panels[3].Targets[0].Expr, "cvedge_parts_total", "cvedge_parts", 1)
	_, errs := checkDashboard(d, fams, rows)
	if !strings.Contains(fmt.Sprint(errs), "overlaps") || !strings.Contains(fmt.Sprint(errs), "no metric cvedge_parts") {
		t.Errorf("a moved panel and a renamed metric: errors %v", errs)
	}
}

// FuzzScanPromQL: the scanner returns an error or a result for any text; it never panics.
func FuzzScanPromQL(f *testing.F) {
	for _, s := range []string{
		`histogram_quantile(0.99, sum by (le, stage) (rate(cvedge_stage_seconds_bucket{camera=~"$camera"}[5m])))`,
		`sum(increase(cvedge_parts_total{verdict="nok"}[1h])) / sum(increase(cvedge_parts_total[1h]))`,
		`cvedge_mqtt_state == 1`, `sum(x) by (a`, `{a="b"}`, `x{a=~"\"}`, `${camera:regex}`, `1e-3 * x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		pe, err := scanPromQL(expr)
		if err != nil {
			return
		}
		for _, g := range pe.groupings {
			if g.from > g.to {
				t.Fatalf("%q: grouping %+v has an empty range", expr, g)
			}
		}
	})
}
