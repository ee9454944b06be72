package review

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
)

// recordVersion is the version of the record format; a record of another version is
// skipped (and removed) as unreadable.
const recordVersion = 1

// idRE is what a sample id may be: the files of the queue are named after it (the same rule
// as payload.ParseSample's).
var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Item is one sample waiting for review: the JSON record of the queue, without the images.
type Item struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Agent, Camera, Reason and Detail are the sample's: who sent it and why it was chosen.
	Agent  string `json:"agent"`
	Camera string `json:"camera"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
	// PredictionID, FrameID, Detection, PartID and TrackID name what the sample shows, as the
	// sample did; a correction sent to the agent names them.
	PredictionID string    `json:"predictionId,omitempty"`
	FrameID      uint64    `json:"frameId,omitempty"`
	Detection    *int      `json:"detection,omitempty"`
	PartID       string    `json:"partId,omitempty"`
	TrackID      uint64    `json:"trackId,omitempty"`
	Captured     time.Time `json:"captured"`
	Created      time.Time `json:"created"`
	// Queued is when the sample entered the queue; the bounds go by it.
	Queued time.Time          `json:"queued"`
	Models []payload.ModelRef `json:"models,omitempty"`
	// Model, Tag and Probability are the models' final answer the verdict is about: the
	// deepest classifier level's top tag, or the detector's tag for a detection no classifier
	// saw. Empty for a frame the models never saw (a failed quality gate).
	Model       string  `json:"model,omitempty"`
	Tag         string  `json:"tag,omitempty"`
	Probability float32 `json:"probability,omitempty"`
	// Prediction is what the models said, as in the sample.
	Prediction *payload.Tag `json:"prediction,omitempty"`
	// Region is the detection's box in the whole frame (detector pipelines); Crop is where
	// the crop lies in the frame (absent: the crop is the whole frame).
	Region *payload.Box `json:"region,omitempty"`
	Crop   *payload.Box `json:"crop,omitempty"`
	// Tags are the tags an operator may answer with, in the models' spelling: the tags of the
	// models the verdict is about (every classifier level, deepest first; the detector for a
	// detection no classifier saw), as the queue's Labels gave them. Empty when not known:
	// then any tag is taken. The sample's own list (Prediction.Classification) is no
	// substitute: it leaves out the tags under the model's threshold.
	Tags []string `json:"tags,omitempty"`
	// Listed are the tags the sample's classification listed, most probable first: the
	// likeliest answers, for the page to offer first.
	Listed []string `json:"listed,omitempty"`
	// TagModels are the models whose tags an answer may name, deepest level first.
	TagModels []string `json:"tagModels,omitempty"`
	// CropWidth and CropHeight are the crop's size in pixels; FrameWidth and FrameHeight the
	// whole frame's, when the sample carried it (HasFrame).
	CropWidth   int  `json:"cropWidth"`
	CropHeight  int  `json:"cropHeight"`
	HasFrame    bool `json:"hasFrame,omitempty"`
	FrameWidth  int  `json:"frameWidth,omitempty"`
	FrameHeight int  `json:"frameHeight,omitempty"`
	// Bytes is the size of the sample's files in the queue (images and record).
	Bytes int64 `json:"bytes"`
	// Answer is the answer of a sample kept after it was answered (AnsweredDir); nil while
	// it is pending.
	Answer *Verdict `json:"answer,omitempty"`
}

// Verdict is what an answered sample was answered, and by whom.
type Verdict struct {
	Time time.Time `json:"time"`
	// Kind is the answer's kind (Confirm, Correct, Missed, FalseDetection); Tag the tag it
	// gave ("" for a missed part or a false detection).
	Kind     string `json:"kind"`
	Tag      string `json:"tag,omitempty"`
	Operator string `json:"operator,omitempty"`
}

// WholeFrame reports whether the item has an image of the whole frame: the frame itself,
// or a crop that is the whole frame.
func (it Item) WholeFrame() bool { return it.HasFrame || it.Crop == nil }

// parseRecord reads a record file; any error means the record is unusable.
func parseRecord(raw []byte) (Item, error) {
	var it Item
	if err := json.Unmarshal(raw, &it); err != nil {
		return it, fmt.Errorf("not a review record: %w", err)
	}
	switch {
	case it.V != recordVersion:
		return it, fmt.Errorf("review record version %d; this queue reads %d", it.V, recordVersion)
	case !idRE.MatchString(it.ID):
		return it, errors.New(`review record has no valid "id"`)
	case it.Agent == "" || it.Camera == "":
		return it, fmt.Errorf("review record %s lacks agent or camera", it.ID)
	case it.Queued.IsZero():
		return it, fmt.Errorf("review record %s lacks its queued time", it.ID)
	case badTime(it.Queued) || badTime(it.Captured) || badTime(it.Created):
		return it, fmt.Errorf("review record %s has a time out of range", it.ID)
	case it.Answer != nil && (!knownKind(it.Answer.Kind) || badTime(it.Answer.Time)):
		return it, fmt.Errorf("review record %s has an unreadable answer", it.ID)
	case it.Bytes < 0 || it.CropWidth < 0 || it.CropHeight < 0 || it.FrameWidth < 0 || it.FrameHeight < 0:
		return it, fmt.Errorf("review record %s has negative sizes", it.ID)
	}
	return it, nil
}

// badTime reports a time that JSON cannot carry (a year outside 0-9999 in UTC).
func badTime(t time.Time) bool {
	y := t.UTC().Year()
	return y < 0 || y > 9999
}

// logLine is one line of the answers log.
type logLine struct {
	Time     time.Time `json:"time"`
	SampleID string    `json:"sampleId"`
	Agent    string    `json:"agent"`
	Camera   string    `json:"camera"`
	Reason   string    `json:"reason,omitempty"`
	Kind     string    `json:"kind"`
	Operator string    `json:"operator,omitempty"`
	Note     string    `json:"note,omitempty"`
	Model    string    `json:"model,omitempty"`
	// Predicted is the models' tag ("" when they said nothing: a missed part); Answered the
	// operator's ("" when there is no part: a false detection). A missed answer has one
	// tag per box, in Regions.
	Predicted    string           `json:"predicted"`
	Probability  float32          `json:"probability,omitempty"`
	Answered     string           `json:"answered"`
	Regions      []dataset.Region `json:"regions,omitempty"`
	PredictionID string           `json:"predictionId,omitempty"`
	Detection    *int             `json:"detection,omitempty"`
	PartID       string           `json:"partId,omitempty"`
	Captured     time.Time        `json:"captured"`
}

// parseLogLine reads one line of the answers log.
func parseLogLine(raw []byte) (logLine, error) {
	var l logLine
	if err := json.Unmarshal(raw, &l); err != nil {
		return l, fmt.Errorf("not an answer: %w", err)
	}
	switch {
	case !idRE.MatchString(l.SampleID):
		return l, errors.New(`answer has no valid "sampleId"`)
	case l.Time.IsZero():
		return l, fmt.Errorf("answer for %s has no time", l.SampleID)
	case !knownKind(l.Kind):
		return l, fmt.Errorf("answer for %s has kind %q", l.SampleID, l.Kind)
	}
	return l, nil
}

// pairs are the (predicted, answered) tags an answer counts in the confusion table.
func (l logLine) pairs() [][2]string {
	if l.Kind == Missed {
		out := make([][2]string, 0, len(l.Regions))
		for _, r := range l.Regions {
			out = append(out, [2]string{"", strings.TrimSpace(r.Tag)})
		}
		return out
	}
	return [][2]string{{l.Predicted, l.Answered}}
}
