package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ModelReport is one model's scores.
type ModelReport struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	Format    string `json:"format"`
	Iteration string `json:"iteration"`
	Images    int    `json:"images"`
	// Failed counts images that could not be read or run; Failures names them, with why.
	Failed   int            `json:"failed"`
	Failures []ImageFailure `json:"failures,omitempty"`
	// Misclassified lists the images a classifier got wrong.
	Misclassified []Misclassified `json:"misclassified,omitempty"`
	// Classifiers.
	Accuracy  *float64   `json:"accuracy,omitempty"`
	Tags      []TagScore `json:"tags,omitempty"`
	Confusion *Confusion `json:"confusion,omitempty"`
	// Detectors.
	AP  map[string]float64 `json:"ap,omitempty"`
	MAP *float64           `json:"map,omitempty"`
	// MeanAP is the mean of the classifier's per-tag AP over the tags it knows that the data
	// set has.
	MeanAP *float64 `json:"meanAP,omitempty"`
	// NotInModel lists the data set's tags the detector does not know: their boxes are all
	// misses (AP 0). For classifiers the tags say so themselves (TagScore.NotInModel).
	NotInModel []string `json:"notInModel,omitempty"`
	// Portal is the iteration's performance on the Custom Vision portal, when compared.
	Portal *Portal `json:"portal,omitempty"`
	// Picture is the confusion matrix PNG, relative to the report.
	Picture string `json:"picture,omitempty"`
}

// ImageFailure is an image that could not be read or run, and why.
type ImageFailure struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// Misclassified is an image a classifier gave another tag than its label.
type Misclassified struct {
	File        string  `json:"file"`
	True        string  `json:"true"`
	Predicted   string  `json:"predicted"`
	Probability float32 `json:"probability"`
	// Thumb is a small JPEG of the image for the HTML report (the first GalleryMax only).
	Thumb []byte `json:"-"`
}

// Report is what `cvedge eval` writes.
type Report struct {
	Data    string        `json:"data"`
	Kind    string        `json:"kind"` // classification or detection
	Created time.Time     `json:"created"`
	Models  []ModelReport `json:"models"`
	// Cascade is the score of a camera's pipeline (kind cascade, see Cascade).
	Cascade *CascadeReport `json:"cascade,omitempty"`
}

// Write saves report.json, report.md, report.html (self-contained; not for a cascade score) and a confusion matrix
// PNG per classifier into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range r.Models {
		m := &r.Models[i]
		if m.Confusion == nil {
			continue
		}
		m.Picture = fmt.Sprintf("confusion-%d-%s.png", i+1, safe(m.Name))
		if err := ConfusionPNG(m.Confusion, m.Name, filepath.Join(dir, m.Picture)); err != nil {
			return fmt.Errorf("confusion matrix of %s: %w", m.Name, err)
		}
	}
	if r.Cascade != nil {
		if err := r.Cascade.writePicture(dir); err != nil {
			return err
		}
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644); err != nil {
		return err
	}
	if r.Cascade != nil { // the cascade score has report.md, report.json and cascade.png
		return nil
	}
	return r.writeHTML(dir)
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

// Markdown renders the report; with several models they sit side by side.
func (r *Report) Markdown() string {
	var b strings.Builder
	if r.Cascade != nil {
		return r.cascadeMarkdown()
	}
	fmt.Fprintf(&b, "# Evaluation on %s\n\n%s data set, %s.\n\n", r.Data, r.Kind, r.Created.Format(time.RFC3339))
	b.WriteString("| model | iteration | images | failed |")
	if r.Kind == "classification" {
		b.WriteString(" accuracy | mean AP |\n|---|---|---|---|---|---|\n")
	} else {
		b.WriteString(" mAP@0.5 |\n|---|---|---|---|---|\n")
	}
	for _, m := range r.Models {
		score := "-"
		if m.Accuracy != nil {
			score = fmt.Sprintf("%s | %.3f", pct(*m.Accuracy), deref(m.MeanAP))
		} else if m.MAP != nil {
			score = fmt.Sprintf("%.3f", *m.MAP)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s |\n", cell(m.Name), cell(orDash(m.Iteration)), m.Images, m.Failed, score)
	}
	r.listImages(&b)
	if r.Kind == "classification" {
		b.WriteString("\n## Per tag\n\nAP is the area under the tag's precision-recall curve, the images ranked by the probability of the tag;\n" +
			"\"not in model\": the model does not know the tag, and all its images count as misses.\n\n| tag |")
		for _, m := range r.Models {
			fmt.Fprintf(&b, " %s precision | recall | F1 | AP |", cell(m.Name))
		}
		b.WriteString(" support |\n|---|" + strings.Repeat("---|---|---|---|", len(r.Models)) + "---|\n")
		for _, tag := range r.allTags() {
			fmt.Fprintf(&b, "| %s |", cell(tag))
			support := 0
			for _, m := range r.Models {
				s, ok := find(m.Tags, tag)
				support = max(support, s.Support)
				switch {
				case !ok:
					b.WriteString(" - | - | - | - |")
				case s.NotInModel:
					b.WriteString(" not in model | - | - | - |")
				default:
					fmt.Fprintf(&b, " %s | %s | %.3f | %.3f |", pct(s.Precision), pct(s.Recall), s.F1, s.AP)
				}
			}
			fmt.Fprintf(&b, " %d |\n", support)
		}
		for _, m := range r.Models {
			fmt.Fprintf(&b, "\n## Confusion matrix: %s\n\nRows are the true tags, columns the predicted ones.\n\n| true \\ predicted |", m.Name)
			for _, l := range m.Confusion.Labels {
				fmt.Fprintf(&b, " %s |", cell(l))
			}
			b.WriteString("\n|---|" + strings.Repeat("---|", len(m.Confusion.Labels)) + "\n")
			for i, row := range m.Confusion.Matrix {
				fmt.Fprintf(&b, "| %s |", cell(m.Confusion.Labels[i]))
				for _, v := range row {
					fmt.Fprintf(&b, " %d |", v)
				}
				b.WriteString("\n")
			}
			if m.Picture != "" {
				fmt.Fprintf(&b, "\n![confusion matrix of %s](%s)\n", m.Name, m.Picture)
			}
		}
	} else {
		b.WriteString("\n## AP@0.5 per tag\n\n| tag |")
		for _, m := range r.Models {
			fmt.Fprintf(&b, " %s |", m.Name)
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(r.Models)) + "\n")
		for _, tag := range r.allTags() {
			fmt.Fprintf(&b, "| %s |", cell(tag))
			for _, m := range r.Models {
				if contains(m.NotInModel, tag) {
					b.WriteString(" not in model (0) |")
				} else if v, ok := m.AP[tag]; ok {
					fmt.Fprintf(&b, " %.3f |", v)
				} else {
					b.WriteString(" - |")
				}
			}
			b.WriteString("\n")
		}
	}
	r.portalMarkdown(&b)
	return b.String()
}

func deref(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

func (r *Report) allTags() []string {
	var tags []string
	seen := map[string]bool{}
	for _, m := range r.Models {
		for _, t := range m.Tags {
			if !seen[t.Tag] {
				seen[t.Tag] = true
				tags = append(tags, t.Tag)
			}
		}
		for t := range m.AP {
			if !seen[t] {
				seen[t] = true
				tags = append(tags, t)
			}
		}
	}
	return tags
}

func find(scores []TagScore, tag string) (TagScore, bool) {
	for _, s := range scores {
		if s.Tag == tag {
			return s, true
		}
	}
	return TagScore{}, false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func maxCell(c *Confusion) int {
	m := 0
	for _, row := range c.Matrix {
		for _, v := range row {
			m = max(m, v)
		}
	}
	return m
}

// listImages writes, per model, the images that failed (with why) and those it got wrong.
func (r *Report) listImages(b *strings.Builder) {
	for _, m := range r.Models {
		if len(m.Failures) > 0 {
			fmt.Fprintf(b, "\n## Images %s could not read or run\n\n| image | why |\n|---|---|\n", m.Name)
			for _, f := range m.Failures {
				fmt.Fprintf(b, "| %s | %s |\n", cell(f.File), cell(f.Reason))
			}
		}
		if len(m.Misclassified) > 0 {
			fmt.Fprintf(b, "\n## Images %s got wrong\n\n| image | true tag | predicted | probability |\n|---|---|---|---|\n", m.Name)
			for _, x := range m.Misclassified {
				fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(x.File), cell(x.True), cell(x.Predicted), pct(float64(x.Probability)))
			}
		}
	}
}

// cell keeps a value inside one Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "\r", " ").Replace(s)
}
