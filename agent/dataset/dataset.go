// Package dataset is the folder format of a data set for Custom Vision: a folder per tag
// (the operator's corrected tag), an unreviewed/ area for samples nobody has tagged yet,
// frames/ for whole frames, and a JSONL index with where each image came from, bounded by a
// quota. The daemon's collect step writes it (cameras[].collect), `cvedge collect` fills it
// from the samples agents publish and uploads it, `cvedge eval` reads it.
//
// It owns the folder, its index and its quota; it knows nothing of MQTT, models or the
// training API. It is pure Go.
package dataset

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cvedge/cvedge/agent/payload"
)

// IndexFile is the JSONL index of a data set, one Entry a line.
const IndexFile = "index.jsonl"

// Unreviewed is the folder of samples without an operator's tag.
const Unreviewed = "unreviewed"

// Entry is one line of the index.
type Entry struct {
	SampleID string `json:"sampleId"`
	// File is the image, relative to the data set: the crop (or the whole frame without a
	// detector). FrameFile is the whole frame, when the sample carried it.
	File      string `json:"file"`
	FrameFile string `json:"frameFile,omitempty"`
	// Tag is the corrected tag; empty for unreviewed samples.
	Tag          string             `json:"tag,omitempty"`
	Agent        string             `json:"agent"`
	Camera       string             `json:"camera"`
	Reason       string             `json:"reason"`
	Detail       string             `json:"detail,omitempty"`
	PredictionID string             `json:"predictionId,omitempty"`
	Captured     time.Time          `json:"captured"`
	Models       []payload.ModelRef `json:"models"`
	Prediction   *payload.Tag       `json:"prediction,omitempty"`
	Operator     string             `json:"operator,omitempty"`
	// Region is the detection's box in the whole frame (detector pipelines), for detection
	// projects; Crop is where File lies in the frame.
	Region *payload.Box `json:"region,omitempty"`
	Crop   *payload.Box `json:"crop,omitempty"`
	// Verdict is the operator's answer in the station's review queue (confirm, correct,
	// missed, false-detection); empty for samples not reviewed there.
	Verdict string `json:"verdict,omitempty"`
	// Regions are all the parts an operator marked on the whole frame (FrameFile), for a
	// detection project to take the frame with every region at once: set on the entry of a
	// review's missed answer that carries the frame.
	Regions []Region `json:"regions,omitempty"`
	SHA256  string   `json:"sha256"`
	// Bytes is the size of the files written for the entry.
	Bytes int64     `json:"bytes"`
	Added time.Time `json:"added"`
}

// Region is a tagged box on the whole frame, normalized 0..1, as a detection project takes it.
type Region struct {
	Tag string `json:"tag"`
	payload.Box
}

// ErrQuota is returned by Add when the data set has reached its quota.
var ErrQuota = errors.New("data set quota reached")

// Dataset is a data set folder being written. It is safe for concurrent use.
type Dataset struct {
	dir   string
	mu    sync.Mutex
	index *os.File
	ids   map[string]bool
	sums  map[string]bool
	n     int
	bytes int64
	quota int64
}

// SetQuota bounds the bytes of images the data set may hold; 0: no bound.
func (d *Dataset) SetQuota(bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.quota = bytes
}

// Bytes is the size of the images in the data set.
func (d *Dataset) Bytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bytes
}

// Open opens dir, creating it, and reads its index so that a restart resumes: samples
// already there are not written again. A line cut short by a crash is dropped.
func Open(dir string) (*Dataset, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data set %s: %w", dir, err)
	}
	d := &Dataset{dir: dir, ids: map[string]bool{}, sums: map[string]bool{}}
	path := filepath.Join(dir, IndexFile)
	if f, err := os.Open(path); err == nil {
		good := int64(0)
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil { // io.EOF, with or without a partial line
				break
			}
			var e Entry
			if json.Unmarshal(line, &e) != nil || e.SampleID == "" {
				break
			}
			d.ids[e.SampleID], d.sums[e.SHA256] = true, true
			good += int64(len(line))
			d.n++
			d.bytes += e.Bytes
		}
		f.Close()
		if st, err := os.Stat(path); err == nil && st.Size() > good {
			if err := os.Truncate(path, good); err != nil {
				return nil, fmt.Errorf("data set %s: repairing %s: %w", dir, IndexFile, err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("data set %s: %w", dir, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", dir, err)
	}
	d.index = f
	return d, nil
}

// Len is the number of samples in the data set.
func (d *Dataset) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// Add writes a sample's images and its index line. It reports false, with no error, for a
// sample already in the data set (the same id, or the same image).
func (d *Dataset) Add(s payload.Sample) (Entry, bool, error) {
	var img *payload.Image
	switch {
	case s.Crop != nil:
		img = s.Crop
	case s.Frame != nil:
		img = s.Frame
	default:
		return Entry{}, false, fmt.Errorf("sample %s has no image", s.ID)
	}
	raw, err := base64.StdEncoding.DecodeString(img.JPEG)
	if err != nil {
		return Entry{}, false, fmt.Errorf("sample %s: image: %w", s.ID, err)
	}
	var frame []byte
	if s.Frame != nil && img != s.Frame {
		if frame, err = base64.StdEncoding.DecodeString(s.Frame.JPEG); err != nil {
			return Entry{}, false, fmt.Errorf("sample %s: frame: %w", s.ID, err)
		}
	}
	e := Entry{SampleID: s.ID, Tag: s.CorrectTag, Agent: s.Agent, Camera: s.Camera, Reason: s.Reason, Detail: s.Detail,
		PredictionID: s.PredictionID, Captured: s.Captured, Models: s.Models, Prediction: s.Prediction, Operator: s.Operator,
		Crop: img.Box}
	if s.Prediction != nil {
		e.Region = s.Prediction.BoundingBox
	}
	return d.AddJPEG(e, raw, frame)
}

// AddJPEG writes an image (and the whole frame, when given) with its index entry; e names
// the sample and where it came from. It reports false, with no error, for an id or an image
// already in the data set, and ErrQuota when the quota would be passed.
func (d *Dataset) AddJPEG(e Entry, image, frame []byte) (Entry, bool, error) {
	sum := sha256.Sum256(image)
	e.SHA256 = hex.EncodeToString(sum[:])
	e.Added = time.Now().UTC()
	e.Bytes = int64(len(image) + len(frame))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids[e.SampleID] || d.sums[e.SHA256] {
		return e, false, nil
	}
	if d.quota > 0 && d.bytes+e.Bytes > d.quota {
		return e, false, ErrQuota
	}
	folder := Unreviewed
	if e.Tag != "" {
		folder = FolderName(e.Tag)
	}
	e.File = filepath.ToSlash(filepath.Join(folder, e.SampleID+".jpg"))
	if err := writeFile(filepath.Join(d.dir, e.File), image); err != nil {
		return e, false, err
	}
	if frame != nil {
		e.FrameFile = filepath.ToSlash(filepath.Join("frames", e.SampleID+".jpg"))
		if err := writeFile(filepath.Join(d.dir, e.FrameFile), frame); err != nil {
			return e, false, err
		}
	}
	line, err := json.Marshal(e)
	if err != nil {
		return e, false, err
	}
	if _, err := d.index.Write(append(line, '\n')); err != nil {
		return e, false, fmt.Errorf("data set %s: %w", d.dir, err)
	}
	if err := d.index.Sync(); err != nil {
		return e, false, err
	}
	d.ids[e.SampleID], d.sums[e.SHA256] = true, true
	d.n++
	d.bytes += e.Bytes
	return e, true, nil
}

// Close closes the index.
func (d *Dataset) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.index.Close()
}

// ReadIndex reads every entry of a data set's index.
func ReadIndex(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			var e Entry
			if jerr := json.Unmarshal(line, &e); jerr != nil {
				return nil, fmt.Errorf("%s line %d: %w", IndexFile, n, jerr)
			}
			out = append(out, e)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// FolderName turns a tag into a folder name that stays inside the data set: path
// separators, dots at the start and control characters become '_'.
func FolderName(tag string) string {
	out := []rune(strings.TrimSpace(tag))
	for i, r := range out {
		if r == '/' || r == '\\' || r == ':' || unicode.IsControl(r) || (i == 0 && r == '.') {
			out[i] = '_'
		}
	}
	name := string(out)
	if name == "" || name == Unreviewed || name == "frames" {
		name = "_" + name
	}
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

// writeFile writes data to path atomically (a temporary file renamed into place).
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
