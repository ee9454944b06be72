package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/cvedge/cvedge/agent/tools/collect"
)

// The probability and overlap thresholds at which the portal's figures are asked for: the
// portal's defaults.
const (
	PortalThreshold        = 0.5
	PortalOverlapThreshold = 0.3
)

// Portal is an iteration's performance as the Custom Vision portal shows it (the Training
// API's IterationPerformance), at Threshold.
type Portal struct {
	Iteration        string      `json:"iteration"`
	Threshold        float64     `json:"threshold"`
	Precision        float64     `json:"precision"`
	Recall           float64     `json:"recall"`
	AveragePrecision float64     `json:"averagePrecision"`
	PerTag           []PortalTag `json:"perTag"`
	// Gap is the field's overall figures minus these, in a report.
	Gap *Gap `json:"gap,omitempty"`
}

// PortalTag is one tag's figures on the portal and, in a report, the field's gap to them
// (field − portal).
type PortalTag struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	Precision        float64 `json:"precision"`
	Recall           float64 `json:"recall"`
	AveragePrecision float64 `json:"averagePrecision"`
	Gap              *Gap    `json:"gap,omitempty"`
}

// Gap is the field's figure minus the portal's: negative when the model does worse on the
// line than on its training split.
type Gap struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	AP        float64 `json:"ap"`
}

// ParsePerformance reads the Training API's IterationPerformance JSON. It fails, naming the
// field, on an answer that is not that: not JSON, no perTagPerformance, a tag without a name
// or a figure outside 0..1.
func ParsePerformance(raw []byte) (*Portal, error) {
	var p struct {
		PerTag           *[]PortalTag `json:"perTagPerformance"`
		Precision        float64      `json:"precision"`
		Recall           float64      `json:"recall"`
		AveragePrecision float64      `json:"averagePrecision"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("iteration performance: not the Training API's JSON: %v", err)
	}
	if p.PerTag == nil {
		return nil, errors.New("iteration performance: the answer has no perTagPerformance")
	}
	out := &Portal{Precision: p.Precision, Recall: p.Recall, AveragePrecision: p.AveragePrecision, PerTag: *p.PerTag}
	if err := figure("precision", out.Precision); err != nil {
		return nil, err
	}
	if err := figure("recall", out.Recall); err != nil {
		return nil, err
	}
	if err := figure("averagePrecision", out.AveragePrecision); err != nil {
		return nil, err
	}
	for i, t := range out.PerTag {
		if t.Name == "" {
			return nil, fmt.Errorf("iteration performance: perTagPerformance[%d] has no name", i)
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"precision", t.Precision}, {"recall", t.Recall}, {"averagePrecision", t.AveragePrecision}} {
			if err := figure(fmt.Sprintf("perTagPerformance[%d] (%s) %s", i, t.Name, f.name), f.v); err != nil {
				return nil, err
			}
		}
		out.PerTag[i].Gap = nil
	}
	return out, nil
}

func figure(name string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("iteration performance: %s is %v, not a figure from 0 to 1", name, v)
	}
	return nil
}

// FetchPortal asks the Training API of project t.Project for the performance of iteration
// at the portal's thresholds. The errors say what to check; none holds the key.
func FetchPortal(ctx context.Context, t *collect.Training, iteration string) (*Portal, error) {
	if iteration == "" {
		return nil, errors.New("no iteration id: give --iteration (the id is in the portal's Performance tab, or in the export's manifest.json as IterationId)")
	}
	var raw json.RawMessage
	q := url.Values{"threshold": {fmt.Sprint(PortalThreshold)}, "overlapThreshold": {fmt.Sprint(PortalOverlapThreshold)}}
	err := t.Get(ctx, t.IterationPath(iteration)+"/performance", q, &raw)
	var se *collect.APIError
	switch {
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		return nil, fmt.Errorf("portal performance of iteration %s: the Training API refused the key (%s): check %s, the training resource's key (not the prediction key)", iteration, http.StatusText(se.Status), collect.EnvKey)
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		return nil, fmt.Errorf("portal performance of iteration %s: not found: check the project id (--project or %s: %s) and the iteration id (--iteration)", iteration, collect.EnvProject, t.Project)
	case err != nil:
		return nil, fmt.Errorf("portal performance of iteration %s: %w", iteration, err)
	}
	p, err := ParsePerformance(raw)
	if err != nil {
		return nil, fmt.Errorf("portal performance of iteration %s: %w", iteration, err)
	}
	p.Iteration, p.Threshold = iteration, PortalThreshold
	return p, nil
}

// CompareWithPortal puts the portal's figures beside model m's, with the gaps (field −
// portal): per tag the portal lists and the model scored, and overall. A classifier's
// overall precision and recall on the field are its accuracy (one tag per image), its AP
// the mean AP; a detector's AP is its mAP and it has no precision and recall here.
func (m *ModelReport) CompareWithPortal(p *Portal) {
	m.Portal = p
	if m.Accuracy != nil {
		p.Gap = &Gap{Precision: *m.Accuracy - p.Precision, Recall: *m.Accuracy - p.Recall, AP: deref(m.MeanAP) - p.AveragePrecision}
	} else if m.MAP != nil {
		p.Gap = &Gap{AP: *m.MAP - p.AveragePrecision}
	}
	for i := range p.PerTag {
		pt := &p.PerTag[i]
		if s, ok := find(m.Tags, pt.Name); ok && !s.NotInModel {
			pt.Gap = &Gap{Precision: s.Precision - pt.Precision, Recall: s.Recall - pt.Recall, AP: s.AP - pt.AveragePrecision}
		} else if ap, ok := m.AP[pt.Name]; ok {
			pt.Gap = &Gap{AP: ap - pt.AveragePrecision}
		}
	}
}

// portalMarkdown writes, for each model compared with the portal, its figures beside the
// portal's per tag, with the gaps.
func (r *Report) portalMarkdown(b *strings.Builder) {
	for _, m := range r.Models {
		note, head, rows := portalRows(m)
		if head == nil {
			continue
		}
		fmt.Fprintf(b, "\n## Field vs portal: %s\n\n%s\n", cell(m.Name), cell(note))
		if m.Accuracy != nil {
			b.WriteString("The field's precision and recall are those of the top tag; AP does not depend on a threshold.\n")
		}
		b.WriteString("\n|")
		for _, h := range head {
			b.WriteString(" " + h + " |")
		}
		b.WriteString("\n|" + strings.Repeat("---|", len(head)) + "\n")
		for _, row := range rows {
			b.WriteString("|")
			for _, c := range row {
				b.WriteString(" " + cell(c) + " |")
			}
			b.WriteString("\n")
		}
	}
}

// gapPct shows a precision (which 0) or recall (1) gap in percentage points, signed.
func gapPct(g *Gap, which int) string {
	if g == nil {
		return "-"
	}
	v := g.Precision
	if which == 1 {
		v = g.Recall
	}
	return fmt.Sprintf("%+.1f pt", 100*v)
}

func gapAP(g *Gap) string {
	if g == nil {
		return "-"
	}
	return fmt.Sprintf("%+.3f", g.AP)
}
