package eval

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
)

// The cascade score follows every labelled part of a detection data set through a camera's
// pipeline as the agent runs it (detector, padded crop, classifier, second-level route) and
// asks two questions: was the part found (a detection overlaps it by IoU 0.5 or more), and
// was its final tag right. The truth of a part is its final tag ("brass"), whatever the
// detector calls it ("part").

// NoPart is the last label of a cascade's confusion matrix: its row counts the false parts
// (detections that match no labelled part, by their final tag), its column the missed parts
// (labelled parts no detection matched, by their true tag).
const NoPart = "no part"

// Unknown is the final tag of a detection whose deepest answer is under its tag's threshold
// (cameras[].pipeline.thresholds), as the agent decides a part (agent/steps).
const Unknown = "unknown"

// CascadeModel is a model of the camera's pipeline and its job there: "detector",
// "classifier" or "routes.<tag>".
type CascadeModel struct {
	Role      string `json:"role"`
	Name      string `json:"name"`
	Iteration string `json:"iteration"`
}

// CascadeOptions say what Cascade scores, on what.
type CascadeOptions struct {
	// Camera names the camera whose pipeline runs, for the report.
	Camera string
	// Pipeline is the camera's pipeline, a detector first; the caller builds and closes it.
	Pipeline *pipeline.Pipeline
	// Models are the models of the pipeline, for the report.
	Models []CascadeModel
	// Tags are the final tags the pipeline can give (its classifiers' tags, or its detector's
	// without a classifier); a true tag outside them is refused. nil: not checked.
	Tags []string
	// Data is the labelled detection data set: a COCO JSON file or a cvedge collect folder
	// (see LoadDetection), each box labelled with the part's final tag.
	Data string
	// Progress, when set, is told after each image: n of total.
	Progress func(n, total int)
}

// CascadeReport is the end-to-end score of a camera's pipeline.
type CascadeReport struct {
	Camera string         `json:"camera"`
	Models []CascadeModel `json:"models"`
	Images int            `json:"images"`
	// Failed counts images that could not be read or run (or that the quality gate skipped);
	// Failures names them, with why. The scores leave them out.
	Failed   int            `json:"failed"`
	Failures []ImageFailure `json:"failures,omitempty"`
	// PartScore is the score on every labelled part of the images scored.
	PartScore
	// FalsePerImage is FalseParts per image scored.
	FalsePerImage float64 `json:"falsePartsPerImage"`
	// Tags are the same per tag: Parts, Found and Right by true tag, FalseParts by final tag.
	Tags []CascadeTag `json:"tags"`
	// Confusion counts parts by true tag (rows) and final tag (columns); its last label is
	// NoPart: the row of false parts, the column of missed parts.
	Confusion *Confusion `json:"confusion"`
	// Wrong lists every part missed or tagged wrong, and every false part.
	Wrong []WrongPart `json:"wrong,omitempty"`
	// Picture is the confusion matrix PNG, relative to the report.
	Picture string `json:"picture,omitempty"`
}

// CascadeTag is the cascade's score on the parts of one tag: Parts, Found and Right by true
// tag, FalseParts by final tag.
type CascadeTag struct {
	Tag string `json:"tag"`
	PartScore
}

// PartScore is a cascade's score on a set of labelled parts: Parts of them, Found matched a
// detection, Right of those got their true tag as final tag; FalseParts are the detections
// that matched no labelled part. PartsFound is Found/Parts, TagAccuracy Right/Found and
// EndToEnd Right/Parts.
type PartScore struct {
	Parts       int     `json:"parts"`
	Found       int     `json:"found"`
	Right       int     `json:"right"`
	FalseParts  int     `json:"falseParts"`
	PartsFound  float64 `json:"partsFound"`
	TagAccuracy float64 `json:"tagAccuracy"`
	EndToEnd    float64 `json:"endToEnd"`
}

// rates sets the ratios from the counts.
func (p *PartScore) rates() {
	p.PartsFound, p.TagAccuracy, p.EndToEnd = ratio(p.Found, p.Parts), ratio(p.Right, p.Found), ratio(p.Right, p.Parts)
}

// WrongPart is a part the cascade missed (Final ""), tagged wrong, or found where there is
// none (True ""). Box is the part's labelled box, or the detection's for a false part:
// [left, top, width, height], normalized.
type WrongPart struct {
	File        string     `json:"file"`
	True        string     `json:"true"`
	Final       string     `json:"final"`
	Probability float32    `json:"probability"`
	Box         [4]float64 `json:"box"`
}

// MatchParts matches one image's detections to its labelled parts, whatever their tags:
// strongest detection first, each to the unmatched part it overlaps most, if by iou or more
// (the matching of AddImage, without the tags). It returns, by detection, the index of its
// part, or -1.
func MatchParts(truth, found []Object, iou float64) []int {
	match := make([]int, len(found))
	used := make([]bool, len(truth))
	order := make([]int, len(found))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return found[order[a]].Score > found[order[b]].Score })
	for _, i := range order {
		best, bestIoU := -1, iou
		for j, t := range truth {
			if used[j] {
				continue
			}
			if v := found[i].Box.IoU(t.Box); v >= bestIoU {
				best, bestIoU = j, v
			}
		}
		match[i] = best
		if best >= 0 {
			used[best] = true
		}
	}
	return match
}

// FinalTag is a detection's final tag and its probability: the top tag of the deepest level
// (route, else classifier, else the detector's own), or Unknown at the first level under its
// threshold, as the agent decides a part.
func FinalTag(d payload.Tag) (string, float32) {
	tag, prob := d.TagName, d.Probability
	for c := d.Classification; c != nil && len(c.Predictions) > 0; c = c.Next {
		if c.Uncertain {
			return Unknown, c.Predictions[0].Probability
		}
		tag, prob = c.Predictions[0].TagName, c.Predictions[0].Probability
	}
	return tag, prob
}

// cascadeCount is one counted part: its true tag ("" for a false part) and final tag (""
// for a missed part).
type cascadeCount struct{ truth, final string }

// Cascade runs the pipeline on every image of the data set and scores its parts. An image
// that cannot be read or run counts as failed; failing on every image is an error.
func Cascade(o CascadeOptions) (*Report, error) {
	if o.Pipeline == nil {
		return nil, errors.New("no pipeline to score")
	}
	if o.Progress == nil {
		o.Progress = func(int, int) {}
	}
	images, err := LoadDetection(o.Data)
	if err != nil {
		return nil, err
	}
	images = sameFrames(images)
	if o.Tags != nil {
		for _, im := range images {
			for _, obj := range im.Objects {
				if !contains(o.Tags, obj.Tag) {
					return nil, fmt.Errorf("data set %s: tag %q is no final tag camera %s can give (its models' tags: %s): label each part with its final tag, the classifier's or route's", o.Data, obj.Tag, o.Camera, strings.Join(o.Tags, ", "))
				}
			}
		}
	}
	cr := &CascadeReport{Camera: o.Camera, Models: o.Models}
	var counts []cascadeCount
	for _, im := range images {
		cr.Images++
		o.Progress(cr.Images, len(images))
		msg, err := predictFile(o.Pipeline, im.File)
		if err != nil {
			cr.Failed++
			cr.Failures = append(cr.Failures, ImageFailure{File: im.File, Reason: err.Error()})
			continue
		}
		counts = cr.addImage(counts, im, msg)
	}
	if cr.Failed == cr.Images {
		if len(cr.Failures) == 0 {
			return nil, fmt.Errorf("camera %s: the data set has no image", o.Camera)
		}
		return nil, fmt.Errorf("camera %s: none of the %d images could be read or run; the first, %s: %s", o.Camera, cr.Images, cr.Failures[0].File, cr.Failures[0].Reason)
	}
	cr.score(counts)
	return &Report{Data: o.Data, Kind: "cascade", Created: time.Now().UTC(), Models: []ModelReport{}, Cascade: cr}, nil
}

// sameFrames joins the entries of one image file (a cvedge collect folder has one entry a
// region), keeping the order of their first.
func sameFrames(images []ImageTruth) []ImageTruth {
	at := map[string]int{}
	var out []ImageTruth
	for _, im := range images {
		if i, ok := at[im.File]; ok {
			out[i].Objects = append(out[i].Objects, im.Objects...)
			continue
		}
		at[im.File] = len(out)
		out = append(out, ImageTruth{File: im.File, Objects: slices.Clone(im.Objects)})
	}
	return out
}

// addImage matches the detections of msg to the parts of im, and counts each part and each
// false part.
func (cr *CascadeReport) addImage(counts []cascadeCount, im ImageTruth, msg *payload.Prediction) []cascadeCount {
	var found []Object
	var final []string
	var prob []float32
	for _, p := range msg.Predictions {
		b := p.BoundingBox
		if b == nil {
			continue
		}
		tag, pr := FinalTag(p)
		found = append(found, Object{Tag: p.TagName, Score: float64(p.Probability), Box: Box{float64(b.Left), float64(b.Top), float64(b.Width), float64(b.Height)}})
		final, prob = append(final, tag), append(prob, pr)
	}
	match := MatchParts(im.Objects, found, 0.5)
	byPart := make([]int, len(im.Objects))
	for j := range byPart {
		byPart[j] = -1
	}
	for i, j := range match {
		if j >= 0 {
			byPart[j] = i
			continue
		}
		b := found[i].Box
		counts = append(counts, cascadeCount{final: final[i]})
		cr.Wrong = append(cr.Wrong, WrongPart{File: im.File, Final: final[i], Probability: prob[i], Box: [4]float64{b.Left, b.Top, b.Width, b.Height}})
	}
	for j, t := range im.Objects {
		c := cascadeCount{truth: t.Tag}
		w := WrongPart{File: im.File, True: t.Tag, Box: [4]float64{t.Box.Left, t.Box.Top, t.Box.Width, t.Box.Height}}
		if i := byPart[j]; i >= 0 {
			c.final, w.Final, w.Probability = final[i], final[i], prob[i]
		}
		counts = append(counts, c)
		if c.final != t.Tag {
			cr.Wrong = append(cr.Wrong, w)
		}
	}
	return counts
}

// score fills the counts, rates and the confusion matrix from the parts counted.
func (cr *CascadeReport) score(counts []cascadeCount) {
	seen := map[string]bool{}
	for _, c := range counts {
		for _, t := range []string{c.truth, c.final} {
			if t != "" {
				seen[t] = true
			}
		}
	}
	labels := slices.Sorted(func(yield func(string) bool) {
		for t := range seen {
			if !yield(t) {
				return
			}
		}
	})
	index := map[string]int{"": len(labels)}
	for i, l := range labels {
		index[l] = i
	}
	cr.Confusion = NewConfusion(append(labels, NoPart))
	tags := make([]CascadeTag, len(labels))
	for i, l := range labels {
		tags[i].Tag = l
	}
	for _, c := range counts {
		cr.Confusion.Add(index[c.truth], index[c.final])
		if c.truth == "" {
			cr.FalseParts++
			tags[index[c.final]].FalseParts++
			continue
		}
		t := &tags[index[c.truth]]
		cr.Parts++
		t.Parts++
		if c.final != "" {
			cr.Found++
			t.Found++
		}
		if c.final == c.truth {
			cr.Right++
			t.Right++
		}
	}
	for i := range tags {
		tags[i].rates()
	}
	cr.Tags = tags
	cr.rates()
	cr.FalsePerImage = ratio(cr.FalseParts, cr.Images-cr.Failed)
}

// writePicture draws the cascade's confusion matrix into dir as cascade.png.
func (cr *CascadeReport) writePicture(dir string) error {
	cr.Picture = "cascade.png"
	if err := ConfusionPNG(cr.Confusion, "cascade of "+cr.Camera, filepath.Join(dir, cr.Picture)); err != nil {
		return fmt.Errorf("cascade confusion matrix: %w", err)
	}
	return nil
}

// ofFound is a share of the parts found, "-" when none was.
func ofFound(v float64, found int) string {
	if found == 0 {
		return "-"
	}
	return pct(v)
}

// cascadeMarkdown renders a report of kind cascade.
func (r *Report) cascadeMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Evaluation on %s\n\ncascade of camera %s on a detection data set, %s.\n\n", r.Data, cell(r.Cascade.Camera), r.Created.Format(time.RFC3339))
	r.Cascade.markdown(&b)
	return b.String()
}

// markdown renders the cascade section of the report.
func (cr *CascadeReport) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "## Cascade score: camera %s\n\n", cell(cr.Camera))
	var ms []string
	for _, m := range cr.Models {
		ms = append(ms, fmt.Sprintf("%s %s (iteration %s)", m.Role, cell(m.Name), cell(orDash(m.Iteration))))
	}
	fmt.Fprintf(b, "Models: %s. %d images, %d failed; %d labelled parts.\n\n", strings.Join(ms, ", "), cr.Images, cr.Failed, cr.Parts)
	b.WriteString("| parts found | final tag right (of found) | end to end (right of all parts) | false parts per image |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| %s (%d of %d) | %s (%d of %d) | %s (%d of %d) | %.2f (%d) |\n",
		pct(cr.PartsFound), cr.Found, cr.Parts, ofFound(cr.TagAccuracy, cr.Found), cr.Right, cr.Found, pct(cr.EndToEnd), cr.Right, cr.Parts, cr.FalsePerImage, cr.FalseParts)
	b.WriteString("\n### Per tag\n\n| tag | parts | found | final tag right | end to end | false parts |\n|---|---|---|---|---|---|\n")
	for _, t := range cr.Tags {
		if t.Parts == 0 {
			fmt.Fprintf(b, "| %s | 0 | - | - | - | %d |\n", cell(t.Tag), t.FalseParts)
			continue
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %d |\n", cell(t.Tag), t.Parts, pct(t.PartsFound), ofFound(t.TagAccuracy, t.Found), pct(t.EndToEnd), t.FalseParts)
	}
	b.WriteString("\n### Confusion matrix of final tags\n\nRows are the true tags, columns the final tags. Column \"missed\": parts no detection matched;\n" +
		"row \"false part\": detections that matched no labelled part, by their final tag.\n\n| true \\ final |")
	c := cr.Confusion
	n := len(c.Labels) - 1
	for _, l := range c.Labels[:n] {
		fmt.Fprintf(b, " %s |", cell(l))
	}
	b.WriteString(" missed |\n|---|" + strings.Repeat("---|", n+1) + "\n")
	for i, row := range c.Matrix {
		name := "false part"
		if i < n {
			name = cell(c.Labels[i])
		}
		fmt.Fprintf(b, "| %s |", name)
		for j, v := range row {
			if i == n && j == n {
				b.WriteString(" - |")
				continue
			}
			fmt.Fprintf(b, " %d |", v)
		}
		b.WriteString("\n")
	}
	if cr.Picture != "" {
		fmt.Fprintf(b, "\n![confusion matrix of the cascade of %s](%s)\n", cell(cr.Camera), cr.Picture)
	}
	if len(cr.Failures) > 0 {
		b.WriteString("\n### Images the cascade could not read or run\n\n| image | why |\n|---|---|\n")
		for _, f := range cr.Failures {
			fmt.Fprintf(b, "| %s | %s |\n", cell(f.File), cell(f.Reason))
		}
	}
	if len(cr.Wrong) > 0 {
		b.WriteString("\n### Parts the cascade got wrong\n\n| image | true tag | final tag | probability | box (left, top, width, height) |\n|---|---|---|---|---|\n")
		for _, w := range cr.Wrong {
			truth, final, p := cell(w.True), cell(w.Final), pct(float64(w.Probability))
			if w.True == "" {
				truth = "(false part)"
			}
			if w.Final == "" {
				final, p = "(missed)", "-"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %.3f, %.3f, %.3f, %.3f |\n", cell(w.File), truth, final, p, w.Box[0], w.Box[1], w.Box[2], w.Box[3])
		}
	}
}
