package agent_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/color"
	"image/jpeg"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

func samples(t *testing.T, col *testenv.Inbox) []payload.Sample {
	t.Helper()
	var out []payload.Sample
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/samples") {
		var s payload.Sample
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func decodeJPEG(t *testing.T, img *payload.Image) (w, h int) {
	t.Helper()
	if img == nil {
		t.Fatal("no image")
	}
	raw, err := base64.StdEncoding.DecodeString(img.JPEG)
	if err != nil {
		t.Fatal(err)
	}
	m, err := jpeg.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m.Bounds().Dx(), m.Bounds().Dy()
}

// TestFeedbackRoundTrip: an operator corrects a prediction over MQTT; the agent answers with
// a confirmed misclassification sample that carries the crop, the original prediction and
// the right tag.
func TestFeedbackRoundTrip(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Ring.Frames = 1000
	cfg.Samples.FullFrame = true
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })

	var one, two payload.Prediction // a frame with one detection, and one with two
	for _, p := range predictions(t, col, "conveyor") {
		switch {
		case len(p.Predictions) == 1 && one.ID == "" && p.Predictions[0].BoundingBox.Width > 0.1:
			one = p
		case len(p.Predictions) == 2 && two.ID == "":
			two = p
		}
	}
	wrong := "green"
	if one.Predictions[0].Classification.Predictions[0].TagName == "green" {
		wrong = "red"
	}
	send := func(body string) {
		col.Publish(t, "cvedge/e2e/feedback", body)
	}
	send(fmt.Sprintf(`{"id":"fb-1","predictionId":%q,"tag":%q,"operator":"j.doe","note":"paint"}`, one.ID, wrong))
	send(fmt.Sprintf(`{"id":"fb-2","predictionId":%q,"tag":"red"}`, two.ID))
	send(fmt.Sprintf(`{"id":"fb-3","predictionId":%q,"tag":"red","detection":1}`, two.ID))
	send(`{"id":"fb-4","predictionId":"no-such-prediction","tag":"red"}`)
	send(fmt.Sprintf(`{"id":"fb-5","predictionId":%q,"tag":"red","detection":5}`, two.ID))
	send(fmt.Sprintf(`{"id":"fb-6","predictionId":%q,"tag":"purple"}`, one.ID))               // not a tag of colour
	send(fmt.Sprintf(`{"id":"fb-7","predictionId":%q,"tag":"YELLOW","detection":0}`, two.ID)) // colour's yellow
	testenv.WaitFor(t, "seven results", 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/commands/results")) >= 7 })

	results := map[string]payload.Result{}
	for _, raw := range col.Get("cvedge/e2e/commands/results") {
		var r payload.Result
		json.Unmarshal(raw, &r)
		results[r.ID] = r
	}
	want := map[string]string{"fb-1": "", "fb-2": "has 2 detections: say which one is wrong", "fb-3": "", "fb-4": "is unknown or too old", "fb-5": `"detection" 5 is not one of them`,
		"fb-6": `tag "purple" is not a tag of the model this correction is about (model colour has `, "fb-7": ""}
	for id, errText := range want {
		r := results[id]
		if r.Command != "feedback" || r.OK != (errText == "") || !strings.Contains(r.Error, errText) {
			t.Errorf("%s: result %+v, want error %q", id, r, errText)
		}
	}
	testenv.WaitFor(t, "three samples", 10*time.Second, func() bool { return len(samples(t, col)) >= 3 })
	byFeedback := map[string]payload.Sample{}
	for _, s := range samples(t, col) {
		byFeedback[s.FeedbackID] = s
	}
	s := byFeedback["fb-1"]
	if s.Reason != "operator" || s.CorrectTag != wrong || s.Operator != "j.doe" || s.PredictionID != one.ID || s.FrameID != one.FrameID ||
		*s.Detection != 0 || s.Prediction.Classification == nil || s.ID != results["fb-1"].Detail["sampleId"] {
		t.Fatalf("sample %+v", s)
	}
	if w, h := decodeJPEG(t, s.Crop); w != s.Crop.Width || h != s.Crop.Height || w < 40 {
		t.Fatalf("crop %dx%d, says %dx%d", w, h, s.Crop.Width, s.Crop.Height)
	}
	// the crop is the detection's box grown by the padding
	b, c := one.Predictions[0].BoundingBox, s.Crop.Box
	if c.Left > b.Left || c.Top > b.Top || c.Left+c.Width < b.Left+b.Width || c.Top+c.Height < b.Top+b.Height {
		t.Fatalf("crop %+v does not hold the detection %+v", *c, *b)
	}
	if w, h := decodeJPEG(t, s.Frame); w != 640 || h != 360 {
		t.Fatalf("full frame %dx%d", w, h)
	}
	if s3 := byFeedback["fb-3"]; *s3.Detection != 1 || s3.Prediction.BoundingBox.Left != two.Predictions[1].BoundingBox.Left {
		t.Fatalf("sample for detection 1: %+v", s3)
	}
	if s7 := byFeedback["fb-7"]; s7.CorrectTag != "yellow" {
		t.Fatalf("sample for fb-7 has correctTag %q, want the model's spelling yellow", s7.CorrectTag)
	}
	if e := results["fb-6"].Error; !strings.Contains(e, "yellow") || !strings.Contains(e, "green") {
		t.Errorf("the refusal of a tag does not list the model's tags: %s", e)
	}
	col.ValidateAll(t)
}

// TestRuleSamples: a per-model threshold above the demo classifier's confidence makes every
// part a low-confidence candidate (the demo's camera tracks: one sample per part, when it
// ends); the per-minute limit lets exactly three through.
func TestRuleSamples(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Samples.LowConfidence.PerModel = map[string]float64{"colour": 0.9999}
	cfg.Samples.LowConfidence.PerMinute = 3
	cfg.Samples.SmallMargin.Enabled = false
	cfg.MQTT.StatsInterval = 200 * time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	time.Sleep(500 * time.Millisecond)
	stop()
	got := samples(t, col)
	if len(got) != 3 {
		t.Fatalf("%d samples, want 3 (the per-minute limit)", len(got))
	}
	for _, s := range got {
		if s.Reason != "low_confidence" || !strings.Contains(s.Detail, "(colour)") || s.Crop == nil || s.Frame != nil || s.PartID == "" {
			t.Errorf("sample %+v", s)
		}
		decodeJPEG(t, s.Crop)
	}
	st, _ := lastStats(col, "cvedge/e2e/stats")
	if st.Cameras[0].Samples["low_confidence"] != 3 {
		t.Errorf("stats samples %v", st.Cameras[0].Samples)
	}
	col.ValidateAll(t)
}

// TestDataCollection: a camera saves crops into a data set until its quota is reached; frames
// that fail the quality gate are not saved.
func TestDataCollection(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	dir := t.TempDir()
	cfg := demoConfig(t, broker.URL, fmt.Sprintf("    collect: {enabled: true, dir: %s, what: crops, every: 1ms, max_mb: 1}\n", dir))
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	stop()
	entries, err := dataset.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		total += e.Bytes
		if e.Reason != "collect" || e.Region == nil || e.Tag != "" || !strings.HasPrefix(e.File, "unreviewed/") || e.Camera != "conveyor" {
			t.Fatalf("entry %+v", e)
		}
		if _, err := os.Stat(filepath.Join(dir, e.File)); err != nil {
			t.Fatal(err)
		}
	}
	if len(entries) < 50 || total > 1<<20 {
		t.Fatalf("%d crops, %d bytes: want many, under the 1 MiB quota", len(entries), total)
	}

	gated := t.TempDir()
	cfg = demoConfig(t, broker.URL, fmt.Sprintf("    collect: {enabled: true, dir: %s, every: 1ms}\n    quality_gate: {action: flag, min_brightness: 200}\n", gated))
	col = testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop = runAgent(t, cfg)
	testenv.WaitFor(t, "frames", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= 20 })
	stop()
	if entries, _ := dataset.ReadIndex(gated); len(entries) != 0 {
		t.Fatalf("%d frames saved that failed the quality gate", len(entries))
	}
}

// TestCollectOnlyCamera: before there is a model, a camera can run only to collect images.
func TestCollectOnlyCamera(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	dir := t.TempDir()
	cfg := demoConfig(t, broker.URL, fmt.Sprintf("    collect: {enabled: true, dir: %s, every: 1ms}\n", dir))
	cfg.Cameras[0].Pipeline.Detector, cfg.Cameras[0].Pipeline.Classifier = "", ""
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	testenv.WaitFor(t, "frames", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= 20 })
	stop()
	if entries, _ := dataset.ReadIndex(dir); len(entries) < 20 || entries[0].Region != nil {
		t.Fatalf("%d frames saved", len(entries))
	}
	for _, p := range predictions(t, col, "conveyor") {
		if len(p.Models) != 0 || len(p.Predictions) != 0 || p.Quality.Brightness == 0 {
			t.Fatalf("prediction of a camera without models: %+v", p)
		}
	}
	col.ValidateAll(t)
}

// TestSamplesFitMaxPayload: with mqtt.max_payload_kb under the size of a sample with its
// full frame, the images are re-encoded smaller so the sample still fits, and the broker
// (which drops anything over its message_size_limit) delivers it.
func TestSamplesFitMaxPayload(t *testing.T) {
	broker := testenv.StartMosquitto(t, "message_size_limit 12288")
	cfg := demoConfig(t, broker.URL, "")
	cfg.MQTT.MaxPayloadKB = 12
	cfg.Samples.FullFrame = true
	cfg.Samples.LowConfidence.PerModel = map[string]float64{"colour": 0.9999}
	cfg.Samples.LowConfidence.PerMinute = 3
	cfg.Samples.SmallMargin.Enabled = false
	cfg.MQTT.StatsInterval = 200 * time.Millisecond
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	testenv.WaitFor(t, "three samples", 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/cameras/conveyor/samples")) >= 3 })
	time.Sleep(500 * time.Millisecond)
	stop()
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/samples") {
		if len(raw) > 12<<10 {
			t.Fatalf("a sample of %d bytes is over mqtt.max_payload_kb", len(raw))
		}
	}
	for _, s := range samples(t, col) {
		if s.Crop == nil || s.Frame == nil || s.ImageOmitted {
			t.Fatalf("sample without its images: crop %v frame %v omitted %v", s.Crop != nil, s.Frame != nil, s.ImageOmitted)
		}
		decodeJPEG(t, s.Crop)
		decodeJPEG(t, s.Frame)
	}
	if st, ok := lastStats(col, "cvedge/e2e/stats"); !ok || st.MQTT.SetAside != 0 {
		t.Fatalf("messages set aside: %+v", st.MQTT)
	}
	col.ValidateAll(t)
}

// TestFeedbackByPart: a correction that names a part (its partId) makes the very sample that
// a correction of the part's best frame and its detection there makes; an unknown partId is
// refused, saying why.
func TestFeedbackByPart(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Ring.Frames = 1000
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	var part payload.Part
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
		var ev payload.Part
		json.Unmarshal(raw, &ev)
		if ev.Event == "end" {
			part = ev
			break
		}
	}
	if part.PartID == "" {
		t.Fatal("no part ended")
	}
	var best payload.Prediction
	det := -1
	for _, p := range predictions(t, col, "conveyor") {
		if p.FrameID == part.BestFrameID {
			best = p
			for i, d := range p.Predictions {
				if d.TrackID == part.TrackID {
					det = i
				}
			}
		}
	}
	if det < 0 {
		t.Fatalf("part %d is not in its best frame %d", part.TrackID, part.BestFrameID)
	}
	wrong := "green"
	if part.TagName == "green" {
		wrong = "red"
	}
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-part","partId":%q,"tag":%q,"operator":"j.doe"}`, part.PartID, wrong))
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-pred","predictionId":%q,"detection":%d,"tag":%q,"operator":"j.doe"}`, best.ID, det, wrong))
	col.Publish(t, "cvedge/e2e/feedback", `{"id":"fb-nopart","partId":"no-such-part","tag":"red"}`)
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-both","partId":%q,"detection":0,"tag":"red"}`, part.PartID))
	testenv.WaitFor(t, "four results", 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/commands/results")) >= 4 })
	results := map[string]payload.Result{}
	for _, raw := range col.Get("cvedge/e2e/commands/results") {
		var r payload.Result
		json.Unmarshal(raw, &r)
		results[r.ID] = r
	}
	for id, errText := range map[string]string{"fb-part": "", "fb-pred": "", "fb-nopart": `part "no-such-part" is unknown, still in view, or ended too long ago`,
		"fb-both": `leave "detection" out of a correction by "partId"`} {
		r := results[id]
		if r.Command != "feedback" || r.OK != (errText == "") || !strings.Contains(r.Error, errText) {
			t.Errorf("%s: result %+v, want error %q", id, r, errText)
		}
	}
	if r := results["fb-part"]; r.Detail["predictionId"] != best.ID {
		t.Errorf("the result of a correction by partId names prediction %q, want the best frame's %q", r.Detail["predictionId"], best.ID)
	}
	testenv.WaitFor(t, "two samples", 10*time.Second, func() bool { return len(samples(t, col)) >= 2 })
	byFeedback := map[string]payload.Sample{}
	for _, s := range samples(t, col) {
		byFeedback[s.FeedbackID] = s
	}
	byPart, byPred := byFeedback["fb-part"], byFeedback["fb-pred"]
	if byPart.ID == "" || byPred.ID == "" {
		t.Fatalf("samples %+v", byFeedback)
	}
	// the same sample but for its own id, time and feedback id
	for _, s := range []*payload.Sample{&byPart, &byPred} {
		s.ID, s.Created, s.FeedbackID = "", time.Time{}, ""
	}
	a, _ := json.Marshal(byPart)
	b, _ := json.Marshal(byPred)
	if !bytes.Equal(a, b) {
		t.Errorf("the sample of a correction by partId differs from the one by its best frame's prediction:\n%s\n%s", a, b)
	}
	if byPart.PredictionID != best.ID || *byPart.Detection != det || byPart.CorrectTag != wrong || byPart.Crop == nil {
		t.Errorf("sample %+v", byPart)
	}
}

// TestPartSamplesAndImagesOnTheDemo: on the demo, whose camera tracks, a per-model threshold
// above the classifier's confidence flags nearly every frame of every part, and there is no
// rate cap; still each part sends at most one sample, with its partId, of its least certain
// frame among those that show it whole (when it had any). With parts.image on, each part
// that ends gets its best frame as a JPEG with its box drawn on the demo's own pixels.
func TestPartSamplesAndImagesOnTheDemo(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Samples.LowConfidence.PerModel = map[string]float64{"colour": 0.9999}
	cfg.Samples.LowConfidence.PerMinute, cfg.Samples.LowConfidence.PerHour = 0, 0
	cfg.Samples.SmallMargin.Enabled = false
	cfg.Samples.DedupDistance = 0
	cfg.Cameras[0].Parts.Image.Enabled = true
	preds, col := runDemo(t, broker, cfg)

	type frame struct {
		id   uint64
		edge bool
		top  float32
	}
	edge := func(b *payload.Box, w, h int) bool {
		fw, fh := float32(w), float32(h)
		return b.Left*fw < 1 || b.Top*fh < 1 || (b.Left+b.Width)*fw > fw-1 || (b.Top+b.Height)*fh > fh-1
	}
	byTrack := map[uint64][]frame{} // the frames of each track, as predicted
	for _, p := range preds {
		for _, d := range p.Predictions {
			if d.TrackID != 0 && d.Classification != nil {
				byTrack[d.TrackID] = append(byTrack[d.TrackID], frame{p.FrameID, edge(d.BoundingBox, p.Width, p.Height), d.Classification.Predictions[0].Probability})
			}
		}
	}
	ended := map[string]payload.Part{}
	for _, raw := range col.Get("cvedge/e2e/cameras/conveyor/parts") {
		var ev payload.Part
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event == "end" {
			ended[ev.PartID] = ev
		}
	}
	got := samples(t, col)
	if len(ended) < 5 || len(got) == 0 || len(got) > len(ended) {
		t.Fatalf("%d samples for %d parts that ended: want one at most per part (and some)", len(got), len(ended))
	}
	seen := map[string]bool{}
	for _, s := range got {
		ev, ok := ended[s.PartID]
		if !ok || seen[s.PartID] || s.TrackID != ev.TrackID || s.Prediction == nil || s.Prediction.TrackID != ev.TrackID {
			t.Fatalf("sample %s of part %q (track %d): not one sample of a part that ended", s.ID, s.PartID, s.TrackID)
		}
		seen[s.PartID] = true
		if s.Reason != "low_confidence" {
			continue
		}
		// the least certain of the part's frames that show it whole, when there are any
		whole := false
		for _, f := range byTrack[s.TrackID] {
			whole = whole || !f.edge
		}
		top := s.Prediction.Classification.Predictions[0].Probability
		for _, f := range byTrack[s.TrackID] {
			if f.edge == whole {
				continue // a sliver, while a whole frame exists
			}
			if f.top < top {
				t.Errorf("part %s: sample of frame %d (%.5f), but frame %d was less certain (%.5f)", s.PartID, s.FrameID, top, f.id, f.top)
			}
		}
		if whole && edge(s.Prediction.BoundingBox, 640, 360) {
			t.Errorf("part %s: sample of frame %d shows it cut by the frame's edge, though other frames show it whole", s.PartID, s.FrameID)
		}
	}

	tr := testenv.DemoTruth(t)
	pos := map[uint64]int{}
	for _, p := range preds {
		pos[p.FrameID] = int(*p.SourcePos)
	}
	images := col.Get("cvedge/e2e/cameras/conveyor/parts/image")
	if len(images) != len(ended) {
		t.Fatalf("%d part images for %d parts that ended", len(images), len(ended))
	}
	green := color.RGBA{0, 255, 0, 255}
	close := func(c color.Color, want color.RGBA) bool {
		r, g, b, _ := c.RGBA()
		d := func(x uint32, y uint8) bool { return max(int(x>>8)-int(y), int(y)-int(x>>8)) < 60 }
		return d(r, want.R) && d(g, want.G) && d(b, want.B)
	}
	for _, raw := range images {
		var im payload.PartImage
		if err := json.Unmarshal(raw, &im); err != nil {
			t.Fatal(err)
		}
		ev, ok := ended[im.PartID]
		if !ok || im.TagName != ev.TagName || im.Image == nil {
			t.Fatalf("part image %+v: of no part that ended, or without its decision or image", im)
		}
		data, err := base64.StdEncoding.DecodeString(im.Image.JPEG)
		if err != nil {
			t.Fatal(err)
		}
		m, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if m.Bounds().Dx() != 640 || m.Bounds().Dy() != 360 {
			t.Fatalf("part image %v, want the 640x360 frame", m.Bounds())
		}
		b := im.BoundingBox
		x0, x1 := int(b.Left*640+0.5), int((b.Left+b.Width)*640+0.5)
		y0, y1 := int(b.Top*360+0.5), int((b.Top+b.Height)*360+0.5)
		midY := (y0 + y1) / 2
		if x0 > 2 && !close(m.At(x0, midY), green) {
			t.Errorf("part %s: the box's left edge (%d,%d) is %v, not drawn", im.PartID, x0, midY, m.At(x0, midY))
		}
		if x1 < 638 && !close(m.At(x1-1, midY), green) {
			t.Errorf("part %s: the box's right edge (%d,%d) is %v, not drawn", im.PartID, x1-1, midY, m.At(x1-1, midY))
		}
		if colour, _, _ := truthAt(tr, pos[im.FrameID], &b); colour != "green" && close(m.At((x0+x1)/2, midY), green) {
			t.Errorf("part %s (%s): the box's centre is drawn over", im.PartID, colour)
		}
	}
	col.ValidateAll(t)
}

// TestFeedbackFromSampleStore: with a ring of one frame, the samples' frames are gone by the
// time they are corrected; the corrections are answered from the sample store (by sampleId,
// and by predictionId and detection) with the stored crop, also after a restart. An id the
// store does not hold is refused, saying what to do; a sample answered once takes no other
// tag, and the same one again (as the station sends what it answered) with no second answer.
func TestFeedbackFromSampleStore(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Ring.Frames = 1
	cfg.Samples.LowConfidence.PerModel = map[string]float64{"colour": 0.9999}
	cfg.Samples.LowConfidence.PerMinute = 4
	cfg.Samples.SmallMargin.Enabled = false
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	tr := testenv.DemoTruth(t)
	testenv.WaitFor(t, "every frame", 30*time.Second, func() bool { return len(predictions(t, col, "conveyor")) >= len(tr.Frames) })
	testenv.WaitFor(t, "four samples", 10*time.Second, func() bool { return len(samples(t, col)) >= 4 })
	sent := samples(t, col)
	other := func(s payload.Sample) string {
		if s.Prediction.Classification.Predictions[0].TagName == "green" {
			return "red"
		}
		return "green"
	}
	results := func(n int) map[string]payload.Result {
		t.Helper()
		testenv.WaitFor(t, fmt.Sprint(n, " results"), 10*time.Second, func() bool { return len(col.Get("cvedge/e2e/commands/results")) >= n })
		out := map[string]payload.Result{}
		for _, raw := range col.Get("cvedge/e2e/commands/results") {
			var r payload.Result
			json.Unmarshal(raw, &r)
			out[r.ID] = r
		}
		return out
	}
	s1, s2, s3, s4 := sent[0], sent[1], sent[2], sent[3]
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-sample","sampleId":%q,"tag":%q,"operator":"j.doe"}`, s1.ID, other(s1)))
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-pred","predictionId":%q,"detection":%d,"tag":%q}`, s2.PredictionID, *s2.Detection, other(s2)))
	col.Publish(t, "cvedge/e2e/feedback", `{"id":"fb-unknown","sampleId":"no-such-sample","tag":"red"}`)
	col.Publish(t, "cvedge/e2e/feedback", `{"id":"fb-hostile","sampleId":"../../etc/passwd","tag":"red"}`)
	res := results(4)
	stop()

	// a restart: the store is still there
	runAgent(t, cfg)
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-restart","sampleId":%q,"tag":%q}`, s3.ID, other(s3)))
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-again","sampleId":%q,"tag":%q}`, s1.ID, s1.Prediction.Classification.Predictions[0].TagName))
	// the same tag again (as the station sends a correction it has answered): answered, not recorded twice
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-same","sampleId":%q,"predictionId":%q,"tag":%q}`, s1.ID, s1.PredictionID, strings.ToUpper(other(s1))))
	// by part: the restarted agent has forgotten the part, the store has its sample (as the
	// station sends a correction of a part's sample)
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-part","partId":%q,"tag":%q}`, s4.PartID, other(s4)))
	col.Publish(t, "cvedge/e2e/feedback", `{"id":"fb-nopart","partId":"no-such-part","tag":"red"}`)
	for id, r := range results(9) {
		res[id] = r
	}
	want := map[string]string{"fb-sample": "", "fb-pred": "", "fb-restart": "", "fb-same": "", "fb-part": "",
		"fb-nopart":  `part "no-such-part" is unknown, still in view, or ended too long ago`,
		"fb-unknown": `sample "no-such-sample" is unknown or too old: not in the ring (each camera keeps its last 1 frames, for at most 10m0s) nor in the sample store (samples.store: 256 MB, 168h0m0s); send corrections sooner`,
		"fb-hostile": `"sampleId" must be the "id" of a sample this agent sent`,
		"fb-again":   fmt.Sprintf("sample %s was answered already (correct %q by j.doe", s1.ID, other(s1))}
	for id, errText := range want {
		r := res[id]
		if r.Command != "feedback" || r.OK != (errText == "") || !strings.Contains(r.Error, errText) {
			t.Errorf("%s: result %+v, want error %q", id, r, errText)
		}
	}
	byFeedback := map[string]payload.Sample{}
	for _, s := range samples(t, col) {
		byFeedback[s.FeedbackID] = s
	}
	for fb, orig := range map[string]payload.Sample{"fb-sample": s1, "fb-pred": s2, "fb-restart": s3, "fb-same": s1, "fb-part": s4} {
		s, ok := byFeedback[fb]
		switch {
		case !ok:
			t.Errorf("%s: no operator sample", fb)
		case s.Reason != "operator" || s.CorrectTag != other(orig) || s.ID != res[fb].Detail["sampleId"] || res[fb].Detail["storedSample"] != orig.ID:
			t.Errorf("%s: sample %+v, result %+v", fb, s, res[fb])
		case s.Crop == nil || s.Crop.JPEG != orig.Crop.JPEG || s.PredictionID != orig.PredictionID || *s.Detection != *orig.Detection || s.PartID != orig.PartID:
			t.Errorf("%s: the operator sample does not carry the stored sample's crop and prediction", fb)
		}
	}
	log, err := os.ReadFile(filepath.Join(cfg.Samples.Store.Dir, "answers.jsonl"))
	if err != nil || strings.Count(string(log), "\n") != 4 {
		t.Errorf("the store's answers log has not the four corrections: %q %v", log, err)
	}
	col.ValidateAll(t)
}

// TestFeedbackAgreesWithStation: with the operator station on, its review queue is the
// sample store. A sample corrected over MQTT after its frame left the ring is answered from
// the queue, and leaves it: the station no longer offers it, and the answer is in its data
// set.
func TestFeedbackAgreesWithStation(t *testing.T) {
	col := (*testenv.Inbox)(nil)
	cfg, url := stationAgentWith(t, func(c *configs.Config) {
		c.Ring.Frames = 1
		c.Samples.Audit = configs.Rule{Enabled: true, Rate: 1, PerMinute: 60, PerHour: 600}
		col = testenv.Subscribe(t, c.MQTT.Broker, "cvedge/e2e/#")
	})
	getJSON := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil {
			json.NewDecoder(resp.Body).Decode(v)
		}
		return resp.StatusCode
	}
	var page struct {
		Items []struct {
			ID  string `json:"id"`
			Tag string `json:"tag"`
		} `json:"items"`
	}
	testenv.WaitFor(t, "a sample to review", 30*time.Second, func() bool {
		getJSON("/api/review", &page)
		return len(page.Items) > 0 && page.Items[0].Tag != ""
	})
	it := page.Items[0]
	tag := "green"
	if strings.EqualFold(it.Tag, "green") {
		tag = "red"
	}
	before := len(predictions(t, col, "conveyor"))
	testenv.WaitFor(t, "the sample's frame to leave the ring", 10*time.Second, func() bool { return len(predictions(t, col, "conveyor")) > before+2 })
	col.Publish(t, "cvedge/e2e/feedback", fmt.Sprintf(`{"id":"fb-station","sampleId":%q,"tag":%q,"operator":"j.doe"}`, it.ID, tag))
	var r payload.Result
	testenv.WaitFor(t, "the result", 10*time.Second, func() bool {
		for _, raw := range col.Get("cvedge/e2e/commands/results") {
			if json.Unmarshal(raw, &r) == nil && r.ID == "fb-station" {
				return true
			}
		}
		return false
	})
	if !r.OK || r.Detail["storedSample"] != it.ID {
		t.Fatalf("result %+v", r)
	}
	if code := getJSON("/api/review/samples/"+it.ID, nil); code != http.StatusNotFound {
		t.Fatalf("the station still offers the corrected sample: %d", code)
	}
	var stats struct {
		Answered, Kept int
	}
	getJSON("/api/review/stats", &stats)
	if stats.Answered != 1 || stats.Kept != 1 {
		t.Fatalf("review stats %+v", stats)
	}
	if files, _ := filepath.Glob(filepath.Join(cfg.UI.Review.Dataset, tag, it.ID+"*.jpg")); len(files) != 1 {
		t.Fatalf("the correction is not in the data set under %s: %v", tag, files)
	}
}
