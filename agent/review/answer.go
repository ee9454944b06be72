package review

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
)

// The kinds of answer.
const (
	// Confirm: the predicted tag was right.
	Confirm = "confirm"
	// Correct: the predicted tag was wrong; Answer.Tag is right.
	Correct = "correct"
	// Missed: the detector did not find the parts in Answer.Boxes, drawn on the frame.
	Missed = "missed"
	// FalseDetection: there was no part in the detection's box.
	FalseDetection = "false-detection"
)

// ErrRefused is in the chain of an answer the queue refuses because it does not fit the
// sample (a tag not offered, a box outside the frame, a kind that does not apply): nothing
// was written; the answer must be corrected. The other errors of Answer are the disk's.
var ErrRefused = errors.New("answer refused")

// refusal is an answer's refusal: its message, and ErrRefused in its chain.
type refusal struct{ error }

func (r refusal) Unwrap() []error { return []error{r.error, ErrRefused} }

// refuse makes a refusal, formatted as fmt.Errorf.
func refuse(format string, args ...any) error { return refusal{fmt.Errorf(format, args...)} }

// NegativeTag is the data set folder of false detections: Custom Vision's name for images
// that show none of the tags.
const NegativeTag = "Negative"

// maxBoxes bounds the boxes of one missed answer.
const maxBoxes = 100

// maxLogLine bounds a line of the answers log that is read; longer ones are skipped.
const maxLogLine = 64 << 10

func knownKind(k string) bool {
	return k == Confirm || k == Correct || k == Missed || k == FalseDetection
}

// Answer is an operator's verdict on a pending sample.
type Answer struct {
	// Kind is Confirm, Correct, Missed or FalseDetection.
	Kind string `json:"kind"`
	// Tag is the right tag, for Correct: one of the item's Tags when they are known.
	Tag string `json:"tag,omitempty"`
	// Boxes are the parts the detector missed, for Missed: on the whole frame, normalized
	// 0..1, each with its tag.
	Boxes []dataset.Region `json:"boxes,omitempty"`
	// Operator names who answered; Note is free text. Both go into the log and the data set.
	Operator string `json:"operator,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Result is what an answer did, and what to tell the agent.
type Result struct {
	SampleID string `json:"sampleId"`
	Agent    string `json:"agent"`
	Camera   string `json:"camera"`
	// Kind is the answer's kind (a correction to the predicted tag counts as a confirm).
	Kind string `json:"kind"`
	// Predicted and Answered are the tags counted in the confusion table ("" for no part).
	Predicted string `json:"predicted"`
	Answered  string `json:"answered"`
	// Entries are the data set entries the answer wrote (none where the data set had them
	// already).
	Entries []dataset.Entry `json:"entries"`
	// Feedback is the correction to publish on the agent's <prefix>/feedback topic, as it is;
	// nil when there is nothing the agent can take: a confirm (nothing was wrong), a missed
	// part or a false detection (the agent's feedback names a tag of a detection it made),
	// or a sample of no published prediction and no part.
	Feedback *payload.Feedback `json:"feedback,omitempty"`
}

// Answer saves an operator's verdict on a pending sample into the data set and the answers
// log, and takes the sample out of the queue. An answer that does not fit the sample (a tag
// not offered, boxes out of the frame, a confirm of a sample with no prediction) is refused
// with an error saying what to answer instead; so is one the disk cannot take, and the
// sample stays pending.
func (q *Queue) Answer(id string, a Answer) (Result, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.items[id]
	if it == nil {
		return Result{}, fmt.Errorf("sample %q: %w (answered, dropped, or never queued)", clip(id), ErrNotFound)
	}
	a.Operator, a.Note = strings.TrimSpace(a.Operator), strings.TrimSpace(a.Note)
	if len(a.Operator) > 256 || len(a.Note) > 4096 || !utf8.ValidString(a.Operator+a.Note) {
		return Result{}, refuse(`"operator" (256) or "note" (4096 characters) is too long, or not text`)
	}
	line := logLine{Time: q.now().UTC(), SampleID: it.ID, Agent: it.Agent, Camera: it.Camera, Reason: it.Reason,
		Kind: a.Kind, Operator: a.Operator, Note: a.Note, Model: it.Model, Predicted: it.Tag, Probability: it.Probability,
		PredictionID: it.PredictionID, Detection: it.Detection, PartID: it.PartID, Captured: it.Captured}
	var saves []save
	var err error
	switch a.Kind {
	case Confirm:
		if it.Tag == "" {
			return Result{}, refuse("sample %s has no prediction to confirm (%s): answer correct with the right tag, or missed", it.ID, it.Reason)
		}
		line.Answered = it.Tag
		saves, err = q.tagged(it, it.Tag)
	case Correct:
		if line.Answered, err = offered(it, q.offeredTags(it), a.Tag); err != nil {
			return Result{}, err
		}
		if line.Answered == it.Tag {
			line.Kind = Confirm
		}
		saves, err = q.tagged(it, line.Answered)
	case Missed:
		if line.Regions, err = checkBoxes(it, q.boxTags(it), a.Boxes); err != nil {
			return Result{}, err
		}
		line.Predicted = ""
		saves, err = q.missed(it, line.Regions)
	case FalseDetection:
		if it.Region == nil {
			return Result{}, refuse("sample %s is about the whole frame, not a detection: answer correct or missed", it.ID)
		}
		line.Answered = ""
		if saves, err = q.tagged(it, NegativeTag); err == nil {
			saves[0].entry.Region = nil // no part there
		}
	default:
		return Result{}, refuse("answer kind %q: give %s, %s, %s or %s", clip(a.Kind), Confirm, Correct, Missed, FalseDetection)
	}
	if err != nil {
		return Result{}, err
	}
	res := Result{SampleID: it.ID, Agent: it.Agent, Camera: it.Camera, Kind: line.Kind, Predicted: line.Predicted, Answered: line.Answered}
	for _, s := range saves {
		if q.ds == nil { // a store: the answer goes into the log only
			break
		}
		s.entry.Verdict, s.entry.Operator = line.Kind, a.Operator
		e, added, err := q.ds.AddJPEG(s.entry, s.image, s.frame)
		if errors.Is(err, dataset.ErrQuota) {
			return Result{}, fmt.Errorf("sample %s not saved: the data set is full (%w); upload and clear it, or raise its quota", it.ID, err)
		}
		if err != nil {
			return Result{}, fmt.Errorf("sample %s not saved into the data set: %w (is its disk full?); the sample stays in the queue", it.ID, err)
		}
		if added {
			res.Entries = append(res.Entries, e)
		}
	}
	if err := q.appendLog(line); err != nil {
		return Result{}, fmt.Errorf("sample %s: answers log: %w (is the disk of %s.dir full?); the sample stays in the queue", it.ID, err, q.key)
	}
	q.answered[it.ID] = true
	delete(q.items, it.ID)
	q.bytes -= it.Bytes
	q.stats.Answered++
	q.keep(it, Verdict{Time: line.Time, Kind: line.Kind, Tag: line.Answered, Operator: a.Operator})
	if line.Kind == Correct {
		res.Feedback = feedback(it, line.Answered, a)
	}
	return res, nil
}

// keep moves an answered sample's files from the pending folder to the answered one, its
// record with the answer, so that a late correction can still find it (Stored). What cannot
// be moved is removed: the answer is in the log either way. q.mu is held.
func (q *Queue) keep(it *Item, v Verdict) {
	it.Answer = &v
	err := func() error {
		size := int64(0)
		for _, suffix := range []string{".crop.jpg", ".frame.jpg"} {
			if suffix == ".frame.jpg" && !it.HasFrame {
				continue
			}
			if err := os.Rename(filepath.Join(q.pending, it.ID+suffix), filepath.Join(q.kept, it.ID+suffix)); err != nil {
				return err
			}
			if st, err := os.Stat(filepath.Join(q.kept, it.ID+suffix)); err == nil {
				size += st.Size()
			}
		}
		rec, err := marshalRecord(it)
		if err != nil {
			return err
		}
		if err := q.writeFile(filepath.Join(q.kept, it.ID+".json"), rec); err != nil {
			return err
		}
		it.Bytes = size + int64(len(rec))
		return nil
	}()
	q.removeFiles(it.ID)
	if err != nil {
		q.log.Warn("answered sample not kept for late corrections", "sample", it.ID, "err", err)
		removeIn(q.log, q.kept, it.ID)
		return
	}
	q.done[it.ID] = it
	q.bytes += it.Bytes
	q.prune()
}

// Stored is a sample the queue holds, pending or answered (Item.Answer), with its images.
type Stored struct {
	Item Item
	// Crop is the crop's JPEG (the whole frame's, when Item.Crop is nil); Frame the whole
	// frame's, when the sample carried it (Item.HasFrame).
	Crop, Frame []byte
}

// Stored returns sample id, pending or answered, with its images. A sample the queue does
// not hold (never queued, or dropped by the bounds) is ErrNotFound.
func (q *Queue) Stored(id string) (Stored, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.prune()
	it, dir := q.items[id], q.pending
	if it == nil {
		it, dir = q.done[id], q.kept
	}
	if it == nil {
		return Stored{}, fmt.Errorf("sample %q: %w (never kept, or dropped by the bounds of %s)", clip(id), ErrNotFound, q.key)
	}
	s := Stored{Item: it.clone()}
	var err error
	if s.Crop, err = os.ReadFile(filepath.Join(dir, id+".crop.jpg")); err != nil {
		return Stored{}, fmt.Errorf("sample %s: %w", id, err)
	}
	if it.HasFrame {
		if s.Frame, err = os.ReadFile(filepath.Join(dir, id+".frame.jpg")); err != nil {
			return Stored{}, fmt.Errorf("sample %s: %w", id, err)
		}
	}
	return s, nil
}

// FindPrediction returns the id of the sample the queue holds (pending or answered) of
// prediction predictionID and, when detection is not nil, of that detection. Without a
// detection, a prediction with samples of several detections is an error that lists them;
// one with none is ErrNotFound.
func (q *Queue) FindPrediction(predictionID string, detection *int) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.prune()
	var found []*Item
	for _, items := range []map[string]*Item{q.items, q.done} {
		for _, it := range items {
			if predictionID == "" || it.PredictionID != predictionID {
				continue
			}
			if detection != nil && (it.Detection == nil || *it.Detection != *detection) {
				continue
			}
			found = append(found, it)
		}
	}
	switch {
	case len(found) == 0:
		return "", fmt.Errorf("prediction %q: %w", clip(predictionID), ErrNotFound)
	case len(found) == 1:
		return found[0].ID, nil
	}
	slices.SortFunc(found, func(a, b *Item) int { return strings.Compare(a.ID, b.ID) })
	var dets []string
	for _, it := range found {
		if it.Detection == nil { // one frame, sampled twice: the same image, either will do
			return it.ID, nil
		}
		dets = append(dets, fmt.Sprint(*it.Detection))
	}
	return "", fmt.Errorf("prediction %q has samples of detections %s: say which one is wrong in \"detection\", or name the sample by \"sampleId\"", clip(predictionID), strings.Join(dets, ", "))
}

// FindPart returns the id of the newest sample the queue holds (pending or answered) of the
// tracked part partID; ErrNotFound when it holds none.
func (q *Queue) FindPart(partID string) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.prune()
	var found *Item
	for _, items := range []map[string]*Item{q.items, q.done} {
		for _, it := range items {
			if partID == "" || it.PartID != partID {
				continue
			}
			if found == nil || it.Queued.After(found.Queued) || (it.Queued.Equal(found.Queued) && it.ID > found.ID) {
				found = it
			}
		}
	}
	if found == nil {
		return "", fmt.Errorf("part %q: %w", clip(partID), ErrNotFound)
	}
	return found.ID, nil
}

// save is one data set entry an answer writes.
type save struct {
	entry        dataset.Entry
	image, frame []byte
}

// entry is the data set entry of item it, tagged tag.
func entry(it *Item, tag string) dataset.Entry {
	return dataset.Entry{SampleID: it.ID, Tag: tag, Agent: it.Agent, Camera: it.Camera, Reason: it.Reason, Detail: it.Detail,
		PredictionID: it.PredictionID, Captured: it.Captured, Models: it.Models, Prediction: it.Prediction,
		Region: it.Region, Crop: it.Crop}
}

// tagged is the crop of it (with the frame, when it has one) under tag.
func (q *Queue) tagged(it *Item, tag string) ([]save, error) {
	s := save{entry: entry(it, tag)}
	var err error
	if s.image, err = os.ReadFile(filepath.Join(q.pending, it.ID+".crop.jpg")); err != nil {
		return nil, fmt.Errorf("sample %s: %w", it.ID, err)
	}
	if it.HasFrame {
		if s.frame, err = os.ReadFile(filepath.Join(q.pending, it.ID+".frame.jpg")); err != nil {
			return nil, fmt.Errorf("sample %s: %w", it.ID, err)
		}
	}
	return []save{s}, nil
}

// missed cuts each box out of the whole frame of it, into the folder of its tag; the first
// entry carries the frame and all the boxes.
func (q *Queue) missed(it *Item, boxes []dataset.Region) ([]save, error) {
	name := it.ID + ".crop.jpg"
	if it.HasFrame {
		name = it.ID + ".frame.jpg"
	}
	frame, err := os.ReadFile(filepath.Join(q.pending, name))
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", it.ID, err)
	}
	img, err := jpeg.Decode(bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("sample %s: the frame cannot be decoded: %w", it.ID, err)
	}
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		return nil, fmt.Errorf("sample %s: the frame's JPEG kind cannot be cut", it.ID)
	}
	b := img.Bounds()
	out := make([]save, 0, len(boxes))
	for i, r := range boxes {
		rect := image.Rect(b.Min.X+int(r.Left*float32(b.Dx())), b.Min.Y+int(r.Top*float32(b.Dy())),
			b.Min.X+int((r.Left+r.Width)*float32(b.Dx())+0.5), b.Min.Y+int((r.Top+r.Height)*float32(b.Dy())+0.5)).Intersect(b)
		if rect.Empty() {
			return nil, refuse("box %d is under a pixel of the %dx%d frame: draw it larger", i+1, b.Dx(), b.Dy())
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, sub.SubImage(rect), &jpeg.Options{Quality: 90}); err != nil {
			return nil, fmt.Errorf("sample %s: box %d: %w", it.ID, i+1, err)
		}
		box := r.Box
		e := entry(it, r.Tag)
		e.SampleID = fmt.Sprintf("%s-missed-%d", it.ID, i+1)
		e.Prediction, e.PredictionID, e.Region, e.Crop = nil, it.PredictionID, &box, &box
		s := save{entry: e, image: buf.Bytes()}
		if i == 0 {
			s.frame, s.entry.Regions = frame, boxes
		}
		out = append(out, s)
	}
	return out, nil
}

// offered is tag as the item spells it, when the item offers tags; an error lists them.
func offered(it *Item, tags []string, tag string) (string, error) {
	tag = strings.TrimSpace(tag)
	if tag == "" || len(tag) > 256 || !utf8.ValidString(tag) {
		return "", refuse(`answer "tag" must be the right tag, 1-256 characters`)
	}
	for _, t := range tags {
		if strings.EqualFold(t, tag) {
			return t, nil
		}
	}
	if len(tags) == 0 { // any tag; spelled as the sample spelled it, when it did
		for _, t := range append([]string{it.Tag}, it.Listed...) {
			if strings.EqualFold(t, tag) {
				return t, nil
			}
		}
		return tag, nil
	}
	return "", refuse("tag %q is not offered for sample %s (model %s has %s): answer one of those, or retrain the model with the new tag first",
		tag, it.ID, orNone(strings.Join(it.TagModels, ", ")), strings.Join(tags, ", "))
}

// boxTags are the tags a missed part may have: those offered, and the detector's. q.mu is
// held.
func (q *Queue) boxTags(it *Item) []string {
	tags := q.offeredTags(it)
	if len(tags) == 0 {
		return nil
	}
	tags = slices.Clone(tags)
	if det := stageModel(it.Models, "detector"); det != "" && q.labels != nil {
		tags = append(tags, q.labels(it.Agent, det)...)
	}
	if it.Prediction != nil && it.Prediction.TagName != "" {
		tags = append(tags, it.Prediction.TagName)
	}
	return tags
}

// checkBoxes checks a missed answer's boxes against the item: a whole frame to draw on,
// boxes inside it, tags offered.
func checkBoxes(it *Item, tags []string, boxes []dataset.Region) ([]dataset.Region, error) {
	switch {
	case !it.WholeFrame():
		return nil, refuse("sample %s has only the crop, not the whole frame: a missed part cannot be drawn (set samples.full_frame: true on agent %s)", it.ID, it.Agent)
	case len(boxes) == 0:
		return nil, refuse(`a missed answer needs "boxes": the parts the detector did not find, drawn on the frame`)
	case len(boxes) > maxBoxes:
		return nil, refuse("%d boxes in one answer; at most %d", len(boxes), maxBoxes)
	}
	out := make([]dataset.Region, len(boxes))
	const slack = 1e-3
	for i, b := range boxes {
		if !(b.Left >= 0 && b.Top >= 0 && b.Width > 0 && b.Height > 0 && b.Left+b.Width <= 1+slack && b.Top+b.Height <= 1+slack) {
			return nil, refuse("box %d (left %g, top %g, width %g, height %g) must lie in the frame, normalized 0-1", i+1, b.Left, b.Top, b.Width, b.Height)
		}
		tag, err := offered(it, tags, b.Tag)
		if err != nil {
			return nil, fmt.Errorf("box %d: %w", i+1, err)
		}
		b.Tag = tag
		b.Width, b.Height = min(b.Width, 1-b.Left), min(b.Height, 1-b.Top)
		out[i] = b
	}
	return out, nil
}

// feedback is the correction to send to the agent, or nil when the sample names nothing the
// agent can correct.
func feedback(it *Item, tag string, a Answer) *payload.Feedback {
	fb := &payload.Feedback{ID: "review-" + it.ID, Tag: tag, Operator: a.Operator, Note: a.Note}
	if len(fb.ID) > 128 {
		fb.ID = fb.ID[:128]
	}
	switch {
	case it.PartID != "":
		fb.PartID = it.PartID
	case it.PredictionID != "":
		fb.PredictionID, fb.Detection = it.PredictionID, it.Detection
	default:
		return nil
	}
	return fb
}

// appendLog appends one line to the answers log and syncs it.
func (q *Queue) appendLog(l logLine) error {
	raw, err := json.Marshal(l)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(q.dir, AnswersLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		if _, err = f.Write(append(raw, '\n')); err != nil {
			_ = f.Truncate(st.Size()) // no torn line for the next answer to follow
		} else {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readLog calls fn with each answer of the log at path, and returns how many lines it could
// not read. A missing log is empty.
func readLog(path string, fn func(logLine)) (bad int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return scanLog(f, fn)
}

// scanLog reads answers from r; lines it cannot read, too long ones included, are counted.
func scanLog(r io.Reader, fn func(logLine)) (bad int, err error) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		long := errors.Is(err, bufio.ErrBufferFull)
		for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of an overlong line
			_, err = br.ReadSlice('\n')
		}
		if len(bytes.TrimSpace(line)) > 0 || long {
			if l, perr := parseLogLine(line); perr == nil && !long {
				fn(l)
			} else {
				bad++
			}
		}
		if errors.Is(err, io.EOF) {
			return bad, nil
		}
		if err != nil {
			return bad, err
		}
	}
}

// marshalRecord is the record file of it.
func marshalRecord(it *Item) ([]byte, error) {
	return json.MarshalIndent(it, "", "  ")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
