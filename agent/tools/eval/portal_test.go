package eval

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/tools/collect"
)

// performance is an IterationPerformance answer in the documented shape.
const performance = `{
  "perTagPerformance": [
    {"id": "1c1b4c8e-0000-0000-0000-000000000001", "name": "cat", "precision": 0.9, "recall": 0.8, "averagePrecision": 0.95,
     "precisionStdDeviation": 0, "recallStdDeviation": 0},
    {"id": "1c1b4c8e-0000-0000-0000-000000000002", "name": "dog", "precision": 1, "recall": 0.5, "averagePrecision": 0.7,
     "precisionStdDeviation": 0, "recallStdDeviation": 0}
  ],
  "precision": 0.92, "precisionStdDeviation": 0, "recall": 0.7, "recallStdDeviation": 0, "averagePrecision": 0.85
}`

// fakeTraining is a Training API on loopback that answers the performance of iteration it1
// of project p1 to key k, checking the request; other projects or iterations are 404, other
// keys 401.
func fakeTraining(t *testing.T, answer string) (*collect.Training, *int) {
	t.Helper()
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Method != http.MethodGet {
			t.Errorf("method %s, want GET", r.Method)
		}
		if q := r.URL.Query(); q.Get("threshold") != "0.5" || q.Get("overlapThreshold") != "0.3" || len(q) != 2 {
			t.Errorf("query %q, want threshold=0.5&overlapThreshold=0.3", r.URL.RawQuery)
		}
		if r.Header.Get("Training-Key") != "k" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"401","message":"Access denied due to invalid subscription key."}}`))
			return
		}
		if r.URL.Path != "/customvision/v3.3/training/projects/p1/iterations/it1/performance" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"code":"NotFound","message":"Not found"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return &collect.Training{Endpoint: srv.URL + "/", Key: "k", Project: "p1", Backoff: time.Millisecond, Attempts: 2}, &calls
}

// TestFetchPortal: the portal's figures are read, and set beside the field's per tag with the
// gap (field − portal): cat precision 1 − 0.9, recall 0.5 − 0.8, AP 0.6 − 0.95.
func TestFetchPortal(t *testing.T) {
	tr, calls := fakeTraining(t, performance)
	p, err := FetchPortal(context.Background(), tr, "it1")
	if err != nil {
		t.Fatal(err)
	}
	if *calls != 1 || p.Iteration != "it1" || p.Threshold != 0.5 || p.Precision != 0.92 || p.Recall != 0.7 || p.AveragePrecision != 0.85 || len(p.PerTag) != 2 ||
		p.PerTag[0].Name != "cat" || p.PerTag[0].AveragePrecision != 0.95 || p.PerTag[1].Recall != 0.5 {
		t.Fatalf("%d calls, %+v", *calls, p)
	}
	acc, meanAP := 0.75, 0.65
	m := ModelReport{Name: "m", Accuracy: &acc, MeanAP: &meanAP, Confusion: NewConfusion([]string{"cat", "dog"}), Tags: []TagScore{{Tag: "cat", Precision: 1, Recall: 0.5, AP: 0.6}, {Tag: "dog", Precision: 0.5, Recall: 1, AP: 0.7}}}
	m.CompareWithPortal(p)
	g := p.PerTag[0].Gap
	if g == nil || !near(g.Precision, 0.1) || !near(g.Recall, -0.3) || !near(g.AP, -0.35) || !near(p.Gap.AP, -0.2) || !near(p.Gap.Precision, 0.75-0.92) {
		t.Fatalf("gaps %+v %+v", g, p.Gap)
	}
	r := &Report{Kind: "classification", Models: []ModelReport{m}}
	md := r.Markdown()
	for _, want := range []string{"## Field vs portal: m", "| cat | 100.0% | 90.0% | +10.0 pt | 50.0% | 80.0% | -30.0 pt | 0.600 | 0.950 | -0.350 |",
		"| all tags | 75.0% | 92.0% | -17.0 pt | 75.0% | 70.0% | +5.0 pt | 0.650 | 0.850 | -0.200 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}

// TestFetchPortalErrors: a wrong key, project or iteration, a missing iteration id and an
// answer that is not the documented JSON say what to check.
func TestFetchPortalErrors(t *testing.T) {
	cases := []struct {
		key, project, iteration, answer, want string
	}{
		{"bad", "p1", "it1", performance, "refused the key (Unauthorized): check CUSTOMVISION_TRAINING_KEY"},
		{"k", "p2", "it1", performance, "not found: check the project id (--project or CUSTOMVISION_PROJECT_ID: p2) and the iteration id (--iteration)"},
		{"k", "p1", "it2", performance, "not found: check the project id"},
		{"k", "p1", "", performance, "no iteration id: give --iteration"},
		{"k", "p1", "it1", `<html>gateway</html>`, "unexpected answer"},
		{"k", "p1", "it1", `{"precision": 0.5}`, "no perTagPerformance"},
		{"k", "p1", "it1", `{"perTagPerformance": [{"name": "a", "precision": 7}]}`, "perTagPerformance[0] (a) precision is 7, not a figure from 0 to 1"},
	}
	for _, c := range cases {
		tr, _ := fakeTraining(t, c.answer)
		tr.Key, tr.Project = c.key, c.project
		_, err := FetchPortal(context.Background(), tr, c.iteration)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c, err, c.want)
		}
		if err != nil && c.key == "bad" && strings.Contains(err.Error(), c.key+"\"") {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

// FuzzParsePerformance: no answer makes the parser panic; what it accepts has a name per tag
// and figures from 0 to 1.
func FuzzParsePerformance(f *testing.F) {
	for _, seed := range []string{performance, `{}`, `{"perTagPerformance": null}`, `{"perTagPerformance": []}`, `[]`, `null`,
		`{"perTagPerformance": [{"name": "", "precision": 0.5}]}`, `{"perTagPerformance": [{"name": "a", "recall": -1}]}`,
		`{"perTagPerformance": [{"name": "a", "averagePrecision": 1e400}]}`, `{"precision": "high", "perTagPerformance": []}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParsePerformance(raw)
		if err != nil {
			return
		}
		for _, tag := range p.PerTag {
			if tag.Name == "" || tag.Precision < 0 || tag.Precision > 1 || tag.Recall < 0 || tag.Recall > 1 || tag.AveragePrecision < 0 || tag.AveragePrecision > 1 {
				t.Fatalf("accepted %+v", tag)
			}
		}
	})
}

// TestPortalInReportFiles: the field vs portal table is in report.json, report.md and
// report.html.
func TestPortalInReportFiles(t *testing.T) {
	p, err := ParsePerformance([]byte(performance))
	if err != nil {
		t.Fatal(err)
	}
	p.Iteration, p.Threshold = "it1", 0.5
	acc, meanAP := 1.0, 1.0
	m := ModelReport{Name: "m", Accuracy: &acc, MeanAP: &meanAP, Confusion: NewConfusion([]string{"cat", "dog"}), Tags: []TagScore{{Tag: "cat", Precision: 1, Recall: 1, AP: 1}}}
	m.CompareWithPortal(p)
	dir := t.TempDir()
	if err := (&Report{Kind: "classification", Models: []ModelReport{m}}).Write(dir); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"report.json": `"averagePrecision": 0.95`, "report.md": "| cat | 100.0% | 90.0% | +10.0 pt |", "report.html": "<td>&#43;10.0 pt</td>"} {
		raw, _ := os.ReadFile(filepath.Join(dir, file))
		if !strings.Contains(string(raw), want) {
			t.Errorf("%s lacks %q:\n%s", file, want, raw)
		}
	}
}
