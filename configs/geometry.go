package configs

// Point is a place in the frame as fractions of its width and height, [x, y], each 0 to 1
// from the top left corner: the same units as the boxes of the predictions.
type Point [2]float64

// Area is a named polygon of the frame (cameras[].masks and cameras[].zones).
type Area struct {
	Name string `mapstructure:"name"`
	// Points are the polygon's corners, in order; at least three.
	Points []Point `mapstructure:"points"`
}

// Contains reports whether the point (x, y) lies inside the area (even-odd rule; a point on
// the border may fall either way).
func (a Area) Contains(x, y float64) bool {
	in := false
	n := len(a.Points)
	for i, j := 0, n-1; i < n; j, i = i, i+1 {
		pi, pj := a.Points[i], a.Points[j]
		if (pi[1] > y) != (pj[1] > y) && x < (pj[0]-pi[0])*(y-pi[1])/(pj[1]-pi[1])+pi[0] {
			in = !in
		}
	}
	return in
}

// AreaAt returns the name of the first of areas that contains (x, y).
func AreaAt(areas []Area, x, y float64) (string, bool) {
	for _, a := range areas {
		if a.Contains(x, y) {
			return a.Name, true
		}
	}
	return "", false
}

// Line is a named counting line (cameras[].lines), the segment From-To.
type Line struct {
	Name string `mapstructure:"name"`
	From Point  `mapstructure:"from"`
	To   Point  `mapstructure:"to"`
}

// Crossing is the way a part crossed a line. Forward is the direction From-To turned a
// quarter turn anticlockwise on the picture: a line drawn from top to bottom counts
// left-to-right movement as Forward, and a line drawn from left to right counts bottom-to-top
// movement as Forward.
type Crossing int

// The ways a part may cross a line.
const (
	NotCrossed Crossing = 0
	Forward    Crossing = 1
	Backward   Crossing = -1
)

// String is the crossing's name in messages: forward or backward.
func (c Crossing) String() string {
	switch c {
	case Forward:
		return "forward"
	case Backward:
		return "backward"
	}
	return "none"
}

// Crossed says whether a point that moved from (x0, y0) to (x1, y1) crossed the line, and
// which way. A point on the line has crossed nothing yet: one who follows a point keeps its
// last place off the line (see On) and asks from there, so that a part whose centre lands
// exactly on the line is counted when it leaves it on the other side, and not when it goes
// back.
func (l Line) Crossed(x0, y0, x1, y1 float64) Crossing {
	s0, s1 := l.side(x0, y0), l.side(x1, y1)
	if s0 == 0 || s1 == 0 || (s0 > 0) == (s1 > 0) {
		return NotCrossed
	}
	// Both ends of the line must lie on either side of the movement, or it passed beside it.
	m := Line{From: Point{x0, y0}, To: Point{x1, y1}}
	if a, b := m.side(l.From[0], l.From[1]), m.side(l.To[0], l.To[1]); a != 0 && b != 0 && (a > 0) == (b > 0) {
		return NotCrossed
	}
	if s0 > 0 {
		return Forward
	}
	return Backward
}

// On reports whether (x, y) lies on the line (or on its extension).
func (l Line) On(x, y float64) bool { return l.side(x, y) == 0 }

// side is the sign of (x, y) against the line: the cross product of From-To and From-(x, y).
func (l Line) side(x, y float64) float64 {
	return (l.To[0]-l.From[0])*(y-l.From[1]) - (l.To[1]-l.From[1])*(x-l.From[0])
}
