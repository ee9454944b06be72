package augment

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/cvedge/cvedge/preprocess"
)

// Step is one transform applied to a copy, as the manifest records it: "op" names it, the
// other keys are its drawn parameters.
type Step map[string]any

// MarshalJSON writes "op" first, then the parameters by name, so a manifest line reads in
// the order the transforms were applied.
func (s Step) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(s))
	for k := range s {
		if k != "op" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range append([]string{"op"}, keys...) {
		v, ok := s[k]
		if !ok {
			continue
		}
		if i > 0 && b.Len() > 1 {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k)
		vj, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(kj)
		b.WriteByte(':')
		b.Write(vj)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// rng is the generator of one copy: it depends on the seed, the source's content and the
// copy's number only, so a copy is the same whichever images were done before it (a resumed
// run, --max-images, another order).
func rng(seed int64, sha string, n int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(sha))
	binary.Write(h, binary.LittleEndian, int64(n))
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

// round4 keeps 4 decimals, so what the manifest says is exactly what was applied.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// between draws uniformly in lo..hi.
func between(r *rand.Rand, lo, hi float64) float64 { return round4(lo + r.Float64()*(hi-lo)) }

// draw draws one copy's transforms. masked says the image has a mask and there are
// backgrounds; background is then the index drawn among nBackgrounds (-1: none).
func draw(r *rand.Rand, o Ops, masked bool, nBackgrounds int) (a preprocess.Augmentation, steps []Step, background int) {
	background = -1
	// every draw is made whether or not its op is on, so turning one op off leaves the others'
	// parameters as they were
	bgDraw, bgPick := r.Float64(), r.IntN(max(nBackgrounds, 1))
	flipH, flipV := r.IntN(2) == 1, r.IntN(2) == 1
	deg := between(r, -o.Rotate, o.Rotate)
	scale := between(r, 1-o.Scale, 1+o.Scale)
	sx, sy := between(r, -o.Shift, o.Shift), between(r, -o.Shift, o.Shift)
	bright := between(r, -o.Brightness, o.Brightness)
	contrast := between(r, 1-o.Contrast, 1+o.Contrast)
	sat := between(r, 1-o.Saturation, 1+o.Saturation)
	grey := r.Float64() < o.Grey
	noise := between(r, 0, o.Noise)
	noiseSeed := r.Uint64() >> 11 // 53 bits: exact in the JSON of the manifest
	blur := 0
	if o.Blur >= 3 {
		blur = 2*r.IntN((o.Blur-1)/2+1) + 1 // 1 (none), 3, ..., Blur
	}
	cut := r.IntN(2) == 1
	cx, cy := between(r, 0, 1-o.Cutout), between(r, 0, 1-o.Cutout)

	if masked && o.Background > 0 && bgDraw < o.Background {
		a.Background, background = true, bgPick
		steps = append(steps, Step{"op": "background"}) // the file is added by the caller
	}
	if o.FlipH && flipH {
		a.FlipH = true
		steps = append(steps, Step{"op": "flip", "axis": "h"})
	}
	if o.FlipV && flipV {
		a.FlipV = true
		steps = append(steps, Step{"op": "flip", "axis": "v"})
	}
	if o.Rotate > 0 {
		a.Degrees = deg
		steps = append(steps, Step{"op": "rotate", "degrees": deg})
	}
	if o.Scale > 0 {
		a.Scale = scale
		steps = append(steps, Step{"op": "scale", "factor": scale})
	}
	if o.Shift > 0 {
		a.ShiftX, a.ShiftY = sx, sy
		steps = append(steps, Step{"op": "shift", "x": sx, "y": sy})
	}
	if o.Brightness > 0 {
		a.Brightness = bright
		steps = append(steps, Step{"op": "brightness", "delta": bright})
	}
	if o.Contrast > 0 {
		a.Contrast = contrast
		steps = append(steps, Step{"op": "contrast", "factor": contrast})
	}
	if o.Saturation > 0 {
		a.Saturation = sat
		steps = append(steps, Step{"op": "saturation", "factor": sat})
	}
	if o.Grey > 0 && grey {
		a.Grey = true
		steps = append(steps, Step{"op": "grey"})
	}
	if o.Noise > 0 {
		a.Noise, a.NoiseSeed = noise, noiseSeed
		steps = append(steps, Step{"op": "noise", "sigma": noise, "seed": noiseSeed})
	}
	if blur >= 3 {
		a.Blur = blur
		steps = append(steps, Step{"op": "blur", "kernel": blur})
	}
	if o.Cutout > 0 && cut {
		a.Cutout, a.CutoutFill = [4]float64{cx, cy, o.Cutout, o.Cutout}, 128
		steps = append(steps, Step{"op": "cutout", "x": cx, "y": cy, "width": o.Cutout, "height": o.Cutout, "fill": 128})
	}
	return a, steps, background
}
