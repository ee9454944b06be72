package eval

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestConfusionByHand: 10 images; figures worked out by hand.
//
//	true \ predicted   cat  dog
//	cat                  4    1
//	dog                  2    3
//
// accuracy 7/10; cat precision 4/6, recall 4/5, F1 2*(2/3*4/5)/(2/3+4/5) = 8/11;
// dog precision 3/4, recall 3/5, F1 2*(3/4*3/5)/(3/4+3/5) = 2/3.
func TestConfusionByHand(t *testing.T) {
	c := NewConfusion([]string{"cat", "dog"})
	for i := 0; i < 4; i++ {
		c.Add(0, 0)
	}
	c.Add(0, 1)
	c.Add(1, 0)
	c.Add(1, 0)
	for i := 0; i < 3; i++ {
		c.Add(1, 1)
	}
	if !near(c.Accuracy(), 0.7) || c.Total() != 10 {
		t.Fatalf("accuracy %v total %d", c.Accuracy(), c.Total())
	}
	s := c.PerTag()
	if !near(s[0].Precision, 4.0/6) || !near(s[0].Recall, 0.8) || !near(s[0].F1, 8.0/11) || s[0].Support != 5 {
		t.Fatalf("cat %+v", s[0])
	}
	if !near(s[1].Precision, 0.75) || !near(s[1].Recall, 0.6) || !near(s[1].F1, 2.0/3) || s[1].Support != 5 {
		t.Fatalf("dog %+v", s[1])
	}
}

// TestAPByHand: 3 truth boxes of tag a, 4 detections by score 0.9 (hit), 0.8 (miss),
// 0.7 (hit), 0.6 (miss); one truth never found.
//
//	precision 1, 1/2, 2/3, 2/4; recall 1/3, 1/3, 2/3, 2/3
//	monotone precision: 1, 2/3, 2/3, 1/2
//	AP = 1/3*1 + 0*2/3 + 1/3*2/3 + 0 = 5/9
func TestAPByHand(t *testing.T) {
	d := NewDetections()
	box := func(x float64) Box { return Box{Left: x, Top: 0, Width: 0.1, Height: 0.1} }
	d.AddImage(
		[]Object{{Tag: "a", Box: box(0)}, {Tag: "a", Box: box(0.3)}, {Tag: "a", Box: box(0.6)}},
		[]Object{{Tag: "a", Box: box(0), Score: 0.9}, {Tag: "a", Box: box(0.8), Score: 0.8}, {Tag: "a", Box: box(0.31), Score: 0.7}, {Tag: "a", Box: box(0.005), Score: 0.6}},
	)
	if ap := d.AP("a"); !near(ap, 5.0/9) {
		t.Fatalf("AP %v, want 5/9", ap)
	}
	// a detection of the wrong tag on a truth box is a miss for its tag
	d.AddImage([]Object{{Tag: "b", Box: box(0)}}, []Object{{Tag: "a", Box: box(0), Score: 0.95}})
	if d.AP("b") != 0 || d.MAP() >= 5.0/9 {
		t.Fatalf("AP b %v mAP %v", d.AP("b"), d.MAP())
	}
}

func TestMatchFolders(t *testing.T) {
	labels := []string{"JapaneseCherry", "hemlock"}
	got, err := MatchFolders([]string{"Hemlock", "Japanese_Cherry"}, labels, nil)
	if err != nil || got["Hemlock"] != "hemlock" || got["Japanese_Cherry"] != "JapaneseCherry" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := MatchFolders([]string{"Oak"}, labels, nil); err == nil || !strings.Contains(err.Error(), `folder "Oak" matches no tag of the model (tags: JapaneseCherry, hemlock)`) {
		t.Fatalf("mislabelled folder: %v", err)
	}
	got, err = MatchFolders([]string{"Oak"}, labels, map[string]string{"Oak": "hemlock"})
	if err != nil || got["Oak"] != "hemlock" {
		t.Fatalf("explicit map: %v %v", got, err)
	}
	if _, err := MatchFolders([]string{"Oak"}, labels, map[string]string{"Oak": "oak"}); err == nil {
		t.Fatal("a map to a tag the model lacks was accepted")
	}
}

func TestLoadFoldersErrors(t *testing.T) {
	if _, err := LoadFolders(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("missing folder accepted")
	}
	empty := t.TempDir()
	if _, err := LoadFolders(empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty: %v", err)
	}
	os.MkdirAll(filepath.Join(empty, "red"), 0o755)
	os.WriteFile(filepath.Join(empty, "red", "notes.txt"), []byte("x"), 0o644)
	if _, err := LoadFolders(empty); err == nil || !strings.Contains(err.Error(), `folder "red" holds no images`) {
		t.Fatalf("no images: %v", err)
	}
}

func TestLoadCOCO(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ann.json"), []byte(`{
	 "images":[{"id":1,"file_name":"img/a.jpg","width":200,"height":100}],
	 "annotations":[{"image_id":1,"category_id":7,"bbox":[20,10,50,40]}],
	 "categories":[{"id":7,"name":"logo"}]}`), 0o644)
	got, err := LoadDetection(filepath.Join(dir, "ann.json"))
	if err != nil || len(got) != 1 || got[0].File != filepath.Join(dir, "img", "a.jpg") {
		t.Fatalf("%+v %v", got, err)
	}
	o := got[0].Objects[0]
	if o.Tag != "logo" || !near(o.Box.Left, 0.1) || !near(o.Box.Top, 0.1) || !near(o.Box.Width, 0.25) || !near(o.Box.Height, 0.4) {
		t.Fatalf("object %+v", o)
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"images":[{"id":1,"file_name":"a.jpg","width":1,"height":1}],"annotations":[{"image_id":2,"category_id":7,"bbox":[0,0,1,1]}]}`), 0o644)
	if _, err := LoadDetection(filepath.Join(dir, "bad.json")); err == nil || !strings.Contains(err.Error(), "unknown image or category") {
		t.Fatalf("bad annotation: %v", err)
	}
}

func TestReportWritesPicture(t *testing.T) {
	c := NewConfusion([]string{"cat", "dog"})
	c.Add(0, 0)
	c.Add(1, 0)
	acc := c.Accuracy()
	r := &Report{Data: "field", Kind: "classification", Created: time.Now(), Models: []ModelReport{{Name: "v1", Images: 2, Accuracy: &acc, Tags: c.PerTag(), Confusion: c}}}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, r.Models[0].Picture))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("png %v %v", img, err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "| v1 | - | 2 | 0 | 50.0% |") || !strings.Contains(string(md), "| dog | 1 | 0 |") {
		t.Fatalf("report.md:\n%s", md)
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func luma(img image.Image, p image.Point) int {
	r, g, b, _ := img.At(p.X, p.Y).RGBA()
	return int(299*(r>>8)+587*(g>>8)+114*(b>>8)) / 1000
}

// TestConfusionPictureShades reads the picture back at the cells the layout puts them: a cell
// is shaded by its share of the true tag's images (2 of 2 as dark as 240 of 240), more is darker, none is pale, and every count is written in ink that stands out
// from its cell.
func TestConfusionPictureShades(t *testing.T) {
	c := NewConfusion([]string{"hemlock", "JapaneseCherry", "maple"})
	c.Matrix = [][]int{{41, 3, 0}, {5, 12, 1}, {0, 0, 240}}
	path := filepath.Join(t.TempDir(), "c.png")
	if err := ConfusionPNG(c, "v1", path); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, path)
	l := layoutChart(c, "v1")
	if img.Bounds().Size() != l.size || !l.counts || !l.tags {
		t.Fatalf("picture %v, layout %+v", img.Bounds(), l)
	}
	// a cell's corner holds no text: its shade
	bg := func(row, col int) int { return luma(img, l.cellRect(row, col).Min.Add(image.Pt(1, 1))) }
	if bg(2, 2) >= bg(0, 2)-100 {
		t.Errorf("240 of 240 (luma %d) is not much darker than none (luma %d)", bg(2, 2), bg(0, 2))
	}
	if !(bg(1, 1) < bg(1, 0) && bg(1, 0) < bg(1, 2) && bg(1, 2) < bg(2, 0)) {
		t.Errorf("row 12, 5, 1, and none: lumas %d, %d, %d, %d, want lightening", bg(1, 1), bg(1, 0), bg(1, 2), bg(2, 0))
	}
	if bg(0, 2) != bg(2, 0) || bg(2, 0) < 240 {
		t.Errorf("empty cells: lumas %d and %d, want the same pale shade", bg(0, 2), bg(2, 0))
	}
	few := NewConfusion(c.Labels)
	few.Matrix = [][]int{{41, 3, 0}, {5, 12, 1}, {0, 0, 2}}
	l2 := layoutChart(few, "v1")
	img2 := drawChart(few, l2)
	if got, want := luma(img2, l2.cellRect(2, 2).Min.Add(image.Pt(1, 1))), bg(2, 2); got != want {
		t.Errorf("2 of 2 has luma %d, 240 of 240 %d: the shade must be the share of the row", got, want)
	}
	for row := range 3 {
		for col := range 3 {
			r := l.cellRect(row, col)
			ink := 0
			for y := r.Min.Y; y < r.Max.Y; y++ {
				for x := r.Min.X; x < r.Max.X; x++ {
					if d := luma(img, image.Pt(x, y)) - bg(row, col); d > 100 || d < -100 {
						ink++
					}
				}
			}
			if ink < 10 {
				t.Errorf("cell %d,%d (count %d): %d pixels of ink that stand out", row, col, c.Matrix[row][col], ink)
			}
		}
	}
}

// TestConfusionPictureSizes: 2 tags give large cells in a small picture; 40 tags with long
// names and 4-digit counts stay legible (cells hold the counts and a line of text) in a bounded
// picture; 1000 tags shrink the cells and leave the text out rather than growing without end.
// The same matrix always gives the same bytes.
func TestConfusionPictureSizes(t *testing.T) {
	many := func(n int, long bool) *Confusion {
		var names []string
		for i := range n {
			name := fmt.Sprintf("tag%d", i)
			if long {
				name = fmt.Sprintf("a_rather_long_tag_name_number_%d", i)
			}
			names = append(names, name)
		}
		c := NewConfusion(names)
		for i := range n {
			c.Matrix[i][i] = 1000 + i
			c.Matrix[i][(i+1)%n] = i
		}
		return c
	}
	dir := t.TempDir()
	two := many(2, false)
	l := layoutChart(two, "v1")
	if l.cell != chartMaxCell || l.rotate || l.size.X > 600 || l.size.Y > 600 {
		t.Errorf("2 tags: cell %d rotated %v picture %v", l.cell, l.rotate, l.size)
	}
	forty := many(40, true)
	path := filepath.Join(dir, "40.png")
	if err := ConfusionPNG(forty, "iteration 12", path); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, path)
	l = layoutChart(forty, "iteration 12")
	size := img.Bounds().Size()
	if size != l.size || size.X > 2000 || size.Y > 2000 {
		t.Errorf("40 tags: picture %v, layout %v", size, l.size)
	}
	if !l.counts || !l.tags || !l.rotate || l.cell < lineHeight() || l.cell < textWidth("1039") {
		t.Errorf("40 tags: cell %d, counts %v, tags %v", l.cell, l.counts, l.tags)
	}
	if !l.cellRect(39, 39).In(img.Bounds()) || l.nameW > textWidth(strings.Repeat("m", chartNameLen)) {
		t.Errorf("40 tags: last cell %v in %v, names %d px wide", l.cellRect(39, 39), img.Bounds(), l.nameW)
	}
	if !strings.HasSuffix(l.names[0], "…") || len([]rune(l.names[0])) != chartNameLen {
		t.Errorf("long name drawn as %q", l.names[0])
	}
	l = layoutChart(many(1000, false), "v1")
	if l.gridRect().Dx() > chartMaxGrid+1 || l.counts || l.tags || l.cell < 1 {
		t.Errorf("1000 tags: grid %v, counts %v, tags %v", l.gridRect(), l.counts, l.tags)
	}
	again := filepath.Join(dir, "again.png")
	if err := ConfusionPNG(forty, "iteration 12", again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("the same matrix drew two different pictures")
	}
}

// TestLoadCOCOAbsolutePath: a file_name that is an absolute path is read where it is, not
// under the COCO file's folder.
func TestLoadCOCOAbsolutePath(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	abs := filepath.Join(elsewhere, "a.jpg")
	raw := fmt.Sprintf(`{"images":[{"id":1,"file_name":%q,"width":10,"height":10}],"annotations":[],"categories":[]}`, filepath.ToSlash(abs))
	os.WriteFile(filepath.Join(dir, "ann.json"), []byte(raw), 0o644)
	got, err := LoadDetection(filepath.Join(dir, "ann.json"))
	if err != nil || len(got) != 1 || got[0].File != abs {
		t.Fatalf("%+v %v, want %s", got, err, abs)
	}
}

// TestClassifierAPByHand: tag a over 5 images ranked by a's probability:
//
//	0.9 a, 0.8 b, 0.7 a, 0.4 b, 0.2 a
//	precision 1, 1/2, 2/3, 2/4, 3/5; recall 1/3, 1/3, 2/3, 2/3, 1
//	monotone precision 1, 2/3, 2/3, 3/5, 3/5
//	AP(a) = 1/3*1 + 1/3*2/3 + 1/3*3/5 = 1/3 + 2/9 + 1/5 = 34/45
//
// Tag b, with probability 1 − a's, ranks 0.8 a, 0.6 b, 0.3 a, 0.2 b, 0.1 a:
//
//	precision 0, 1/2, 1/3, 2/4, 2/5; recall 0, 1/2, 1/2, 1, 1
//	monotone precision 1/2, 1/2, 1/2, 1/2, 2/5
//	AP(b) = 1/2*1/2 + 1/2*1/2 = 1/2
//
// Mean AP (34/45 + 1/2)/2 = 113/180. An image of tag c, which the model does not know, is a
// negative for a and b (ranked last, at probability 0 for both, it changes nothing here)
// and counts in neither.
func TestClassifierAPByHand(t *testing.T) {
	r := NewRanking([]string{"a", "b"})
	for _, im := range []struct {
		truth string
		pa    float64
	}{{"a", 0.9}, {"b", 0.8}, {"a", 0.7}, {"b", 0.4}, {"a", 0.2}} {
		r.Add(im.truth, map[string]float64{"a": im.pa, "b": 1 - im.pa})
	}
	r.Add("c (not in this model)", nil)
	if !near(r.AP("a"), 34.0/45) || !near(r.AP("b"), 0.5) || !near(r.MeanAP(), 113.0/180) {
		t.Fatalf("AP a %v (want 34/45), b %v (want 1/2), mean %v (want 113/180)", r.AP("a"), r.AP("b"), r.MeanAP())
	}
}

// TestHTMLReport: report.html holds everything (the confusion picture and the thumbnails as
// data: URIs, no script, no outside address), escapes every name, and shows at most
// GalleryMax wrong images and failures per model, saying how many more there are.
func TestHTMLReport(t *testing.T) {
	evil := `<img src=x onerror=alert(1)>`
	c := NewConfusion([]string{"a&b<i>", "plain"})
	c.Add(0, 1)
	acc, meanAP := 0.0, 0.5
	m := ModelReport{Name: evil, Images: 2*GalleryMax + 10, Failed: GalleryMax + 3, Accuracy: &acc, MeanAP: &meanAP, Confusion: c,
		Tags: []TagScore{{Tag: "a&b<i>", Support: 1}, {Tag: "plain"}, {Tag: `x"y`, NotInModel: true, Support: 4}}}
	for i := 0; i < GalleryMax+7; i++ {
		x := Misclassified{File: fmt.Sprintf(`/data/<b>%d".png`, i), True: "a&b<i>", Predicted: "plain", Probability: 0.75}
		if i < GalleryMax {
			x.Thumb = []byte{0xff, 0xd8, 0xff, byte(i)}
		}
		m.Misclassified = append(m.Misclassified, x)
	}
	for i := 0; i < GalleryMax+3; i++ {
		m.Failures = append(m.Failures, ImageFailure{File: fmt.Sprintf("f%d.png", i), Reason: "<script>alert(2)</script>"})
	}
	r := &Report{Data: "/d/<data>", Kind: "classification", Created: time.Unix(0, 0).UTC(), Models: []ModelReport{m}}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	for _, bad := range []string{evil, "<script", "a&b<i>", `<b>0"`, "http:", "https:", "<data>"} {
		if strings.Contains(page, bad) {
			t.Errorf("report.html holds %q unescaped or an outside asset", bad)
		}
	}
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt;", "a&amp;b&lt;i&gt;", "&lt;script&gt;alert(2)&lt;/script&gt;", "not in model",
		"7 more are listed in report.md", "3 more are listed in report.md", `src="data:image/png;base64,`, "mean AP 0.500"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if n := strings.Count(page, "<figure>"); n != GalleryMax {
		t.Errorf("%d images in the gallery, want %d", n, GalleryMax)
	}
	if n := strings.Count(page, `src="data:image/jpeg;base64,`); n != GalleryMax {
		t.Errorf("%d thumbnails, want %d", n, GalleryMax)
	}
	if n := strings.Count(page, "<td>f"); n != GalleryMax {
		t.Errorf("%d failures listed, want %d", n, GalleryMax)
	}
	if strings.Count(page, ` src="`) != strings.Count(page, ` src="data:`) {
		t.Error("an image of report.html is not a data: URI")
	}
}
