//go:build matprofile

package steps_test

import (
	"testing"

	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// TestPartFramesFreed: the frames kept for the parts in view (at most two each: the least
// certain flagged one and the best one) are freed when a better one replaces them, when
// their part ends, and when the steps close with parts still in view.
func TestPartFramesFreed(t *testing.T) {
	before := preprocess.LiveMats()
	r := newPartsRun(t, func(cc *configs.Camera, _ *configs.Samples, _ *steps.Env) { cc.Parts.Image.Enabled = true })
	hasher := preprocess.LiveMats() - before // the scratch of the hashers
	for i := range 6 {
		x := 0.05 + 0.1*float32(i)
		r.frame(tracked(1, x, 0.1, "red", 0.2+0.05*float32(i%3), false), tracked(2, x, 0.05, "blue", 0.3+0.1*float32(i%2), true), tracked(3, x+0.3, 0.1, "red", 0.99, false))
		if n := preprocess.LiveMats() - before - hasher; n > 2*3 {
			t.Fatalf("frame %d: %d Mats kept for 3 parts in view, want at most 2 each", i+1, n)
		}
	}
	r.frame()
	r.frame() // all three end
	if n := len(r.rec.Messages("/parts/image")); n != 3 {
		t.Fatalf("%d part images, want 3", n)
	}
	if n := preprocess.LiveMats() - before - hasher; n != 0 {
		t.Fatalf("%d Mats still kept once every part ended", n)
	}
	r.frame(tracked(4, 0.3, 0.1, "red", 0.2, false))
	if n := preprocess.LiveMats() - before - hasher; n == 0 {
		t.Fatal("no frame kept for a part in view")
	}
	r.list.Close()
	if n := preprocess.LiveMats() - before; n != 0 {
		t.Fatalf("%d Mats left after the steps closed with a part in view", n)
	}
}
