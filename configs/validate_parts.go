package configs

import (
	"fmt"
	"time"
)

// validateParts checks where and when a camera's parts are decided and counted: its masks,
// zones, lines and decision deadline.
func (cam Camera) validateParts(p *problems, key string) {
	if cam.Pipeline.Detector == "" && len(cam.Masks) > 0 {
		p.add(key+".masks", "masks drop detections: set pipeline.detector, or remove the masks")
	}
	if !cam.Tracks() && (len(cam.Zones) > 0 || len(cam.Lines) > 0 || cam.Decision != (Decision{})) {
		p.add(key, "zones, lines and decision work on tracked parts: set pipeline.detector and tracking.enabled, or remove them")
	}
	for i, a := range cam.Masks {
		validArea(p, fmt.Sprintf("%s.masks[%d]", key, i), a, false)
	}
	names := map[string]bool{}
	for i, a := range cam.Zones {
		k := fmt.Sprintf("%s.zones[%d]", key, i)
		validArea(p, k, a, true)
		if names[a.Name] {
			p.add(k+".name", "%q names another zone: names must be unique", a.Name)
		}
		names[a.Name] = true
	}
	lines := map[string]bool{}
	for i, l := range cam.Lines {
		k := fmt.Sprintf("%s.lines[%d]", key, i)
		if !nameRE.MatchString(l.Name) {
			p.add(k+".name", "%q must be 1-64 letters, digits, '-' or '_' (it names the line in the counts)", l.Name)
		} else if lines[l.Name] {
			p.add(k+".name", "%q names another line: names must be unique", l.Name)
		}
		lines[l.Name] = true
		validPoint(p, k+".from", l.From)
		validPoint(p, k+".to", l.To)
		if l.From == l.To {
			p.add(k, "from and to are the same point: a line needs two ends")
		}
	}
	if d := cam.Decision; d.Line != "" && !lines[d.Line] {
		p.add(key+".decision.line", "%q is not one of the camera's lines: name one under lines, or leave it empty", d.Line)
	}
	if cam.Decision.After < 0 {
		p.add(key+".decision.after", "%v must be 0 (no time limit) or a positive duration such as 2s", cam.Decision.After)
	}
}

// validArea checks one polygon; named says whether it needs a name.
func validArea(p *problems, key string, a Area, named bool) {
	if named && !nameRE.MatchString(a.Name) {
		p.add(key+".name", "%q must be 1-64 letters, digits, '-' or '_'", a.Name)
	}
	if len(a.Points) < 3 {
		p.add(key+".points", "%d points: a polygon needs at least 3, as [x, y] fractions of the frame", len(a.Points))
	}
	for j, pt := range a.Points {
		validPoint(p, fmt.Sprintf("%s.points[%d]", key, j), pt)
	}
}

// validPoint checks that a point lies in the frame.
func validPoint(p *problems, key string, pt Point) {
	if !(pt[0] >= 0 && pt[0] <= 1 && pt[1] >= 0 && pt[1] <= 1) { // NaN too
		p.add(key, "[%v, %v] is outside the frame: x and y are fractions of its width and height, 0 to 1", pt[0], pt[1])
	}
}

// validate checks the shift times.
func (c Counts) validate(p *problems) {
	for i, at := range c.ResetAt {
		if _, err := ParseClock(at); err != nil {
			p.add(fmt.Sprintf("counts.reset_at[%d]", i), "%v", err)
		}
	}
}

// ParseClock reads a time of day, "HH:MM" (24 hours), as the time since midnight.
func ParseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day: write it as HH:MM, e.g. 06:00 or 22:30", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
