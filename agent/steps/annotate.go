package steps

import (
	"fmt"
	"image"
	"math"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/preprocess"
)

// Marks are the boxes and labels to draw for prediction msg on a frame of bounds frame:
// each detection's box in pixels, labelled with its final tag (through the classifier and
// the second level when they answered; unknown where a level was uncertain), the tag's
// probability and the part's trackId when the camera tracks, as "brass 93% #12". A
// classifier alone (no boxes) gets one mark, the whole frame, labelled with its final tag.
// A detection whose box is not a number, or lies outside the frame, gets no mark.
func Marks(msg *payload.Prediction, frame image.Rectangle) []preprocess.Mark {
	if msg == nil || len(msg.Predictions) == 0 || frame.Empty() {
		return nil
	}
	if msg.Predictions[0].BoundingBox == nil { // a classifier alone
		top := payload.Tag{Classification: &payload.Classification{Predictions: msg.Predictions, Uncertain: msg.Uncertain, Next: msg.Route}}
		tag, prob, _ := finalPath(top, nil)
		return []preprocess.Mark{{Box: frame, Label: markLabel(tag, prob, 0)}}
	}
	marks := make([]preprocess.Mark, 0, len(msg.Predictions))
	var path []string
	for _, d := range msg.Predictions {
		b := d.BoundingBox
		if b == nil {
			continue
		}
		box := preprocess.CropRect(frame, frame.Max.X, frame.Max.Y, b.Left, b.Top, b.Width, b.Height, 0).Intersect(frame)
		if box.Empty() {
			continue
		}
		var tag string
		var prob float32
		tag, prob, path = finalPath(d, path[:0])
		marks = append(marks, preprocess.Mark{Box: box, Label: markLabel(tag, prob, d.TrackID)})
	}
	return marks
}

// markLabel is "brass 93% #12": the tag, its probability (none for unknown, whose number
// would be the uncertain answer's) and the trackId when there is one.
func markLabel(tag string, prob float32, trackID uint64) string {
	label := tag
	if tag != Unknown && !math.IsNaN(float64(prob)) {
		label += fmt.Sprintf(" %.0f%%", prob*100)
	}
	if trackID != 0 {
		label += fmt.Sprintf(" #%d", trackID)
	}
	return label
}
