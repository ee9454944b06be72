// Package eval is the engine of `cvedge eval`, a desk tool beside collect and bench: it
// runs models on labelled field images (Run) and scores them: accuracy, per-tag precision,
// recall, F1 and AP, the confusion matrix for classifiers; AP at IoU 0.5 per tag and mAP for
// detectors. It renders the report (Markdown, JSON, a self-contained HTML page, a PNG of
// each confusion matrix), and can set the Custom Vision portal's figures of an iteration
// beside the field's (FetchPortal, through collect's Training API client).
//
// It owns the data set readers, the metrics and the report. It runs models only through
// agent/pipeline, on stages its caller loaded, and must not touch MQTT, the daemon or the
// model store. The scores and the report are pure Go; only Run reads images (camera) and
// makes the gallery's thumbnails (preprocess).
package eval

import (
	"math"
	"sort"

	"github.com/cvedge/cvedge/models"
)

// Confusion counts classifier answers: Matrix[truth][predicted], over Labels.
type Confusion struct {
	Labels []string `json:"labels"`
	Matrix [][]int  `json:"matrix"`
}

// NewConfusion returns an empty matrix over labels.
func NewConfusion(labels []string) *Confusion {
	m := make([][]int, len(labels))
	for i := range m {
		m[i] = make([]int, len(labels))
	}
	return &Confusion{Labels: labels, Matrix: m}
}

// Add counts one image of tag truth predicted as predicted (indexes into Labels).
func (c *Confusion) Add(truth, predicted int) { c.Matrix[truth][predicted]++ }

// Total is the number of images counted.
func (c *Confusion) Total() int {
	n := 0
	for _, row := range c.Matrix {
		for _, v := range row {
			n += v
		}
	}
	return n
}

// Accuracy is the share of images predicted right.
func (c *Confusion) Accuracy() float64 {
	right := 0
	for i := range c.Matrix {
		right += c.Matrix[i][i]
	}
	return ratio(right, c.Total())
}

// TagScore is one tag's precision, recall and F1. Support is the images of the tag.
type TagScore struct {
	Tag       string  `json:"tag"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
	// AP is the area under the tag's precision-recall curve over all images ranked by the
	// probability of the tag (classifiers; as the Custom Vision portal shows it).
	AP float64 `json:"ap"`
	// NotInModel marks a tag of the data set the model does not know: its images all count
	// as misses (in the confusion matrix as "TAG (not in this model)").
	NotInModel bool `json:"notInModel,omitempty"`
}

// PerTag scores every tag. A tag never predicted has precision 0; one never present has
// recall 0 (and is reported with support 0).
func (c *Confusion) PerTag() []TagScore {
	out := make([]TagScore, len(c.Labels))
	for k, tag := range c.Labels {
		tp, predicted, actual := c.Matrix[k][k], 0, 0
		for i := range c.Matrix {
			predicted += c.Matrix[i][k]
			actual += c.Matrix[k][i]
		}
		s := TagScore{Tag: tag, Precision: ratio(tp, predicted), Recall: ratio(tp, actual), Support: actual}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		out[k] = s
	}
	return out
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Box is a region normalized to 0..1.
type Box struct{ Left, Top, Width, Height float64 }

// IoU is the intersection over union of two boxes, as the detectors' decoding computes it
// (models.Box, in float32: ample for a 0.5 bound).
func (b Box) IoU(o Box) float64 { return float64(b.model().IoU(o.model())) }

func (b Box) model() models.Box {
	return models.Box{Left: float32(b.Left), Top: float32(b.Top), Width: float32(b.Width), Height: float32(b.Height)}
}

// Object is a tagged box: ground truth, or a detection with its score.
type Object struct {
	Tag   string
	Box   Box
	Score float64
}

// Detections accumulates detector results for AP.
type Detections struct {
	// IoU is the overlap a detection needs with a truth box of its tag to count (0.5).
	IoU    float64
	truths map[string]int
	scored map[string][]scoredHit
}

type scoredHit struct {
	score float64
	hit   bool
}

// NewDetections returns an accumulator at IoU 0.5.
func NewDetections() *Detections {
	return &Detections{IoU: 0.5, truths: map[string]int{}, scored: map[string][]scoredHit{}}
}

// AddImage matches one image's detections to its truth: strongest first, each to the
// unmatched truth box of the same tag it overlaps most, if by IoU or more (as in Pascal VOC).
func (d *Detections) AddImage(truth, found []Object) {
	used := make([]bool, len(truth))
	for _, t := range truth {
		d.truths[t.Tag]++
	}
	order := make([]int, len(found))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return found[order[a]].Score > found[order[b]].Score })
	for _, i := range order {
		f := found[i]
		best, bestIoU := -1, d.IoU
		for j, t := range truth {
			if used[j] || t.Tag != f.Tag {
				continue
			}
			if iou := f.Box.IoU(t.Box); iou >= bestIoU {
				best, bestIoU = j, iou
			}
		}
		if best >= 0 {
			used[best] = true
		}
		d.scored[f.Tag] = append(d.scored[f.Tag], scoredHit{score: f.Score, hit: best >= 0})
	}
}

// AP is the average precision of tag: the area under its precision-recall curve, with
// precision made monotone (all-point interpolation, as VOC 2010 and later).
func (d *Detections) AP(tag string) float64 { return averagePrecision(d.scored[tag], d.truths[tag]) }

// averagePrecision is the area under the precision-recall curve of scored, ranked by score,
// with n positives in all, precision made monotone (all-point interpolation). Equal scores
// make one point (a softmax often gives several images exactly 1.0), so the order the images
// were read in does not change it.
func averagePrecision(scored []scoredHit, n int) float64 {
	if n == 0 {
		return 0
	}
	hits := append([]scoredHit(nil), scored...)
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].score > hits[b].score })
	var recall, precision []float64
	tp := 0
	for i, h := range hits {
		if h.hit {
			tp++
		}
		if i+1 < len(hits) && hits[i+1].score == h.score {
			continue // tied scores are one point of the curve, whatever order they came in
		}
		recall = append(recall, float64(tp)/float64(n))
		precision = append(precision, float64(tp)/float64(i+1))
	}
	for i := len(precision) - 2; i >= 0; i-- {
		precision[i] = math.Max(precision[i], precision[i+1])
	}
	ap, prev := 0.0, 0.0
	for i := range recall {
		ap += (recall[i] - prev) * precision[i]
		prev = recall[i]
	}
	return ap
}

// Tags lists the tags seen in truth or detections, sorted.
func (d *Detections) Tags() []string {
	set := map[string]bool{}
	for t := range d.truths {
		set[t] = true
	}
	for t := range d.scored {
		set[t] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// MAP is the mean AP over the tags that have truth boxes.
func (d *Detections) MAP() float64 {
	sum, n := 0.0, 0
	for _, t := range d.Tags() {
		if d.truths[t] > 0 {
			sum += d.AP(t)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Ranking accumulates a classifier's probabilities for AP per tag, as the Custom Vision
// portal shows it: for each tag, every image ranked by the probability the model gave that
// tag; the images of the tag are the positives. A tag the model gave no probability scores 0.
type Ranking struct {
	labels []string
	truths map[string]int
	scored map[string][]scoredHit
}

// NewRanking returns an empty ranking over the model's tags.
func NewRanking(labels []string) *Ranking {
	r := &Ranking{labels: labels, truths: map[string]int{}, scored: map[string][]scoredHit{}}
	for _, l := range labels {
		r.scored[l] = nil
	}
	return r
}

// Add counts one image of tag truth given probabilities per tag by the model. A truth the
// model does not know is a negative for every tag.
func (r *Ranking) Add(truth string, probabilities map[string]float64) {
	r.truths[truth]++
	for _, tag := range r.labels {
		r.scored[tag] = append(r.scored[tag], scoredHit{score: probabilities[tag], hit: tag == truth})
	}
}

// AP is the average precision of tag: 0 when no image has it.
func (r *Ranking) AP(tag string) float64 { return averagePrecision(r.scored[tag], r.truths[tag]) }

// MeanAP is the mean AP over the model's tags that some image has.
func (r *Ranking) MeanAP() float64 {
	sum, n := 0.0, 0
	for _, tag := range r.labels {
		if r.truths[tag] > 0 {
			sum += r.AP(tag)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
