package eval

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strconv"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The confusion matrix picture is drawn with the standard library and a bitmap font, in
// integers: every machine draws the same pixels. Its sizes, in pixels:
const (
	chartPad     = 16   // around the picture
	chartGap     = 6    // between a tag name and the grid, between blocks of text
	chartMaxCell = 96   // a cell is never larger (2 tags)
	chartGrid    = 640  // the grid aims at this side while cells stay legible
	chartMaxGrid = 2400 // past this the cells shrink below the text and the counts are left out
	chartNameLen = 16   // tag names longer than this are cut, ending in "…"
)

// chartFace is 7×13 pixels a character: ASCII and "…"; other characters show as a box.
var chartFace = withEllipsis(basicfont.Face7x13)

// withEllipsis adds "…" to a basicfont face, as three dots on the baseline.
func withEllipsis(f *basicfont.Face) *basicfont.Face {
	h := f.Ascent + f.Descent
	b := f.Mask.Bounds()
	glyphs := b.Dy() / h
	m := image.NewAlpha(image.Rect(0, 0, b.Dx(), b.Dy()+h))
	draw.Draw(m, b, f.Mask, b.Min, draw.Src)
	for x := 0; x < f.Width; x += 2 {
		for y := f.Ascent - 2; y < f.Ascent; y++ {
			m.SetAlpha(x, glyphs*h+y, color.Alpha{A: 0xff})
		}
	}
	g := *f
	g.Mask = m
	g.Ranges = append(append([]basicfont.Range(nil), f.Ranges...), basicfont.Range{Low: '…', High: '…' + 1, Offset: glyphs})
	return &g
}

// chartLayout is where everything of a confusion matrix picture goes.
type chartLayout struct {
	n      int
	names  []string // tag names as drawn
	title  string   // as drawn
	cell   int      // side of a cell, grid lines excluded
	grid   image.Point
	size   image.Point
	counts bool // the counts fit in the cells
	tags   bool // the tag names fit beside the rows and under the columns
	rotate bool // the column names run upwards
	nameW  int  // widest tag name, in pixels
	trueX  int  // left of the "true" caption
	keyW   int  // the key to the shades
}

// step is the distance from one cell to the next: the cell and a one-pixel line.
func (l *chartLayout) step() int { return l.cell + 1 }

// cellRect is the coloured area of the cell of true tag row, predicted tag col.
func (l *chartLayout) cellRect(row, col int) image.Rectangle {
	p := l.grid.Add(image.Pt(1+col*l.step(), 1+row*l.step()))
	return image.Rectangle{Min: p, Max: p.Add(image.Pt(l.cell, l.cell))}
}

// gridRect is the grid with its outer lines.
func (l *chartLayout) gridRect() image.Rectangle {
	side := l.n*l.step() + 1
	return image.Rectangle{Min: l.grid, Max: l.grid.Add(image.Pt(side, side))}
}

func textWidth(s string) int { return font.MeasureString(chartFace, s).Ceil() }

func lineHeight() int { return chartFace.Ascent + chartFace.Descent }

// cut shortens s to at most n characters, ending in "…" when something was cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// layoutChart sizes the picture to the number of tags: large cells for a few tags, cells just
// large enough for their counts for many, and cells too small for text past chartMaxGrid.
func layoutChart(c *Confusion, title string) *chartLayout {
	n := len(c.Labels)
	l := &chartLayout{n: n}
	for _, name := range c.Labels {
		name = cut(name, chartNameLen)
		l.names = append(l.names, name)
		l.nameW = max(l.nameW, textWidth(name))
	}
	countW := textWidth(strconv.Itoa(maxCell(c)))
	text := max(countW+8, lineHeight()+6) // smallest cell that holds a count
	l.cell = min(chartMaxCell, max(text, chartGrid/n))
	if n*l.step() > chartMaxGrid {
		l.cell = max(1, chartMaxGrid/n-1)
	}
	l.counts = l.cell >= text
	l.tags = l.cell >= lineHeight()
	l.rotate = l.nameW > l.cell-4

	lh := lineHeight()
	left := chartPad + lh + chartGap // the "true" caption, upwards
	if l.tags {
		left += l.nameW + chartGap
	}
	top := chartPad + lh + 2*chartGap // the title
	l.grid = image.Pt(left, top)
	g := l.gridRect()
	bottom := g.Max.Y + chartGap
	if l.tags {
		if l.rotate {
			bottom += l.nameW + chartGap
		} else {
			bottom += lh + chartGap
		}
	}
	bottom += lh + chartGap // "predicted"
	bottom += lh + chartPad // the key to the shades
	l.keyW = textWidth(chartKey) + chartGap + chartKeyBar + chartGap + textWidth("100%")
	width := max(g.Max.X+chartPad, l.keyW+2*chartPad)
	// a wide key leaves room: centre the grid and its names
	dx := (width - (g.Max.X + chartPad)) / 2
	l.grid.X += dx
	l.trueX = chartPad + dx
	l.title = "Confusion matrix: " + title
	if w := textWidth(l.title) + 1; w > width-2*chartPad {
		l.title = cut(l.title, (width-2*chartPad-1)/chartFace.Advance)
	}
	l.size = image.Pt(width, bottom)
	return l
}

const (
	chartKey    = "shade: share of the true tag's images, 0%"
	chartKeyBar = 100 // the bar of shades after the key, then "100%"
)

// shades runs from pale (none of a true tag's images) to dark blue (all of them).
var shades = []color.RGBA{
	{0xf7, 0xfb, 0xff, 0xff}, {0xde, 0xeb, 0xf7, 0xff}, {0xc6, 0xdb, 0xef, 0xff},
	{0x9e, 0xca, 0xe1, 0xff}, {0x6b, 0xae, 0xd6, 0xff}, {0x42, 0x92, 0xc6, 0xff},
	{0x21, 0x71, 0xb5, 0xff}, {0x08, 0x51, 0x9c, 0xff}, {0x08, 0x30, 0x6b, 0xff},
}

// shade is the colour of part out of whole, in integers so that every machine draws the same.
func shade(part, whole int) color.RGBA {
	if whole <= 0 || part <= 0 {
		return shades[0]
	}
	const steps = 1 << 16
	t := int64(min(part, whole)) * steps * int64(len(shades)-1) / int64(whole)
	i, f := int(t/steps), t%steps
	if i >= len(shades)-1 {
		return shades[len(shades)-1]
	}
	a, b := shades[i], shades[i+1]
	mix := func(x, y uint8) uint8 { return uint8((int64(x)*(steps-f) + int64(y)*f) / steps) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
}

// ink is black on pale colours and white on dark ones.
func ink(bg color.RGBA) color.Color {
	if 299*int(bg.R)+587*int(bg.G)+114*int(bg.B) < 140*1000 {
		return color.White
	}
	return color.Black
}

// textMask is s in the chart's font, as an alpha mask as high as a line.
func textMask(s string) *image.Alpha {
	m := image.NewAlpha(image.Rect(0, 0, max(1, textWidth(s)), lineHeight()))
	d := font.Drawer{Dst: m, Src: image.Opaque, Face: chartFace, Dot: fixed.P(0, chartFace.Ascent)}
	d.DrawString(s)
	return m
}

// upwards turns a mask a quarter turn anticlockwise, so that its text reads bottom to top.
func upwards(m *image.Alpha) *image.Alpha {
	b := m.Bounds()
	r := image.NewAlpha(image.Rect(0, 0, b.Dy(), b.Dx()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r.SetAlpha(y, b.Dx()-1-x, m.AlphaAt(x, y))
		}
	}
	return r
}

// stamp draws a text mask with its top left corner at p.
func stamp(dst draw.Image, m *image.Alpha, p image.Point, c color.Color) {
	draw.DrawMask(dst, m.Bounds().Add(p), image.NewUniform(c), image.Point{}, m, image.Point{}, draw.Over)
}

// drawChart paints the picture of c laid out as l.
func drawChart(c *Confusion, l *chartLayout) *image.RGBA {
	img := image.NewRGBA(image.Rectangle{Max: l.size})
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	lh := lineHeight()
	line := color.RGBA{0xb0, 0xb0, 0xb0, 0xff}

	t := textMask(l.title)
	tp := image.Pt((l.size.X-t.Bounds().Dx()-1)/2, chartPad)
	stamp(img, t, tp, color.Black)
	stamp(img, t, tp.Add(image.Pt(1, 0)), color.Black) // bold

	g := l.gridRect()
	draw.Draw(img, g, image.NewUniform(line), image.Point{}, draw.Src)
	for row := range l.n {
		total := 0
		for _, v := range c.Matrix[row] {
			total += v
		}
		for col := range l.n {
			v := c.Matrix[row][col]
			bg := shade(v, total)
			r := l.cellRect(row, col)
			draw.Draw(img, r, image.NewUniform(bg), image.Point{}, draw.Src)
			if l.counts {
				m := textMask(strconv.Itoa(v))
				mid := r.Min.Add(r.Size().Div(2)).Sub(m.Bounds().Size().Div(2))
				stamp(img, m, mid, ink(bg))
			}
		}
	}

	if l.tags {
		for i, name := range l.names {
			m := textMask(name)
			r := l.cellRect(i, 0)
			// rows: right-aligned against the grid, centred on the row
			stamp(img, m, image.Pt(g.Min.X-chartGap-m.Bounds().Dx(), r.Min.Y+(l.cell-lh)/2), color.Black)
			r = l.cellRect(0, i)
			if l.rotate {
				u := upwards(m)
				stamp(img, u, image.Pt(r.Min.X+(l.cell-lh)/2, g.Max.Y+chartGap), color.Black)
			} else {
				stamp(img, m, image.Pt(r.Min.X+(l.cell-m.Bounds().Dx())/2, g.Max.Y+chartGap), color.Black)
			}
		}
	}

	y := g.Max.Y + chartGap
	if l.tags {
		if l.rotate {
			y += l.nameW + chartGap
		} else {
			y += lh + chartGap
		}
	}
	p := textMask("predicted")
	stamp(img, p, image.Pt(g.Min.X+(g.Dx()-p.Bounds().Dx())/2, y), color.Black)
	tr := upwards(textMask("true"))
	stamp(img, tr, image.Pt(l.trueX, g.Min.Y+(g.Dy()-tr.Bounds().Dy())/2), color.Black)

	// the key: what the shades mean, with a bar from none to all
	y += lh + chartGap
	k := textMask(chartKey)
	x := (l.size.X - l.keyW) / 2
	stamp(img, k, image.Pt(x, y), color.Black)
	x += k.Bounds().Dx() + chartGap
	for i := range chartKeyBar {
		draw.Draw(img, image.Rect(x+i, y+1, x+i+1, y+lh-1), image.NewUniform(shade(i, chartKeyBar-1)), image.Point{}, draw.Src)
	}
	stamp(img, textMask("100%"), image.Pt(x+chartKeyBar+chartGap, y), color.Black)
	return img
}

// ConfusionPNG draws the matrix as a grid: the true tags as rows from the top, the predicted
// ones as columns, each cell shaded by its share of the row (the images of that true tag) and
// holding its count.
func ConfusionPNG(c *Confusion, title, path string) error {
	if len(c.Labels) == 0 {
		return fmt.Errorf("no tags")
	}
	img := drawChart(c, layoutChart(c, title))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
