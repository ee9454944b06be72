package configs

import (
	"testing"
	"time"
)

func TestAreaContains(t *testing.T) {
	// An L-shaped (concave) area: the bottom row and the left column of a 2x2 grid.
	l := Area{Name: "l", Points: []Point{{0, 0}, {0.5, 0}, {0.5, 0.5}, {1, 0.5}, {1, 1}, {0, 1}}}
	for _, c := range []struct {
		x, y float64
		in   bool
	}{
		{0.25, 0.25, true}, {0.75, 0.75, true}, {0.25, 0.75, true},
		{0.75, 0.25, false}, // the notch
		{1.2, 0.75, false}, {-0.1, 0.5, false},
	} {
		if got := l.Contains(c.x, c.y); got != c.in {
			t.Errorf("(%v, %v): in %v, want %v", c.x, c.y, got, c.in)
		}
	}
	if name, ok := AreaAt([]Area{{Name: "none", Points: []Point{{0.9, 0.9}, {1, 0.9}, {1, 1}}}, l}, 0.1, 0.9); !ok || name != "l" {
		t.Errorf("AreaAt: %q %v", name, ok)
	}
}

func TestLineCrossed(t *testing.T) {
	down := Line{Name: "exit", From: Point{0.5, 0.2}, To: Point{0.5, 0.8}} // drawn top to bottom
	for _, c := range []struct {
		name           string
		x0, y0, x1, y1 float64
		want           Crossing
	}{
		{"left to right", 0.4, 0.5, 0.6, 0.5, Forward},
		{"right to left", 0.6, 0.5, 0.4, 0.5, Backward},
		{"diagonal", 0.45, 0.3, 0.55, 0.4, Forward},
		{"beside the line's end", 0.4, 0.9, 0.6, 0.9, NotCrossed},
		{"same side", 0.1, 0.5, 0.4, 0.5, NotCrossed},
		{"onto the line", 0.4, 0.5, 0.5, 0.5, NotCrossed},
		{"off the line", 0.5, 0.5, 0.6, 0.5, NotCrossed},
		{"still", 0.4, 0.5, 0.4, 0.5, NotCrossed},
	} {
		if got := down.Crossed(c.x0, c.y0, c.x1, c.y1); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	across := Line{From: Point{0, 0.5}, To: Point{1, 0.5}} // drawn left to right
	if got := across.Crossed(0.5, 0.6, 0.5, 0.4); got != Forward {
		t.Errorf("bottom to top over a line drawn left to right: %v, want forward", got)
	}
}

func TestPartsKeysLoad(t *testing.T) {
	c, err := Load(write(t, minimal+`    masks: [{name: hands, points: [[0, 0], [0.1, 0], [0.1, 1]]}]
    zones: [{name: belt, points: [[0, 0.2], [1, 0.2], [1, 0.8], [0, 0.8]]}]
    lines: [{name: exit, from: [0.8, 0], to: [0.8, 1]}]
    decision: {line: exit, after: 1500ms}
counts: {reset_at: ["06:00", "22:30"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	cam := c.Cameras[0]
	if len(cam.Masks) != 1 || cam.Masks[0].Points[1] != (Point{0.1, 0}) || cam.Zones[0].Name != "belt" || len(cam.Zones[0].Points) != 4 {
		t.Errorf("areas: %+v %+v", cam.Masks, cam.Zones)
	}
	if cam.Lines[0] != (Line{Name: "exit", From: Point{0.8, 0}, To: Point{0.8, 1}}) || cam.Decision != (Decision{Line: "exit", After: 1500 * time.Millisecond}) {
		t.Errorf("lines %+v, decision %+v", cam.Lines, cam.Decision)
	}
	if at, _ := ParseClock(c.Counts.ResetAt[1]); at != 22*time.Hour+30*time.Minute {
		t.Errorf("reset at %v", at)
	}
}
