package steps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/configs"
)

// countsEvery is the most often a camera's counts are published and written while parts
// keep coming; a change waits at most this long, or until the next Tick.
const countsEvery = time.Second

// PartCounts are one camera's parts counted since the last reset: by decided tag, by verdict,
// and by counting line and way. The parts step adds to them; the reset-counts command and
// the shift clock (Tick) start them again. They outlive reloads (the agent keeps one per
// camera name), are kept in a file so that a restart does not lose a shift's figures, and
// are published retained on <prefix>/cameras/<camera>/counts. Safe for concurrent use.
type PartCounts struct {
	env  *Env
	file string

	mu     sync.Mutex
	c      payload.Counts
	resets []time.Duration // counts.reset_at, since local midnight
	dirty  bool
	last   time.Time          // last published
	warned bool               // the file could not be written; said once
	recent []payload.Decision // the last RecentDecisions decisions, oldest first
	// onDecision, when set, hears each decision with the counts after it (the plant
	// integrations: Sparkplug B, the PLC interface).
	onDecision func(payload.Decision, payload.Counts)
}

// OnDecision sets what hears each decision Remember keeps, with the counts after it. It is
// called on the camera's goroutine and must not block.
func (pc *PartCounts) OnDecision(fn func(payload.Decision, payload.Counts)) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.onDecision = fn
}

// RecentDecisions is how many of a camera's last decisions PartCounts keeps for the
// operator station.
const RecentDecisions = 20

// OpenPartCounts returns the counts of camera, read back from its file in dir when there is
// one (a file that cannot be read is moved aside as .bad, and counting starts at zero, with
// the reason in err); dir "" keeps them in memory only. A shift that began while the agent
// was away resets them.
func OpenPartCounts(env *Env, camera, dir string, resetAt []string, now time.Time) (pc *PartCounts, err error) {
	pc = &PartCounts{env: env}
	if dir != "" {
		pc.file = filepath.Join(dir, camera+".json")
	}
	pc.c = payload.Counts{Schema: payload.Schema, Agent: env.Agent, Camera: camera, Since: now.UTC()}
	pc.SetResets(resetAt)
	raw, rerr := os.ReadFile(pc.file)
	switch {
	case pc.file == "", errors.Is(rerr, fs.ErrNotExist):
	case rerr != nil:
		err = fmt.Errorf("counts file %s: %w (counting from zero; check that the agent may write in spool.dir)", pc.file, rerr)
	default:
		var old payload.Counts
		if jerr := json.Unmarshal(raw, &old); jerr != nil || old.Camera != camera {
			_ = os.Rename(pc.file, pc.file+".bad")
			err = fmt.Errorf("counts file %s is not this camera's counts (moved aside as .bad; counting from zero): %v", pc.file, jerr)
			break
		}
		old.Agent, old.Schema = env.Agent, payload.Schema
		pc.c = old
	}
	pc.fill()
	pc.mu.Lock()
	pc.shift(now)
	pc.mu.Unlock()
	return pc, err
}

// SetResets sets the shift times (counts.reset_at, validated); a reload may change them.
func (pc *PartCounts) SetResets(resetAt []string) {
	var rs []time.Duration
	for _, s := range resetAt {
		if d, err := configs.ParseClock(s); err == nil {
			rs = append(rs, d)
		}
	}
	pc.mu.Lock()
	pc.resets = rs
	pc.mu.Unlock()
}

// Part counts a decided part.
func (pc *PartCounts) Part(tag, verdict string, now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.shift(now)
	pc.c.Parts++
	pc.c.Tags[tag]++
	if verdict != "" {
		pc.c.Verdicts[verdict]++
	}
	pc.changed(now)
}

// Remember keeps d among the camera's last RecentDecisions decisions.
func (pc *PartCounts) Remember(d payload.Decision) {
	pc.mu.Lock()
	if len(pc.recent) == RecentDecisions {
		pc.recent = append(pc.recent[:0], pc.recent[1:]...)
	}
	pc.recent = append(pc.recent, d)
	fn := pc.onDecision
	var c payload.Counts
	if fn != nil {
		c = pc.copy()
	}
	pc.mu.Unlock()
	if fn != nil {
		fn(d, c)
	}
}

// Recent returns the camera's last decisions, newest first.
func (pc *PartCounts) Recent() []payload.Decision {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	out := slices.Clone(pc.recent)
	slices.Reverse(out)
	return out
}

// Line counts a part whose centre crossed line, by way.
func (pc *PartCounts) Line(line string, way configs.Crossing, now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.shift(now)
	lc := pc.c.Lines[line]
	if way == configs.Forward {
		lc.Forward++
	} else {
		lc.Backward++
	}
	pc.c.Lines[line] = lc
	pc.changed(now)
}

// Reset starts the counts again from zero at now, and publishes them at once; why is
// "command" or "shift".
func (pc *PartCounts) Reset(why string, now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.reset(why, now)
	pc.flush(now)
}

// Tick resets the counts when a shift began since they last were, and publishes and writes
// a change still waiting. The agent calls it on its stats interval.
func (pc *PartCounts) Tick(now time.Time) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.shift(now)
	if pc.dirty {
		pc.flush(now)
	}
}

// Snapshot returns a copy of the counts.
func (pc *PartCounts) Snapshot() payload.Counts {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.copy()
}

// Message is the retained counts message, for publishing after each (re)connection.
func (pc *PartCounts) Message() publish.Message {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.message()
}

func (pc *PartCounts) copy() payload.Counts {
	c := pc.c
	c.Tags, c.Verdicts, c.Lines = maps.Clone(pc.c.Tags), maps.Clone(pc.c.Verdicts), maps.Clone(pc.c.Lines) // never nil: fill made them
	return c
}

func (pc *PartCounts) message() publish.Message {
	body, _ := json.Marshal(pc.c)
	return publish.Message{Topic: pc.env.Topic("cameras/" + pc.c.Camera + "/counts"), QoS: 1, Retained: true, Payload: body}
}

// fill makes the maps of the counts (a file may lack them).
func (pc *PartCounts) fill() {
	if pc.c.Tags == nil {
		pc.c.Tags = map[string]uint64{}
	}
	if pc.c.Verdicts == nil {
		pc.c.Verdicts = map[string]uint64{}
	}
	if pc.c.Lines == nil {
		pc.c.Lines = map[string]payload.LineCount{}
	}
}

// shift resets the counts when a shift time lies between their start and now.
func (pc *PartCounts) shift(now time.Time) {
	if at, ok := lastShift(pc.resets, now); ok && pc.c.Since.Before(at) {
		pc.reset("shift", at)
		pc.flush(now)
	}
}

// lastShift is the latest of the shift times (since midnight, in now's time zone: the agent
// passes local time) at or before now.
func lastShift(resets []time.Duration, now time.Time) (time.Time, bool) {
	var best time.Time
	if len(resets) == 0 { // no shifts (the parts step asks on every frame)
		return best, false
	}
	for day := 0; day <= 1 && best.IsZero(); day++ { // today's, else yesterday's
		y, m, d := now.AddDate(0, 0, -day).Date()
		for _, r := range resets {
			at := time.Date(y, m, d, int(r/time.Hour), int(r%time.Hour/time.Minute), 0, 0, now.Location())
			if !at.After(now) && at.After(best) {
				best = at
			}
		}
	}
	return best, !best.IsZero()
}

func (pc *PartCounts) reset(why string, at time.Time) {
	pc.c.Since, pc.c.Reset, pc.c.Parts = at.UTC(), why, 0
	pc.c.Tags, pc.c.Verdicts, pc.c.Lines = nil, nil, nil
	pc.fill()
	pc.env.Log.Info("part counts reset", "camera", pc.c.Camera, "by", why)
}

// changed publishes and writes the counts, or leaves that for later when they went out less
// than countsEvery ago.
func (pc *PartCounts) changed(now time.Time) {
	pc.dirty = true
	if now.Sub(pc.last) >= countsEvery {
		pc.flush(now)
	}
}

// flush publishes the counts (retained) and writes their file.
func (pc *PartCounts) flush(now time.Time) {
	pc.c.Updated = now.UTC()
	pc.dirty, pc.last = false, now
	if pc.env.Pub != nil {
		pc.env.Pub.Send(pc.message())
	}
	if err := pc.write(); err != nil && !pc.warned {
		pc.warned = true
		pc.env.Log.Warn("part counts not written to disk: a restart would lose them (they are still counted and published)", "camera", pc.c.Camera, "err", err)
	} else if err == nil {
		pc.warned = false
	}
}

// write replaces the counts file, so that a crash leaves the old one or the new one.
func (pc *PartCounts) write() error {
	if pc.file == "" {
		return nil
	}
	body, _ := json.Marshal(pc.c)
	if err := os.MkdirAll(filepath.Dir(pc.file), 0o755); err != nil {
		return err
	}
	tmp := pc.file + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, pc.file)
}
