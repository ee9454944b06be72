package steps_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/preprocess"
)

// The colours the parts are drawn in, one per frame, so that an image sent tells which
// frame it was cut from.
var partColours = []color.RGBA{{255, 0, 0, 255}, {0, 0, 255, 255}, {255, 255, 0, 255}, {255, 0, 255, 255}, {0, 255, 255, 255}, {128, 64, 0, 255}, {255, 255, 255, 255}, {0, 0, 0, 255}}

// partsFrame draws a w x h grey frame (with noise when asked: a JPEG of it is large) with each
// box filled in its colour.
func partsFrame(t *testing.T, w, h int, noise bool, boxes []payload.Box, colours []color.RGBA) *camera.Frame {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{90, 90, 90, 255}}, image.Point{}, draw.Src)
	if noise {
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range img.Pix {
			if i%4 != 3 {
				img.Pix[i] = uint8(rnd.IntN(256))
			}
		}
	}
	for i, b := range boxes {
		r := image.Rect(int(b.Left*float32(w)+0.5), int(b.Top*float32(h)+0.5), int((b.Left+b.Width)*float32(w)+0.5), int((b.Top+b.Height)*float32(h)+0.5))
		draw.Draw(img, r, &image.Uniform{colours[i]}, image.Point{}, draw.Src)
	}
	f, err := camera.FrameOf(img)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// partsRun is a camera that tracks, with its samples and parts steps, fed frame by frame.
type partsRun struct {
	t     *testing.T
	rec   *publish.Recorder
	list  pipeline.Steps
	w, h  int
	noise bool
	n     uint64
}

func newPartsRun(t *testing.T, edit func(*configs.Camera, *configs.Samples, *steps.Env)) *partsRun {
	r := &partsRun{t: t, rec: &publish.Recorder{}, w: 320, h: 240}
	e := env(r.rec)
	cc := configs.DefaultCamera()
	cc.Name, cc.Pipeline.Detector, cc.Tracking.MaxMissed = "cam", "det", 1
	sc := configs.Default().Samples
	sc.DedupDistance = 0
	if edit != nil {
		edit(&cc, &sc, e)
	}
	samples := steps.NewSamples(e, "cam", 0.1, sc, cc.Sampling, 1)
	r.list = pipeline.NewSteps(samples, steps.NewParts(e, cc, nil, nil, steps.NewPartFrames(e, cc, samples)))
	t.Cleanup(r.list.Close)
	return r
}

// frame runs one frame with the detections dets, each drawn in its colour, the frame's
// number picking the colour: partColours[frame number-1] for the first detection.
func (r *partsRun) frame(dets ...payload.Tag) uint64 {
	r.n++
	boxes := make([]payload.Box, len(dets))
	colours := make([]color.RGBA, len(dets))
	for i, d := range dets {
		boxes[i], colours[i] = *d.BoundingBox, partColours[(int(r.n)-1+i)%len(partColours)]
	}
	f := partsFrame(r.t, r.w, r.h, r.noise, boxes, colours)
	msg := prediction("p"+string(rune('a'+r.n)), r.n, dets...)
	msg.Width, msg.Height = r.w, r.h
	r.list.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam"}, msg)
	return r.n
}

// tracked is detection track at box (x, 0.4, width, 0.2), classified as tag with probability
// p (uncertain when asked).
func tracked(track uint64, x, width float32, tag string, p float32, uncertain bool) payload.Tag {
	d := detection(payload.Box{Left: x, Top: 0.4, Width: width, Height: 0.2}, tag, p)
	d.TrackID = track
	d.Classification.Uncertain = uncertain
	return d
}

// centre decodes a base64 JPEG and returns its size and the colour at its centre.
func centre(t *testing.T, img *payload.Image) (image.Image, color.RGBA) {
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
	b := m.Bounds()
	return m, rgba(m.At((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2))
}

func rgba(c color.Color) color.RGBA {
	r, g, b, _ := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
}

// near reports whether two colours are within a JPEG's error of each other.
func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int { return max(int(x)-int(y), int(y)-int(x)) }
	return d(a.R, b.R) < 48 && d(a.G, b.G) < 48 && d(a.B, b.B) < 48
}

func ends(t *testing.T, rec *publish.Recorder) map[uint64]payload.Part {
	t.Helper()
	evs, err := publish.Decode[payload.Part](rec, "/cameras/cam/parts")
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]payload.Part{}
	for _, ev := range evs {
		if ev.Event == "end" {
			out[ev.TrackID] = ev
		}
	}
	return out
}

// TestPartSampledOnce: a part that the rules flag on most of its frames, slivers at the
// frame's edges included, sends one sample when it ends: its least certain frame among those
// that show it whole, with the rule's reason and the part's partId and trackId. A part sure
// of itself sends none.
func TestPartSampledOnce(t *testing.T) {
	r := newPartsRun(t, nil)
	r.frame(tracked(1, 0, 0.1, "red", 0.2, false), tracked(2, 0.6, 0.1, "blue", 0.97, false)) // a sliver entering, least certain of all
	r.frame(tracked(1, 0.1, 0.1, "red", 0.45, false), tracked(2, 0.62, 0.1, "blue", 0.97, false))
	least := r.frame(tracked(1, 0.3, 0.1, "red", 0.3, false), tracked(2, 0.64, 0.1, "blue", 0.97, false)) // the least certain whole one
	r.frame(tracked(1, 0.5, 0.1, "red", 0.4, false))
	r.frame(tracked(1, 0.7, 0.1, "red", 0.95, false))
	r.frame(tracked(1, 0.9, 0.1, "red", 0.1, false)) // leaving at the right edge
	if n := len(r.rec.Messages("/samples")); n != 0 {
		t.Fatalf("%d samples sent while the part is in view; want its one sample when it ends", n)
	}
	r.frame()
	r.frame() // unseen for two frames: both parts end
	end := ends(t, r.rec)
	if len(end) != 2 {
		t.Fatalf("%d parts ended, want 2", len(end))
	}
	smp, err := publish.Decode[payload.Sample](r.rec, "/cameras/cam/samples")
	if err != nil {
		t.Fatal(err)
	}
	if len(smp) != 1 {
		t.Fatalf("%d samples, want one for the uncertain part and none for the sure one: %+v", len(smp), smp)
	}
	s := smp[0]
	if s.Reason != "low_confidence" || s.FrameID != least || s.PartID != end[1].PartID || s.TrackID != 1 || s.Detection == nil || *s.Detection != 0 ||
		s.Prediction == nil || s.Prediction.TrackID != 1 || !strings.Contains(s.Detail, "red 0.300") {
		t.Fatalf("sample %+v: want low_confidence on frame %d, part %s", s, least, end[1].PartID)
	}
	// the crop is of that frame: the part was drawn in that frame's colour; and it is the
	// box grown by the padding, placed in the frame
	if _, c := centre(t, s.Crop); !near(c, partColours[least-1]) {
		t.Fatalf("the crop's centre is %v, want the part as drawn in frame %d, %v", c, least, partColours[least-1])
	}
	if b := s.Crop.Box; b == nil || b.Left < 0.285 || b.Left > 0.295 || b.Top < 0.375 || b.Top > 0.385 || s.Crop.Width != 38 || s.Frame != nil {
		t.Fatalf("crop %+v (box %+v): want the padded box at 0.29,0.38, 38 pixels wide, and no whole frame", s.Crop, s.Crop.Box)
	}
	if c := r.list.Count(); c.Samples["low_confidence"] != 1 {
		t.Fatalf("samples counted %v", c.Samples)
	}
}

// TestPartSampleWithFullFrame: with samples.full_frame, the part's sample carries the whole
// frame it was cut from too.
func TestPartSampleWithFullFrame(t *testing.T) {
	r := newPartsRun(t, func(_ *configs.Camera, sc *configs.Samples, _ *steps.Env) { sc.FullFrame = true })
	r.frame(tracked(1, 0.3, 0.1, "red", 0.4, false))
	least := r.frame(tracked(1, 0.4, 0.1, "red", 0.3, false))
	r.frame()
	r.frame()
	smp, _ := publish.Decode[payload.Sample](r.rec, "/samples")
	if len(smp) != 1 || smp[0].FrameID != least || smp[0].Crop == nil || smp[0].Crop.Box == nil {
		t.Fatalf("samples %+v: want one of frame %d, with its crop", smp, least)
	}
	m, _ := centre(t, smp[0].Frame)
	if m.Bounds().Dx() != r.w || m.Bounds().Dy() != r.h {
		t.Fatalf("whole frame %v, want %dx%d", m.Bounds(), r.w, r.h)
	}
	if c := rgba(m.At(int(0.45*float32(r.w)), r.h/2)); !near(c, partColours[least-1]) {
		t.Fatalf("the whole frame shows %v where the part was, want frame %d's colour", c, least)
	}
}

// TestPartSlivers: a part only ever seen at the frame's edge is still sampled, on its least
// certain frame.
func TestPartSlivers(t *testing.T) {
	r := newPartsRun(t, nil)
	r.frame(tracked(1, 0, 0.05, "red", 0.4, false))
	least := r.frame(tracked(1, 0, 0.08, "red", 0.2, false))
	r.frame(tracked(1, 0, 0.1, "red", 0.3, false))
	r.frame()
	r.frame()
	smp, _ := publish.Decode[payload.Sample](r.rec, "/samples")
	if len(smp) != 1 || smp[0].FrameID != least {
		t.Fatalf("samples %+v: want one, of frame %d", smp, least)
	}
}

// TestUnknownPartSendsBestFrame: a part decided unknown sends its best frame (the most
// confident one that shows it whole), with reason unknown, even when a rule flagged another
// of its frames.
func TestUnknownPartSendsBestFrame(t *testing.T) {
	r := newPartsRun(t, nil)
	r.frame(tracked(3, 0, 0.1, "blue", 0.6, true))
	flagged := r.frame(tracked(3, 0.2, 0.1, "blue", 0.45, true))
	r.frame(tracked(3, 0.3, 0.1, "blue", 0.7, true))
	best := r.frame(tracked(3, 0.5, 0.1, "blue", 0.8, true))
	r.frame(tracked(3, 0.7, 0.1, "blue", 0.75, true))
	r.frame(tracked(3, 0.9, 0.1, "blue", 0.85, true)) // more confident, but cut by the edge
	r.frame()
	r.frame()
	if end := ends(t, r.rec); end[3].TagName != steps.Unknown {
		t.Fatalf("the part was decided %q; the test wants unknown", end[3].TagName)
	}
	smp, _ := publish.Decode[payload.Sample](r.rec, "/samples")
	if len(smp) != 1 {
		t.Fatalf("%d samples, want 1: %+v", len(smp), smp)
	}
	s := smp[0]
	if s.Reason != "unknown" || s.FrameID != best || s.TrackID != 3 || s.PartID == "" || !strings.Contains(s.Detail, "unknown") ||
		!strings.Contains(s.Detail, "low_confidence") {
		t.Fatalf("sample %+v: want reason unknown on frame %d, naming the least certain frame %d too", s, best, flagged)
	}
	if _, c := centre(t, s.Crop); !near(c, partColours[best-1]) {
		t.Fatalf("the crop's centre is %v, want the part as drawn in frame %d, %v", c, best, partColours[best-1])
	}
	// the unknown rule off: the flagged frame is sent instead
	r = newPartsRun(t, func(_ *configs.Camera, sc *configs.Samples, _ *steps.Env) { sc.Unknown.Enabled = false })
	r.frame(tracked(3, 0.2, 0.1, "blue", 0.45, true))
	r.frame(tracked(3, 0.5, 0.1, "blue", 0.8, true))
	r.frame()
	r.frame()
	if smp, _ := publish.Decode[payload.Sample](r.rec, "/samples"); len(smp) != 1 || smp[0].Reason != "low_confidence" || smp[0].FrameID != 1 {
		t.Fatalf("samples with the unknown rule off: %+v", smp)
	}
}

// TestSecondLevelSampled: a part the first classifier is sure of, whose second-level
// (routed) classifier is not, is sampled, and the detail names the level.
func TestSecondLevelSampled(t *testing.T) {
	r := newPartsRun(t, nil)
	second := func(x, p float32) payload.Tag {
		d := tracked(5, x, 0.1, "red", 0.97, false)
		d.Classification.Next = &payload.Classification{Model: "size", Predictions: []payload.Tag{{TagName: "small", Probability: p}, {TagName: "large", Probability: 1 - p - 0.1}}}
		return d
	}
	r.frame(second(0.2, 0.9))
	least := r.frame(second(0.4, 0.42))
	r.frame(second(0.6, 0.9))
	r.frame()
	r.frame()
	smp, _ := publish.Decode[payload.Sample](r.rec, "/samples")
	if len(smp) != 1 || smp[0].Reason != "low_confidence" || smp[0].FrameID != least || !strings.Contains(smp[0].Detail, "size, level 2") {
		t.Fatalf("samples %+v: want one low_confidence of frame %d, naming size, level 2", smp, least)
	}
}

// TestUntrackedCameraSamplesFrames: without tracking, every frame the rules flag is sampled,
// as before.
func TestUntrackedCameraSamplesFrames(t *testing.T) {
	r := newPartsRun(t, func(cc *configs.Camera, _ *configs.Samples, _ *steps.Env) { cc.Tracking.Enabled = false })
	for i := range 3 {
		d := tracked(0, 0.2*float32(i+1), 0.1, "red", 0.3, false)
		r.frame(d)
	}
	if smp, _ := publish.Decode[payload.Sample](r.rec, "/samples"); len(smp) != 3 || smp[0].PartID != "" {
		t.Fatalf("%d samples without tracking, want one per flagged frame (3): %+v", len(smp), smp)
	}
}

// TestPartImage: with parts.image on, each part that ends gets its best frame as a JPEG with
// its box drawn in preprocess.BoxColor and its decision in the label, on
// <prefix>/cameras/cam/parts/image, and it fits mqtt.max_payload_kb.
func TestPartImage(t *testing.T) {
	r := newPartsRun(t, func(cc *configs.Camera, _ *configs.Samples, _ *steps.Env) {
		cc.Parts.Image.Enabled = true
		cc.Sampling = false
	})
	r.frame(tracked(1, 0, 0.2, "red", 0.9, false))
	best := r.frame(tracked(1, 0.3, 0.25, "red", 0.95, false))
	r.frame(tracked(1, 0.6, 0.2, "red", 0.9, false))
	r.frame()
	r.frame()
	msgs, err := publish.Decode[payload.PartImage](r.rec, "/cameras/cam/parts/image")
	if err != nil {
		t.Fatal(err)
	}
	end := ends(t, r.rec)
	if len(msgs) != 1 || msgs[0].PartID != end[1].PartID || msgs[0].FrameID != best || msgs[0].TagName != "red" || msgs[0].Image == nil {
		t.Fatalf("part images %+v: want one, of frame %d, for part %s", msgs, best, end[1].PartID)
	}
	if n := len(r.rec.Messages("/samples")); n != 0 {
		t.Fatalf("%d samples with sampling off", n)
	}
	m, inside := centre(t, msgs[0].Image)
	if m.Bounds().Dx() != r.w || m.Bounds().Dy() != r.h || msgs[0].Image.Width != r.w {
		t.Fatalf("image %v, says %dx%d: want the whole %dx%d frame", m.Bounds(), msgs[0].Image.Width, msgs[0].Image.Height, r.w, r.h)
	}
	// the box of frame 2: x 0.3-0.55 of 320 (96-176), y 0.4-0.6 of 240 (96-144)
	green := rgba(preprocess.BoxColor)
	for _, p := range []image.Point{{96, 120}, {176, 120}, {136, 144}} { // left, right and bottom edges, half way
		if c := rgba(m.At(p.X, p.Y)); !near(c, green) {
			t.Errorf("pixel %v on the box's edge is %v, want the box's colour %v", p, c, green)
		}
	}
	if c := rgba(m.At(136, 120)); near(c, green) || !near(c, partColours[best-1]) {
		t.Errorf("the box's inside is %v, want the part as drawn, %v", inside, partColours[best-1])
	}
	if c := rgba(m.At(20, 200)); near(c, green) {
		t.Errorf("a pixel far from the box is %v: drawn on", c)
	}
	// the label sits on a band of the box's colour above the box
	if c := rgba(m.At(98, 90)); !near(c, green) && !near(c, color.RGBA{A: 255}) {
		t.Errorf("above the box's top left corner: %v, want the label's band", c)
	}
}

// TestPartImageFitsMaxPayload: a frame whose JPEG is far over mqtt.max_payload_kb is scaled
// down until its message fits.
func TestPartImageFitsMaxPayload(t *testing.T) {
	r := newPartsRun(t, func(cc *configs.Camera, _ *configs.Samples, e *steps.Env) {
		cc.Parts.Image.Enabled = true
		e.MaxPayloadKB = 16
	})
	r.w, r.h, r.noise = 640, 480, true
	r.frame(tracked(1, 0.3, 0.2, "red", 0.3, true))
	r.frame()
	r.frame()
	raw := r.rec.Messages("/parts/image")
	if len(raw) != 1 {
		t.Fatalf("%d part images, want 1", len(raw))
	}
	if len(raw[0].Payload) > 16<<10 {
		t.Fatalf("part image of %d bytes, over mqtt.max_payload_kb (16)", len(raw[0].Payload))
	}
	msgs, _ := publish.Decode[payload.PartImage](r.rec, "/parts/image")
	m, _ := centre(t, msgs[0].Image)
	if m.Bounds().Dx() >= 640 || msgs[0].Image.Width != m.Bounds().Dx() || msgs[0].TagName != steps.Unknown {
		t.Fatalf("image %v (says %d wide), tag %q: want it scaled down, and the part unknown", m.Bounds(), msgs[0].Image.Width, msgs[0].TagName)
	}
	for _, raw := range r.rec.Messages("/samples") {
		if len(raw.Payload) > 16<<10 {
			t.Fatalf("sample of %d bytes, over mqtt.max_payload_kb (16)", len(raw.Payload))
		}
	}
}

// TestPartFramesFollowTheDecision: only the frames that count for a part's decision are
// looked at: inside the camera's zone, and up to its decision (here at a line); a part in
// view when the steps close is sampled, and gets its image, with its end event.
func TestPartFramesFollowTheDecision(t *testing.T) {
	r := newPartsRun(t, func(cc *configs.Camera, _ *configs.Samples, _ *steps.Env) {
		cc.Zones = []configs.Area{{Name: "belt", Points: []configs.Point{{0.2, 0}, {1, 0}, {1, 1}, {0.2, 1}}}}
		cc.Lines = []configs.Line{{Name: "gate", From: configs.Point{0.6, 0}, To: configs.Point{0.6, 1}}}
		cc.Decision.Line = "gate"
		cc.Parts.Image.Enabled = true
	})
	r.frame(tracked(1, 0.05, 0.1, "red", 0.1, false)) // outside the zone: does not count
	r.frame(tracked(1, 0.25, 0.1, "red", 0.3, false))
	best := r.frame(tracked(1, 0.4, 0.1, "red", 0.35, false))
	least := r.frame(tracked(1, 0.6, 0.1, "red", 0.2, false)) // crosses the line (centre 0.65): decided here
	r.frame(tracked(1, 0.7, 0.1, "red", 0.05, false))         // after the decision: does not count
	r.list.Close()
	end := ends(t, r.rec)
	if end[1].Ended != "stop" {
		t.Fatalf("end event %+v: want the part ended at the stop", end[1])
	}
	smp, _ := publish.Decode[payload.Sample](r.rec, "/samples")
	if len(smp) != 1 || smp[0].FrameID != least || smp[0].PartID != end[1].PartID {
		t.Fatalf("samples %+v: want one, of frame %d (the least certain up to the decision, in the zone)", smp, least)
	}
	imgs, _ := publish.Decode[payload.PartImage](r.rec, "/parts/image")
	if len(imgs) != 1 || imgs[0].FrameID != best {
		t.Fatalf("part images %+v: want one, of frame %d", imgs, best)
	}
}
