package models

import (
	"math"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/configs"
)

// yoloOut builds a model_outputs0 tensor for one image: every objectness at -10 (nothing),
// then the given cells set. Layout: channel = anchor*(5+classes) + k, planes of gh x gw.
type yoloOut struct {
	classes, gh, gw int
	data            []float32
}

func newYOLOOut(classes, gh, gw int) *yoloOut {
	y := &yoloOut{classes: classes, gh: gh, gw: gw, data: make([]float32, 5*(5+classes)*gh*gw)}
	for a := 0; a < 5; a++ {
		for cell := 0; cell < gh*gw; cell++ {
			y.data[(a*(5+classes)+4)*gh*gw+cell] = -10
		}
	}
	return y
}

// set writes tx, ty, tw, th, objectness and class logits of one anchor in one cell.
func (y *yoloOut) set(anchor, row, col int, v ...float32) {
	for k, x := range v {
		y.data[(anchor*(5+y.classes)+k)*y.gh*y.gw+row*y.gw+col] = x
	}
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-5 }

// TestYOLODecodeByHand checks the decode against values worked out by hand from the
// bundled code's formulas.
func TestYOLODecodeByHand(t *testing.T) {
	out := newYOLOOut(1, 2, 2)
	// cell row 1, col 0, anchor 0: tx=ty=0 (sigmoid 0.5), tw=0, th=ln 2, objectness logit 2
	out.set(0, 1, 0, 0, 0, 0, float32(math.Log(2)), 2, 5)
	y := YOLO{Threshold: 0.1, IoU: 0.45, MaxDetections: 20}
	got := y.Decode(nil, nil, out.data, 1, 2, 2, []string{"logo"})
	// x = (0.5+0)/2 = 0.25, y = (0.5+1)/2 = 0.75
	// w = e^0 * 0.573 / 2 = 0.2865, h = e^ln2 * 0.677 / 2 = 0.677
	// left = 0.25 - 0.14325 = 0.10675, top = 0.75 - 0.3385 = 0.4115
	// p = softmax([5]) * sigmoid(2) = 0.8807971
	want := Box{Left: 0.10675, Top: 0.4115, Width: 0.2865, Height: 0.677}
	if len(got) != 1 || got[0].TagName != "logo" || !near(got[0].Probability, 0.8807971) {
		t.Fatalf("got %+v", got)
	}
	b := *got[0].Box
	if !near(b.Left, want.Left) || !near(b.Top, want.Top) || !near(b.Width, want.Width) || !near(b.Height, want.Height) {
		t.Fatalf("box %+v, want %+v", b, want)
	}
}

func TestYOLOSecondClassOfTheSameBox(t *testing.T) {
	// class logits [1, 0]: softmax 0.7310586 / 0.2689414, objectness sigmoid(0) = 0.5
	// -> class 0 at 0.3655293, then (class 0 zeroed) class 1 at 0.1344707, still above 0.1
	out := newYOLOOut(2, 3, 3)
	out.set(2, 1, 1, 0.2, -0.3, 0.1, 0.4, 0, 1, 0)
	y := YOLO{Threshold: 0.1, IoU: 0.45, MaxDetections: 20}
	got := y.Decode(nil, nil, out.data, 2, 3, 3, []string{"steel", "brass"})
	if len(got) != 2 || got[0].TagName != "steel" || !near(got[0].Probability, 0.3655293) ||
		got[1].TagName != "brass" || !near(got[1].Probability, 0.1344707) || *got[0].Box != *got[1].Box {
		t.Fatalf("got %+v", got)
	}
	// anchor 2 is (3.34, 5.47): w = e^0.1*3.34/3
	if !near(got[0].Box.Width, float32(math.Exp(0.1)*3.34/3)) {
		t.Fatalf("width %v", got[0].Box.Width)
	}
}

func TestYOLONMS(t *testing.T) {
	labels := []string{"a", "b"}
	cases := []struct {
		name   string
		cells  [][]float32 // anchor, row, col, then tx ty tw th obj c0 c1
		maxDet int
		want   []string // tag@probability rounded
	}{
		{
			name:  "overlapping, same class: the weaker is suppressed",
			cells: [][]float32{{0, 2, 2, 0, 0, 1, 1, 3, 9, 0}, {1, 2, 2, 0, 0, -0.5, -0.5, 2, 9, 0}},
			want:  []string{"a"},
		},
		{
			name:  "overlapping, other class: both stay",
			cells: [][]float32{{0, 2, 2, 0, 0, 1, 1, 3, 9, 0}, {1, 2, 2, 0, 0, -0.5, -0.5, 2, 0, 9}},
			want:  []string{"a", "b"},
		},
		{
			name:  "apart, same class: both stay, strongest first",
			cells: [][]float32{{0, 0, 0, 0, 0, 0, 0, 1, 9, 0}, {0, 4, 4, 0, 0, 0, 0, 3, 9, 0}},
			want:  []string{"a", "a"},
		},
		{
			name:   "max detections",
			cells:  [][]float32{{0, 0, 0, 0, 0, 0, 0, 1, 9, 0}, {0, 4, 4, 0, 0, 0, 0, 3, 9, 0}},
			maxDet: 1,
			want:   []string{"a"},
		},
		{
			name:  "under threshold",
			cells: [][]float32{{0, 0, 0, 0, 0, 0, 0, -3, 9, 0}}, // sigmoid(-3) = 0.047
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := newYOLOOut(2, 5, 5)
			for _, cell := range c.cells {
				out.set(int(cell[0]), int(cell[1]), int(cell[2]), cell[3:]...)
			}
			maxDet := 20
			if c.maxDet > 0 {
				maxDet = c.maxDet
			}
			y := YOLO{Threshold: 0.1, IoU: 0.45, MaxDetections: maxDet}
			got := y.Decode(nil, nil, out.data, 2, 5, 5, labels)
			if len(got) != len(c.want) {
				t.Fatalf("got %+v, want tags %v", got, c.want)
			}
			for i := range got {
				if got[i].TagName != c.want[i] || (i > 0 && got[i].Probability > got[i-1].Probability) {
					t.Fatalf("got %+v, want tags %v strongest first", got, c.want)
				}
			}
		})
	}
}

func TestYOLOShortOutputIsIgnored(t *testing.T) {
	y := YOLO{Threshold: 0.1, IoU: 0.45, MaxDetections: 20}
	if got := y.Decode(nil, nil, make([]float32, 10), 1, 13, 13, []string{"x"}); len(got) != 0 {
		t.Fatalf("got %+v from a short tensor", got)
	}
}

func TestDecodeSSD(t *testing.T) {
	boxes := []float32{0.1, 0.2, 0.3, 0.5, 0.5, 0.5, 0.9, 0.9, 0, 0, 1, 1, 0, 0, 0.1, 0.1}
	scores := []float32{0.6, 0.9, 0.05, 0.7}
	classes := []int64{1, 0, 0, 7} // 7 is no label: ignored
	got := DecodeSSD(nil, nil, boxes, scores, classes, 0.1, 20, []string{"nut", "bolt"})
	if len(got) != 2 || got[0].TagName != "nut" || got[0].Probability != 0.9 || got[1].TagName != "bolt" {
		t.Fatalf("got %+v", got)
	}
	if b := *got[1].Box; !near(b.Left, 0.1) || !near(b.Top, 0.2) || !near(b.Width, 0.2) || !near(b.Height, 0.3) {
		t.Fatalf("box %+v: x1,y1,x2,y2 must become left,top,width,height", b)
	}
	if got := DecodeSSD(nil, nil, boxes, scores, classes, 0.1, 1, []string{"nut", "bolt"}); len(got) != 1 {
		t.Fatalf("max detections: %+v", got)
	}
}

func TestClassesSorted(t *testing.T) {
	got := Classes(nil, []float32{0.2, 0.7, 0.1}, 0, []string{"a", "b", "c"})
	if got[0].TagName != "b" || got[1].TagName != "a" || got[2].TagName != "c" {
		t.Fatalf("%+v", got)
	}
}

func BenchmarkYOLODecode13x13(b *testing.B) {
	out := newYOLOOut(4, 13, 13)
	out.set(0, 3, 3, 0, 0, 0, 0, 4, 3, 0, 0, 0)
	out.set(0, 9, 9, 0, 0, 0, 0, 4, 0, 3, 0, 0)
	y := YOLO{Threshold: 0.1, IoU: 0.45, MaxDetections: 20}
	labels := []string{"a", "b", "c", "d"}
	dst := make([]Prediction, 0, 20)
	var boxes Boxes // reused, as Results reuses it
	b.ReportAllocs()
	for b.Loop() {
		boxes.Reset()
		dst = y.Decode(dst[:0], &boxes, out.data, 4, 13, 13, labels)
	}
}

func TestPixelsFromMetadata(t *testing.T) {
	cases := []struct {
		meta          map[string]string
		order         ChannelOrder
		scale, offset float32
		err           string
	}{
		{map[string]string{}, BGR, 1, 0, ""},
		{map[string]string{"Image.BitmapPixelFormat": "Bgr8", "Image.NominalPixelRange": "NominalRange_0_255"}, BGR, 1, 0, ""},
		{map[string]string{"Image.BitmapPixelFormat": "Rgb8", "Image.NominalPixelRange": "Normalized_0_1"}, RGB, 1.0 / 255, 0, ""},
		{map[string]string{"Image.BitmapPixelFormat": "Bgra8", "Image.NominalPixelRange": "Normalized_1_1"}, BGR, 2.0 / 255, -1, ""},
		{map[string]string{"Image.BitmapPixelFormat": "Rgba8", "Image.NominalPixelRange": "NominalRange_16_235"}, RGB, 219.0 / 255, 16, ""},
		{map[string]string{"Image.BitmapPixelFormat": "Gray8"}, BGR, 1, 0, "Gray8"},
		{map[string]string{"Image.NominalPixelRange": "0-255"}, BGR, 1, 0, "is not one of"},
	}
	for _, c := range cases {
		p, err := pixelsFrom(c.meta)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.meta, err, c.err)
			}
			continue
		}
		if err != nil || p.Order != c.order || p.Scale != c.scale || p.Offset != c.offset {
			t.Errorf("%v: got %+v %v", c.meta, p, err)
		}
	}
}

func TestFormatOverride(t *testing.T) {
	rt := newRuntime(t)
	c := configs.DefaultModel()
	c.Path, c.Format = demo("detector"), "classifier"
	if _, err := Load(rt, "x", c); err == nil || !strings.Contains(err.Error(), "cvexport.manifest says ObjectDetection but the outputs are those of a classifier") {
		t.Fatalf("forcing a detector to classifier: %v", err)
	}
	c.Path, c.Format = demo("shape"), "classifier-onnx12"
	m, err := Load(rt, "x", c)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}
