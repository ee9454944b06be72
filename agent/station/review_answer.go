package station

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/review"
)

// answerBody is the JSON of POST /api/review/samples/{id}/answer.
type answerBody struct {
	Kind     string    `json:"kind"`
	Tag      string    `json:"tag"`
	Boxes    []boxBody `json:"boxes"`
	Note     string    `json:"note"`
	Operator string    `json:"operator"`
}

// boxBody is one box of a missed answer: on the whole frame, normalised 0-1. The numbers are
// pointers so that a missing one is told from 0.
type boxBody struct {
	Tag    string   `json:"tag"`
	Left   *float64 `json:"left"`
	Top    *float64 `json:"top"`
	Width  *float64 `json:"width"`
	Height *float64 `json:"height"`
}

const (
	maxTagLen      = 256
	maxOperatorLen = 256
	maxNoteLen     = 4096
	maxAnswerBoxes = 100
	// boxSlack is how far past the frame's edge a box may reach (rounding of the page's
	// drawing); the queue clips it to the frame.
	boxSlack = 1e-3
)

var answerKinds = []string{review.Confirm, review.Correct, review.Missed, review.FalseDetection}

// parseAnswer reads an answer's JSON and checks what can be checked without the sample: its
// kind, the fields each kind takes, the boxes' numbers, the lengths. Every error names the
// field.
func parseAnswer(r io.Reader) (review.Answer, error) {
	var b answerBody
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return review.Answer{}, bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return review.Answer{}, bodyError(err)
		}
		return review.Answer{}, errors.New("the answer must be one JSON object, with nothing after it")
	}
	a := review.Answer{Kind: b.Kind, Tag: strings.TrimSpace(b.Tag), Note: strings.TrimSpace(b.Note), Operator: strings.TrimSpace(b.Operator)}
	switch {
	case !validKind(b.Kind):
		return a, fmt.Errorf(`"kind" %.40q: give one of %s`, b.Kind, strings.Join(answerKinds, ", "))
	case !utf8.ValidString(a.Operator) || len(a.Operator) > maxOperatorLen || hasControl(a.Operator):
		return a, fmt.Errorf(`"operator" must be a name of at most %d characters`, maxOperatorLen)
	case !utf8.ValidString(a.Note) || len(a.Note) > maxNoteLen:
		return a, fmt.Errorf(`"note" must be text of at most %d characters`, maxNoteLen)
	case a.Kind == review.Correct:
		if err := checkTag(a.Tag, `"tag"`); err != nil {
			return a, err
		}
	case a.Tag != "":
		return a, fmt.Errorf(`"tag" is for a correct answer only; a %s answer takes none`, a.Kind)
	}
	switch {
	case a.Kind != review.Missed && len(b.Boxes) > 0:
		return a, fmt.Errorf(`"boxes" are for a missed answer only; a %s answer takes none`, a.Kind)
	case a.Kind == review.Missed && len(b.Boxes) == 0:
		return a, errors.New(`a missed answer needs "boxes": the parts the detector did not find, drawn on the frame`)
	case len(b.Boxes) > maxAnswerBoxes:
		return a, fmt.Errorf(`"boxes": %d boxes in one answer; at most %d`, len(b.Boxes), maxAnswerBoxes)
	}
	for i, bx := range b.Boxes {
		field := fmt.Sprintf("boxes[%d]", i)
		for _, n := range []struct {
			name string
			v    *float64
		}{{"left", bx.Left}, {"top", bx.Top}, {"width", bx.Width}, {"height", bx.Height}} {
			if n.v == nil {
				return a, fmt.Errorf(`"%s.%s" is missing: each box has left, top, width and height, normalised 0-1`, field, n.name)
			}
		}
		// checked as the queue keeps them (float32): a number too small or too large for it
		// is refused here, not there
		l, t, w, h := float64(float32(*bx.Left)), float64(float32(*bx.Top)), float64(float32(*bx.Width)), float64(float32(*bx.Height))
		switch {
		case !(l >= 0 && l < 1):
			return a, fmt.Errorf(`"%s.left" %g must be from 0 to under 1 (a fraction of the frame's width)`, field, l)
		case !(t >= 0 && t < 1):
			return a, fmt.Errorf(`"%s.top" %g must be from 0 to under 1 (a fraction of the frame's height)`, field, t)
		case !(w > 0 && l+w <= 1+boxSlack):
			return a, fmt.Errorf(`"%s.width" %g must be over 0 and end inside the frame (left + width <= 1)`, field, w)
		case !(h > 0 && t+h <= 1+boxSlack):
			return a, fmt.Errorf(`"%s.height" %g must be over 0 and end inside the frame (top + height <= 1)`, field, h)
		}
		tag := strings.TrimSpace(bx.Tag)
		if err := checkTag(tag, `"`+field+`.tag"`); err != nil {
			return a, err
		}
		a.Boxes = append(a.Boxes, dataset.Region{Tag: tag, Box: payload.Box{Left: float32(l), Top: float32(t), Width: float32(w), Height: float32(h)}})
	}
	return a, nil
}

// bodyError says what is wrong with an answer's JSON, naming the field.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		return fmt.Errorf("the answer is larger than %d KiB: send only kind, tag, boxes, note and operator", maxAnswerBody>>10)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Errorf("the answer must be a JSON object, not a JSON %s", typeErr.Value)
		}
		want := "text"
		switch {
		case field == "boxes":
			want = "a list of boxes"
		case strings.HasPrefix(field, "boxes.") && field != "boxes.tag":
			want = "a number from 0 to 1"
		}
		return fmt.Errorf("%q must be %s, not a JSON %s", field, want, typeErr.Value)
	case errors.As(err, &syntax):
		return fmt.Errorf("the answer is not JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.Is(err, io.EOF):
		return errors.New(`the answer is empty: send a JSON object with "kind"`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the answer's JSON ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%s: the answer takes kind, tag, boxes, note and operator", strings.TrimPrefix(err.Error(), "json: "))
	}
	return fmt.Errorf("the answer cannot be read: %v", err)
}

// checkTag checks a tag's text.
func checkTag(tag, field string) error {
	if tag == "" || len(tag) > maxTagLen || !utf8.ValidString(tag) || hasControl(tag) {
		return fmt.Errorf("%s must be a tag, 1-%d characters", field, maxTagLen)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

func validKind(k string) bool {
	for _, x := range answerKinds {
		if k == x {
			return true
		}
	}
	return false
}

// checkAnswer checks that answer a fits the pending sample it: what it can be answered with,
// the tags offered, boxes of at least a pixel. The queue checks again when it saves.
func checkAnswer(a review.Answer, it review.Item) error {
	switch a.Kind {
	case review.Confirm:
		if it.Tag == "" {
			return fmt.Errorf(`sample %s has no prediction to confirm (%s): answer correct with the right tag, or missed`, it.ID, it.Reason)
		}
	case review.Correct:
		if len(it.Tags) == 0 {
			return nil // the model's tags are not known: any tag is taken
		}
		for _, t := range it.Tags {
			if strings.EqualFold(t, a.Tag) {
				return nil
			}
		}
		return fmt.Errorf(`"tag" %q is not offered for sample %s: answer one of %s`, a.Tag, it.ID, strings.Join(it.Tags, ", "))
	case review.Missed:
		if !it.WholeFrame() {
			return fmt.Errorf("sample %s has only the crop, not the whole frame: a missed part cannot be drawn (set samples.full_frame: true on agent %s)", it.ID, it.Agent)
		}
		fw, fh := it.FrameWidth, it.FrameHeight
		if !it.HasFrame {
			fw, fh = it.CropWidth, it.CropHeight
		}
		for i, b := range a.Boxes {
			if float64(b.Width)*float64(fw) < 1 || float64(b.Height)*float64(fh) < 1 {
				return fmt.Errorf(`"boxes[%d]" is under a pixel of the %dx%d frame: draw it larger`, i, fw, fh)
			}
		}
	case review.FalseDetection:
		if it.Region == nil {
			return fmt.Errorf("sample %s is about the whole frame, not a detection: answer correct or missed", it.ID)
		}
	}
	return nil
}
