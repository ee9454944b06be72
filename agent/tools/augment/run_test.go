package augment

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/dataset"
)

// writeImage writes a w x h image whose colours depend on n, as PNG or JPEG by the name.
func writeImage(t testing.TB, path string, w, h, n int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(40 + n*30 + x*3), uint8(60 + y*4), uint8(90 + (x*y)%60), 255})
		}
	}
	writeEncoded(t, path, img)
}

func writeEncoded(t testing.TB, path string, img image.Image) {
	t.Helper()
	var b bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 95})
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, b.Bytes(), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// firstSet writes a data set of two tags, three images each (one of them a PNG), and a file
// that is not an image.
func firstSet(t testing.TB) string {
	in := filepath.Join(t.TempDir(), "first-set")
	for i, name := range []string{"red/a.jpg", "red/b.jpg", "red/c.png", "green/d.jpg", "green/e.jpg", "green/f.png"} {
		writeImage(t, filepath.Join(in, filepath.FromSlash(name)), 40, 30, i)
	}
	os.WriteFile(filepath.Join(in, "red", "notes.txt"), []byte("shot on line 3"), 0o644)
	return in
}

var quiet = slog.New(slog.DiscardHandler)

func options(in, out string) Options {
	ops, _ := ParseOps("")
	return Options{In: in, Out: out, Copies: 2, Seed: 7, Ops: ops, Log: quiet}
}

func manifestOf(t *testing.T, out string) []Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(out, dataset.AugmentManifest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var list []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("manifest line %q: %v", sc.Text(), err)
		}
		list = append(list, e)
	}
	return list
}

// files reads every file under dir but the manifest, by relative path.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != dataset.AugmentManifest {
			raw, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = raw
		}
		return nil
	})
	return out
}

func sha(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

// TestRunWritesTheSetAndItsManifest: --out holds each image and its copies in the tag's
// folder, and augment.jsonl says where each came from and what was done to it.
func TestRunWritesTheSetAndItsManifest(t *testing.T) {
	in := firstSet(t)
	out := filepath.Join(t.TempDir(), "augmented")
	sum, err := Run(context.Background(), options(in, out))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tags != 2 || sum.Sources != 6 || sum.Written != 18 || sum.Skipped != 0 || sum.Images != 18 || sum.Warnings != 1 {
		t.Fatalf("summary %+v: want 2 tags, 6 images, 18 files written (each image and 2 copies), notes.txt warned about", sum)
	}
	got := files(t, out)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "green/d.aug-1.jpg green/d.aug-2.jpg green/d.jpg green/e.aug-1.jpg green/e.aug-2.jpg green/e.jpg green/f.aug-1.jpg green/f.aug-2.jpg green/f.png "+
		"red/a.aug-1.jpg red/a.aug-2.jpg red/a.jpg red/b.aug-1.jpg red/b.aug-2.jpg red/b.jpg red/c.aug-1.jpg red/c.aug-2.jpg red/c.png" {
		t.Fatalf("--out holds %v", names)
	}
	raw, _ := os.ReadFile(filepath.Join(out, dataset.AugmentManifest))
	if !strings.Contains(string(raw), `"steps":[{"op":"rotate","degrees":`) {
		t.Fatalf("manifest steps do not start with their op:\n%s", raw)
	}
	entries := manifestOf(t, out)
	if len(entries) != 18 {
		t.Fatalf("%d manifest entries, want 18", len(entries))
	}
	ops := map[string]bool{}
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(in, filepath.FromSlash(e.Source)))
		if err != nil {
			t.Fatalf("entry %+v: its source: %v", e, err)
		}
		if e.SHA256 != sha(src) || e.Seed != 7 || e.Ops != DefaultOps {
			t.Fatalf("entry %+v: want the source's SHA-256 %s, seed 7 and the default ops", e, sha(src))
		}
		switch {
		case e.Copy == 0:
			if e.File != e.Source || !bytes.Equal(got[e.File], src) || len(e.Steps) != 0 {
				t.Fatalf("entry %+v: the source is copied as it is, with no steps", e)
			}
		default:
			if e.File != dataset.AugmentedName(e.Source, e.Copy) || len(e.Steps) == 0 {
				t.Fatalf("entry %+v: want the copy named after its source, with its steps", e)
			}
			img, err := jpeg.Decode(bytes.NewReader(got[e.File]))
			if err != nil || img.Bounds() != image.Rect(0, 0, 40, 30) {
				t.Fatalf("%s: %v, %v: want a JPEG of the source's size", e.File, err, img.Bounds())
			}
			for _, s := range e.Steps {
				ops[s["op"].(string)] = true
				if s["op"] == "rotate" && (s["degrees"].(float64) < -15 || s["degrees"].(float64) > 15) {
					t.Fatalf("%s: rotated by %v, outside -15..15", e.File, s["degrees"])
				}
			}
		}
	}
	// on every copy: rotate, scale, shift, brightness, contrast, saturation, noise
	for _, op := range []string{"rotate", "scale", "shift", "brightness", "contrast", "saturation", "noise"} {
		if !ops[op] {
			t.Errorf("no copy records %s", op)
		}
	}
	if ops["background"] {
		t.Error("a background swap without masks or backgrounds")
	}
}

// TestRunIsReproducible: the same seed gives the same files, byte for byte; another seed
// other copies.
func TestRunIsReproducible(t *testing.T) {
	in := firstSet(t)
	one, two, other := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two"), filepath.Join(t.TempDir(), "other")
	for _, out := range []string{one, two} {
		if _, err := Run(context.Background(), options(in, out)); err != nil {
			t.Fatal(err)
		}
	}
	o := options(in, other)
	o.Seed = 8
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	a, b, c := files(t, one), files(t, two), files(t, other)
	differ := 0
	for name, raw := range a {
		if !bytes.Equal(raw, b[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
		if !bytes.Equal(raw, c[name]) {
			differ++
		}
	}
	if differ != 12 {
		t.Fatalf("%d files differ with another seed, want the 12 copies", differ)
	}
	// a copy does not depend on what was done before it: one image per tag gives the same
	// copies of those images as the whole set
	few := filepath.Join(t.TempDir(), "few")
	o = options(in, few)
	o.MaxImages = 1
	if sum, err := Run(context.Background(), o); err != nil || sum.Sources != 2 {
		t.Fatalf("--max-images 1: %+v %v", sum, err)
	}
	for name, raw := range files(t, few) {
		if !bytes.Equal(raw, a[name]) {
			t.Errorf("%s with --max-images 1 differs from the whole set's", name)
		}
	}
	// and two images do not get the same draws
	steps := map[string]string{}
	for _, e := range manifestOf(t, one) {
		js, _ := json.Marshal(e.Steps)
		if e.Copy == 1 {
			if other, dup := steps[string(js)]; dup {
				t.Errorf("%s and %s got the same transforms %s", other, e.File, js)
			}
			steps[string(js)] = e.File
		}
	}
}

// TestRunResumes: a second run writes nothing; after a crash (a copy missing, the manifest's
// last line cut short) it writes only what is missing, the same as before; another seed or
// other ops are refused.
func TestRunResumes(t *testing.T) {
	in := firstSet(t)
	out := filepath.Join(t.TempDir(), "augmented")
	if _, err := Run(context.Background(), options(in, out)); err != nil {
		t.Fatal(err)
	}
	before := files(t, out)
	sum, err := Run(context.Background(), options(in, out))
	if err != nil || sum.Written != 0 || sum.Skipped != 18 {
		t.Fatalf("second run: %+v %v: want nothing written, 18 skipped", sum, err)
	}
	// the crash: the last file written is gone, and its manifest line is cut short
	entries := manifestOf(t, out)
	last := entries[len(entries)-1]
	os.Remove(filepath.Join(out, filepath.FromSlash(last.File)))
	manifest := filepath.Join(out, dataset.AugmentManifest)
	raw, _ := os.ReadFile(manifest)
	os.WriteFile(manifest, raw[:len(raw)-20], 0o644)
	os.Remove(filepath.Join(out, "green", "e.aug-2.jpg")) // and a copy removed by hand
	sum, err = Run(context.Background(), options(in, out))
	if err != nil || sum.Written != 2 || sum.Skipped != 16 {
		t.Fatalf("resumed: %+v %v: want the 2 missing files written", sum, err)
	}
	after := files(t, out)
	for name, raw := range before {
		if !bytes.Equal(raw, after[name]) {
			t.Errorf("%s is not the same after resuming", name)
		}
	}
	if n := len(manifestOf(t, out)); n != 18 {
		t.Fatalf("%d manifest entries after resuming, want 18", n)
	}
	o := options(in, out)
	o.Seed = 9
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "was made with --seed 7 --ops "+DefaultOps) {
		t.Fatalf("another seed: %v", err)
	}
	o = options(in, out)
	o.Ops, _ = ParseOps("flip=v")
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "give those again to resume it, or a new --out") {
		t.Fatalf("other ops: %v", err)
	}
	// more copies later: only the new ones are written
	o = options(in, out)
	o.Copies = 3
	if sum, err := Run(context.Background(), o); err != nil || sum.Written != 6 {
		t.Fatalf("--copies 3 after 2: %+v %v", sum, err)
	}
}

// TestRunSwapsTheBackground: the copies of a masked image show the part (the mask's white)
// on the background photo, and the manifest names the photo.
func TestRunSwapsTheBackground(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	writeImage(t, filepath.Join(in, "red", "a.png"), 40, 30, 1)
	mask := image.NewGray(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 20; x++ {
			mask.SetGray(x, y, color.Gray{255})
		}
	}
	writeEncoded(t, filepath.Join(in, "red", "a"+dataset.MaskSuffix), mask)
	bgDir := filepath.Join(t.TempDir(), "backgrounds")
	blue := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			blue.Set(x, y, color.RGBA{0, 0, 255, 255})
		}
	}
	writeEncoded(t, filepath.Join(bgDir, "wall.png"), blue)
	out := filepath.Join(t.TempDir(), "out")
	o := options(in, out)
	o.Ops, _ = ParseOps("background=1")
	o.Backgrounds = bgDir
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	src, _ := os.Open(filepath.Join(in, "red", "a.png"))
	srcImg, _ := png.Decode(src)
	src.Close()
	for _, e := range manifestOf(t, out) {
		if e.Copy == 0 {
			continue
		}
		if len(e.Steps) != 1 || e.Steps[0]["op"] != "background" || e.Steps[0]["file"] != "wall.png" {
			t.Fatalf("%s: steps %v, want the background wall.png", e.File, e.Steps)
		}
		raw, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(e.File)))
		img, err := jpeg.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		near := func(a, b color.Color) bool {
			r1, g1, b1, _ := a.RGBA()
			r2, g2, b2, _ := b.RGBA()
			d := func(x, y uint32) bool { return x>>8 <= y>>8+24 && y>>8 <= x>>8+24 }
			return d(r1, r2) && d(g1, g2) && d(b1, b2)
		}
		for _, p := range []image.Point{{2, 2}, {10, 15}, {16, 28}} { // inside the mask: the part
			if !near(img.At(p.X, p.Y), srcImg.At(p.X, p.Y)) {
				t.Fatalf("%s at %v: %v, want the source's %v", e.File, p, img.At(p.X, p.Y), srcImg.At(p.X, p.Y))
			}
		}
		for _, p := range []image.Point{{24, 2}, {30, 15}, {38, 28}} { // outside: the background
			if !near(img.At(p.X, p.Y), color.RGBA{0, 0, 255, 255}) {
				t.Fatalf("%s at %v: %v, want the background's blue", e.File, p, img.At(p.X, p.Y))
			}
		}
	}
	if _, ok := files(t, out)["red/a"+dataset.MaskSuffix]; ok {
		t.Fatal("the mask was copied into --out: it would be uploaded as an image")
	}
}

// TestRunBadInputs: each bad input is refused or named, and nothing panics.
func TestRunBadInputs(t *testing.T) {
	run := func(o Options) (Summary, error) { return Run(context.Background(), o) }
	tmp := t.TempDir()

	// an image that does not decode, and a mask of another size: named; the others are done
	in := firstSet(t)
	os.WriteFile(filepath.Join(in, "red", "broken.jpg"), []byte("\xff\xd8 not really"), 0o644)
	writeEncoded(t, filepath.Join(in, "green", "d"+dataset.MaskSuffix), image.NewGray(image.Rect(0, 0, 8, 8)))
	writeEncoded(t, filepath.Join(in, "green", "orphan"+dataset.MaskSuffix), image.NewGray(image.Rect(0, 0, 8, 8)))
	os.MkdirAll(filepath.Join(in, "empty"), 0o755)
	writeImage(t, filepath.Join(in, "red", "a.png"), 40, 30, 9) // a.jpg's name: its copies would be a.jpg's
	bg := filepath.Join(tmp, "bg")
	writeImage(t, filepath.Join(bg, "wall.jpg"), 50, 50, 3)
	o := options(in, filepath.Join(tmp, "out1"))
	o.Backgrounds = bg
	sum, err := run(o)
	if err == nil || !strings.Contains(err.Error(), "2 of 7 images could not be augmented") || len(sum.Failed) != 2 {
		t.Fatalf("%+v %v", sum, err)
	}
	all := strings.Join(sum.Failed, "\n")
	for _, want := range []string{filepath.Join(in, "red", "broken.jpg") + ": image: not an image OpenCV can read",
		filepath.Join(in, "green", "d.mask.png") + ": the mask is 8x8 but its image is 40x30"} {
		if !strings.Contains(all, want) {
			t.Errorf("failures %q: want %q", all, want)
		}
	}
	if sum.Sources != 5 || sum.Warnings != 4 {
		t.Fatalf("%+v: want the 5 good images done; notes.txt, red/a.png (a.jpg's name), the orphan mask and the empty folder warned about", sum)
	}

	for _, c := range []struct {
		name string
		o    func() Options
		want string
	}{
		{"no images", func() Options { return options(t.TempDir(), filepath.Join(tmp, "o2")) }, "holds no images: it needs a folder per tag"},
		{"--in missing", func() Options { return options(filepath.Join(tmp, "nope"), filepath.Join(tmp, "o3")) }, "--in " + filepath.Join(tmp, "nope")},
		{"--out inside --in", func() Options { return options(in, filepath.Join(in, "aug")) }, "overlap: give an --out outside the data set"},
		{"--in inside --out", func() Options { return options(in, filepath.Dir(in)) }, "overlap"},
		{"--out an existing data set", func() Options { return options(in, firstSet(t)) }, "holds files but no augment.jsonl: give a new or empty folder"},
		{"--out inside a collect data set", func() Options {
			ds := t.TempDir()
			os.WriteFile(filepath.Join(ds, dataset.IndexFile), nil, 0o644)
			return options(in, filepath.Join(ds, "sub", "aug"))
		}, "it has index.jsonl"},
		{"--out inside a folder-per-tag data set", func() Options {
			ds := firstSet(t)
			return options(in, filepath.Join(ds, "extra"))
		}, "first-set/green and "},
		{"--in augmented already", func() Options { return options(filepath.Join(tmp, "out1"), filepath.Join(tmp, "o4")) }, "holds augmented copies already"},
		{"--backgrounds empty", func() Options { o := options(in, filepath.Join(tmp, "o5")); o.Backgrounds = t.TempDir(); return o }, "holds no images"},
		{"--copies 0", func() Options { o := options(in, filepath.Join(tmp, "o6")); o.Copies = 0; return o }, "--copies"},
		{"a broken manifest", func() Options {
			out := filepath.Join(tmp, "o7")
			os.MkdirAll(out, 0o755)
			os.WriteFile(filepath.Join(out, dataset.AugmentManifest), []byte("{not json}\n"), 0o644)
			return options(in, out)
		}, "line 1 is not a manifest entry"},
	} {
		if _, err := run(c.o()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestRunStopsWhenCancelled: a cancelled run stops between images, keeping what it wrote.
func TestRunStopsWhenCancelled(t *testing.T) {
	in := firstSet(t)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	o := options(in, out)
	o.Progress = func(n, total int) {
		if n == 2 {
			cancel()
		}
	}
	sum, err := Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "stopped after 2 of 6 images") || sum.Images != 6 {
		t.Fatalf("%+v %v", sum, err)
	}
	sum, err = Run(context.Background(), options(in, out))
	if err != nil || sum.Written != 12 || sum.Skipped != 6 {
		t.Fatalf("after the stop: %+v %v", sum, err)
	}
}
