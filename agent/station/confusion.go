package station

import (
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

// maxConfusionSpan bounds the period of a confusion table: the answers log is read whole.
const maxConfusionSpan = 10 * 366 * 24 * time.Hour

// reviewConfusion is the confusion table of the answers of a period: since and until
// (RFC 3339; either may be left out: no bound), agent and camera ("" for all).
func (s *Station) reviewConfusion(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since, until time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		raw := q.Get(p.name)
		if raw == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil || t.Year() < 2000 || t.Year() > 9999 {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("%q must be a time such as 2026-11-29T08:00:00Z (RFC 3339), not %.40q", p.name, raw))
			return
		}
		*p.t = t
	}
	if !since.IsZero() && !until.IsZero() && (!since.Before(until) || until.Sub(since) > maxConfusionSpan) {
		apiError(w, http.StatusBadRequest, `"since" must be before "until", and at most 10 years before it`)
		return
	}
	agent, camera := q.Get("agent"), q.Get("camera")
	for _, p := range []struct{ name, v string }{{"agent", agent}, {"camera", camera}} {
		if len(p.v) > maxFilterLen || !utf8.ValidString(p.v) {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("%q must be a name of at most %d characters", p.name, maxFilterLen))
			return
		}
	}
	apiJSON(w, http.StatusOK, s.o.Review.Confusion(since, until, agent, camera))
}
