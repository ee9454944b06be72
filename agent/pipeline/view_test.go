package pipeline_test

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"testing"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
)

// upscale3 enlarges img three times (640×360 to 1920×1080), each pixel a 3×3 block.
func upscale3(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, 3*b.Dx(), 3*b.Dy()))
	for y := 0; y < out.Rect.Dy(); y++ {
		for x := 0; x < out.Rect.Dx(); x++ {
			out.Set(x, y, img.At(b.Min.X+x/3, b.Min.Y+y/3))
		}
	}
	return out
}

func iou(a, b *payload.Box) float64 {
	x0, y0 := max(a.Left, b.Left), max(a.Top, b.Top)
	x1, y1 := min(a.Left+a.Width, b.Left+b.Width), min(a.Top+a.Height, b.Top+b.Height)
	if x1 <= x0 || y1 <= y0 {
		return 0
	}
	in := (x1 - x0) * (y1 - y0)
	return float64(in / (a.Width*a.Height + b.Width*b.Height - in))
}

// TestReducedViewFindsTheSameParts: a 1080p frame from a JPEG source reaches the detector as
// a view decoded at half size, and its crops reach the classifier at full resolution; the
// parts found, their boxes and their classes are those of the same frame decoded whole.
func TestReducedViewFindsTheSameParts(t *testing.T) {
	pl, frames := demoPipeline(t)
	// a frame without parts before each JPEG frame: after a frame with crops, the pipeline
	// decodes the next one whole at once (it likely has crops too), and makes no view
	empty, err := camera.FrameOf(image.NewRGBA(image.Rect(0, 0, 1920, 1080)))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	parts := 0
	for i := 0; i < len(frames); i += 3 {
		img, err := frames[i].Image()
		if err != nil {
			t.Fatal(err)
		}
		big := upscale3(img)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, big, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		enc, err := camera.FrameOfJPEG(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		decoded, _, err := image.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		whole, err := camera.FrameOf(decoded)
		if err != nil {
			t.Fatal(err)
		}
		defer whole.Close()
		ref, err := pl.Process(whole)
		if err != nil {
			t.Fatal(err)
		}
		wantParts := append([]payload.Tag(nil), ref.Predictions...)
		if msg, err := pl.Process(empty); err != nil || len(msg.Predictions) > 0 {
			t.Fatalf("an empty frame: %v, %d parts", err, len(msg.Predictions))
		}
		got, err := pl.Process(enc)
		if err != nil {
			t.Fatal(err)
		}
		// what the frame holds: its JPEG, the view the detector read, the full pixels its crops
		// were cut from
		want := int64(buf.Len() + 960*540*3)
		if len(got.Predictions) > 0 {
			want += 1920 * 1080 * 3
		}
		if held := enc.Bytes(); held != want {
			t.Fatalf("frame %d (%d parts) holds %d bytes, want %d: the JPEG, a half-size view, and the full frame when there are crops", i, len(got.Predictions), held, want)
		}
		if len(got.Predictions) > 0 { // the next frame, after one with crops: decoded whole at once, no view
			again, err := camera.FrameOfJPEG(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if _, err := pl.Process(again); err != nil {
				t.Fatal(err)
			}
			if held, want := again.Bytes(), int64(buf.Len()+1920*1080*3); held != want {
				t.Fatalf("frame %d after a frame with crops holds %d bytes, want %d: the JPEG and the full frame", i, held, want)
			}
		}
		if q, w := got.Quality, ref.Quality; math.Abs(q.Sharpness-w.Sharpness) > 0.03*w.Sharpness || math.Abs(q.Brightness-w.Brightness) > 1 {
			t.Fatalf("frame %d: quality from the view %+v, from the whole frame %+v", i, q, w)
		}
		if len(got.Predictions) != len(wantParts) {
			t.Fatalf("frame %d: %d parts from the reduced view, %d from the whole frame", i, len(got.Predictions), len(wantParts))
		}
		for j, p := range got.Predictions {
			w := wantParts[j]
			if p.TagName != w.TagName || iou(p.BoundingBox, w.BoundingBox) < 0.85 {
				t.Fatalf("frame %d part %d: %s %+v, whole frame: %s %+v (IoU %.2f)", i, j, p.TagName, *p.BoundingBox, w.TagName, *w.BoundingBox, iou(p.BoundingBox, w.BoundingBox))
			}
			if p.Classification.Predictions[0].TagName != w.Classification.Predictions[0].TagName {
				t.Fatalf("frame %d part %d classified %s, whole frame %s", i, j, p.Classification.Predictions[0].TagName, w.Classification.Predictions[0].TagName)
			}
			parts++
		}
	}
	if parts < 5 {
		t.Fatalf("only %d parts in the frames compared: the test shows too little", parts)
	}
}
