// Package review is the operator station's review queue: the samples agents publish (likely
// misclassifications, see docs/mqtt.md "Samples") wait on disk until an operator answers
// them; each answer goes into a data set folder (agent/dataset, the layout of cvedge collect)
// and into an answers log, from which the confusion table of predicted against answered
// tags is made.
//
// It owns its folder and knows nothing of MQTT or HTTP: the station feeds it samples and
// publishes the feedback an answer returns. It is pure Go and safe for concurrent use.
//
// # Folder format
//
//	<dir>/pending/<id>.json       the record of a pending sample (Item, JSON; "v": 1)
//	<dir>/pending/<id>.crop.jpg   the crop the classifier saw (the whole frame without a detector)
//	<dir>/pending/<id>.frame.jpg  the whole frame, when the sample carried it
//	<dir>/answered/<id>.*         the same files of an answered sample, its record with the answer
//	<dir>/answers.jsonl           the answers log: one JSON object a line, appended
//
// <id> is the sample's id (letters, digits, - and _). Every file is written to a temporary
// name (*.tmp), synced and renamed into place, the images before the record: a sample is in
// the queue once its record is. Open removes what a crash left behind: temporary files,
// images without a record, and records that cannot be read (a torn write), which it counts.
//
// The queue is bounded by bytes (the images and records) and by age (since the sample was
// queued): the oldest pending samples go first, counted as dropped by size or by age.
//
// An answered sample leaves the queue but its files stay, moved to answered/, while the
// bounds allow (over the size bound they go before any pending sample): a correction that
// comes later, by MQTT, still finds its images and what the models said (Stored,
// FindPrediction, FindPart). OpenStore opens the same folder format with no data set: the store of
// the samples a headless agent sent (samples.store), whose answers go into the log only.
//
// Each line of answers.jsonl is one answer: time, sampleId, agent, camera, reason, kind
// (confirm, correct, missed, false-detection), operator, note, model, predicted (the
// models' tag; "" for a missed part), probability, answered (the operator's tag; "" for a
// false detection), regions (the boxes of a missed answer, each with its tag),
// predictionId, detection, partId and captured. A sample whose id is in the log is never
// queued again. Lines that cannot be read are skipped and counted, never fatal.
//
// # Answers in the data set
//
//   - confirm and correct: the crop goes into the folder of the tag (the predicted one, or
//     the operator's), with the whole frame in frames/ when the sample carried it and the
//     detection's box as the entry's region, as cvedge collect writes a corrected sample.
//   - missed: each box the operator drew is cut out of the whole frame into the folder of
//     its tag, as entry <id>-missed-<n>; the first of them also carries the frame and every
//     box (Entry.Regions), for a detection project to take the frame with all its regions.
//   - false-detection: the crop goes into the folder Negative (NegativeTag, Custom Vision's
//     name for images that show none of the tags), with no region: there is no part there.
//
// Every entry carries the operator and the verdict (Entry.Verdict). The tags an answer may
// name are the model's (SetLabels says where to find them); where they are not known, any
// tag is taken, spelled as the sample spelled it when it listed that tag. Only a correct
// answer returns feedback for the agent (Result.Feedback).
package review

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"image/jpeg"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
)

// The files and folders of a queue.
const (
	PendingDir = "pending"
	AnswersLog = "answers.jsonl"
	// AnsweredDir keeps answered samples (record and images) within the bounds, so that a
	// late correction of one can still be made (Stored).
	AnsweredDir = "answered"
)

// The images of a pending sample, for Image.
const (
	ImageCrop  = "crop"
	ImageFrame = "frame"
)

// maxPixels bounds an image's size in pixels, so that cutting a missed part out of a frame
// cannot be made to allocate without bound.
const maxPixels = 64 << 20

// ErrNotFound is returned for a sample that is not pending (never queued, answered, or
// dropped by the bounds).
var ErrNotFound = errors.New("sample is not in the review queue")

// Queue is the review queue in a folder. It is safe for concurrent use.
type Queue struct {
	dir      string
	pending  string
	kept     string
	maxBytes int64
	maxAge   time.Duration
	ds       *dataset.Dataset // nil: a store, whose answers go into the log only
	key      string           // the config section that sets the folder and bounds
	log      *slog.Logger

	// now and writeFile are the clock and the file writer; tests replace them.
	now       func() time.Time
	writeFile func(path string, data []byte) error

	mu       sync.Mutex
	labels   Labels
	items    map[string]*Item
	done     map[string]*Item // answered samples still on disk, in kept
	answered map[string]bool
	bytes    int64
	stats    Stats
}

// Stats are what the queue holds and what it dropped since it was opened.
type Stats struct {
	Pending int   `json:"pending"`
	Bytes   int64 `json:"bytes"`
	// DroppedSize and DroppedAge count pending samples the bounds threw away, oldest first.
	DroppedSize uint64 `json:"droppedSize"`
	DroppedAge  uint64 `json:"droppedAge"`
	// Answered counts answers since open.
	Answered uint64 `json:"answered"`
	// Kept counts the answered samples still on disk (AnsweredDir), for late corrections;
	// Bytes counts them too, and the bounds drop them before the pending ones.
	Kept int `json:"kept"`
	// Corrupt counts records Open removed because they could not be read (a torn write);
	// BadLogLines the lines of the answers log it could not read.
	Corrupt     uint64 `json:"corrupt"`
	BadLogLines uint64 `json:"badLogLines"`
}

// Open opens (creating) the queue in dir, bounded by maxBytes and maxAge (each 0: no
// bound); answers go into ds. A restart finds the queue as it was; what a crash left half
// written is removed.
func Open(dir string, maxBytes int64, maxAge time.Duration, ds *dataset.Dataset) (*Queue, error) {
	if ds == nil {
		return nil, errors.New("review queue: no data set to save the answers into (ui.review.dataset)")
	}
	return openQueue(dir, maxBytes, maxAge, ds, "ui.review")
}

// OpenStore opens (creating) a queue in dir that keeps the samples an agent sent, for late
// corrections, where no operator station reviews them (samples.store): the same folder
// format and bounds as Open's, but an answer goes into the answers log only, with no data
// set.
func OpenStore(dir string, maxBytes int64, maxAge time.Duration) (*Queue, error) {
	return openQueue(dir, maxBytes, maxAge, nil, "samples.store")
}

func openQueue(dir string, maxBytes int64, maxAge time.Duration, ds *dataset.Dataset, key string) (*Queue, error) {
	if maxBytes < 0 || maxAge < 0 {
		return nil, fmt.Errorf("review queue: bounds %d bytes, %v must not be negative (%s.max_mb, max_age)", maxBytes, maxAge, key)
	}
	q := &Queue{dir: dir, pending: filepath.Join(dir, PendingDir), kept: filepath.Join(dir, AnsweredDir), maxBytes: maxBytes, maxAge: maxAge, ds: ds, key: key,
		log: slog.Default().With("component", "review"), now: time.Now, writeFile: syncedWrite,
		items: map[string]*Item{}, done: map[string]*Item{}, answered: map[string]bool{}}
	for _, d := range []string{q.pending, q.kept} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("review queue %s: %w (%s.dir must be a writable folder)", dir, err, key)
		}
	}
	bad, err := readLog(filepath.Join(dir, AnswersLog), func(l logLine) { q.answered[l.SampleID] = true })
	if err != nil {
		return nil, fmt.Errorf("review queue %s: %w", dir, err)
	}
	q.stats.BadLogLines = uint64(bad)
	if err := endLine(filepath.Join(dir, AnswersLog)); err != nil {
		return nil, fmt.Errorf("review queue %s: repairing %s: %w", dir, AnswersLog, err)
	}
	if err := q.load(q.pending, q.items); err != nil {
		return nil, fmt.Errorf("review queue %s: %w", dir, err)
	}
	if err := q.load(q.kept, q.done); err != nil {
		return nil, fmt.Errorf("review queue %s: %w", dir, err)
	}
	q.mu.Lock()
	q.prune()
	q.mu.Unlock()
	return q, nil
}

// load reads the pending folder, or the answered one, into items, removing what a crash
// left behind.
func (q *Queue) load(dir string, items map[string]*Item) error {
	answered := dir == q.kept
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	files := map[string]int64{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files[e.Name()] = info.Size()
	}
	for name, size := range files {
		id, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		it, err := parseRecord(raw)
		switch {
		case err == nil && answered != (it.Answer != nil):
			err = fmt.Errorf("record %s is in the wrong folder for its answer", name)
		case err == nil && it.ID != id:
			err = fmt.Errorf("record %s names sample %s", name, it.ID)
		case err == nil && files[id+".crop.jpg"] == 0:
			err = fmt.Errorf("sample %s has no crop image", id)
		case err == nil && it.HasFrame && files[id+".frame.jpg"] == 0:
			err = fmt.Errorf("sample %s has no frame image", id)
		}
		if err != nil {
			q.stats.Corrupt++
			q.log.Warn("review record unreadable; removed", "file", name, "err", err)
			removeIn(q.log, dir, id)
			delete(files, name)
			continue
		}
		if !answered && q.answered[id] { // answered, but the crash came before the files moved
			removeIn(q.log, dir, id)
			continue
		}
		it.Bytes = size + files[id+".crop.jpg"] + files[id+".frame.jpg"]
		items[id] = &it
		q.bytes += it.Bytes
	}
	for name := range files { // temporary files, and images without a record
		id, _, _ := strings.Cut(name, ".")
		if strings.HasSuffix(name, ".tmp") || items[id] == nil {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	return nil
}

// endLine ends the file at path with a newline when a crash left its last line torn, so
// that the next line appended stays readable.
func endLine(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.WriteAt([]byte{'\n'}, st.Size()); err != nil {
		return err
	}
	return f.Sync()
}

// removeFiles removes a pending sample's files; those already gone are no error.
func (q *Queue) removeFiles(id string) { removeIn(q.log, q.pending, id) }

// removeIn removes a sample's files in dir; those already gone are no error.
func removeIn(log *slog.Logger, dir, id string) {
	for _, suffix := range []string{".json", ".crop.jpg", ".frame.jpg"} {
		if err := os.Remove(filepath.Join(dir, id+suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("review file not removed", "sample", id, "err", err)
		}
	}
}

// Add queues a sample as published (its images base64 inside). It reports false, with no
// error, for a sample already pending or already answered, and for one that carries an
// operator's correction (correctTag: answered already). A sample that cannot be reviewed (no
// id, no image, an image that is not a JPEG) is refused with an error naming the field.
func (q *Queue) Add(s payload.Sample) (bool, error) {
	switch {
	case s.ID == "":
		return false, errors.New(`sample has no "id": it cannot be reviewed`)
	case !idRE.MatchString(s.ID):
		return false, fmt.Errorf(`sample "id" %q must be 1-128 letters, digits, - or _`, clip(s.ID))
	case s.Agent == "" || s.Camera == "":
		return false, fmt.Errorf(`sample %s lacks "agent" or "camera"`, s.ID)
	case s.CorrectTag != "":
		return false, nil
	}
	cropImg, cropField := s.Crop, "crop"
	if cropImg == nil {
		cropImg, cropField = s.Frame, "frame"
	}
	if cropImg == nil {
		return false, fmt.Errorf(`sample %s has no image ("crop" and "frame" absent): nothing to review`, s.ID)
	}
	crop, cw, ch, err := decodeJPEG(s.ID, cropField, cropImg)
	if err != nil {
		return false, err
	}
	var frame []byte
	var fw, fh int
	if s.Frame != nil && cropImg != s.Frame {
		if frame, fw, fh, err = decodeJPEG(s.ID, "frame", s.Frame); err != nil {
			return false, err
		}
	}
	it := newItem(s, cw, ch)
	if frame != nil {
		it.HasFrame, it.FrameWidth, it.FrameHeight = true, fw, fh
	}
	if cropImg == s.Frame {
		it.Crop = nil // the only image is the whole frame
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.items[s.ID] != nil || q.answered[s.ID] {
		return false, nil
	}
	it.Queued = q.now().UTC()
	it.Tags = q.offeredTags(it)
	rec, err := q.store(it, crop, frame)
	if err != nil {
		return false, err
	}
	it.Bytes = int64(len(rec) + len(crop) + len(frame))
	if q.maxBytes > 0 && it.Bytes > q.maxBytes {
		q.removeFiles(it.ID)
		return false, fmt.Errorf("sample %s of %d bytes is larger than the whole review queue (%d bytes): raise %s.max_mb", s.ID, it.Bytes, q.maxBytes, q.key)
	}
	q.items[it.ID] = it
	q.bytes += it.Bytes
	q.prune()
	return true, nil
}

// store writes a sample's images, then its record, and returns the record. On an error it
// removes what it wrote: the queue is as before.
func (q *Queue) store(it *Item, crop, frame []byte) ([]byte, error) {
	rec, err := marshalRecord(it)
	if err != nil {
		return nil, err
	}
	write := func(suffix string, data []byte) error {
		if err := q.writeFile(filepath.Join(q.pending, it.ID+suffix), data); err != nil {
			q.removeFiles(it.ID)
			return fmt.Errorf("review queue: sample %s not queued: %w (is the disk of %s.dir full?)", it.ID, err, q.key)
		}
		return nil
	}
	if err := write(".crop.jpg", crop); err != nil {
		return nil, err
	}
	if frame != nil {
		if err := write(".frame.jpg", frame); err != nil {
			return nil, err
		}
	}
	if err := write(".json", rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// prune drops the oldest samples while the queue is over its bounds: by age, answered and
// pending alike; by size, the answered ones kept for late corrections first. q.mu is held.
func (q *Queue) prune() {
	if q.maxAge <= 0 && (q.maxBytes <= 0 || q.bytes <= q.maxBytes) {
		return
	}
	cutoff := q.now().Add(-q.maxAge)
	for _, it := range sortItems(q.done, false) { // oldest first: the first one kept ends it
		if !(q.maxAge > 0 && it.Queued.Before(cutoff)) && !(q.maxBytes > 0 && q.bytes > q.maxBytes) {
			break
		}
		removeIn(q.log, q.kept, it.ID)
		delete(q.done, it.ID)
		q.bytes -= it.Bytes
	}
	for _, it := range q.sorted(false) {
		switch {
		case q.maxAge > 0 && it.Queued.Before(cutoff):
			q.stats.DroppedAge++
			q.log.Info("review sample dropped: older than "+q.key+".max_age", "sample", it.ID, "queued", it.Queued)
		case q.maxBytes > 0 && q.bytes > q.maxBytes:
			q.stats.DroppedSize++
			q.log.Info("review sample dropped: the queue is over "+q.key+".max_mb", "sample", it.ID, "queued", it.Queued)
		default:
			return
		}
		q.removeFiles(it.ID)
		delete(q.items, it.ID)
		q.bytes -= it.Bytes
	}
}

// sorted lists the pending items by the time they were queued, oldest first (newest first
// when newest is true); ties go by id. q.mu is held.
func (q *Queue) sorted(newest bool) []*Item { return sortItems(q.items, newest) }

// sortItems lists items by the time they were queued, oldest first (newest first when
// newest is true); ties go by id.
func sortItems(items map[string]*Item, newest bool) []*Item {
	out := make([]*Item, 0, len(items))
	for _, it := range items {
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b *Item) int {
		c := a.Queued.Compare(b.Queued)
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if newest {
			return -c
		}
		return c
	})
	return out
}

// Filter chooses the items List returns; empty fields choose all.
type Filter struct {
	Agent, Camera, Reason string
	// Offset skips that many items; Limit returns at most that many (0: all).
	Offset, Limit int
}

// List returns the pending samples that match f, newest first.
func (q *Queue) List(f Filter) []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.prune()
	var out []Item
	skip := max(f.Offset, 0)
	for _, it := range q.sorted(true) {
		if (f.Agent != "" && it.Agent != f.Agent) || (f.Camera != "" && it.Camera != f.Camera) || (f.Reason != "" && it.Reason != f.Reason) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		out = append(out, it.clone())
	}
	return out
}

// Get returns a pending sample.
func (q *Queue) Get(id string) (Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.items[id]
	if it == nil {
		return Item{}, fmt.Errorf("sample %q: %w (answered, dropped, or never queued)", clip(id), ErrNotFound)
	}
	return it.clone(), nil
}

// Image returns a pending sample's JPEG: which is ImageCrop or ImageFrame.
func (q *Queue) Image(id, which string) ([]byte, error) {
	it, err := q.Get(id)
	if err != nil {
		return nil, err
	}
	switch which {
	case ImageCrop:
	case ImageFrame:
		if !it.HasFrame {
			if it.Crop == nil { // the crop is the whole frame
				which = ImageCrop
				break
			}
			return nil, fmt.Errorf("sample %s has no whole frame (samples.full_frame is off on agent %s)", id, it.Agent)
		}
	default:
		return nil, fmt.Errorf("image %q: ask for %q or %q", clip(which), ImageCrop, ImageFrame)
	}
	raw, err := os.ReadFile(filepath.Join(q.pending, id+"."+which+".jpg"))
	if errors.Is(err, fs.ErrNotExist) { // answered or dropped meanwhile
		return nil, fmt.Errorf("sample %q: %w", id, ErrNotFound)
	}
	return raw, err
}

// Stats returns what the queue holds and has dropped.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.prune()
	s := q.stats
	s.Pending, s.Bytes, s.Kept = len(q.items), q.bytes, len(q.done)
	return s
}

func (it *Item) clone() Item {
	c := *it
	c.Tags, c.Listed, c.TagModels = slices.Clone(it.Tags), slices.Clone(it.Listed), slices.Clone(it.TagModels)
	c.Models = slices.Clone(it.Models)
	if it.Answer != nil {
		a := *it.Answer
		c.Answer = &a
	}
	return c
}

// newItem is the record of sample s, with a crop of cw x ch pixels.
func newItem(s payload.Sample, cw, ch int) *Item {
	it := &Item{V: recordVersion, ID: s.ID, Agent: s.Agent, Camera: s.Camera, Reason: s.Reason, Detail: s.Detail,
		PredictionID: s.PredictionID, FrameID: s.FrameID, Detection: s.Detection, PartID: s.PartID, TrackID: s.TrackID,
		Captured: s.Captured.UTC(), Created: s.Created.UTC(), Models: s.Models, Prediction: s.Prediction,
		CropWidth: cw, CropHeight: ch}
	if s.Crop != nil {
		it.Crop = s.Crop.Box
	}
	p := s.Prediction
	if p == nil {
		return it
	}
	it.Region = p.BoundingBox
	it.Tag, it.Probability, it.Model = p.TagName, p.Probability, stageModel(s.Models, "detector")
	seen := map[string]bool{}
	var levels [][]string
	var models []string
	for c := p.Classification; c != nil; c = c.Next {
		models = append(models, c.Model)
		var tags []string
		for _, t := range c.Predictions {
			if t.TagName != "" && !seen[t.TagName] {
				seen[t.TagName] = true
				tags = append(tags, t.TagName)
			}
		}
		levels = append(levels, tags)
		if len(c.Predictions) > 0 {
			it.Tag, it.Probability, it.Model = c.Predictions[0].TagName, c.Predictions[0].Probability, c.Model
		}
	}
	for i := len(levels) - 1; i >= 0; i-- { // the deepest level's tags first
		it.Listed = append(it.Listed, levels[i]...)
	}
	for i := len(models) - 1; i >= 0; i-- {
		it.TagModels = append(it.TagModels, models[i])
	}
	if len(it.TagModels) == 0 && it.Model != "" { // a detection no classifier saw
		it.TagModels = []string{it.Model}
	}
	return it
}

// Labels gives the tags of an agent's model, in the model's spelling; nil when not known.
type Labels func(agent, model string) []string

// SetLabels tells the queue where to find the tags of the models, so that an answer can
// only name a tag the model has (the agent refuses a correction to any other). Without it,
// or for a model it does not know, any tag is taken.
func (q *Queue) SetLabels(l Labels) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.labels = l
}

// offeredTags are the tags an answer on it may name: the record's, else what the labels
// know now. q.mu is held.
func (q *Queue) offeredTags(it *Item) []string {
	if len(it.Tags) > 0 || q.labels == nil {
		return it.Tags
	}
	var tags []string
	seen := map[string]bool{}
	for _, m := range it.TagModels {
		for _, t := range q.labels(it.Agent, m) {
			if !seen[t] {
				seen[t] = true
				tags = append(tags, t)
			}
		}
	}
	return tags
}

func stageModel(models []payload.ModelRef, stage string) string {
	for _, m := range models {
		if m.Stage == stage {
			return m.Name
		}
	}
	return ""
}

// decodeJPEG decodes a sample's base64 image and checks that it is a JPEG of a sane size.
func decodeJPEG(id, field string, img *payload.Image) ([]byte, int, int, error) {
	raw, err := base64.StdEncoding.DecodeString(img.JPEG)
	if err != nil {
		return nil, 0, 0, fmt.Errorf(`sample %s: "%s.jpeg" is not base64: %w`, id, field, err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, 0, 0, fmt.Errorf(`sample %s: "%s.jpeg" is not a JPEG image: %w`, id, field, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPixels {
		return nil, 0, 0, fmt.Errorf(`sample %s: "%s.jpeg" is %dx%d pixels; the review queue takes up to %d pixels`, id, field, cfg.Width, cfg.Height, maxPixels)
	}
	return raw, cfg.Width, cfg.Height, nil
}

// syncedWrite writes data to path atomically and durably: a temporary file, synced, renamed
// into place, and the folder synced.
func syncedWrite(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
