package camera

import (
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// TestArvToBGR converts frames of each GenICam pixel format the agent takes, and checks the
// colour of a pixel inside: a Bayer mosaic of a flat colour must come out as that colour
// (the right OpenCV code for each GenICam pattern), RGB8 swapped to BGR, Mono8 and Mono16 grey.
// An unknown format and a short buffer are errors that say what to do.
func TestArvToBGR(t *testing.T) {
	const w, h = 8, 6
	const r, g, b = 200, 100, 40
	// bayer lays out a mosaic of the flat colour (r, g, b) in the pattern named from the top
	// left: "RGGB" is R G on even rows, G B on odd rows.
	bayer := func(pattern string) []byte {
		val := map[byte]byte{'R': r, 'G': g, 'B': b}
		out := make([]byte, w*h)
		for y := range h {
			for x := range w {
				out[y*w+x] = val[pattern[(y%2)*2+x%2]]
			}
		}
		return out
	}
	flat := func(n int, v ...byte) []byte {
		out := make([]byte, 0, n*len(v))
		for range n {
			out = append(out, v...)
		}
		return out
	}
	for _, c := range []struct {
		name    string
		pf      uint32
		data    []byte
		b, g, r uint8
	}{
		{"BayerRG8", pfBayerRG8, bayer("RGGB"), b, g, r},
		{"BayerGR8", pfBayerGR8, bayer("GRBG"), b, g, r},
		{"BayerGB8", pfBayerGB8, bayer("GBRG"), b, g, r},
		{"BayerBG8", pfBayerBG8, bayer("BGGR"), b, g, r},
		{"RGB8", pfRGB8, flat(w*h, r, g, b), b, g, r},
		{"Mono8", pfMono8, flat(w*h, 77), 77, 77, 77},
		{"Mono16", pfMono16, flat(w*h, 0x00, 0x40), 64, 64, 64}, // 0x4000 little-endian
	} {
		m := gocv.NewMat()
		if err := arvToBGR(c.data, w, h, c.pf, &m); err != nil {
			t.Errorf("%s: %v", c.name, err)
			m.Close()
			continue
		}
		if m.Rows() != h || m.Cols() != w || m.Type() != gocv.MatTypeCV8UC3 {
			t.Errorf("%s: %dx%d type %v, want %dx%d BGR", c.name, m.Cols(), m.Rows(), m.Type(), w, h)
		} else {
			px := m.GetVecbAt(h/2, w/2)
			if px[0] != c.b || px[1] != c.g || px[2] != c.r {
				t.Errorf("%s: pixel BGR %v, want %d %d %d", c.name, px, c.b, c.g, c.r)
			}
		}
		m.Close()
	}
	m := gocv.NewMat()
	defer m.Close()
	if err := arvToBGR(make([]byte, w*h*2), w, h, 0x01100005, &m); err == nil || !strings.Contains(err.Error(), "0x01100005") || !strings.Contains(err.Error(), "genicam.pixel_format") {
		t.Errorf("Mono10 (not converted): %v", err)
	}
	if err := arvToBGR(make([]byte, w*h-1), w, h, pfMono8, &m); err == nil || !strings.Contains(err.Error(), "8x6") {
		t.Errorf("a short Mono8 buffer: %v", err)
	}
	// a leader whose sizes overflow w*h*bpp must not reach OpenCV (which aborts the process)
	for _, size := range [][2]int{{1<<31 - 1, 1<<31 - 1}, {1 << 32, 1 << 32}, {70000, 2}, {20000, 20000}} {
		for _, pf := range []uint32{pfRGB8, pfMono16, pfMono8} {
			if err := arvToBGR(make([]byte, 16), size[0], size[1], pf, &m); err == nil || !strings.Contains(err.Error(), "larger than any camera's picture") {
				t.Errorf("a frame of %dx%d, format 0x%08x: %v", size[0], size[1], pf, err)
			}
		}
	}
}

// BenchmarkArvToBGR measures turning one 1280x1024 frame from Aravis into the BGR frame the
// pipeline takes (the copy out of Aravis's buffer and the conversion), for a Bayer and a
// Mono8 camera.
func BenchmarkArvToBGR(b *testing.B) {
	const w, h = 1280, 1024
	data := make([]byte, w*h)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, c := range []struct {
		name string
		pf   uint32
	}{{"BayerRG8", pfBayerRG8}, {"Mono8", pfMono8}} {
		b.Run(c.name, func(b *testing.B) {
			m := gocv.NewMat()
			defer m.Close()
			b.SetBytes(w * h)
			for b.Loop() {
				if err := arvToBGR(data, w, h, c.pf, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
