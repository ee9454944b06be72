package payload

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The commands the agent takes on <prefix>/commands.
const (
	CmdTrigger  = "trigger"  // process the next fresh frame of a camera in trigger mode
	CmdSnapshot = "snapshot" // publish the next frame of a camera as JPEG
	CmdReload   = "reload"   // reload the config file
	CmdActivate = "activate" // make an iteration of a model the active one
	CmdRollback = "rollback" // go back to the previously active iteration of a model
	CmdAdd      = "add"      // download an iteration (https URL + SHA-256) into the model store
	// CmdResetCounts starts the part counts of a camera (or, without one, of every camera)
	// again from zero.
	CmdResetCounts = "reset-counts"
)

var (
	commands = map[string][]string{ // command -> required fields
		CmdTrigger:     {"camera"},
		CmdSnapshot:    {"camera"},
		CmdReload:      nil,
		CmdActivate:    {"model", "iteration"},
		CmdRollback:    {"model"},
		CmdAdd:         {"model", "url", "sha256"},
		CmdResetCounts: nil,
	}
	idRE = regexp.MustCompile(`^[A-Za-z0-9._:@/+-]{1,128}$`)
	// sampleIDRE is stricter: a collector names files after sample ids.
	sampleIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// Command is a request on <prefix>/commands. Every command carries an id; the result names
// it.
type Command struct {
	ID        string `json:"id"`
	Command   string `json:"command"`
	Camera    string `json:"camera,omitempty"`
	Model     string `json:"model,omitempty"`
	Iteration string `json:"iteration,omitempty"`
	// URL, SHA256 and Activate are for add.
	URL      string `json:"url,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Activate bool   `json:"activate,omitempty"`
	// AllowTagChange lets activate (and add with activate) put in an iteration whose tags
	// differ from the serving one's.
	AllowTagChange bool `json:"allowTagChange,omitempty"`
	// Annotate (snapshot) draws the frame's boxes and labels, from its prediction, on the
	// JPEG.
	Annotate bool `json:"annotate,omitempty"`
	// Timestamp (RFC 3339) is when a signed command was signed; see Signed.
	Timestamp string `json:"timestamp,omitempty"`
}

// maxMessage bounds command and feedback payloads.
const maxMessage = 64 << 10

// ParseCommand reads and checks a command. On error it still returns what it could read of
// the id, so the error result can name it.
func ParseCommand(raw []byte) (Command, error) {
	var c Command
	if err := strictJSON(raw, &c); err != nil {
		c.ID = looseID(raw)
		return c, err
	}
	if !idRE.MatchString(c.ID) {
		err := fmt.Errorf(`"id" %q must be 1-128 letters, digits or ._:@/+-`, clip(c.ID))
		c.ID = clip(c.ID)
		return c, err
	}
	need, ok := commands[c.Command]
	if !ok {
		return c, fmt.Errorf(`"command" %q is not one of trigger, snapshot, reload, activate, rollback, add, reset-counts`, c.Command)
	}
	fields := map[string]string{"camera": c.Camera, "model": c.Model, "iteration": c.Iteration, "url": c.URL, "sha256": c.SHA256}
	for _, f := range need {
		if strings.TrimSpace(fields[f]) == "" {
			return c, fmt.Errorf("command %s needs %q", c.Command, f)
		}
	}
	if c.Annotate && c.Command != CmdSnapshot {
		return c, fmt.Errorf(`"annotate" is for snapshot; leave it out of %s`, c.Command)
	}
	return c, nil
}

// Feedback is an operator's correction on <prefix>/feedback: prediction PredictionID was
// wrong, and Tag is right. For a detector pipeline, Detection is the index of the detection
// in the prediction's list. A correction of a part (cameras[].tracking) names its PartID
// instead of a prediction, and no detection: the part's best frame is corrected. A
// correction may name instead, or as well, the SampleID of a sample the agent sent: the
// agent finds it in its sample store once the prediction's frame has left the ring.
type Feedback struct {
	ID           string `json:"id"`
	PredictionID string `json:"predictionId,omitempty"`
	PartID       string `json:"partId,omitempty"`
	SampleID     string `json:"sampleId,omitempty"`
	Tag          string `json:"tag"`
	Detection    *int   `json:"detection,omitempty"`
	Operator     string `json:"operator,omitempty"`
	Note         string `json:"note,omitempty"`
}

// ParseFeedback reads and checks a feedback message.
func ParseFeedback(raw []byte) (Feedback, error) {
	var f Feedback
	if err := strictJSON(raw, &f); err != nil {
		f.ID = looseID(raw)
		return f, err
	}
	switch {
	case !idRE.MatchString(f.ID):
		f.ID = clip(f.ID)
		return f, fmt.Errorf(`"id" %q must be 1-128 letters, digits or ._:@/+-`, f.ID)
	case f.PredictionID != "" && f.PartID != "":
		return f, errors.New(`give "predictionId" or "partId", not both: a correction is about one prediction, or one part`)
	case f.PartID != "" && !idRE.MatchString(f.PartID):
		return f, errors.New(`"partId" must name the part being corrected (the "partId" of its parts events)`)
	case f.PartID != "" && f.Detection != nil:
		return f, errors.New(`leave "detection" out of a correction by "partId": the part names its detection`)
	case f.SampleID != "" && !sampleIDRE.MatchString(f.SampleID):
		f.SampleID = clip(f.SampleID)
		return f, errors.New(`"sampleId" must be the "id" of a sample this agent sent: 1-128 letters, digits, - or _`)
	case f.SampleID != "" && f.PredictionID == "" && f.Detection != nil:
		return f, errors.New(`leave "detection" out of a correction by "sampleId" alone: the sample names its detection`)
	case f.PartID == "" && f.SampleID == "" && !idRE.MatchString(f.PredictionID):
		return f, errors.New(`"predictionId" must name the prediction being corrected (its "id"), "partId" the part, or "sampleId" a sample the agent sent`)
	case f.PredictionID != "" && !idRE.MatchString(f.PredictionID):
		return f, errors.New(`"predictionId" must name the prediction being corrected (its "id"): 1-128 letters, digits or ._:@/+-`)
	case strings.TrimSpace(f.Tag) == "" || len(f.Tag) > 256:
		return f, errors.New(`"tag" must be the correct tag, 1-256 characters`)
	case f.Detection != nil && (*f.Detection < 0 || *f.Detection > 10000):
		return f, fmt.Errorf(`"detection" %d must be the index of a detection in the prediction`, *f.Detection)
	case len(f.Operator) > 256 || len(f.Note) > 4096:
		return f, errors.New(`"operator" (256) or "note" (4096 characters) is too long`)
	}
	return f, nil
}

// strictJSON decodes one JSON object into v, rejecting unknown fields and trailing data.
func strictJSON(raw []byte, v any) error {
	if len(raw) > maxMessage {
		return fmt.Errorf("message of %d bytes is larger than %d", len(raw), maxMessage)
	}
	if !utf8.Valid(raw) {
		return errors.New("not UTF-8 JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a valid JSON object: %v", err)
	}
	if dec.More() {
		return errors.New("not a valid JSON object: data after the object")
	}
	return nil
}

// looseID digs the id out of a message that failed strict parsing, for the error result. A
// message over maxMessage is not read: decoding it would cost many times its size.
func looseID(raw []byte) string {
	if len(raw) > maxMessage {
		return ""
	}
	var m map[string]any
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&m) != nil {
		return ""
	}
	id, _ := m["id"].(string)
	return clip(id)
}

// clip keeps an id short enough to echo in a result.
func clip(id string) string {
	if len(id) > 128 {
		id = id[:128]
	}
	return strings.ToValidUTF8(id, "")
}

// maxSample bounds a sample payload (two JPEGs of up to a few MiB, in base64).
const maxSample = 32 << 20

// ParseSample reads a sample from an agent and checks what a collector relies on: an id,
// the agent and camera, a reason, and JPEG images that decode from base64.
func ParseSample(raw []byte) (Sample, error) {
	var s Sample
	if len(raw) > maxSample {
		return s, fmt.Errorf("sample of %d bytes is larger than %d", len(raw), maxSample)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("not a sample: %v", err)
	}
	switch {
	case s.Schema != Schema:
		return s, fmt.Errorf("sample schema %d; this collector reads schema %d", s.Schema, Schema)
	case !sampleIDRE.MatchString(s.ID):
		return s, fmt.Errorf(`sample "id" %q is not a valid id (letters, digits, - and _)`, clip(s.ID))
	case s.Agent == "" || s.Camera == "" || s.Reason == "":
		return s, errors.New(`sample lacks "agent", "camera" or "reason"`)
	case s.Crop == nil && s.Frame == nil && !s.ImageOmitted:
		return s, errors.New("sample has no image")
	}
	for name, img := range map[string]*Image{"crop": s.Crop, "frame": s.Frame} {
		if img == nil {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(img.JPEG)
		if err != nil || len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
			return s, fmt.Errorf("sample %s: %s is not a base64 JPEG", s.ID, name)
		}
	}
	return s, nil
}
