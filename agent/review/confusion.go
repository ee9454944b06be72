package review

import (
	"cmp"
	"path/filepath"
	"slices"
	"time"
)

// NoPart names "no part" in the confusion table: the predicted side of a missed part, the
// answered side of a false detection.
const NoPart = "(no part)"

// Confusion is the table of predicted against answered tags over the answers of a period.
// The samples reviewed are those the rules chose (mostly doubtful ones), so the table says
// which classes get confused, not how often the model is right overall.
type Confusion struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Agent  string    `json:"agent,omitempty"`
	Camera string    `json:"camera,omitempty"`
	// Answers counts the answers in the period; BadLines the lines of the log that could not
	// be read (skipped).
	Answers  int `json:"answers"`
	BadLines int `json:"badLines"`
	// Tags are every tag in the table, sorted, NoPart last when present.
	Tags []string `json:"tags"`
	// Counts is [predicted][answered] -> how many times.
	Counts map[string]map[string]int `json:"counts"`
	// Totals has one row per tag of Tags.
	Totals []TagTotal `json:"totals"`
	// Confused are the pairs where the answer was another tag, most often first.
	Confused []Pair `json:"confused"`
}

// TagTotal sums one tag's row and column.
type TagTotal struct {
	Tag string `json:"tag"`
	// Predicted counts the answers where the models said Tag; Answered where the operator
	// did; Right where both did.
	Predicted int `json:"predicted"`
	Answered  int `json:"answered"`
	Right     int `json:"right"`
}

// Pair is one cell of the table off its diagonal.
type Pair struct {
	Predicted string `json:"predicted"`
	Answered  string `json:"answered"`
	Count     int    `json:"count"`
}

// Confusion makes the table from the answers log: answers from since until until (zero
// times: no bound), of agent and camera ("" for all). Lines it cannot read are skipped and
// counted; an unreadable log gives an empty table with the reason logged.
func (q *Queue) Confusion(since, until time.Time, agent, camera string) Confusion {
	c := Confusion{Since: since, Until: until, Agent: agent, Camera: camera, Counts: map[string]map[string]int{}}
	q.mu.Lock() // no answer is appended halfway while the log is read
	defer q.mu.Unlock()
	bad, err := readLog(filepath.Join(q.dir, AnswersLog), func(l logLine) {
		if (!since.IsZero() && l.Time.Before(since)) || (!until.IsZero() && !l.Time.Before(until)) ||
			(agent != "" && l.Agent != agent) || (camera != "" && l.Camera != camera) {
			return
		}
		c.Answers++
		for _, p := range l.pairs() {
			c.add(p[0], p[1])
		}
	})
	if err != nil {
		q.log.Error("answers log not readable", "err", err)
	}
	c.BadLines = bad
	c.finish()
	return c
}

func (c *Confusion) add(predicted, answered string) {
	if predicted == "" {
		predicted = NoPart
	}
	if answered == "" {
		answered = NoPart
	}
	if c.Counts[predicted] == nil {
		c.Counts[predicted] = map[string]int{}
	}
	c.Counts[predicted][answered]++
}

// finish fills Tags, Totals and Confused from Counts.
func (c *Confusion) finish() {
	totals := map[string]*TagTotal{}
	total := func(tag string) *TagTotal {
		if totals[tag] == nil {
			totals[tag] = &TagTotal{Tag: tag}
		}
		return totals[tag]
	}
	for p, row := range c.Counts {
		for a, n := range row {
			total(p).Predicted += n
			total(a).Answered += n
			if p == a {
				total(p).Right += n
			} else {
				c.Confused = append(c.Confused, Pair{Predicted: p, Answered: a, Count: n})
			}
		}
	}
	c.Tags = make([]string, 0, len(totals))
	for t := range totals {
		c.Tags = append(c.Tags, t)
	}
	slices.SortFunc(c.Tags, func(a, b string) int {
		if (a == NoPart) != (b == NoPart) {
			if a == NoPart {
				return 1
			}
			return -1
		}
		return cmp.Compare(a, b)
	})
	c.Totals = make([]TagTotal, 0, len(c.Tags))
	for _, t := range c.Tags {
		c.Totals = append(c.Totals, *totals[t])
	}
	slices.SortFunc(c.Confused, func(a, b Pair) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Predicted, b.Predicted), cmp.Compare(a.Answered, b.Answered))
	})
	if c.Confused == nil {
		c.Confused = []Pair{}
	}
}
