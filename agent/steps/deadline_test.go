package steps_test

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/configs"
)

// lineCamera tracks parts, with the counting line exit at x = 0.5, drawn top to bottom.
func lineCamera() configs.Camera {
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector, cc.Tracking.MaxMissed = "cam", "det", 2
	cc.Lines = []configs.Line{{Name: "exit", From: configs.Point{0.5, 0}, To: configs.Point{0.5, 1}}}
	cc.Verdicts = configs.Verdicts{OK: []string{"red"}, Default: "nok"}
	return cc
}

// belt runs n frames through the steps, 100 ms apart from t0: frame i shows the parts dets(i).
func belt(t0 time.Time, n int, dets func(i int) []payload.Tag, list ...pipeline.Step) {
	for i := range n {
		msg := prediction("p", uint64(i+1), dets(i)...)
		msg.Captured = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		for _, step := range list {
			step.Handle(context.Background(), &pipeline.Frame{}, msg)
		}
	}
}

// TestPartsDecideAtTheLine: with decision.line, a part is decided in the frame its centre
// crosses the line, on the decisions topic at once; what later frames say does not change
// it; its end event carries that decision and the lines it crossed. Each part is counted
// once per line, by way, even when it goes back and forth over it.
func TestPartsDecideAtTheLine(t *testing.T) {
	rec := &publish.Recorder{}
	cc := lineCamera()
	cc.Decision.Line = "exit"
	m := ops.NewMetrics(func() ops.Snapshot { return ops.Snapshot{} })
	counts, err := steps.OpenPartCounts(env(rec), "cam", t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	step := steps.NewParts(env(rec), cc, m, counts, nil)
	// part 1 moves right 0.1 a frame from centre 0.15: it crosses 0.5 into frame 5 (index 4,
	// centre 0.55). It is red until frame 4, blue after. Part 2 moves left from 0.95 and
	// crosses into frame 6; part 3 jiggles over the line and back: 0.45, 0.55, 0.45, 0.55.
	jiggle := []float32{0.4, 0.5, 0.4, 0.5}
	belt(time.Now(), 15, func(i int) []payload.Tag {
		var out []payload.Tag
		if i < 12 { // red in 4 frames, blue in 8: the line decides before the blue ones
			tag := "red"
			if i >= 4 {
				tag = "blue"
			}
			out = append(out, classified(1, 0.1+0.1*float32(i), tag, 0.9, false, ""))
		}
		if i < 9 {
			out = append(out, classified(2, 0.9-0.1*float32(i), "red", 0.9, false, ""))
		}
		if i < len(jiggle) {
			out = append(out, classified(3, jiggle[i], "green", 0.9, false, ""))
		}
		return out
	}, step)
	decisions, err := publish.Decode[payload.Decision](rec, "/cameras/cam/decisions")
	if err != nil {
		t.Fatal(err)
	}
	byTrack := map[uint64]payload.Decision{}
	for _, d := range decisions {
		if _, twice := byTrack[d.TrackID]; twice {
			t.Fatalf("track %d decided twice: %+v", d.TrackID, decisions)
		}
		byTrack[d.TrackID] = d
	}
	if d := byTrack[1]; d.By != "line" || d.FrameID != 5 || d.TagName != "red" || d.Verdict != "ok" || d.PartID == "" || d.Captured.IsZero() {
		t.Errorf("part 1 crossed the line in frame 5 while red: %+v", d)
	}
	if d := byTrack[2]; d.By != "line" || d.FrameID != 6 {
		t.Errorf("part 2 crossed backward into frame 6: %+v", d)
	}
	if d := byTrack[3]; d.By != "line" || d.FrameID != 2 || d.TagName != "green" || d.Verdict != "nok" {
		t.Errorf("part 3 crossed in frame 2: %+v", d)
	}
	evs, _ := publish.Decode[payload.Part](rec, "/cameras/cam/parts")
	ends := map[uint64]payload.Part{}
	for _, ev := range evs {
		if ev.Event == "end" {
			ends[ev.TrackID] = ev
		}
	}
	if e := ends[1]; e.TagName != "red" || e.DecidedBy != "line" || e.Ended != "unseen" || e.Frames != 12 || e.Lines["exit"] != "forward" || e.PartID != byTrack[1].PartID {
		t.Errorf("end of part 1: %+v", e)
	}
	if e := ends[2]; e.Lines["exit"] != "backward" {
		t.Errorf("end of part 2: %+v", e)
	}
	c := counts.Snapshot()
	if got := c.Lines["exit"]; got != (payload.LineCount{Forward: 2, Backward: 1}) {
		t.Errorf("line exit counted %+v, want 2 forward (parts 1 and 3, once each) and 1 backward", got)
	}
	if c.Parts != 3 || c.Tags["red"] != 2 || c.Tags["green"] != 1 || c.Verdicts["ok"] != 2 || c.Verdicts["nok"] != 1 {
		t.Errorf("counts: %+v", c)
	}
	if n := testutil.CollectAndCount(m.DecisionLatency); n != 1 {
		t.Errorf("decision latency: %d series, want 1 (camera cam, by line)", n)
	}
}

// TestPartsCountALandingOnTheLine: a part whose centre lands exactly on the line in one frame
// is counted (and decided) once, as it leaves the line on the other side; one that touches
// the line and goes back is not.
func TestPartsCountALandingOnTheLine(t *testing.T) {
	rec := &publish.Recorder{}
	cc := lineCamera()
	cc.Lines[0].From, cc.Lines[0].To = configs.Point{0.25, 0}, configs.Point{0.25, 1}
	cc.Decision.Line = "exit"
	counts, _ := steps.OpenPartCounts(env(rec), "cam", "", nil, time.Now())
	step := steps.NewParts(env(rec), cc, nil, counts, nil)
	at := func(track uint64, left float32) payload.Tag { // 0.25 wide: centres exact in binary
		d := classified(track, left, "red", 0.9, false, "")
		d.BoundingBox.Width = 0.25
		return d
	}
	lefts := []float32{0, 0.125, 0.25, 0.375} // centres 0.125, 0.25 (on the line), 0.375, 0.5
	back := []float32{0, 0.125, 0}            // onto the line and back
	belt(time.Now(), len(lefts), func(i int) []payload.Tag {
		out := []payload.Tag{at(1, lefts[i])}
		if i < len(back) {
			out = append(out, at(2, back[i]))
		}
		return out
	}, step)
	decisions, _ := publish.Decode[payload.Decision](rec, "/decisions")
	if len(decisions) != 1 || decisions[0].TrackID != 1 || decisions[0].FrameID != 3 {
		t.Errorf("want part 1 decided as it left the line, in frame 3: %+v", decisions)
	}
	if c := counts.Snapshot(); c.Lines["exit"] != (payload.LineCount{Forward: 1}) {
		t.Errorf("line counts %+v, want 1 forward", c.Lines)
	}
}

// TestPartsDecideInTime: with decision.after, a part is decided in the first frame captured
// that long after it appeared, even when it is not seen in that frame.
func TestPartsDecideInTime(t *testing.T) {
	rec := &publish.Recorder{}
	cc := lineCamera()
	cc.Lines, cc.Tracking.MaxMissed = nil, 5
	cc.Decision.After = 350 * time.Millisecond
	step := steps.NewParts(env(rec), cc, nil, nil, nil)
	// part 1 is seen in frames 1-3 (0-200 ms), hidden in frame 4 (300 ms) and decided in
	// frame 5 (400 ms); part 2 appears in frame 3 and is decided in frame 7 (600 ms).
	belt(time.Now(), 8, func(i int) []payload.Tag {
		var out []payload.Tag
		if i < 3 {
			out = append(out, classified(1, 0.1+0.05*float32(i), "red", 0.9, false, ""))
		}
		if i >= 2 {
			out = append(out, classified(2, 0.6, "blue", 0.8, false, ""))
		}
		return out
	}, step)
	decisions, _ := publish.Decode[payload.Decision](rec, "/decisions")
	if len(decisions) != 2 {
		t.Fatalf("%d decisions, want 2: %+v", len(decisions), decisions)
	}
	if d := decisions[0]; d.TrackID != 1 || d.By != "time" || d.FrameID != 3 || d.TagName != "red" {
		t.Errorf("part 1, decided 350 ms after it appeared, its last frame being 3: %+v", d)
	}
	if d := decisions[1]; d.TrackID != 2 || d.By != "time" || d.FrameID != 7 || d.TagName != "blue" {
		t.Errorf("part 2: %+v", d)
	}
}

// TestPartsInZones: with zones, a part is reported from the first frame its centre is in a
// zone, decided from those frames only, and a part never in a zone is not reported.
func TestPartsInZones(t *testing.T) {
	rec := &publish.Recorder{}
	cc := lineCamera()
	cc.Lines = nil
	cc.Zones = []configs.Area{{Name: "middle", Points: []configs.Point{{0.3, 0}, {0.7, 0}, {0.7, 1}, {0.3, 1}}}}
	step := steps.NewParts(env(rec), cc, nil, nil, nil)
	// part 1 crosses from 0.05 to 0.95 (centres), blue outside the zone and red inside;
	// part 2 stays at the left edge.
	belt(time.Now(), 11, func(i int) []payload.Tag {
		out := []payload.Tag{classified(2, 0.0, "green", 0.9, false, "")}
		if i < 10 {
			tag := "blue"
			if x := 0.05 + 0.1*float32(i); x > 0.3 && x < 0.7 {
				tag = "red"
			}
			out = append(out, classified(1, 0.1*float32(i), tag, 0.9, false, ""))
		}
		return out
	}, step)
	evs, _ := publish.Decode[payload.Part](rec, "/parts")
	if len(evs) != 1 || evs[0].TrackID != 1 || evs[0].Event != "start" || evs[0].FirstFrameID != 4 {
		t.Fatalf("want the start of part 1 in frame 4 (centre 0.35) and nothing of part 2 (still in view): %+v", evs)
	}
	step.(pipeline.Closer).Close()
	evs, _ = publish.Decode[payload.Part](rec, "/parts")
	if len(evs) != 2 {
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	if e := evs[1]; e.TrackID != 1 || e.TagName != "red" || e.Votes["blue"] != 0 || e.FirstFrameID != 4 {
		t.Errorf("part 1 decided from its frames in the zone: %+v", e)
	}
}

// TestPartsEndAtStop: when the step closes (the agent stops or reloads), each part in view
// is decided from the frames it had, and gets its end event.
func TestPartsEndAtStop(t *testing.T) {
	rec := &publish.Recorder{}
	step := steps.NewParts(env(rec), lineCamera(), nil, nil, nil)
	belt(time.Now(), 3, func(i int) []payload.Tag { return []payload.Tag{classified(7, 0.1, "red", 0.9, false, "")} }, step)
	if evs, _ := publish.Decode[payload.Part](rec, "/parts"); len(evs) != 1 {
		t.Fatalf("before closing: %+v", evs)
	}
	step.(pipeline.Closer).Close()
	evs, _ := publish.Decode[payload.Part](rec, "/parts")
	decisions, _ := publish.Decode[payload.Decision](rec, "/decisions")
	if len(evs) != 2 || evs[1].Ended != "stop" || evs[1].DecidedBy != "stop" || evs[1].TagName != "red" || evs[1].Frames != 3 {
		t.Fatalf("after closing: %+v", evs)
	}
	if len(decisions) != 1 || decisions[0].By != "stop" {
		t.Errorf("decisions: %+v", decisions)
	}
	step.(pipeline.Closer).Close() // nothing left: nothing more
	if evs, _ := publish.Decode[payload.Part](rec, "/parts"); len(evs) != 2 {
		t.Errorf("a second close sent more: %+v", evs)
	}
}

// FuzzParts: random boxes, tracked, through the parts step with a zone, two lines and a
// deadline, then closed: no panic; every part that started has one decision and one end
// event with that decision; the counts hold each decision once.
func FuzzParts(f *testing.F) {
	f.Add(uint64(1), uint8(5), uint8(40))
	f.Add(uint64(9), uint8(20), uint8(8))
	f.Add(uint64(3), uint8(0), uint8(3))
	f.Fuzz(func(t *testing.T, seed uint64, perFrame, frames uint8) {
		r := rand.New(rand.NewPCG(seed, seed))
		rec := &publish.Recorder{}
		cc := lineCamera()
		cc.Lines = append(cc.Lines, configs.Line{Name: "across", From: configs.Point{0, 0.5}, To: configs.Point{1, 0.5}})
		cc.Zones = []configs.Area{{Name: "z", Points: []configs.Point{{0.1, 0.1}, {0.9, 0.1}, {0.5, 0.9}}}}
		cc.Decision = configs.Decision{Line: "exit", After: time.Duration(r.IntN(2000)) * time.Millisecond}
		counts, _ := steps.OpenPartCounts(env(rec), "cam", "", nil, time.Now())
		track := steps.NewTrack(cc.Tracking, true, new(atomic.Uint64))
		step := steps.NewParts(env(rec), cc, nil, counts, nil)
		belt(time.Now(), int(frames), func(int) []payload.Tag {
			var out []payload.Tag
			for range r.IntN(int(perFrame) + 1) {
				b := payload.Box{Left: r.Float32()*1.4 - 0.2, Top: r.Float32()*1.4 - 0.2, Width: r.Float32() / 3, Height: r.Float32() / 3}
				d := detection(b, []string{"red", "blue"}[r.IntN(2)], r.Float32())
				d.Classification.Uncertain = r.IntN(4) == 0
				out = append(out, d)
			}
			return out
		}, track, step)
		step.(pipeline.Closer).Close()
		decisions, _ := publish.Decode[payload.Decision](rec, "/decisions")
		evs, _ := publish.Decode[payload.Part](rec, "/parts")
		decided := map[string]payload.Decision{}
		for _, d := range decisions {
			if _, twice := decided[d.PartID]; twice {
				t.Fatalf("part %s decided twice", d.PartID)
			}
			decided[d.PartID] = d
		}
		starts, ends := 0, 0
		for _, ev := range evs {
			if ev.Event == "start" {
				starts++
				continue
			}
			ends++
			if d, ok := decided[ev.PartID]; !ok || d.TagName != ev.TagName || d.By != ev.DecidedBy {
				t.Fatalf("end %+v, decision %+v", ev, d)
			}
		}
		if starts != ends || ends != len(decided) || counts.Snapshot().Parts != uint64(len(decided)) {
			t.Fatalf("%d starts, %d ends, %d decisions, %d counted", starts, ends, len(decided), counts.Snapshot().Parts)
		}
	})
}
