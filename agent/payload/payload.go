// Package payload defines the JSON messages cvedge publishes over MQTT. They are the
// contract with plant dashboards: docs/mqtt.md describes them, and a change that breaks a
// consumer raises Schema.
//
// Predictions keep the shape of the Azure Custom Vision Prediction API (id, project,
// iteration, created, predictions[] with probability, tagId, tagName, boundingBox), so
// consumers written for the cloud read them unchanged; cvedge adds fields beside them.
//
// This package is pure Go and imports nothing of cvedge.
package payload

import "time"

// Schema is the version of every payload in this package. Fields may be added without
// raising it; renaming, removing or changing the meaning of a field raises it.
const Schema = 1

// Box is a region normalized to 0..1 of the frame, as in the Prediction API.
type Box struct {
	Left   float32 `json:"left"`
	Top    float32 `json:"top"`
	Width  float32 `json:"width"`
	Height float32 `json:"height"`
}

// Tag is one prediction of the Prediction API: a tag, its probability and, for detectors,
// its box. With two stages, each detection carries the classification of its crop.
type Tag struct {
	Probability float32 `json:"probability"`
	TagID       string  `json:"tagId,omitempty"`
	TagName     string  `json:"tagName"`
	BoundingBox *Box    `json:"boundingBox,omitempty"`
	// TrackID names the part a detection shows, the same in every frame while the part is in
	// view (cameras[].tracking); 0 (left out) when the camera does not track.
	TrackID        uint64          `json:"trackId,omitempty"`
	Classification *Classification `json:"classification,omitempty"`
	// Vote is the N-frame agreement on this part, when the pipeline votes.
	Vote *Vote `json:"vote,omitempty"`
}

// Classification is a classifier's answer for one region: the crop of a detection, or the
// whole frame.
type Classification struct {
	Model       string `json:"model"`
	Iteration   string `json:"iteration"`
	Predictions []Tag  `json:"predictions"`
	// Uncertain is true when the top tag is under its per-tag threshold: the answer is not
	// routed further.
	Uncertain bool `json:"uncertain,omitempty"`
	// Next is the second-level classifier's answer, chosen by this level's top tag.
	Next *Classification `json:"next,omitempty"`
	// Shadow is the candidate iteration's answer on the same region, when one ran.
	Shadow *ShadowAnswer `json:"shadow,omitempty"`
}

// ShadowAnswer is what a candidate iteration said beside the active one.
type ShadowAnswer struct {
	Iteration   string  `json:"iteration"`
	TagName     string  `json:"tagName"`
	Probability float32 `json:"probability"`
	// Agrees is true when the candidate's top tag is the active one's.
	Agrees bool `json:"agrees"`
}

// Vote is the N-frame agreement on one part (a detection tracked across frames), or on the
// whole frame for a classifier alone.
type Vote struct {
	// Track numbers the part since the agent started (0 for the whole frame).
	Track int `json:"track"`
	// Frames is how many frames have seen it; Needed how many the decision takes.
	Frames int `json:"frames"`
	Needed int `json:"needed"`
	// Tag is the most frequent final tag so far.
	Tag string `json:"tag"`
	// Decided is true once Frames reached Needed; First only on the frame that decided.
	Decided bool `json:"decided"`
	First   bool `json:"first"`
}

// ModelRef names a model that took part in a prediction.
type ModelRef struct {
	Stage     string `json:"stage"` // detector, classifier, or route (a second-level classifier)
	Name      string `json:"name"`
	Format    string `json:"format"`
	Iteration string `json:"iteration"`
	SHA256    string `json:"sha256"`
}

// Latency is the time spent per stage of one frame, in milliseconds.
type Latency struct {
	// Queue is from capture until the pipeline took the frame.
	Queue      float64 `json:"queue"`
	Preprocess float64 `json:"preprocess"`
	Detect     float64 `json:"detect"`
	Classify   float64 `json:"classify"`
	// Total is from capture until the message was built.
	Total float64 `json:"total"`
}

// Quality is the capture quality of the frame (see preprocess.Quality).
type Quality struct {
	Sharpness    float64 `json:"sharpness"`
	Brightness   float64 `json:"brightness"`
	Overexposed  float64 `json:"overexposed"`
	Underexposed float64 `json:"underexposed"`
	// Gate is "pass" or "fail" when the camera has a quality gate that flags; Failed names
	// the bounds the frame is outside of: sharpness, too_dark, too_bright, overexposed,
	// underexposed.
	Gate   string   `json:"gate,omitempty"`
	Failed []string `json:"failed,omitempty"`
}

// Prediction is the message of one processed frame, on <prefix>/cameras/<camera>/predictions.
type Prediction struct {
	Schema int `json:"schema"`
	// ID identifies this prediction (a GUID, as in the Prediction API); feedback names it.
	ID        string    `json:"id"`
	Project   string    `json:"project"`
	Iteration string    `json:"iteration"`
	Created   time.Time `json:"created"`

	Agent  string `json:"agent"`
	Camera string `json:"camera"`
	// Boot changes each time the agent starts; with FrameID it makes a unique key for
	// de-duplicating redelivered messages.
	Boot string `json:"boot"`
	// FrameID counts this camera's prediction messages from 1 since Boot, with no gaps: a
	// missing number is a lost message. (Frames a live camera replaced before the pipeline
	// took them get no number; they are counted in the stats as dropped.)
	FrameID uint64 `json:"frameId"`
	// SourcePos is the frame's index in a file or folder source.
	SourcePos *int64    `json:"sourcePos,omitempty"`
	Captured  time.Time `json:"captured"`
	TriggerID string    `json:"triggerId,omitempty"`
	Width     int       `json:"width"`
	Height    int       `json:"height"`

	LatencyMs   Latency    `json:"latencyMs"`
	Quality     Quality    `json:"quality"`
	Models      []ModelRef `json:"models"`
	Predictions []Tag      `json:"predictions"`
	// For a classifier alone (no detector), the levels beyond the tags above: Uncertain,
	// the second level chosen by the top tag (Route), the shadow's answer, and the vote.
	Uncertain bool            `json:"uncertain,omitempty"`
	Route     *Classification `json:"route,omitempty"`
	Shadow    *ShadowAnswer   `json:"shadow,omitempty"`
	Vote      *Vote           `json:"vote,omitempty"`
	// Motion is "unchanged" on the report of a camera whose motion gate has kept its
	// unchanged picture from the models since report_interval (cameras[].motion): no models
	// ran, Predictions is empty. Absent on a frame that went through the models.
	Motion string `json:"motion,omitempty"`
}

// CameraStatus is one camera in the agent status.
type CameraStatus struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Read    uint64 `json:"read"`
	Dropped uint64 `json:"dropped"`
	// Skipped and Overflow: see CameraStats.
	Skipped  uint64 `json:"skipped"`
	Overflow uint64 `json:"overflow"`
}

// ModelStatus is one loaded model in the agent status.
type ModelStatus struct {
	Name      string `json:"name"`
	Format    string `json:"format"`
	Iteration string `json:"iteration"`
	SHA256    string `json:"sha256"`
	Labels    int    `json:"labels"`
}

// Status is the retained message on <prefix>/status: the birth message on connect, updated
// when a camera or model changes, and the last will ("offline") when the agent vanishes.
type Status struct {
	Schema  int            `json:"schema"`
	Agent   string         `json:"agent"`
	State   string         `json:"state"` // online, offline
	Reason  string         `json:"reason,omitempty"`
	Version string         `json:"version,omitempty"`
	Host    string         `json:"host,omitempty"`
	Boot    string         `json:"boot,omitempty"`
	Started *time.Time     `json:"started,omitempty"`
	Updated time.Time      `json:"updated"`
	Cameras []CameraStatus `json:"cameras,omitempty"`
	Models  []ModelStatus  `json:"models,omitempty"`
}

// CameraStats is one camera in the stats message.
type CameraStats struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// FPS is the frames processed per second over the last interval.
	FPS float64 `json:"fps"`
	// Read counts frames since start. Dropped were replaced by a newer one while the pipeline
	// was busy (a continuous camera slower than its source); Skipped were not wanted, by
	// design (trigger interval or mqtt, max_fps); Overflow came from a hardware-triggered
	// camera with its trigger_queue full (parts not inspected). Failed counts frames the
	// pipeline could not process.
	Read     uint64 `json:"read"`
	Dropped  uint64 `json:"dropped"`
	Skipped  uint64 `json:"skipped"`
	Overflow uint64 `json:"overflow"`
	Failed   uint64 `json:"failed"`
	// Gated counts frames a quality gate with action skip kept from the models.
	Gated uint64 `json:"gated"`
	// Samples counts the samples sent since start, by reason.
	Samples map[string]uint64 `json:"samples"`
	// InferenceMs is the mean model time (detect + classify) per frame over the interval.
	InferenceMs float64 `json:"inferenceMs"`
	// Unchanged counts frames a motion gate kept from the models (cameras[].motion): their
	// picture had not changed.
	Unchanged uint64 `json:"unchanged"`
}

// MQTTStats are the publisher's counters since start.
type MQTTStats struct {
	Connected bool `json:"connected"`
	// State is connected, stalled (connected, nothing acknowledged within the stall time),
	// connecting or refused; LastError says why when it is not connected.
	State     string `json:"state"`
	LastError string `json:"lastError,omitempty"`
	Queued    int    `json:"queued"`
	InFlight  int    `json:"inFlight"`
	Sent      uint64 `json:"sent"`
	Spooled   uint64 `json:"spooled"`
	Drained   uint64 `json:"drained"`
	// Skipped counts status and stats messages not sent while the broker was away.
	Skipped uint64 `json:"skipped"`
	// Lost counts predictions and samples the spool could not take (disk errors).
	Lost uint64 `json:"lost"`
	// SetAside counts messages that can never be delivered (over mqtt.max_payload_kb, or
	// refused each time), kept in the dead-letter folder.
	SetAside uint64 `json:"setAside"`
}

// SpoolStats describe the on-disk spool.
type SpoolStats struct {
	// Writable is false while the spool cannot write (disk full, read-only, I/O error);
	// Error says why.
	Writable bool   `json:"writable"`
	Error    string `json:"error,omitempty"`
	Messages int    `json:"messages"`
	Bytes    int64  `json:"bytes"`
	// DiskBytes is the size of the spool's files, delivered records not yet given back
	// included.
	DiskBytes int64 `json:"diskBytes"`
	// WriteFailures counts appends that failed; CorruptBytes the bytes of corrupt records
	// skipped (never delivered).
	WriteFailures uint64 `json:"writeFailures"`
	CorruptBytes  int64  `json:"corruptBytes"`
	// Dropped counts messages the spool bounds threw away since start, by class and reason
	// ("samples/bytes", "predictions/age").
	Dropped map[string]uint64 `json:"dropped"`
}

// Stats is the periodic message on <prefix>/stats.
type Stats struct {
	Schema   int           `json:"schema"`
	Agent    string        `json:"agent"`
	Boot     string        `json:"boot"`
	Time     time.Time     `json:"time"`
	UptimeS  float64       `json:"uptimeS"`
	Interval float64       `json:"intervalS"`
	Cameras  []CameraStats `json:"cameras"`
	Models   []ModelStats  `json:"models"`
	LLM      *LLMStats     `json:"llm,omitempty"`
	MQTT     MQTTStats     `json:"mqtt"`
	Spool    SpoolStats    `json:"spool"`
}

// Result answers one command or feedback message, on <prefix>/commands/results.
type Result struct {
	Schema int    `json:"schema"`
	Agent  string `json:"agent"`
	// ID is the id of the command or feedback answered; "" when it could not be read.
	ID      string    `json:"id"`
	Command string    `json:"command,omitempty"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Time    time.Time `json:"time"`
	// PredictionID and FrameID name the prediction a trigger or snapshot command was answered
	// with (FrameID is a number, as in every other message); absent otherwise.
	PredictionID string `json:"predictionId,omitempty"`
	FrameID      uint64 `json:"frameId,omitempty"`
	// Detail carries what a command returns (for example the snapshot topic).
	Detail map[string]string `json:"detail,omitempty"`
}

// Snapshot is one frame sent on request, on <prefix>/cameras/<camera>/snapshot.
type Snapshot struct {
	Schema    int    `json:"schema"`
	Agent     string `json:"agent"`
	Camera    string `json:"camera"`
	CommandID string `json:"commandId"`
	Boot      string `json:"boot"`
	// FrameID and PredictionID name the prediction made from this frame; absent when the
	// frame could not be processed.
	FrameID      uint64    `json:"frameId,omitempty"`
	PredictionID string    `json:"predictionId,omitempty"`
	Captured     time.Time `json:"captured"`
	Width        int       `json:"width"`
	Height       int       `json:"height"`
	// JPEG is the frame, base64-encoded; scaled down when the full frame exceeds 1 MiB.
	JPEG string `json:"jpeg"`
}

// Image is a JPEG in a sample.
type Image struct {
	// JPEG is base64; scaled down when needed to fit the size cap.
	JPEG   string `json:"jpeg"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	// Box is where a crop lies in the frame, normalized 0..1.
	Box *Box `json:"box,omitempty"`
}

// Sample is a likely misclassified (or operator-corrected) prediction with its image, on
// <prefix>/cameras/<camera>/samples.
type Sample struct {
	Schema  int       `json:"schema"`
	ID      string    `json:"id"`
	Agent   string    `json:"agent"`
	Camera  string    `json:"camera"`
	Boot    string    `json:"boot"`
	Created time.Time `json:"created"`
	// Reason is low_confidence, small_margin, disagreement, quality_gate, audit, shadow,
	// unknown, llm or operator; Detail says what the rule saw.
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	// PredictionID, FrameID and Captured name the prediction sampled. A frame the quality
	// gate kept from the models has no prediction: only Captured.
	PredictionID string    `json:"predictionId,omitempty"`
	FrameID      uint64    `json:"frameId,omitempty"`
	Captured     time.Time `json:"captured"`
	// Detection is the index of the detection in the prediction's list; absent when the
	// sample is about the whole frame.
	Detection *int `json:"detection,omitempty"`
	// PartID and TrackID name the tracked part the sample shows (cameras with tracking, where
	// a part is sampled once, when it ends: see the parts topic's events of that partId).
	PartID  string `json:"partId,omitempty"`
	TrackID uint64 `json:"trackId,omitempty"`
	// Prediction is what the models said: the detection with its classification, or the
	// classifier's tags for the whole frame.
	// It is absent for a whole-frame sample of a detector pipeline (a failed quality gate).
	Prediction *Tag `json:"prediction,omitempty"`
	// CorrectTag, Operator, Note and FeedbackID come from an operator's correction.
	CorrectTag string     `json:"correctTag,omitempty"`
	Operator   string     `json:"operator,omitempty"`
	Note       string     `json:"note,omitempty"`
	FeedbackID string     `json:"feedbackId,omitempty"`
	Models     []ModelRef `json:"models"`
	// Crop is the region the classifier saw (the whole frame without a detector); Frame is
	// the whole frame, when configured for a detector pipeline.
	Crop  *Image `json:"crop,omitempty"`
	Frame *Image `json:"frame,omitempty"`
	// ImageOmitted is true when an image could not be made to fit the size cap.
	ImageOmitted bool `json:"imageOmitted,omitempty"`
}

// TagAgreement counts, for one tag of the active iteration, how often the candidate agreed.
type TagAgreement struct {
	Compared uint64 `json:"compared"`
	Agreed   uint64 `json:"agreed"`
}

// ShadowStats is the evidence about a candidate iteration: how often it agrees with the
// active one, and how often it was right where an operator corrected the active one.
type ShadowStats struct {
	Iteration string                  `json:"iteration"`
	Compared  uint64                  `json:"compared"`
	Agreed    uint64                  `json:"agreed"`
	Agreement float64                 `json:"agreement"`
	ByTag     map[string]TagAgreement `json:"byTag"`
	// Reviewed counts operator corrections of regions the candidate also saw;
	// CandidateRight those where it said the corrected tag.
	Reviewed       uint64 `json:"reviewed"`
	CandidateRight uint64 `json:"candidateRight"`
}

// ModelStats is one model in the stats message.
type ModelStats struct {
	Name      string       `json:"name"`
	Iteration string       `json:"iteration"`
	Shadow    *ShadowStats `json:"shadow,omitempty"`
	// ShadowSummary is the shadow's counters as they were when the candidate had been compared
	// models.<name>.shadow.summary_after times; absent before, and without summary_after.
	ShadowSummary *ShadowStats `json:"shadowSummary,omitempty"`
}

// FollowUp is a later answer about a prediction, from another source than the models, on
// <prefix>/cameras/<camera>/followups.
type FollowUp struct {
	Schema       int       `json:"schema"`
	ID           string    `json:"id"`
	Agent        string    `json:"agent"`
	Camera       string    `json:"camera"`
	Boot         string    `json:"boot"`
	Created      time.Time `json:"created"`
	PredictionID string    `json:"predictionId"`
	FrameID      uint64    `json:"frameId"`
	// Detection is the index of the detection in the prediction; absent for the whole frame.
	Detection *int `json:"detection,omitempty"`
	// Source is "llm"; Model the LLM's model or deployment.
	Source string `json:"source"`
	Model  string `json:"model"`
	// Tag and Reason are the LLM's answer; ModelTag and ModelProbability what the classifier
	// said; Agrees whether they match.
	Tag              string  `json:"tag"`
	Reason           string  `json:"reason"`
	ModelTag         string  `json:"modelTag"`
	ModelProbability float32 `json:"modelProbability"`
	Agrees           bool    `json:"agrees"`
	LatencyMs        float64 `json:"latencyMs"`
	// Route is the model entry of type: llm that a route sent the region to, when the
	// follow-up completes the prediction's routed level (whose predictions are empty): Tag is
	// then the region's final tag, or "unknown" with Reason llm_unavailable, llm_invalid or
	// llm_over_budget when the LLM gave none; ModelTag is the tag that routed it, and Agrees
	// is false. Absent for the fallback's second opinion.
	Route string `json:"route,omitempty"`
}

// LLMStats count the LLM fallback's calls since start.
type LLMStats struct {
	Asked       uint64 `json:"asked"`
	Answered    uint64 `json:"answered"`
	Agreed      uint64 `json:"agreed"`
	Invalid     uint64 `json:"invalid"`
	OutsideTags uint64 `json:"outsideTags"`
	Failed      uint64 `json:"failed"`
	OverBudget  uint64 `json:"overBudget"`
	Dropped     uint64 `json:"dropped"`
	// PromptTokens and CompletionTokens add up the usage the endpoint reported; Cost is
	// what they cost at llm.prompt_price and llm.completion_price (per 1000 tokens), left
	// out when no price is set.
	PromptTokens     uint64  `json:"promptTokens"`
	CompletionTokens uint64  `json:"completionTokens"`
	Cost             float64 `json:"cost,omitempty"`
}

// Part is one event of a part followed across frames (cameras[].tracking), on
// <prefix>/cameras/<camera>/parts: "start" when it appears, "end" with the decision once its
// track ends.
type Part struct {
	Schema  int       `json:"schema"`
	Event   string    `json:"event"` // start or end
	PartID  string    `json:"partId"`
	TrackID uint64    `json:"trackId"`
	Agent   string    `json:"agent"`
	Camera  string    `json:"camera"`
	Boot    string    `json:"boot"`
	Created time.Time `json:"created"`
	// FirstFrameID and FirstSeen are the frame it appeared in; LastFrameID and LastSeen (end)
	// the last one that saw it, and Frames how many did.
	FirstFrameID uint64     `json:"firstFrameId"`
	FirstSeen    time.Time  `json:"firstSeen"`
	LastFrameID  uint64     `json:"lastFrameId,omitempty"`
	LastSeen     *time.Time `json:"lastSeen,omitempty"`
	Frames       int        `json:"frames"`
	// TagName and Probability are the decision (end): the final tag with the most confidence
	// over the part's frames, and its mean confidence over them; "unknown" when that is under
	// the tag's threshold or the tag won less than half the evidence.
	TagName     string  `json:"tagName,omitempty"`
	Probability float32 `json:"probability,omitempty"`
	// Verdict is ok or nok, from the camera's verdicts (end); left out when none are set.
	Verdict string `json:"verdict,omitempty"`
	// Path is the decided tag's way through the models: the detector's tag, the classifier's,
	// and the second level's when a route refined it.
	Path []string `json:"path,omitempty"`
	// Votes is the evidence: each final tag with its summed confidence over the frames.
	Votes map[string]float32 `json:"votes,omitempty"`
	// BoundingBox is where it was when first seen (start), or in the frame where the decided
	// tag was most confident (end), that frame being BestFrameID.
	BoundingBox *Box   `json:"boundingBox,omitempty"`
	BestFrameID uint64 `json:"bestFrameId,omitempty"`
	// DecidedBy is what made the decision (end): "line" (it crossed the decision line),
	// "time" (decision.after passed), "end" (its track ended) or "stop" (the agent stopped or
	// reloaded while it was in view); Decided is when.
	DecidedBy string     `json:"decidedBy,omitempty"`
	Decided   *time.Time `json:"decided,omitempty"`
	// Ended says why the part's track ended (end): "unseen" (not seen for more than
	// tracking.max_missed frames, or gone from the frame) or "stop".
	Ended string `json:"ended,omitempty"`
	// Lines are the counting lines it crossed (end), each with the way: forward or backward.
	Lines map[string]string `json:"lines,omitempty"`
	// LLM is what the LLM fallback said about the part (end), when it was asked.
	LLM *PartLLM `json:"llm,omitempty"`
	// Source is "llm" when the decided tag is the answer of a model of type: llm that a
	// route sent the part to (end); left out when the frames decided.
	Source string `json:"source,omitempty"`
}

// Decision is a part's decision on <prefix>/cameras/<camera>/decisions, sent the moment it
// is made, for a reject gate or a PLC: small, never retained, not spooled.
type Decision struct {
	Schema      int     `json:"schema"`
	Agent       string  `json:"agent"`
	Camera      string  `json:"camera"`
	PartID      string  `json:"partId"`
	TrackID     uint64  `json:"trackId"`
	TagName     string  `json:"tagName"`
	Probability float32 `json:"probability"`
	Verdict     string  `json:"verdict,omitempty"`
	// By is what made the decision: line, time, end or stop (as Part.DecidedBy).
	By string `json:"by"`
	// Source is "llm" when the tag is the answer of a model of type: llm that a route sent
	// the part to (as Part.Source).
	Source string `json:"source,omitempty"`
	// FrameID and Captured are the last frame that saw the part: a gate that acts on the
	// part's position reckons from Captured.
	FrameID  uint64    `json:"frameId"`
	Captured time.Time `json:"captured"`
	Created  time.Time `json:"created"`
}

// Counts are a camera's parts counted since Since, retained on
// <prefix>/cameras/<camera>/counts.
type Counts struct {
	Schema int    `json:"schema"`
	Agent  string `json:"agent"`
	Camera string `json:"camera"`
	// Since is when counting began: the last reset, or the first start.
	Since time.Time `json:"since"`
	// Reset is what reset the counts at Since: "command" or "shift"; empty for a first start.
	Reset   string    `json:"reset,omitempty"`
	Updated time.Time `json:"updated"`
	// Parts counts the parts decided; Tags and Verdicts split them by decided tag and
	// verdict (no verdicts: none).
	Parts    uint64            `json:"parts"`
	Tags     map[string]uint64 `json:"tags"`
	Verdicts map[string]uint64 `json:"verdicts"`
	// Lines counts, by counting line, the parts whose centre crossed it, once each.
	Lines map[string]LineCount `json:"lines"`
}

// LineCount is the parts that crossed one line, by way.
type LineCount struct {
	Forward  uint64 `json:"forward"`
	Backward uint64 `json:"backward"`
}

// PartLLM is the LLM fallback's answer about a part: it is asked at most once per part, about
// one frame where the part was uncertain (and, when it could be, wholly inside the frame).
type PartLLM struct {
	// State is answered, pending (the part was decided before the answer came, without it),
	// failed (no usable answer: the stats count why) or over_budget (not asked: the budget
	// was spent). Reason says why for a route's question that got no answer:
	// llm_timeout, llm_unavailable, llm_invalid or llm_over_budget.
	State string `json:"state"`
	// Route is set when the part was asked about as a route's classifier (a model of type:
	// llm): its answer is the decision (Part.Source llm), not a weight.
	Route bool `json:"route,omitempty"`
	// FrameID and PredictionID name the frame asked about; Model is the classifier whose
	// uncertain answer was asked about, and whose tags the LLM chose from.
	FrameID      uint64 `json:"frameId"`
	PredictionID string `json:"predictionId"`
	Model        string `json:"model"`
	// Tag and Reason are the answer (answered); Weight is the evidence it added to Tag in the
	// decision: llm.part_weight times the part's frames.
	Tag    string  `json:"tag,omitempty"`
	Reason string  `json:"reason,omitempty"`
	Weight float32 `json:"weight,omitempty"`
}

// PartImage is the best frame of a part that ended, on <prefix>/cameras/<camera>/parts/image
// (cameras[].parts.image), after the part's end event: the whole frame as a JPEG with the
// part's box and its decided tag and probability drawn.
type PartImage struct {
	Schema  int       `json:"schema"`
	PartID  string    `json:"partId"`
	TrackID uint64    `json:"trackId"`
	Agent   string    `json:"agent"`
	Camera  string    `json:"camera"`
	Boot    string    `json:"boot"`
	Created time.Time `json:"created"`
	// FrameID and Captured are the frame shown, BoundingBox the part's box in it.
	FrameID     uint64    `json:"frameId"`
	Captured    time.Time `json:"captured"`
	BoundingBox Box       `json:"boundingBox"`
	// TagName, Probability and Verdict are the part's decision, as on its end event: what
	// the image's label says.
	TagName     string  `json:"tagName"`
	Probability float32 `json:"probability"`
	Verdict     string  `json:"verdict,omitempty"`
	// Image is the annotated frame; absent (and ImageOmitted true) when no JPEG of it fits
	// the size cap.
	Image        *Image `json:"image,omitempty"`
	ImageOmitted bool   `json:"imageOmitted,omitempty"`
}
