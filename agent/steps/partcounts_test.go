package steps_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
)

// TestPartCountsKeptAndReset: the counts are published retained, written to their file and
// read back by the next start; a shift time resets them, also one that passed while the
// agent was away, and so does Reset.
func TestPartCountsKeptAndReset(t *testing.T) {
	dir := t.TempDir()
	rec := &publish.Recorder{}
	zone := time.FixedZone("plant", 2*3600)
	at := func(day, h, m int) time.Time { return time.Date(2026, 11, day, h, m, 0, 0, zone) }
	shifts := []string{"06:00", "14:00"}
	pc, err := steps.OpenPartCounts(env(rec), "cam", dir, shifts, at(2, 7, 0))
	if err != nil {
		t.Fatal(err)
	}
	pc.Part("red", "ok", at(2, 7, 1))
	pc.Part("blue", "nok", at(2, 7, 1)) // within a second: published by the next Tick
	pc.Line("exit", configs.Forward, at(2, 7, 1))
	pc.Tick(at(2, 7, 2))
	last := lastCounts(t, rec)
	if last.Parts != 2 || last.Tags["blue"] != 1 || last.Verdicts["nok"] != 1 || last.Lines["exit"].Forward != 1 || last.Since != at(2, 7, 0).UTC() {
		t.Fatalf("published: %+v", last)
	}
	if m := rec.Messages("/counts"); !m[len(m)-1].Retained || m[len(m)-1].Topic != "cvedge/line1/cameras/cam/counts" {
		t.Errorf("counts message: %+v", m[len(m)-1])
	}
	// a restart before the next shift goes on from the file
	pc2, err := steps.OpenPartCounts(env(rec), "cam", dir, shifts, at(2, 9, 0))
	if err != nil {
		t.Fatal(err)
	}
	if c := pc2.Snapshot(); c.Parts != 2 || c.Tags["red"] != 1 || c.Since != at(2, 7, 0).UTC() {
		t.Errorf("after a restart: %+v", c)
	}
	// the 14:00 shift begins while it runs
	pc2.Tick(at(2, 14, 0))
	if c := lastCounts(t, rec); c.Parts != 0 || c.Reset != "shift" || c.Since != at(2, 14, 0).UTC() || len(c.Tags) != 0 {
		t.Errorf("after the 14:00 shift: %+v", c)
	}
	pc2.Part("red", "ok", at(2, 15, 0))
	pc2.Tick(at(2, 15, 1))
	// away from 15:01 until 07:00 the next day: the 06:00 shift reset them
	pc3, _ := steps.OpenPartCounts(env(rec), "cam", dir, shifts, at(3, 7, 0))
	if c := pc3.Snapshot(); c.Parts != 0 || c.Reset != "shift" || c.Since != at(3, 6, 0).UTC() {
		t.Errorf("after a night away: %+v", c)
	}
	pc3.Part("red", "ok", at(3, 7, 5))
	pc3.Reset("command", at(3, 8, 0))
	if c := lastCounts(t, rec); c.Parts != 0 || c.Reset != "command" {
		t.Errorf("after reset-counts: %+v", c)
	}
}

func lastCounts(t *testing.T, rec *publish.Recorder) payload.Counts {
	t.Helper()
	cs, err := publish.Decode[payload.Counts](rec, "/counts")
	if err != nil || len(cs) == 0 {
		t.Fatalf("no counts published: %v", err)
	}
	return cs[len(cs)-1]
}

// TestPartCountsBadFileAndFullDisk: a counts file that is not JSON is moved aside and
// counting starts from zero, with an error that names the file; a folder that cannot be
// written (here: a file stands where it should be) loses no count, and nothing panics.
func TestPartCountsBadFileAndFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cam.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &publish.Recorder{}
	pc, err := steps.OpenPartCounts(env(rec), "cam", dir, nil, time.Now())
	if err == nil || pc == nil || pc.Snapshot().Parts != 0 {
		t.Fatalf("a broken file: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "cam.json.bad")); serr != nil {
		t.Errorf("the broken file was not kept aside: %v (err %v)", serr, err)
	}
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pc, err = steps.OpenPartCounts(env(rec), "cam", filepath.Join(blocked, "counts"), nil, time.Now())
	if err == nil || pc == nil {
		t.Fatalf("counts in a folder that cannot be: %v", err)
	}
	for range 3 {
		pc.Part("red", "", time.Now())
	}
	pc.Tick(time.Now().Add(2 * time.Second))
	if c := lastCounts(t, rec); c.Parts != 3 {
		t.Errorf("with nowhere to write: %+v", c)
	}
}

// TestPartCountsRecent: the last RecentDecisions decisions are kept, newest first.
func TestPartCountsRecent(t *testing.T) {
	pc, err := steps.OpenPartCounts(&steps.Env{Agent: "a"}, "cam", "", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range steps.RecentDecisions + 5 {
		pc.Remember(payload.Decision{PartID: fmt.Sprint(i)})
	}
	got := pc.Recent()
	if len(got) != steps.RecentDecisions || got[0].PartID != fmt.Sprint(steps.RecentDecisions+4) || got[len(got)-1].PartID != "5" {
		t.Fatalf("recent %d decisions, first %q, last %q; want %d, newest (%d) first, oldest kept 5", len(got), got[0].PartID, got[len(got)-1].PartID, steps.RecentDecisions, steps.RecentDecisions+4)
	}
}
