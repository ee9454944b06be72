package eval

import "testing"

// TestAPTies: images with the same score are one point of the curve, so AP does not depend on
// the order they were read in (folder names): one positive and one negative both at 1.0
// give AP 0.5 either way round, not 1.0 or 0.5 by folder order.
func TestAPTies(t *testing.T) {
	pos, neg := scoredHit{score: 1, hit: true}, scoredHit{score: 1}
	for _, order := range [][]scoredHit{{pos, neg}, {neg, pos}} {
		if ap := averagePrecision(order, 1); ap != 0.5 {
			t.Errorf("AP of %+v = %v, want 0.5", order, ap)
		}
	}
	// a tie below a clean first hit: recall 1/2 at precision 1, then 2/2 at 2/4
	got := averagePrecision([]scoredHit{{score: 0.9, hit: true}, {score: 0.5}, {score: 0.5, hit: true}, {score: 0.5}}, 2)
	if want := 0.5*1 + 0.5*0.5; got != want {
		t.Errorf("AP = %v, want %v", got, want)
	}
}
