package eval

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/tools/augment"
)

func pngFile(t *testing.T, path string, n int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 24, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 24; x++ {
			img.Set(x, y, color.RGBA{uint8(n * 50), uint8(x * 8), uint8(y * 12), 255})
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// TestLoadFoldersRefusesAugmentedCopies: the output of collect augment, or one of its copies
// moved into a field data set, is refused with the folder and the fix; masks are not images.
func TestLoadFoldersRefusesAugmentedCopies(t *testing.T) {
	in := filepath.Join(t.TempDir(), "field")
	for i, name := range []string{"red/a.png", "red/b.png", "green/c.png"} {
		pngFile(t, filepath.Join(in, filepath.FromSlash(name)), i)
	}
	pngFile(t, filepath.Join(in, "red", "a"+dataset.MaskSuffix), 9)
	l, err := LoadFolders(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Files["red"]) != 2 {
		t.Fatalf("red: %v: the mask is not an image to score", l.Files["red"])
	}
	out := filepath.Join(t.TempDir(), "augmented")
	ops, _ := augment.ParseOps("")
	if _, err := augment.Run(context.Background(), augment.Options{In: in, Out: out, Copies: 2, Seed: 1, Ops: ops}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFolders(out); err == nil || !strings.Contains(err.Error(), "data set "+out+" holds augmented copies (it has augment.jsonl") ||
		!strings.Contains(err.Error(), "give --data the folder that was augmented") {
		t.Fatalf("the augmented set: %v", err)
	}
	// a copy moved by hand into the field set
	raw, _ := os.ReadFile(filepath.Join(out, "green", "c.aug-1.jpg"))
	os.WriteFile(filepath.Join(in, "green", "c.aug-1.jpg"), raw, 0o644)
	if _, err := LoadFolders(in); err == nil || !strings.Contains(err.Error(), filepath.Join(in, "green", "c.aug-1.jpg")+" is an augmented copy") {
		t.Fatalf("a copy in the field set: %v", err)
	}
}
