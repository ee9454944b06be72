package steps_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math/rand"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// belt1080p encodes a 1920x1080 grey frame with a red part at r (none when r is empty) as a
// JPEG at quality 85, as an MJPEG camera sends it.
func belt1080p(t *testing.T, r image.Rectangle) *bytes.Buffer {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 1920, 1080))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{90, 90, 90, 255}}, image.Point{}, draw.Src)
	draw.Draw(img, r, &image.Uniform{color.RGBA{200, 20, 20, 255}}, image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestRingKeepsJPEG: the ring keeps a frame from a JPEG source as its JPEG once the frame's
// steps are done, not as decoded pixels, so max_mb holds many more 1080p frames; a frame it
// gives back for a correction decodes again.
func TestRingKeepsJPEG(t *testing.T) {
	buf := belt1080p(t, image.Rect(800, 400, 1100, 700))
	// 8 MB: two decoded 1080p frames (6.2 MB each) would not fit, 20 JPEG frames do
	ring := steps.NewRing(configs.Ring{Frames: 20, MaxMB: 8, MaxAge: time.Minute})
	defer ring.Clear()
	for i := range 20 {
		f, err := camera.FrameOfJPEG(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		f.Mat() // the frame's steps decoded it (crops, a sample)
		msg := prediction(string(rune('a'+i)), uint64(i+1))
		ring.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam"}, msg)
	}
	for i := range 20 {
		id := string(rune('a' + i))
		if !ring.With(id, func(f *camera.Frame, _ *payload.Prediction) {
			m := f.Mat()
			if m.Cols() != 1920 || m.GetUCharAt(550, 3*950+2) < 150 {
				t.Errorf("frame %s decoded again: %dx%d, red %d", id, m.Cols(), m.Rows(), m.GetUCharAt(550, 3*950+2))
			}
		}) {
			t.Fatalf("the ring let frame %s go: it holds %d-byte JPEGs within 8 MB", id, buf.Len())
		}
	}
	// what the corrections decoded is freed again, but for the newest frame's
	ring.With("a", func(f *camera.Frame, _ *payload.Prediction) {
		if f.Bytes() != int64(buf.Len()) {
			t.Errorf("frame a holds %d bytes after it was read, want its JPEG's %d", f.Bytes(), buf.Len())
		}
	})
}

// noise640 encodes a 640x360 picture of noise, which JPEG cannot make small (about 0.3 MB).
func noise640(t *testing.T, seed int64) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	rand.New(rand.NewSource(seed)).Read(img.Pix)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRingStoresJPEGApart: the frames the ring keeps lie in its own store, which lets the
// memory of the frames it dropped go (it maps about what the kept ones hold), and nothing once
// the ring is cleared; they still decode.
func TestRingStoresJPEGApart(t *testing.T) {
	ring := steps.NewRing(configs.Ring{Frames: 5, MaxMB: 64, MaxAge: time.Minute})
	t.Cleanup(ring.Clear)
	var kept, pushed []int
	for i := range 100 {
		b := noise640(t, int64(i))
		f, err := camera.FrameOfJPEG(b)
		if err != nil {
			t.Fatal(err)
		}
		ring.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam"}, prediction(string(rune('a'+i)), uint64(i+1)))
		ring.Finished(&pipeline.Frame{Frame: f, Camera: "cam"})
		pushed = append(pushed, len(b))
	}
	kept = pushed[len(pushed)-5:]
	held, all := 0, 0
	for _, n := range kept {
		held += n
	}
	for _, n := range pushed {
		all += n
	}
	const blocks = 4 << 20 // the store's 2 MB block being filled, and one its oldest frames keep
	if got := ring.StoreBytes(); got < held || got > held+held/3+blocks {
		t.Errorf("the store maps %d bytes for 5 frames of %d in all (%d pushed): the frames are not in it, or it kept the dropped ones", got, held, all)
	}
	if all < 3*(held+held/3+blocks) {
		t.Fatalf("the frames pushed (%d bytes) are too few to tell a store that keeps them all", all)
	}
	if !ring.With(string(rune('a'+99)), func(f *camera.Frame, _ *payload.Prediction) {
		if f.Bytes() != int64(kept[4]) {
			t.Errorf("the stored frame holds %d bytes, want its JPEG's %d", f.Bytes(), kept[4])
		}
		if m := f.Mat(); m.Cols() != 640 || m.Rows() != 360 {
			t.Errorf("the stored frame decoded %dx%d", m.Cols(), m.Rows())
		}
	}) {
		t.Fatal("the ring let its newest frame go")
	}
	ring.Clear()
	if got := ring.StoreBytes(); got != 0 {
		t.Errorf("cleared, the ring's store still maps %d bytes", got)
	}
}

// matReader is a step after the ring that reads the frame's pixels, as the crops and the
// samples do, and notes what the frame held then.
type matReader struct{ held int64 }

func (m *matReader) Name() string { return "reader" }
func (m *matReader) Handle(_ context.Context, f *pipeline.Frame, _ *payload.Prediction) {
	f.Mat()
	m.held = f.Bytes()
}

// TestRingLetsTheNewestFrameGoWhenItsStepsAreDone: the newest frame of a JPEG source keeps
// its decoded pixels while its steps run (a step after the ring reads them), and only its
// JPEG once they are done; a correction that reads it decodes it again, and what it decoded
// goes once the correction is answered.
func TestRingLetsTheNewestFrameGoWhenItsStepsAreDone(t *testing.T) {
	buf := belt1080p(t, image.Rectangle{})
	ring := steps.NewRing(configs.Ring{Frames: 5, MaxMB: 64, MaxAge: time.Minute})
	defer ring.Clear()
	reader := &matReader{}
	list := pipeline.NewSteps(ring, reader)
	jpegSize := int64(buf.Len())
	for i := range 3 {
		f, err := camera.FrameOfJPEG(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		id := string(rune('a' + i))
		list.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam"}, prediction(id, uint64(i+1)))
		if reader.held < 1920*1080*3 {
			t.Fatalf("frame %s held %d bytes while its steps ran, want its decoded pixels", id, reader.held)
		}
		ring.With(id, func(f *camera.Frame, _ *payload.Prediction) {
			if f.Bytes() != jpegSize {
				t.Errorf("frame %s, the newest, holds %d bytes once its steps are done, want its JPEG's %d", id, f.Bytes(), jpegSize)
			}
			if m := f.Mat(); m.Cols() != 1920 || m.Rows() != 1080 {
				t.Errorf("frame %s decoded again: %dx%d", id, m.Cols(), m.Rows())
			}
		})
		ring.With(id, func(f *camera.Frame, _ *payload.Prediction) {
			if f.Bytes() != jpegSize {
				t.Errorf("frame %s holds %d bytes after a correction read it, want its JPEG's %d", id, f.Bytes(), jpegSize)
			}
		})
	}
}

type liveSink struct{ got [][]byte }

func (s *liveSink) Watching(string) bool          { return true }
func (s *liveSink) Publish(_ string, jpeg []byte) { s.got = append(s.got, jpeg) }

// TestLiveReadsAReducedView: the live view of a 1080p frame from a JPEG source, 480 wide,
// is drawn from the 1/4 view (the full frame is never decoded for it), its box where the
// part is.
func TestLiveReadsAReducedView(t *testing.T) {
	buf := belt1080p(t, image.Rectangle{})
	f, err := camera.FrameOfJPEG(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sink := &liveSink{}
	cfg := configs.Default().UI
	cfg.MaxWidth = 480
	live := steps.NewLive(sink, "cam", cfg, env(nil))
	msg := prediction("p1", 1, detection(payload.Box{Left: 0.5, Top: 0.5, Width: 0.25, Height: 0.25}, "red", 0.9))
	live.Handle(context.Background(), &pipeline.Frame{Frame: f, Camera: "cam"}, msg)
	if len(sink.got) != 1 {
		t.Fatalf("%d live frames, want 1", len(sink.got))
	}
	if held, want := f.Bytes(), int64(buf.Len()+480*270*3); held != want {
		t.Fatalf("the frame holds %d bytes, want %d: its JPEG and the 1/4 view", held, want)
	}
	shown, err := jpeg.Decode(bytes.NewReader(sink.got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if b := shown.Bounds(); b.Dx() != 480 || b.Dy() != 270 {
		t.Fatalf("live frame %v, want 480x270", b)
	}
	// the box's left edge at x = 240, from y = 135: drawn, not grey
	if r, g, _, _ := shown.At(240, 200).RGBA(); r>>8 == g>>8 {
		t.Fatalf("no box drawn at (240, 200): %v", shown.At(240, 200))
	}
}
