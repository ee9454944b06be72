package augment

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the sizes of images and masks, before OpenCV reads them
	_ "image/png"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/preprocess"
)

// imageExt are the image files a data set may hold (as cvedge eval reads them).
var imageExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// Quality is the JPEG quality of the copies.
const Quality = 95

// Options are the settings of a run.
type Options struct {
	In, Out string
	// Copies is the number of augmented copies of each source image.
	Copies int
	Seed   int64
	Ops    Ops
	// MaxImages bounds the source images taken from each tag folder (the first by name); 0:
	// all of them.
	MaxImages int
	// Backgrounds is a folder of background photos for the images that have a mask.
	Backgrounds string
	Log         *slog.Logger
	// Progress is called after each source image, with the count done and the total.
	Progress func(n, total int)
}

// Entry is one line of augment.jsonl: a file written into --out.
type Entry struct {
	// Source is the image, relative to --in (and to --out, where it is copied); SHA256 is
	// its content's.
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
	// File is what was written, relative to --out: the source itself for Copy 0, an
	// augmented copy for 1, 2, ...
	File string `json:"file"`
	Copy int    `json:"copy"`
	// Seed and Ops are those of the run (--seed, --ops as written by Ops.String); Steps are
	// the transforms applied to this copy with their drawn parameters, in order.
	Seed  int64  `json:"seed"`
	Ops   string `json:"ops"`
	Steps []Step `json:"steps,omitempty"`
}

// Summary is what a run did.
type Summary struct {
	In       string `json:"in"`
	Out      string `json:"out"`
	Tags     int    `json:"tags"`
	Sources  int    `json:"sources"`
	Written  int    `json:"written"`  // files written in this run, sources and copies
	Skipped  int    `json:"skipped"`  // files the manifest already had
	Images   int    `json:"images"`   // the images in --out now
	Warnings int    `json:"warnings"` // files of --in left out (not images, stray masks, copies)
	// Failed are the source images that could not be augmented, each with why.
	Failed []string `json:"failed,omitempty"`
}

// source is one image of --in.
type source struct {
	rel, mask string // relative to --in; mask "" when none
}

// Run writes o.Copies augmented copies of every image of o.In, and the images themselves,
// into o.Out, with augment.jsonl. Files the manifest has are not written again. An image that
// cannot be augmented is named in Summary.Failed and the error; the others are done.
func Run(ctx context.Context, o Options) (Summary, error) {
	sum := Summary{In: o.In, Out: o.Out}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(int, int) {}
	}
	if o.Copies < 1 {
		return sum, errors.New("--copies: give the number of augmented copies of each image, 1 or more")
	}
	if err := checkFolders(o.In, o.Out, o.Backgrounds); err != nil {
		return sum, err
	}
	tags, sources, warnings, err := scan(o.In, o.MaxImages, o.Log)
	if err != nil {
		return sum, err
	}
	sum.Tags, sum.Warnings = tags, warnings
	var backgrounds []string
	if o.Backgrounds != "" {
		if backgrounds, err = listBackgrounds(o.Backgrounds); err != nil {
			return sum, err
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return sum, fmt.Errorf("--out %s: %w", o.Out, err)
	}
	done, err := readManifest(o.Out, o.Seed, o.Ops.String())
	if err != nil {
		return sum, err
	}
	mf, err := os.OpenFile(filepath.Join(o.Out, dataset.AugmentManifest), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return sum, fmt.Errorf("--out %s: %w", o.Out, err)
	}
	defer mf.Close()
	w := &writer{o: o, manifest: mf, done: done, backgrounds: backgrounds, sum: &sum}
	for i, s := range sources {
		if err := ctx.Err(); err != nil {
			sum.Images = countImages(o.Out)
			return sum, fmt.Errorf("stopped after %d of %d images; what is written is kept: run the same command again to go on (%w)", i, len(sources), err)
		}
		if err := w.image(s); err != nil {
			var st stopError
			if errors.As(err, &st) {
				return sum, st.err
			}
			sum.Failed = append(sum.Failed, err.Error())
			o.Log.Warn("image not augmented", "image", filepath.Join(o.In, s.rel), "err", err)
		} else {
			sum.Sources++
		}
		o.Progress(i+1, len(sources))
	}
	sum.Images = countImages(o.Out)
	if len(sum.Failed) > 0 {
		return sum, fmt.Errorf("%d of %d images could not be augmented (fix or remove them and run again: what is done is kept); the first: %s", len(sum.Failed), len(sources), sum.Failed[0])
	}
	return sum, nil
}

// stopError is a failure to write into --out: the run stops.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// writer writes the copies of each source image.
type writer struct {
	o           Options
	manifest    *os.File
	done        map[string]bool
	backgrounds []string
	sum         *Summary
}

// image writes the copies of s, then s itself, each unless the manifest has it.
func (w *writer) image(s source) error {
	in := filepath.Join(w.o.In, filepath.FromSlash(s.rel))
	raw, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	h := sha256.Sum256(raw)
	sha := hex.EncodeToString(h[:])
	var mask []byte
	if s.mask != "" && len(w.backgrounds) > 0 {
		maskPath := filepath.Join(w.o.In, filepath.FromSlash(s.mask))
		if mask, err = os.ReadFile(maskPath); err != nil {
			return fmt.Errorf("%s: %w", maskPath, err)
		}
		if err := sameSize(raw, mask); err != nil {
			return fmt.Errorf("%s: %w (white = the part, black = the background); fix or remove it", maskPath, err)
		}
	}
	spec := w.o.Ops.String()
	for k := 1; k <= w.o.Copies; k++ {
		rel := dataset.AugmentedName(s.rel, k)
		if w.done[rel] && exists(filepath.Join(w.o.Out, filepath.FromSlash(rel))) {
			w.sum.Skipped++
			continue
		}
		a, steps, bgIndex := draw(rng(w.o.Seed, sha, k), w.o.Ops, mask != nil, len(w.backgrounds))
		var bg []byte
		if bgIndex >= 0 {
			bgPath := w.backgrounds[bgIndex]
			if bg, err = os.ReadFile(bgPath); err != nil {
				return fmt.Errorf("background %s: %w", bgPath, err)
			}
			steps[0]["file"] = filepath.Base(bgPath)
		}
		out, err := preprocess.AugmentImage(raw, mask, bg, a, Quality)
		if err != nil {
			if bgIndex >= 0 && strings.HasPrefix(err.Error(), "background") {
				return fmt.Errorf("%s: %w; remove it from --backgrounds", w.backgrounds[bgIndex], err)
			}
			return fmt.Errorf("%s: %w", in, err)
		}
		if err := w.write(Entry{Source: s.rel, SHA256: sha, File: rel, Copy: k, Seed: w.o.Seed, Ops: spec, Steps: steps}, out); err != nil {
			return err
		}
	}
	if w.done[s.rel] && exists(filepath.Join(w.o.Out, filepath.FromSlash(s.rel))) {
		w.sum.Skipped++
		return nil
	}
	return w.write(Entry{Source: s.rel, SHA256: sha, File: s.rel, Copy: 0, Seed: w.o.Seed, Ops: spec}, raw)
}

// write writes a file into --out (atomically), then its manifest line.
func (w *writer) write(e Entry, data []byte) error {
	path := filepath.Join(w.o.Out, filepath.FromSlash(e.File))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return stopError{fmt.Errorf("--out %s: %w", w.o.Out, err)}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return stopError{fmt.Errorf("%s: %w", path, err)}
	}
	if err := os.Rename(tmp, path); err != nil {
		return stopError{fmt.Errorf("%s: %w", path, err)}
	}
	if w.done[e.File] {
		w.sum.Written++ // removed since: written again, as the manifest says already
		return nil
	}
	line, err := json.Marshal(e)
	if err != nil {
		return stopError{err}
	}
	if _, err := w.manifest.Write(append(line, '\n')); err != nil {
		return stopError{fmt.Errorf("%s: %w", w.manifest.Name(), err)}
	}
	w.done[e.File] = true
	w.sum.Written++
	return nil
}

// sameSize checks that a mask has its image's size, when Go can read both headers (JPEG,
// PNG); OpenCV checks the others.
func sameSize(img, mask []byte) error {
	ic, _, err1 := image.DecodeConfig(bytes.NewReader(img))
	mc, _, err2 := image.DecodeConfig(bytes.NewReader(mask))
	if err2 != nil {
		return fmt.Errorf("not a PNG image: %w", err2)
	}
	if err1 == nil && (ic.Width != mc.Width || ic.Height != mc.Height) {
		return fmt.Errorf("the mask is %dx%d but its image is %dx%d: a mask must have its image's size", mc.Width, mc.Height, ic.Width, ic.Height)
	}
	return nil
}

// checkFolders refuses an --out that would mix augmented copies into a data set: --in itself
// or a folder inside it, a folder inside another data set (index.jsonl or augment.jsonl above
// it, or a folder of images beside it, as a tag folder), or a folder that holds files but no
// augment.jsonl.
func checkFolders(in, out, backgrounds string) error {
	if in == "" || out == "" {
		return errors.New("give --in (the data set) and --out (a new folder for the augmented set)")
	}
	st, err := os.Stat(in)
	if err != nil {
		return fmt.Errorf("--in %s: %w", in, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--in %s is not a folder: give the data set folder (a folder per tag)", in)
	}
	if exists(filepath.Join(in, dataset.AugmentManifest)) {
		return fmt.Errorf("--in %s holds augmented copies already (%s): give the original data set", in, dataset.AugmentManifest)
	}
	absIn, err1 := filepath.Abs(in)
	absOut, err2 := filepath.Abs(out)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if absIn, err = filepath.EvalSymlinks(absIn); err != nil {
		return fmt.Errorf("--in %s: %w", in, err)
	}
	absOut = resolveExisting(absOut)
	if within(absOut, absIn) || within(absIn, absOut) {
		return fmt.Errorf("--out %s and --in %s overlap: give an --out outside the data set, so its copies never mix with the originals", out, in)
	}
	for dir := filepath.Dir(absOut); ; dir = filepath.Dir(dir) {
		for _, marker := range []string{dataset.IndexFile, dataset.AugmentManifest} {
			if exists(filepath.Join(dir, marker)) {
				return fmt.Errorf("--out %s is inside the data set %s (it has %s): copies there would be scored by cvedge eval or uploaded with it; give a folder outside it", out, dir, marker)
			}
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	if tags := tagFoldersBeside(absOut, backgrounds); tags != nil {
		return fmt.Errorf("--out %s is inside what looks like a data set: %s beside it hold images, as tag folders do, so --out would be taken as a tag by cvedge eval or an upload; give a folder outside it", out, strings.Join(tags, " and "))
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if len(entries) > 0 && !exists(filepath.Join(out, dataset.AugmentManifest)) {
		return fmt.Errorf("--out %s holds files but no %s: give a new or empty folder (augmented copies never go into an existing data set)", out, dataset.AugmentManifest)
	}
	return nil
}

// tagFoldersBeside returns the folders beside out (in the same parent) that hold images
// themselves, as the tag folders of a data set do, when there are two or more (a
// classification project has two tags at least); the backgrounds folder does not count.
func tagFoldersBeside(out, backgrounds string) []string {
	parent := filepath.Dir(out)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var tags []string
	for _, e := range entries {
		dir := filepath.Join(parent, e.Name())
		if !e.IsDir() || e.Name() == filepath.Base(out) || strings.HasPrefix(e.Name(), ".") || (backgrounds != "" && sameDir(dir, backgrounds)) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(parent, e.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			if !f.IsDir() && imageExt[strings.ToLower(filepath.Ext(f.Name()))] {
				tags = append(tags, dir)
				break
			}
		}
	}
	if len(tags) < 2 {
		return nil
	}
	return tags
}

// sameDir reports whether two paths name the same folder.
func sameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// resolveExisting resolves the symbolic links of the longest part of path that exists.
func resolveExisting(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if p == filepath.Dir(p) {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// scan lists the tag folders of --in and their images (at most max each, 0: all), with their
// masks. Files that are not images are left out with a warning naming them.
func scan(in string, max int, log *slog.Logger) (tags int, out []source, warnings int, err error) {
	entries, err := os.ReadDir(in)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("--in %s: %w", in, err)
	}
	warn := func(msg, file string) {
		warnings++
		log.Warn(msg, "file", file)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == dataset.Unreviewed || e.Name() == "frames" {
			continue
		}
		var images []string
		masks := map[string]bool{}
		err := filepath.WalkDir(filepath.Join(in, e.Name()), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(in, p)
			rel = filepath.ToSlash(rel)
			switch {
			case dataset.IsMask(rel):
				masks[rel] = true
			case dataset.IsAugmented(rel):
				warn("left out: an augmented copy in --in (only original images are augmented)", p)
			case imageExt[strings.ToLower(filepath.Ext(p))]:
				images = append(images, rel)
			default:
				warn("left out: not an image (.jpg, .png, .bmp, .tif, .webp)", p)
			}
			return nil
		})
		if err != nil {
			return 0, nil, 0, fmt.Errorf("--in %s: %w", in, err)
		}
		sort.Strings(images)
		// a.jpg and a.png would share their copies' names (a.aug-1.jpg) and their mask: the
		// second is left out, said
		stems := map[string]string{}
		kept := images[:0]
		for _, img := range images {
			stem := strings.TrimSuffix(img, filepath.Ext(img))
			if first, ok := stems[stem]; ok {
				warn("left out: another image of the same name ("+filepath.Base(first)+") takes its copies' names; rename one", filepath.Join(in, img))
				continue
			}
			stems[stem] = img
			kept = append(kept, img)
		}
		images = kept
		for m := range masks {
			if !hasImage(images, m) {
				warn("left out: a mask without its image (red/a.mask.png is the mask of red/a.jpg)", filepath.Join(in, m))
			}
		}
		if len(images) == 0 {
			warn("left out: a tag folder with no images", filepath.Join(in, e.Name()))
			continue
		}
		if max > 0 && len(images) > max {
			images = images[:max]
		}
		tags++
		for _, img := range images {
			s := source{rel: img}
			if m := maskOf(img); masks[m] {
				s.mask = m
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return 0, nil, warnings, fmt.Errorf("--in %s holds no images: it needs a folder per tag with the tag's images inside (the layout cvedge collect writes)", in)
	}
	return tags, out, warnings, nil
}

// maskOf is the name of an image's mask.
func maskOf(image string) string {
	return strings.TrimSuffix(image, filepath.Ext(image)) + dataset.MaskSuffix
}

func hasImage(images []string, mask string) bool {
	for _, img := range images {
		if maskOf(img) == mask {
			return true
		}
	}
	return false
}

// listBackgrounds lists the images of the --backgrounds folder, sorted.
func listBackgrounds(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--backgrounds %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && imageExt[strings.ToLower(filepath.Ext(e.Name()))] {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--backgrounds %s holds no images (.jpg, .png, .bmp, .tif, .webp): give a folder of background photos", dir)
	}
	return out, nil
}

// readManifest reads augment.jsonl: the files it has, by their path in --out. A line cut
// short by a crash is dropped. A manifest made with another seed or other ops is refused:
// its copies would not be those of this run.
func readManifest(out string, seed int64, ops string) (map[string]bool, error) {
	done := map[string]bool{}
	path := filepath.Join(out, dataset.AugmentManifest)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	good := int64(0)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a last line without its newline was cut short
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var e Entry
		if jerr := json.Unmarshal(line, &e); jerr != nil || e.File == "" {
			return nil, fmt.Errorf("%s line %d is not a manifest entry (%v): give a new --out", path, n, jerr)
		}
		if e.Seed != seed || e.Ops != ops {
			return nil, fmt.Errorf("--out %s was made with --seed %d --ops %s: give those again to resume it, or a new --out", out, e.Seed, e.Ops)
		}
		done[e.File] = true
		good += int64(len(line))
	}
	if st, err := os.Stat(path); err == nil && st.Size() > good {
		if err := os.Truncate(path, good); err != nil {
			return nil, fmt.Errorf("%s: repairing a line cut short: %w", path, err)
		}
	}
	return done, nil
}

// countImages counts the images in the tag folders of dir.
func countImages(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && imageExt[strings.ToLower(filepath.Ext(p))] {
			n++
		}
		return nil
	})
	return n
}
