package steps_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/pipeline"
	"github.com/cvedge/cvedge/agent/steps"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// TestRingKeepsJPEG: the ring keeps a frame from a JPEG source as its JPEG once the frame's
// steps are done, not as decoded pixels, so max_mb holds many more 1080p frames; a frame it
// gives back for a correction decodes again.
func TestRingKeepsJPEG(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1920, 1080))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{90, 90, 90, 255}}, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(800, 400, 1100, 700), &image.Uniform{color.RGBA{200, 20, 20, 255}}, image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
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
