package agent_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// runDemo runs the demo video once through cfg and returns the predictions and the last
// stats message.
func runDemo(t *testing.T, broker *testenv.Broker, cfg *configs.Config) ([]payload.Prediction, *testenv.Inbox) {
	t.Helper()
	cfg.MQTT.StatsInterval = 200 * time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 60*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	time.Sleep(400 * time.Millisecond) // one more stats message
	stop()
	return predictions(t, col, "conveyor"), col
}

// truthAt returns the truth part under the centre of a detection.
func truthAt(tr testenv.Truth, frame int, b *payload.Box) (colour, shape string, ok bool) {
	cx, cy := float64(b.Left+b.Width/2)*float64(tr.Width), float64(b.Top+b.Height/2)*float64(tr.Height)
	for _, p := range tr.Frames[frame].Parts {
		if cx >= p.Box[0] && cx <= p.Box[0]+p.Box[2] && cy >= p.Box[1] && cy <= p.Box[1]+p.Box[3] {
			return p.Colour, p.Shape, p.Visible >= 0.5
		}
	}
	return "", "", false
}

// TestHierarchy: detector, then the shape classifier, then a colour classifier chosen by
// shape (circles and squares; triangles stop at the shape). Every level's answer is in the
// payload and matches the video's truth.
func TestHierarchy(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	shape := configs.DefaultModel()
	shape.Path = testenv.Path("testdata", "demo", "shape")
	cfg.Models["shape"] = shape
	cfg.Cameras[0].Pipeline.Classifier = "shape"
	cfg.Cameras[0].Pipeline.Routes = map[string]string{"circle": "colour", "square": "colour"}
	preds, col := runDemo(t, broker, cfg)
	tr := testenv.DemoTruth(t)
	checked := 0
	for _, p := range preds {
		for _, d := range p.Predictions {
			colour, shapeTruth, visible := truthAt(tr, int(*p.SourcePos), d.BoundingBox)
			c := d.Classification
			if !visible || c == nil {
				continue
			}
			if c.Model != "shape" || c.Predictions[0].TagName != shapeTruth {
				t.Fatalf("frame %d: shape %s, truth %s", p.FrameID, c.Predictions[0].TagName, shapeTruth)
			}
			switch shapeTruth {
			case "triangle":
				if c.Next != nil {
					t.Fatalf("frame %d: a triangle was routed to %s", p.FrameID, c.Next.Model)
				}
			default:
				if c.Next == nil || c.Next.Model != "colour" || c.Next.Predictions[0].TagName != colour {
					t.Fatalf("frame %d: %s %s routed to %+v", p.FrameID, colour, shapeTruth, c.Next)
				}
			}
			checked++
		}
	}
	if checked < 200 {
		t.Fatalf("only %d parts checked", checked)
	}
	col.ValidateAll(t)
}

// TestPerTagThresholds: the detector's probability follows the part's fill (square 0.998,
// circle 0.987 and up to 0.996 when cut by the frame edge, triangle 0.82); a threshold of 0.997
// on the tag keeps the squares only.
func TestPerTagThresholds(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Cameras[0].Pipeline.Thresholds = map[string]float64{"Part": 0.997}
	preds, _ := runDemo(t, broker, cfg)
	tr := testenv.DemoTruth(t)
	squares := 0
	for _, p := range preds {
		for _, d := range p.Predictions {
			if _, shape, ok := truthAt(tr, int(*p.SourcePos), d.BoundingBox); ok && shape != "square" {
				t.Fatalf("frame %d: a %s passed the 0.997 threshold with %.3f", p.FrameID, shape, d.Probability)
			}
			squares++
		}
	}
	if squares < 50 {
		t.Fatalf("%d squares kept", squares)
	}
}

// TestVote: parts are tracked across frames and decided by majority after three frames.
func TestVote(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Cameras[0].Pipeline.Vote.Frames = 3
	preds, col := runDemo(t, broker, cfg)
	tr := testenv.DemoTruth(t)
	firsts := map[int]bool{}
	for _, p := range preds {
		for _, d := range p.Predictions {
			v := d.Vote
			if v == nil || v.Needed != 3 || v.Decided != (v.Frames >= 3) {
				t.Fatalf("frame %d: vote %+v", p.FrameID, v)
			}
			if !v.First {
				continue
			}
			if firsts[v.Track] {
				t.Fatalf("track %d decided twice", v.Track)
			}
			firsts[v.Track] = true
			if colour, _, ok := truthAt(tr, int(*p.SourcePos), d.BoundingBox); ok && v.Tag != colour {
				t.Fatalf("frame %d: track %d decided %s, the part is %s", p.FrameID, v.Track, v.Tag, colour)
			}
		}
	}
	// nine parts cross the belt; a part entering as a sliver may start a second track
	if len(firsts) < 9 || len(firsts) > 18 {
		t.Fatalf("%d parts decided, the video has 9", len(firsts))
	}
	col.ValidateAll(t)
}

// TestShadow runs a candidate iteration beside the active one: one that answers alike
// (agreement 1, no samples), and one whose tags differ (agreement 0, shadow samples).
func TestShadow(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	for _, c := range []struct {
		name, candidate string
		agreement       float64
	}{{"agrees", "classifier-rgb01", 1}, {"disagrees", "classifier-v2", 0}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := demoConfig(t, broker.URL, "")
			m := cfg.Models["colour"]
			m.Shadow.Path, m.Shadow.MaxPerSecond = testenv.Path("testdata", "models", c.candidate), 1000
			cfg.Models["colour"] = m
			_, col := runDemo(t, broker, cfg)
			s, _ := lastStats(col, "cvedge/e2e/stats")
			var sh *payload.ShadowStats
			for _, ms := range s.Models {
				if ms.Name == "colour" {
					sh = ms.Shadow
				}
			}
			if sh == nil || sh.Compared < 100 || sh.Agreement != c.agreement {
				t.Fatalf("shadow stats %+v", sh)
			}
			var shadowSamples int
			for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/samples") {
				var smp payload.Sample
				json.Unmarshal(raw, &smp)
				if smp.Reason == "shadow" {
					shadowSamples++
					if !strings.Contains(smp.Detail, "candidate") || smp.Prediction.Classification.Shadow == nil {
						t.Fatalf("shadow sample %+v", smp)
					}
				}
			}
			if (c.agreement == 0) != (shadowSamples > 0) {
				t.Fatalf("%d shadow samples with agreement %v", shadowSamples, c.agreement)
			}
			col.ValidateAll(t)
		})
	}
}

// TestTrackingOnTheDemo: on the demo video, every part keeps one trackId from the frame it
// enters to the frame it leaves, and no trackId is given to two parts (the ground truth's
// part ids).
func TestTrackingOnTheDemo(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	preds, _ := runDemo(t, broker, demoConfig(t, broker.URL, ""))
	tr := testenv.DemoTruth(t)
	if n := oneTrackPerPart(t, preds, func(frame int, b *payload.Box) (int, bool) { return partAt(tr, frame, b) }); n < 5 {
		t.Fatalf("only %d parts seen", n)
	}
}

// oneTrackPerPart checks that every detection that shows a truth part (shown: its id, in a
// frame of the video) carries a trackId, the same in every frame, and that no trackId is
// given to two parts; it returns how many parts were seen.
func oneTrackPerPart(t *testing.T, preds []payload.Prediction, shown func(frame int, b *payload.Box) (int, bool)) int {
	t.Helper()
	trackOf := map[int]map[uint64]int{} // truth part id -> trackIds, with frames
	partOf := map[uint64]map[int]int{}  // trackId -> truth part ids, with frames
	for _, p := range preds {
		for _, d := range p.Predictions {
			part, ok := shown(int(*p.SourcePos), d.BoundingBox)
			if !ok {
				continue
			}
			if d.TrackID == 0 {
				t.Fatalf("frame %d: a detection without a trackId", p.FrameID)
			}
			if trackOf[part] == nil {
				trackOf[part] = map[uint64]int{}
			}
			if partOf[d.TrackID] == nil {
				partOf[d.TrackID] = map[int]int{}
			}
			trackOf[part][d.TrackID]++
			partOf[d.TrackID][part]++
		}
	}
	for part, tracks := range trackOf {
		if len(tracks) != 1 {
			t.Errorf("part %d got %d trackIds (trackId: frames): %v", part, len(tracks), tracks)
		}
	}
	for id, parts := range partOf {
		if len(parts) != 1 {
			t.Errorf("trackId %d was given to %d parts (part: frames): %v", id, len(parts), parts)
		}
	}
	return len(trackOf)
}

// partAt returns the id of the truth part under the centre of a detection, when it is mostly
// visible.
func partAt(tr testenv.Truth, frame int, b *payload.Box) (int, bool) {
	cx, cy := float64(b.Left+b.Width/2)*float64(tr.Width), float64(b.Top+b.Height/2)*float64(tr.Height)
	for _, p := range tr.Frames[frame].Parts {
		if cx >= p.Box[0] && cx <= p.Box[0]+p.Box[2] && cy >= p.Box[1] && cy <= p.Box[1]+p.Box[3] {
			return p.ID, p.Visible >= 0.5
		}
	}
	return 0, false
}

// TestPartsOnTheDemo: one pass of the demo video decides every part that fully crossed the
// belt once, with its true colour, and no part twice. The decision line at three quarters of
// the belt decides each part as it crosses, on the decisions topic; the line counts each once,
// and the retained counts add up to the decisions.
func TestPartsOnTheDemo(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Cameras[0].Verdicts = configs.Verdicts{OK: []string{"Red", "green"}, Default: "nok"}
	cfg.Cameras[0].Lines = []configs.Line{{Name: "exit", From: configs.Point{0.75, 0}, To: configs.Point{0.75, 1}}}
	cfg.Cameras[0].Decision.Line = "exit"
	preds, col := runDemo(t, broker, cfg)
	tr := testenv.DemoTruth(t)
	pos := map[uint64]int{} // frame id -> the video's frame
	for _, p := range preds {
		pos[p.FrameID] = int(*p.SourcePos)
	}
	last := map[int]int{} // truth part -> the last frame it is mostly visible in
	for _, fr := range tr.Frames {
		for _, p := range fr.Parts {
			if p.Visible >= 0.5 {
				last[p.ID] = fr.Index
			}
		}
	}
	decisions := map[string]payload.Decision{} // by partId
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/decisions") {
		var d payload.Decision
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if _, twice := decisions[d.PartID]; twice {
			t.Errorf("part %s has two decisions", d.PartID)
		}
		decisions[d.PartID] = d
	}
	decided := map[int]string{}
	byLine := 0
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
		var ev payload.Part
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event != "end" || ev.Ended == "stop" { // in view when the agent stopped: not crossed
			continue
		}
		if d := decisions[ev.PartID]; d.TagName != ev.TagName || d.By != ev.DecidedBy || d.Verdict != ev.Verdict {
			t.Errorf("part %s: end event %s by %s, decision %+v", ev.PartID, ev.TagName, ev.DecidedBy, d)
		}
		if (ev.Lines["exit"] == "forward") != (ev.DecidedBy == "line") {
			t.Errorf("part %s crossed %v, decided by %s", ev.PartID, ev.Lines, ev.DecidedBy)
		}
		if ev.DecidedBy == "line" {
			byLine++
		}
		part, ok := partAt(tr, pos[ev.BestFrameID], ev.BoundingBox)
		if !ok {
			t.Errorf("part %s (track %d) decided on a box over no part: %+v", ev.PartID, ev.TrackID, ev)
			continue
		}
		if _, twice := decided[part]; twice {
			t.Errorf("part %d decided twice", part)
		}
		decided[part] = ev.TagName
		colour, _, _ := truthAt(tr, pos[ev.BestFrameID], ev.BoundingBox)
		if ev.TagName != colour {
			t.Errorf("part %d decided %s (votes %v), it is %s", part, ev.TagName, ev.Votes, colour)
		}
		if want := map[bool]string{true: "ok", false: "nok"}[colour == "red" || colour == "green"]; ev.Verdict != want {
			t.Errorf("part %d, %s: verdict %q, want %q", part, colour, ev.Verdict, want)
		}
	}
	crossed := 0
	for part, at := range last {
		if at < len(tr.Frames)-cfg.Cameras[0].Tracking.MaxMissed-2 { // gone long enough before the video ends
			crossed++
			if _, ok := decided[part]; !ok {
				t.Errorf("part %d crossed the belt (last seen in frame %d) and was not decided", part, at)
			}
		}
	}
	if crossed < 5 || len(decided) != crossed {
		t.Fatalf("%d parts crossed, %d decided", crossed, len(decided))
	}
	if byLine < crossed {
		t.Errorf("%d of the %d parts that crossed the belt were decided at the line", byLine, crossed)
	}
	// the parts in view when the agent stopped got their end events before MQTT closed
	stopped := 0
	testenv.WaitFor(t, "an end event for every part that started", 5*time.Second, func() bool {
		open := map[string]int{}
		stopped = 0
		for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
			var ev payload.Part
			json.Unmarshal(raw, &ev)
			open[ev.PartID] += map[string]int{"start": 1, "end": -1}[ev.Event]
			if ev.Ended == "stop" {
				stopped++
			}
		}
		for _, n := range open {
			if n != 0 {
				return false
			}
		}
		return true
	})
	if stopped == 0 {
		t.Error("no part was in view when the video ended: the end at stop is not tested")
	}
	// the retained counts, once the last ones are in: every decision once, the line's crossings
	var counts payload.Counts
	testenv.WaitFor(t, "the counts of every decision", 5*time.Second, func() bool {
		all := col.Get("cvedge/e2e/cameras/conveyor/counts")
		if len(all) == 0 {
			return false
		}
		counts = payload.Counts{}
		return json.Unmarshal(all[len(all)-1], &counts) == nil && counts.Parts == uint64(len(col.Get("cvedge/e2e/cameras/conveyor/decisions")))
	})
	atLine := 0 // also the parts in view at the stop that had crossed
	for _, d := range decisions {
		if d.By == "line" {
			atLine++
		}
	}
	if counts.Lines["exit"].Forward != uint64(atLine) || counts.Lines["exit"].Backward != 0 || counts.Verdicts["ok"]+counts.Verdicts["nok"] != counts.Parts {
		t.Errorf("counts %+v: want %d forward over exit", counts, atLine)
	}
	col.ValidateAll(t)
	t.Logf("%d parts crossed the belt, each decided once with its colour", crossed)
}

// TestCountsResetAndRestart: the reset-counts command starts a camera's counts again (an
// unknown camera is refused), every parts decided after it is counted, and a restart goes on
// from the counts on disk: the new agent's first counts message, sent on connecting, has the
// same start and at least the parts counted before.
func TestCountsResetAndRestart(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	last := func(in *testenv.Inbox) (c payload.Counts) {
		all := in.Get("cvedge/e2e/cameras/conveyor/counts")
		if len(all) > 0 {
			json.Unmarshal(all[len(all)-1], &c)
		}
		return c
	}
	testenv.WaitFor(t, "two parts counted", 60*time.Second, func() bool { return last(col).Parts >= 2 })
	command(t, col, `{"id":"r1","command":"reset-counts","camera":"conveyor"}`)
	if r := resultFor(t, col, "r1"); !r.OK {
		t.Fatalf("reset-counts: %+v", r)
	}
	command(t, col, `{"id":"r2","command":"reset-counts","camera":"dock"}`)
	if r := resultFor(t, col, "r2"); r.OK || !strings.Contains(r.Error, `camera "dock" counts no parts`) {
		t.Errorf("reset-counts of an unknown camera: %+v", r)
	}
	var reset payload.Counts
	testenv.WaitFor(t, "the counts after the reset", 10*time.Second, func() bool {
		for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/counts") {
			var c payload.Counts
			if json.Unmarshal(raw, &c) == nil && c.Reset == "command" {
				reset = c
				return true
			}
		}
		return false
	})
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 60*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	stop()
	testenv.WaitFor(t, "the counts at the stop", 5*time.Second, func() bool { return last(col).Updated.After(reset.Updated) })
	before := last(col)
	if before.Since != reset.Since || before.Parts == 0 {
		t.Fatalf("counts at the stop %+v, after the reset %+v", before, reset)
	}

	restarted := time.Now()
	col2 := testenv.Subscribe(t, broker.URL, "cvedge/e2e/cameras/conveyor/counts")
	runAgent(t, cfg)
	testenv.WaitFor(t, "the new agent's counts", 30*time.Second, func() bool { return last(col2).Updated.After(restarted) })
	var first payload.Counts
	for _, raw := range col2.Get("cvedge/e2e/cameras/conveyor/counts") {
		var c payload.Counts
		if json.Unmarshal(raw, &c) == nil && c.Updated.After(restarted) {
			first = c
			break
		}
	}
	if first.Since != before.Since || first.Parts < before.Parts || first.Reset != "command" {
		t.Errorf("after a restart: %+v, before it: %+v", first, before)
	}
	col.ValidateAll(t)
}

// TestPartsOnTheCrowdedBelt runs the crowded video (testdata/demo/crowded.avi): parts at
// different speeds, one three times faster than the rest; two side by side in the same
// columns; two that come in touching, one behind the other (the detector sees them as one
// box until they part); and one that a stop holds for two seconds while another passes over
// it. One pass decides every part that fully crossed the belt once, with its true colour,
// no part twice, and every box of a part carries the part's one trackId.
func TestPartsOnTheCrowdedBelt(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Cameras[0].Source = testenv.Path("testdata", "demo", "crowded.avi")
	tr := testenv.VideoTruth(t, "crowded")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	testenv.WaitFor(t, "every frame", 60*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	stop()
	preds := predictions(t, col, "conveyor")

	// every box that shows one part (IoU 0.5 with its true box) has that part's trackId; a
	// box over two touching parts shows neither
	oneTrackPerPart(t, preds, func(frame int, b *payload.Box) (int, bool) { return partShown(tr, frame, b) })
	pos := map[uint64]int{} // frame id -> the video's frame
	for _, p := range preds {
		pos[p.FrameID] = int(*p.SourcePos)
	}

	last, colour := map[int]int{}, map[int]string{} // truth part -> the last frame it is mostly visible in, its colour
	for _, fr := range tr.Frames {
		for _, p := range fr.Parts {
			colour[p.ID] = p.Colour
			if p.Visible >= 0.5 {
				last[p.ID] = fr.Index
			}
		}
	}
	decided := map[int]string{}
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
		var ev payload.Part
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event != "end" {
			continue
		}
		part, ok := partShown(tr, pos[ev.BestFrameID], ev.BoundingBox)
		if !ok {
			t.Errorf("track %d (%d frames, %s) was decided on a box that shows no one part: %+v in frame %d", ev.TrackID, ev.Frames, ev.TagName, *ev.BoundingBox, pos[ev.BestFrameID])
			continue
		}
		if _, twice := decided[part]; twice {
			t.Errorf("part %d decided twice (track %d the second time)", part, ev.TrackID)
		}
		decided[part] = ev.TagName
		if ev.TagName != colour[part] {
			t.Errorf("part %d decided %s (votes %v), it is %s", part, ev.TagName, ev.Votes, colour[part])
		}
	}
	crossed := 0
	for part, at := range last {
		if at < len(tr.Frames)-cfg.Cameras[0].Tracking.MaxMissed-2 {
			crossed++
			if _, ok := decided[part]; !ok {
				t.Errorf("part %d crossed the belt (last seen in frame %d) and was not decided", part, at)
			}
		}
	}
	if crossed != len(last) || len(decided) != crossed {
		t.Fatalf("%d parts in the video, %d crossed, %d decided", len(last), crossed, len(decided))
	}
	if !t.Failed() {
		t.Logf("%d parts crossed the crowded belt, each decided once with its colour and one trackId", crossed)
	}
}

// partShown returns the truth part that a box shows: the one whose true box it overlaps by
// an IoU of 0.5 or more, when it covers no tenth of another part (a box over two parts shows
// neither).
func partShown(tr testenv.Truth, frame int, b *payload.Box) (int, bool) {
	if b == nil {
		return 0, false
	}
	w, h := float64(tr.Width), float64(tr.Height)
	x1, y1, x2, y2 := float64(b.Left)*w, float64(b.Top)*h, float64(b.Left+b.Width)*w, float64(b.Top+b.Height)*h
	shown, under := 0, 0
	for _, p := range tr.Frames[frame].Parts {
		iw, ih := min(x2, p.Box[0]+p.Box[2])-max(x1, p.Box[0]), min(y2, p.Box[1]+p.Box[3])-max(y1, p.Box[1])
		if iw <= 0 || ih <= 0 {
			continue
		}
		inter, area := iw*ih, p.Box[2]*p.Box[3]
		if inter > area/10 {
			under++
		}
		if inter/((x2-x1)*(y2-y1)+area-inter) >= 0.5 {
			shown = p.ID
		}
	}
	return shown, shown != 0 && under == 1
}
