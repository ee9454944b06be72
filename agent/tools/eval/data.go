package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/cvedge/cvedge/agent/dataset"
)

// imageExt are the image files a data set may hold.
var imageExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".tif": true, ".tiff": true, ".webp": true}

// Labelled is a classification data set: a folder per tag, images inside.
type Labelled struct {
	Dir     string
	Folders []string            // sorted
	Files   map[string][]string // folder -> image paths, sorted
}

// LoadFolders reads a classification data set. It fails, naming the problem, on a folder
// that cannot be read or holds no images.
func LoadFolders(dir string) (*Labelled, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", dir, err)
	}
	l := &Labelled{Dir: dir, Files: map[string][]string{}}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == dataset.Unreviewed || e.Name() == "frames" {
			continue
		}
		var files []string
		err := filepath.WalkDir(filepath.Join(dir, e.Name()), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && imageExt[strings.ToLower(filepath.Ext(p))] {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data set %s: %w", dir, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("data set %s: folder %q holds no images (.jpg, .png, .bmp, .tif, .webp)", dir, e.Name())
		}
		sort.Strings(files)
		l.Folders = append(l.Folders, e.Name())
		l.Files[e.Name()] = files
	}
	if len(l.Folders) == 0 {
		return nil, fmt.Errorf("data set %s is empty: it needs a folder per tag with the tag's images inside (or a COCO JSON file for detectors)", dir)
	}
	sort.Strings(l.Folders)
	if err := refuseAugmented(l); err != nil {
		return nil, err
	}
	return l, nil
}

// refuseAugmented fails on a data set that holds augmented copies (the manifest of cvedge
// collect augment, or a file named as its copies are): scores on them say nothing of the
// field. It leaves masks (<image>.mask.png) out of the images.
func refuseAugmented(l *Labelled) error {
	const fix = "score models on original field images only: give --data the folder that was augmented (collect augment's --in)"
	if _, err := os.Stat(filepath.Join(l.Dir, dataset.AugmentManifest)); err == nil {
		return fmt.Errorf("data set %s holds augmented copies (it has %s, written by cvedge collect augment): %s", l.Dir, dataset.AugmentManifest, fix)
	}
	for _, folder := range l.Folders {
		var keep []string
		for _, f := range l.Files[folder] {
			if dataset.IsAugmented(f) {
				return fmt.Errorf("data set %s: %s is an augmented copy (named <image>.aug-N.jpg by cvedge collect augment): %s", l.Dir, f, fix)
			}
			if !dataset.IsMask(f) {
				keep = append(keep, f)
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("data set %s: folder %q holds only masks (.mask.png), no images", l.Dir, folder)
		}
		l.Files[folder] = keep
	}
	return nil
}

// normalize compares folder names and tags loosely: "Japanese_Cherry" matches
// "JapaneseCherry".
func normalize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MatchFolders maps each folder to a tag of labels: explicit gives folder=tag pairs, other
// folders match a tag equal to them ignoring case, spaces and punctuation. A folder that
// matches no tag, or several, is an error that names it.
func MatchFolders(folders, labels []string, explicit map[string]string) (map[string]string, error) {
	out, unmatched, err := matchFolders(folders, labels, explicit)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, f := range folders {
		if p, ok := unmatched[f]; ok {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return out, nil
}

// matchFolders is MatchFolders that leaves a folder matching no tag out of the map, and
// says why in unmatched; only a folder matching several tags is an error.
func matchFolders(folders, labels []string, explicit map[string]string) (out, unmatched map[string]string, err error) {
	out, unmatched = map[string]string{}, map[string]string{}
	var problems []string
	for _, f := range folders {
		if tag, ok := explicit[f]; ok {
			if !contains(labels, tag) {
				unmatched[f] = fmt.Sprintf("--map %s=%s: the model has no tag %q", f, tag, tag)
				continue
			}
			out[f] = tag
			continue
		}
		var found []string
		for _, l := range labels {
			if normalize(l) == normalize(f) {
				found = append(found, l)
			}
		}
		switch len(found) {
		case 1:
			out[f] = found[0]
		case 0:
			unmatched[f] = fmt.Sprintf("folder %q matches no tag of the model (tags: %s); rename it or give --map %s=TAG", f, strings.Join(labels, ", "), f)
		default:
			problems = append(problems, fmt.Sprintf("folder %q matches several tags (%s); give --map %s=TAG", f, strings.Join(found, ", "), f))
		}
	}
	if len(problems) > 0 {
		return nil, nil, errors.New(strings.Join(problems, "\n"))
	}
	return out, unmatched, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ImageTruth is one image of a detection data set with its boxes.
type ImageTruth struct {
	File    string
	Objects []Object
}

// LoadDetection reads a detection data set: a COCO JSON file (images beside it), or a folder
// written by `cvedge collect` (its index, frames and regions).
func LoadDetection(path string) ([]ImageTruth, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", path, err)
	}
	var out []ImageTruth
	if st.IsDir() {
		out, err = loadIndex(path)
	} else {
		out, err = loadCOCO(path)
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("data set %s holds no labelled images", path)
	}
	return out, nil
}

func loadIndex(dir string) ([]ImageTruth, error) {
	entries, err := dataset.ReadIndex(dir)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w (a detection data set is a COCO JSON file or a folder written by cvedge collect)", dir, err)
	}
	var out []ImageTruth
	for _, e := range entries {
		if e.Tag == "" || e.FrameFile == "" || e.Region == nil {
			continue // unreviewed, or no frame to look at
		}
		r := e.Region
		out = append(out, ImageTruth{File: filepath.Join(dir, filepath.FromSlash(e.FrameFile)),
			Objects: []Object{{Tag: e.Tag, Box: Box{float64(r.Left), float64(r.Top), float64(r.Width), float64(r.Height)}}}})
	}
	return out, nil
}

// coco is the part of the COCO format the evaluation reads.
type coco struct {
	Images []struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	} `json:"images"`
	Annotations []struct {
		ImageID    int64     `json:"image_id"`
		CategoryID int64     `json:"category_id"`
		BBox       []float64 `json:"bbox"`
	} `json:"annotations"`
	Categories []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
}

func loadCOCO(path string) ([]ImageTruth, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", path, err)
	}
	var c coco
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("data set %s: not COCO JSON: %v", path, err)
	}
	cats := map[int64]string{}
	for _, cat := range c.Categories {
		cats[cat.ID] = cat.Name
	}
	byID := map[int64]int{}
	out := make([]ImageTruth, 0, len(c.Images))
	for _, im := range c.Images {
		if im.Width <= 0 || im.Height <= 0 {
			return nil, fmt.Errorf("data set %s: image %q has no width and height", path, im.FileName)
		}
		byID[im.ID] = len(out)
		file := filepath.FromSlash(im.FileName)
		if !filepath.IsAbs(file) { // relative to the COCO file; an absolute path stays
			file = filepath.Join(filepath.Dir(path), file)
		}
		out = append(out, ImageTruth{File: file})
	}
	for i, a := range c.Annotations {
		idx, ok := byID[a.ImageID]
		name, known := cats[a.CategoryID]
		if !ok || !known || len(a.BBox) != 4 {
			return nil, fmt.Errorf("data set %s: annotation %d names an unknown image or category, or its bbox is not [x, y, width, height]", path, i)
		}
		w, h := float64(c.Images[idx].Width), float64(c.Images[idx].Height)
		out[idx].Objects = append(out[idx].Objects, Object{Tag: name, Box: Box{a.BBox[0] / w, a.BBox[1] / h, a.BBox[2] / w, a.BBox[3] / h}})
	}
	return out, nil
}
