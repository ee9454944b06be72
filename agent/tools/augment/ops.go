// Package augment writes augmented copies of a classification data set (a folder per tag),
// so that a first data set of a few images per tag can be stretched before it is uploaded
// to Custom Vision: `cvedge collect augment`. It parses the transforms and their ranges
// (--ops), draws each copy's parameters from a seeded generator, keeps a manifest of every
// file it wrote (augment.jsonl) so a run can be resumed, and leaves the image work to
// preprocess.Augment.
package augment

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultOps are the transforms and ranges used when --ops is not given: mild ones, that keep
// a part recognisable on a line whose camera, light and background are fixed.
const DefaultOps = "rotate=15,flip=h,scale=0.1,shift=0.1,brightness=0.2,contrast=0.2,saturation=0.3,grey=0.1,noise=8,blur=5,cutout=0.25,background=0.5"

// Ops are the transforms of --ops with their ranges; a zero field leaves its transform out.
type Ops struct {
	Rotate     float64 // largest angle, degrees: drawn in -Rotate..Rotate
	FlipH      bool    // mirror left to right, for half the copies
	FlipV      bool    // mirror top to bottom, for half the copies
	Scale      float64 // zoom factor drawn in 1-Scale..1+Scale
	Shift      float64 // move drawn in -Shift..Shift of the width, and of the height
	Brightness float64 // added level drawn in -Brightness..Brightness of full scale
	Contrast   float64 // contrast factor drawn in 1-Contrast..1+Contrast
	Saturation float64 // saturation factor drawn in 1-Saturation..1+Saturation
	Grey       float64 // share of the copies made greyscale
	Noise      float64 // largest standard deviation of Gaussian noise, grey levels: drawn in 0..Noise
	Blur       int     // largest Gaussian blur kernel (odd): drawn among none, 3, 5, ..., Blur
	Cutout     float64 // for half the copies, a block this share of the width and height, filled grey
	Background float64 // share of the copies of a masked image put on a background of --backgrounds
}

// opSpec is one op of --ops: its name, what its value means and its range.
type opSpec struct {
	name, means string
	lo, hi      float64
	set         func(o *Ops, v float64)
	get         func(o Ops) float64
}

var opSpecs = []opSpec{
	{"rotate", "the largest angle in degrees", 0, 180, func(o *Ops, v float64) { o.Rotate = v }, func(o Ops) float64 { return o.Rotate }},
	{"scale", "the largest zoom, as a fraction (0.1: 0.9 to 1.1 times)", 0, 0.9, func(o *Ops, v float64) { o.Scale = v }, func(o Ops) float64 { return o.Scale }},
	{"shift", "the largest move, as a fraction of the width and height", 0, 0.5, func(o *Ops, v float64) { o.Shift = v }, func(o Ops) float64 { return o.Shift }},
	{"brightness", "the largest change of level, as a fraction of full scale", 0, 1, func(o *Ops, v float64) { o.Brightness = v }, func(o Ops) float64 { return o.Brightness }},
	{"contrast", "the largest change of contrast, as a fraction (0.2: 0.8 to 1.2 times)", 0, 0.9, func(o *Ops, v float64) { o.Contrast = v }, func(o Ops) float64 { return o.Contrast }},
	{"saturation", "the largest change of saturation, as a fraction (0.3: 0.7 to 1.3 times)", 0, 1, func(o *Ops, v float64) { o.Saturation = v }, func(o Ops) float64 { return o.Saturation }},
	{"grey", "the share of copies made greyscale", 0, 1, func(o *Ops, v float64) { o.Grey = v }, func(o Ops) float64 { return o.Grey }},
	{"noise", "the largest standard deviation of the noise, in grey levels", 0, 64, func(o *Ops, v float64) { o.Noise = v }, func(o Ops) float64 { return o.Noise }},
	{"blur", "the largest blur kernel, an odd number of pixels (3, 5, ...)", 0, 31, func(o *Ops, v float64) { o.Blur = int(v) }, func(o Ops) float64 { return float64(o.Blur) }},
	{"cutout", "the side of the cut-out block, as a fraction of the width and height", 0, 0.9, func(o *Ops, v float64) { o.Cutout = v }, func(o Ops) float64 { return o.Cutout }},
	{"background", "the share of copies of a masked image put on a background", 0, 1, func(o *Ops, v float64) { o.Background = v }, func(o Ops) float64 { return o.Background }},
}

// ParseOps reads --ops: comma-separated NAME=VALUE, each op at most once; "none" for no
// transform (the copies are then the sources re-encoded), "" for DefaultOps. An op left out
// is not applied. The error names the op and what it takes.
func ParseOps(s string) (Ops, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultOps
	}
	var o Ops
	if strings.EqualFold(s, "none") {
		return o, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		if !ok || name == "" || val == "" {
			return Ops{}, fmt.Errorf("--ops: %q is not NAME=VALUE; write e.g. %s", part, DefaultOps)
		}
		if seen[name] {
			return Ops{}, fmt.Errorf("--ops: %s is given twice; give each op once", name)
		}
		seen[name] = true
		if name == "flip" {
			switch strings.ToLower(val) {
			case "h":
				o.FlipH = true
			case "v":
				o.FlipV = true
			case "hv", "vh":
				o.FlipH, o.FlipV = true, true
			case "none":
			default:
				return Ops{}, fmt.Errorf("--ops: flip=%s: give h (left to right), v (top to bottom), hv (either) or none", val)
			}
			continue
		}
		spec := findSpec(name)
		if spec == nil {
			return Ops{}, fmt.Errorf("--ops: unknown op %q; the ops are %s", name, opNames())
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(v) || v < spec.lo || v > spec.hi {
			return Ops{}, fmt.Errorf("--ops: %s=%s: give %s, %g to %g", name, val, spec.means, spec.lo, spec.hi)
		}
		if name == "blur" && v != 0 && (v != math.Trunc(v) || int(v)%2 == 0 || v < 3) {
			return Ops{}, fmt.Errorf("--ops: blur=%s: give %s, 3 to 31 (0: no blur)", val, spec.means)
		}
		spec.set(&o, v)
	}
	return o, nil
}

func findSpec(name string) *opSpec {
	for i := range opSpecs {
		if opSpecs[i].name == name {
			return &opSpecs[i]
		}
	}
	return nil
}

func opNames() string {
	names := []string{"flip"}
	for _, s := range opSpecs {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

// String writes o as --ops takes it, in a fixed order: the manifest records it, and a resumed
// run compares it.
func (o Ops) String() string {
	var parts []string
	for _, s := range opSpecs[:1] {
		if v := s.get(o); v != 0 {
			parts = append(parts, s.name+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	switch {
	case o.FlipH && o.FlipV:
		parts = append(parts, "flip=hv")
	case o.FlipH:
		parts = append(parts, "flip=h")
	case o.FlipV:
		parts = append(parts, "flip=v")
	}
	for _, s := range opSpecs[1:] {
		if v := s.get(o); v != 0 {
			parts = append(parts, s.name+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}
