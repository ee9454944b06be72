package steps_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
)

// part is one part on a conveyor: where its box starts and how far it moves per frame, and
// the frames in which the detector misses it.
type beltPart struct {
	name         string
	x, y, w, h   float32
	vx           float32
	from, to     int // frames in view
	stop0, stop1 int // frames it stands still (stop1 exclusive)
	missed       map[int]bool
}

func (p beltPart) box(frame int) (payload.Box, bool) {
	if frame < p.from || frame >= p.to || p.missed[frame] {
		return payload.Box{}, false
	}
	moving := 0
	for f := p.from; f < frame; f++ {
		if f < p.stop0 || f >= p.stop1 {
			moving++
		}
	}
	// clamped to the frame, as the pipeline reports boxes
	x1, y1 := max(p.x+p.vx*float32(moving), 0), max(p.y, 0)
	x2, y2 := min(p.x+p.vx*float32(moving)+p.w, 1), min(p.y+p.h, 1)
	if x2 <= x1 || y2 <= y1 {
		return payload.Box{}, false
	}
	return payload.Box{Left: x1, Top: y1, Width: x2 - x1, Height: y2 - y1}, true
}

// runBelt runs the tracking step over frames of the parts and returns, by part name, the
// trackIds its detections got.
func runBelt(t *testing.T, cfg configs.Tracking, frames int, parts ...beltPart) map[string]map[uint64]int {
	t.Helper()
	step := steps.NewTrack(cfg, true, new(atomic.Uint64))
	got := map[string]map[uint64]int{}
	for f := range frames {
		msg := &payload.Prediction{Width: 640, Height: 360}
		var names []string
		for _, p := range parts {
			if b, ok := p.box(f); ok {
				msg.Predictions = append(msg.Predictions, payload.Tag{TagName: "part", Probability: 0.9, BoundingBox: &b})
				names = append(names, p.name)
			}
		}
		step.Handle(context.Background(), &pipeline.Frame{}, msg)
		seen := map[uint64]bool{}
		for i, d := range msg.Predictions {
			if d.TrackID == 0 || seen[d.TrackID] {
				t.Fatalf("frame %d: detection %d has trackId %d (0 or twice in one frame)", f, i, d.TrackID)
			}
			seen[d.TrackID] = true
			if got[names[i]] == nil {
				got[names[i]] = map[uint64]int{}
			}
			got[names[i]][d.TrackID]++
		}
	}
	return got
}

func defaultTracking() configs.Tracking { return configs.DefaultCamera().Tracking }

// TestTrackingKeepsParts: parts on a belt keep one trackId each while in view: a fast one
// overtaking a slow one in the same lane (the slow one hidden behind it meanwhile: only the
// motion model tells them apart), one that stops for two seconds at 10 fps, one the detector misses for three
// frames, and two that touch.
func TestTrackingKeepsParts(t *testing.T) {
	got := runBelt(t, defaultTracking(), 60,
		beltPart{name: "fast", x: 0.0, y: 0.40, w: 0.06, h: 0.15, vx: 0.040, from: 0, to: 30},
		beltPart{name: "slow", x: 0.35, y: 0.41, w: 0.06, h: 0.15, vx: 0.005, from: 0, to: 60, missed: map[int]bool{9: true, 10: true, 11: true}}, // hidden behind "fast"
		beltPart{name: "stops", x: 0.05, y: 0.05, w: 0.08, h: 0.12, vx: 0.015, from: 0, to: 60, stop0: 10, stop1: 30},
		beltPart{name: "hidden", x: 0.05, y: 0.75, w: 0.08, h: 0.12, vx: 0.015, from: 0, to: 50, missed: map[int]bool{20: true, 21: true, 22: true}},
		beltPart{name: "touching", x: 0.18, y: 0.75, w: 0.08, h: 0.12, vx: 0.015, from: 0, to: 50},
	)
	ids := map[uint64]string{}
	for name, tracks := range got {
		if len(tracks) != 1 {
			t.Errorf("%s got %d trackIds: %v", name, len(tracks), tracks)
		}
		for id := range tracks {
			if other, ok := ids[id]; ok {
				t.Errorf("trackId %d given to %s and %s", id, other, name)
			}
			ids[id] = name
		}
	}
}

// TestTrackingLeavingAndEntering: a part that leaves and a new one that enters where the
// first entered are two tracks, and a part seen again after max_missed frames is a new one.
func TestTrackingLeavingAndEntering(t *testing.T) {
	got := runBelt(t, defaultTracking(), 80,
		beltPart{name: "first", x: 0.0, y: 0.4, w: 0.1, h: 0.15, vx: 0.04, from: 0, to: 25},
		beltPart{name: "second", x: 0.0, y: 0.4, w: 0.1, h: 0.15, vx: 0.04, from: 26, to: 50},
		beltPart{name: "gone long", x: 0.3, y: 0.1, w: 0.1, h: 0.15, vx: 0, from: 50, to: 80, missed: map[int]bool{60: true, 61: true, 62: true, 63: true, 64: true, 65: true, 66: true, 67: true, 68: true, 69: true, 70: true, 71: true}},
	)
	if len(got["first"]) != 1 || len(got["second"]) != 1 {
		t.Fatalf("first %v, second %v", got["first"], got["second"])
	}
	for id := range got["first"] {
		if got["second"][id] > 0 {
			t.Fatalf("the part entering took the trackId %d of the one that left", id)
		}
	}
	if len(got["gone long"]) != 2 {
		t.Fatalf("a part unseen for 12 frames (max_missed 10) kept its track: %v", got["gone long"])
	}
}

// TestTrackingFastPartEntering: a fast part is hidden for eight frames just after it came in
// from the left edge. While it entered the frame cut its box, whose centre moved at half its
// pace; the part is found again where its full pace puts it.
func TestTrackingFastPartEntering(t *testing.T) {
	hidden := map[int]bool{}
	for f := 4; f < 12; f++ {
		hidden[f] = true
	}
	got := runBelt(t, defaultTracking(), 16,
		beltPart{name: "fast", x: -0.1, y: 0.4, w: 0.1, h: 0.15, vx: 0.06, from: 0, to: 16, missed: hidden},
	)
	if len(got["fast"]) != 1 {
		t.Fatalf("the fast part got %d trackIds (trackId: frames): %v", len(got["fast"]), got["fast"])
	}
}

// TestTrackingOff: no step for a camera without a detector, or with tracking off.
func TestTrackingOff(t *testing.T) {
	if steps.NewTrack(defaultTracking(), false, new(atomic.Uint64)) != nil {
		t.Fatal("a classifier alone has no boxes to track")
	}
	off := defaultTracking()
	off.Enabled = false
	if steps.NewTrack(off, true, new(atomic.Uint64)) != nil {
		t.Fatal("tracking off")
	}
}

// FuzzTracking feeds random boxes: no panic, every detection gets a trackId, none twice in a
// frame, and the ids only grow.
func FuzzTracking(f *testing.F) {
	f.Add(uint64(1), uint8(5), uint8(40))
	f.Add(uint64(7), uint8(30), uint8(3))
	f.Add(uint64(42), uint8(0), uint8(10))
	f.Fuzz(func(t *testing.T, seed uint64, perFrame, frames uint8) {
		r := rand.New(rand.NewPCG(seed, seed))
		ids := new(atomic.Uint64)
		step := steps.NewTrack(defaultTracking(), true, ids)
		for range int(frames) {
			msg := &payload.Prediction{Width: 1 + r.IntN(4000), Height: 1 + r.IntN(4000)}
			for range r.IntN(int(perFrame) + 1) {
				b := payload.Box{Left: r.Float32()*1.4 - 0.2, Top: r.Float32()*1.4 - 0.2, Width: r.Float32(), Height: r.Float32()}
				msg.Predictions = append(msg.Predictions, payload.Tag{TagName: "part", BoundingBox: &b})
			}
			step.Handle(context.Background(), &pipeline.Frame{}, msg)
			seen := map[uint64]bool{}
			for _, d := range msg.Predictions {
				if d.TrackID == 0 || d.TrackID > ids.Load() || seen[d.TrackID] {
					t.Fatalf("trackId %d (last given %d), seen in this frame: %v", d.TrackID, ids.Load(), seen[d.TrackID])
				}
				seen[d.TrackID] = true
			}
		}
	})
}

// BenchmarkTrack times the tracking step on a belt with 5 and with 30 parts in view: rows of
// parts at a pace of their own, each part leaving on the right while a new one enters on the
// left, so tracks start and end as on a line; boxes are clipped to the frame, as the pipeline
// gives them. One op is one frame.
func BenchmarkTrack(b *testing.B) {
	for _, n := range []int{5, 30} {
		b.Run(fmt.Sprintf("boxes=%d", n), func(b *testing.B) {
			const frames, w = 200, 0.08
			rows := max(1, n/5)
			cols := n / rows
			h := min(0.12, 0.8/float32(rows))
			boxes := make([][]payload.Box, frames) // by frame
			for f := range boxes {
				for i := range n {
					row, col := i%rows, i/rows
					pace := 0.01 + 0.004*float32(row)
					// from just outside on the left to the right edge, then again as a new part
					x := float32(math.Mod(float64((float32(col)+0.3*float32(row))*(1+w)/float32(cols)+pace*float32(f)), 1+w)) - w
					y := 0.05 + 0.9*float32(row)/float32(rows)
					if x1, x2 := max(x, 0), min(x+w, 1); x2 > x1 {
						boxes[f] = append(boxes[f], payload.Box{Left: x1, Top: y, Width: x2 - x1, Height: h})
					}
				}
			}
			step := steps.NewTrack(defaultTracking(), true, new(atomic.Uint64))
			msg := &payload.Prediction{Width: 640, Height: 360, Predictions: make([]payload.Tag, 0, n)}
			ctx, frame := context.Background(), &pipeline.Frame{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				bs := boxes[i%frames]
				msg.Predictions = msg.Predictions[:0]
				for k := range bs {
					msg.Predictions = append(msg.Predictions, payload.Tag{TagName: "part", Probability: 0.9, BoundingBox: &bs[k]})
				}
				step.Handle(ctx, frame, msg)
			}
		})
	}
}
