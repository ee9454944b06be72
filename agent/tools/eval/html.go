package eval

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The HTML report is one file with everything inside: the confusion matrix pictures and the
// thumbnails are data: URIs, the style is inline, there is no script. html/template escapes
// every name (tags, files and reasons are outside input).
var htmlReport = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation on {{.Data}}</title>
<style>
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}
td,th{border:1px solid #bbb;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}
figure{margin:0;width:170px;font-size:.8em;word-break:break-all}
figure img{max-width:160px;max-height:160px;display:block}
.neg{color:#b00}.pos{color:#070}.muted{color:#777}
</style></head><body>
<h1>Evaluation on {{.Data}}</h1>
<p>{{.Kind}} data set, {{.Created}}.</p>
{{range .Models}}<section>
<h2>{{.Name}}</h2>
<p>Iteration {{.Iteration}}, {{.Images}} images, {{.Failed}} failed. <b>{{.Headline}}</b></p>
{{if .Tags}}<table><tr>{{range .TagHead}}<th>{{.}}</th>{{end}}</tr>
{{range .Tags}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{if .Portal}}<h3>Field vs portal</h3><p>{{.PortalNote}}</p>
<table><tr>{{range .PortalHead}}<th>{{.}}</th>{{end}}</tr>
{{range .Portal}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{if .Picture}}<h3>Confusion matrix</h3><img alt="confusion matrix of {{.Name}}" src="{{.Picture}}">{{end}}
{{if .Wrong}}<h3>Images it got wrong ({{.WrongTotal}})</h3><div class="gallery">
{{range .Wrong}}<figure>{{if .Thumb}}<img alt="{{.File}}" src="{{.Thumb}}">{{end}}<figcaption>{{.File}}<br>true <b>{{.True}}</b>, predicted <b>{{.Predicted}}</b> ({{.Probability}})</figcaption></figure>
{{end}}</div>{{if .WrongLeft}}<p class="muted">{{.WrongLeft}} more are listed in report.md and report.json.</p>{{end}}{{end}}
{{if .Failures}}<h3>Images it could not read or run ({{.Failed}})</h3><table><tr><th>image</th><th style="text-align:left">why</th></tr>
{{range .Failures}}<tr><td>{{.File}}</td><td style="text-align:left">{{.Reason}}</td></tr>
{{end}}</table>{{if .FailedLeft}}<p class="muted">{{.FailedLeft}} more are listed in report.md and report.json.</p>{{end}}{{end}}
</section>
{{end}}</body></html>
`))

type htmlModel struct {
	Name, Iteration, Headline string
	Images, Failed            int
	TagHead                   []string
	Tags                      [][]string
	PortalNote                string
	PortalHead                []string
	Portal                    [][]string
	Picture                   template.URL
	Wrong                     []htmlImage
	WrongTotal, WrongLeft     int
	Failures                  []ImageFailure
	FailedLeft                int
}

type htmlImage struct {
	File, True, Predicted, Probability string
	Thumb                              template.URL
}

// writeHTML writes report.html into dir, where the confusion matrix pictures already are.
func (r *Report) writeHTML(dir string) error {
	data := struct {
		Data, Kind, Created string
		Models              []htmlModel
	}{Data: r.Data, Kind: r.Kind, Created: r.Created.Format(time.RFC3339)}
	for _, m := range r.Models {
		h := htmlModel{Name: m.Name, Iteration: orDash(m.Iteration), Images: m.Images, Failed: m.Failed, WrongTotal: len(m.Misclassified)}
		switch {
		case m.Accuracy != nil:
			h.Headline = fmt.Sprintf("Accuracy %s, mean AP %.3f.", pct(*m.Accuracy), deref(m.MeanAP))
			h.TagHead = []string{"tag", "precision", "recall", "F1", "AP", "support"}
			for _, s := range m.Tags {
				if s.NotInModel {
					h.Tags = append(h.Tags, []string{s.Tag, "not in model", "-", "-", "-", fmt.Sprint(s.Support)})
					continue
				}
				h.Tags = append(h.Tags, []string{s.Tag, pct(s.Precision), pct(s.Recall), fmt.Sprintf("%.3f", s.F1), fmt.Sprintf("%.3f", s.AP), fmt.Sprint(s.Support)})
			}
		case m.MAP != nil:
			h.Headline = fmt.Sprintf("mAP@0.5 %.3f.", *m.MAP)
			h.TagHead = []string{"tag", "AP@0.5"}
			for _, tag := range r.allTags() {
				if contains(m.NotInModel, tag) {
					h.Tags = append(h.Tags, []string{tag, "not in model (0)"})
				} else if v, ok := m.AP[tag]; ok {
					h.Tags = append(h.Tags, []string{tag, fmt.Sprintf("%.3f", v)})
				}
			}
		}
		h.PortalNote, h.PortalHead, h.Portal = portalRows(m)
		if m.Picture != "" {
			png, err := os.ReadFile(filepath.Join(dir, m.Picture))
			if err != nil {
				return err
			}
			h.Picture = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		}
		for i, x := range m.Misclassified {
			if i == GalleryMax {
				h.WrongLeft = len(m.Misclassified) - GalleryMax
				break
			}
			im := htmlImage{File: x.File, True: x.True, Predicted: x.Predicted, Probability: pct(float64(x.Probability))}
			if len(x.Thumb) > 0 {
				im.Thumb = template.URL("data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(x.Thumb))
			}
			h.Wrong = append(h.Wrong, im)
		}
		h.Failures = m.Failures
		if len(h.Failures) > GalleryMax {
			h.Failures, h.FailedLeft = h.Failures[:GalleryMax], len(h.Failures)-GalleryMax
		}
		data.Models = append(data.Models, h)
	}
	var b strings.Builder
	if err := htmlReport.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), []byte(b.String()), 0o644)
}

// portalRows is the field vs portal table of m, as text cells; none when not compared.
func portalRows(m ModelReport) (note string, head []string, rows [][]string) {
	p := m.Portal
	if p == nil {
		return "", nil, nil
	}
	note = fmt.Sprintf("The portal's figures for iteration %s at probability threshold %g; gap = field − portal.", p.Iteration, p.Threshold)
	if m.Accuracy != nil {
		head = []string{"tag", "precision field", "portal", "gap", "recall field", "portal", "gap", "AP field", "portal", "gap"}
		rows = append(rows, []string{"all tags", pct(*m.Accuracy), pct(p.Precision), gapPct(p.Gap, 0), pct(*m.Accuracy), pct(p.Recall), gapPct(p.Gap, 1),
			fmt.Sprintf("%.3f", deref(m.MeanAP)), fmt.Sprintf("%.3f", p.AveragePrecision), gapAP(p.Gap)})
		for _, pt := range p.PerTag {
			s, _ := find(m.Tags, pt.Name)
			if pt.Gap == nil {
				rows = append(rows, []string{pt.Name, "-", pct(pt.Precision), "-", "-", pct(pt.Recall), "-", "-", fmt.Sprintf("%.3f", pt.AveragePrecision), "-"})
				continue
			}
			rows = append(rows, []string{pt.Name, pct(s.Precision), pct(pt.Precision), gapPct(pt.Gap, 0), pct(s.Recall), pct(pt.Recall), gapPct(pt.Gap, 1),
				fmt.Sprintf("%.3f", s.AP), fmt.Sprintf("%.3f", pt.AveragePrecision), gapAP(pt.Gap)})
		}
		return note, head, rows
	}
	head = []string{"tag", "AP field", "portal", "gap"}
	rows = append(rows, []string{"all tags (mAP)", fmt.Sprintf("%.3f", deref(m.MAP)), fmt.Sprintf("%.3f", p.AveragePrecision), gapAP(p.Gap)})
	for _, pt := range p.PerTag {
		field := "-"
		if pt.Gap != nil {
			field = fmt.Sprintf("%.3f", m.AP[pt.Name])
		}
		rows = append(rows, []string{pt.Name, field, fmt.Sprintf("%.3f", pt.AveragePrecision), gapAP(pt.Gap)})
	}
	return note, head, rows
}
