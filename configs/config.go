// Package configs owns cvedge's configuration: the schema, every default, loading (YAML file
// plus CVEDGE_* environment overrides, through viper) and validation. It is the one place
// where a default is written down or a value is checked; other packages receive a validated
// Config and trust it.
//
// The sample files beside this package (cvedge.yaml, demo.yaml) are part of it and are
// tested to pass Load.
//
// This package is pure Go: it must not import gocv, onnxruntime or any cvedge package.
package configs

import (
	"runtime"
	"time"
)

// Config is the whole agent configuration.
type Config struct {
	Agent       Agent            `mapstructure:"agent"`
	ONNXRuntime ONNXRuntime      `mapstructure:"onnxruntime"`
	MQTT        MQTT             `mapstructure:"mqtt"`
	Spool       Spool            `mapstructure:"spool"`
	Samples     Samples          `mapstructure:"samples"`
	Store       Store            `mapstructure:"store"`
	LLM         LLM              `mapstructure:"llm"`
	HTTP        HTTP             `mapstructure:"http"`
	UI          UI               `mapstructure:"ui"`
	Ring        Ring             `mapstructure:"ring"`
	Commands    Commands         `mapstructure:"commands"`
	Counts      Counts           `mapstructure:"counts"`
	Sparkplug   Sparkplug        `mapstructure:"sparkplug"`
	PLC         PLC              `mapstructure:"plc"`
	Models      map[string]Model `mapstructure:"models"`
	Cameras     []Camera         `mapstructure:"cameras"`

	// HomeAssistant announces the cameras to Home Assistant by MQTT discovery.
	HomeAssistant HomeAssistant `mapstructure:"homeassistant"`
}

// Agent holds identity and logging.
type Agent struct {
	// ID names this agent in topics and payloads. Default: the host name.
	ID string `mapstructure:"id"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `mapstructure:"log_level"`
	// LogFormat is text, json, or auto (json when stderr is not a terminal).
	LogFormat string `mapstructure:"log_format"`
	// LogPredictions logs every prediction in readable form (useful for demos; noisy on a line).
	LogPredictions bool `mapstructure:"log_predictions"`
}

// ONNXRuntime locates and tunes the onnxruntime shared library.
type ONNXRuntime struct {
	// Library is the path of libonnxruntime.so. Empty: search (see models.FindLibrary).
	Library string `mapstructure:"library"`
	// IntraOpThreads and InterOpThreads size onnxruntime's thread pools; 0 lets onnxruntime
	// choose (one per core). The default for intra_op_threads is one less than the cores
	// (at least 1): the core left over grabs, preprocesses and publishes the next frame while
	// the model runs.
	IntraOpThreads int `mapstructure:"intra_op_threads"`
	InterOpThreads int `mapstructure:"inter_op_threads"`
	// GraphOptimization is all, extended, basic or disabled.
	GraphOptimization string `mapstructure:"graph_optimization"`
	// MemoryArena lets onnxruntime keep freed buffers for reuse (faster, more memory).
	MemoryArena bool `mapstructure:"memory_arena"`
	// Spinning lets onnxruntime's pool threads busy-wait between calls: a little faster per
	// call on an idle machine, but the spinning takes CPU from capture and preprocessing.
	Spinning bool `mapstructure:"spinning"`
	// ExecutionProvider is cpu, cuda, tensorrt (Jetson) or openvino (Intel). One this
	// onnxruntime build lacks falls back to cpu, with a log line that says so.
	ExecutionProvider string `mapstructure:"execution_provider"`
	// DeviceID picks the GPU for cuda and tensorrt.
	DeviceID int `mapstructure:"device_id"`
}

// MQTT is the connection to the plant's broker, and the optional embedded broker.
type MQTT struct {
	// Broker is the URL: tcp://host:1883, ssl://host:8883, ws://host:80/mqtt.
	Broker string `mapstructure:"broker"`
	// ClientID must be stable across restarts for a persistent session. Default: cvedge-<agent id>.
	ClientID string `mapstructure:"client_id"`
	// TopicPrefix is put before every topic. Default: cvedge/<agent id>.
	TopicPrefix string `mapstructure:"topic_prefix"`
	// QoS of prediction messages: 0, 1 or 2.
	QoS int `mapstructure:"qos"`
	// KeepAlive is the MQTT keepalive interval.
	KeepAlive time.Duration `mapstructure:"keepalive"`
	// ConnectTimeout bounds one connection attempt.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// MaxReconnectInterval caps the backoff between reconnection attempts.
	MaxReconnectInterval time.Duration `mapstructure:"max_reconnect_interval"`
	// PublishTimeout bounds the wait for the broker's acknowledgement of one publish; a
	// message not acknowledged in time goes to the spool.
	PublishTimeout time.Duration `mapstructure:"publish_timeout"`
	// Username for the broker. The password comes from PasswordFile, or from Password
	// (best set through the environment: CVEDGE_MQTT_PASSWORD). Neither is ever logged.
	Username     string `mapstructure:"username"`
	Password     string `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	// TLS secures ssl:// (tls://, mqtts://, wss://) connections.
	TLS TLS `mapstructure:"tls"`
	// QueueSize bounds the messages waiting in memory for the broker; beyond it they go
	// straight to the spool.
	QueueSize int `mapstructure:"queue_size"`
	// Inflight is how many QoS 1 and 2 messages are published without waiting for the
	// broker's acknowledgement (the window); a broker far away needs a wide one (rate x round
	// trip). 1 publishes one message at a time.
	Inflight int `mapstructure:"inflight"`
	// MaxPayloadKB is the largest message the broker takes, in KiB (mosquitto's
	// message_size_limit, 128 for AWS IoT Core); 0: no limit. Sample and snapshot images
	// are re-encoded smaller to fit; any other message over it is set aside in the
	// dead-letter folder instead of being sent.
	MaxPayloadKB int `mapstructure:"max_payload_kb"`
	// SpoolFirst writes every message that must arrive (predictions, samples, results) to
	// the spool before it is published, so a crash at any moment loses none; each costs a
	// disk sync (docs/benchmarks.md).
	SpoolFirst bool `mapstructure:"spool_first"`
	// StatsInterval is how often the stats message is published; 0 turns it off.
	StatsInterval time.Duration `mapstructure:"stats_interval"`
	// Embedded runs an MQTT broker inside the agent, for a single-box kiosk or the demo.
	Embedded Embedded `mapstructure:"embedded"`
	// AzureIoTHub, when its connection string is set, makes the agent a device of an Azure
	// IoT hub: see AzureIoTHub.
	AzureIoTHub AzureIoTHub `mapstructure:"azure_iot_hub"`
}

// TLS holds the files of a TLS connection to the broker.
type TLS struct {
	// CAFile is the PEM bundle that signs the broker's certificate. Empty: the system's.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are the agent's own certificate and key, for mutual TLS.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName overrides the name checked in the broker's certificate.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. For tests only.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// Sparkplug publishes the agent as a Sparkplug B edge node and each camera as one of its
// devices, for Ignition (MQTT Engine) and other Sparkplug host applications
// (docs/integrations.md). It has its own MQTT connection, to mqtt.broker with the mqtt
// section's credentials and TLS unless Broker is set, with client id <mqtt.client_id>-spb.
type Sparkplug struct {
	Enabled bool `mapstructure:"enabled"`
	// GroupID and EdgeNodeID name the edge node in every topic:
	// spBv1.0/<group_id>/<message type>/<edge_node_id>[/<camera>]. EdgeNodeID defaults to
	// agent.id. Neither may hold '+', '#' or '/'.
	GroupID    string `mapstructure:"group_id"`
	EdgeNodeID string `mapstructure:"edge_node_id"`
	// Broker, when set, is a separate broker for Sparkplug (tcp://host:1883,
	// ssl://host:8883), with its own Username, Password (or PasswordFile) and TLS; empty:
	// mqtt.broker and the mqtt section's username, password and tls.
	Broker       string `mapstructure:"broker"`
	Username     string `mapstructure:"username"`
	Password     string `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	TLS          TLS    `mapstructure:"tls"`
	// DataInterval is how often the changed metrics are published (DDATA, NDATA): changes
	// within one interval go out together.
	DataInterval time.Duration `mapstructure:"data_interval"`
}

// PLC serves the agent's state to a PLC without MQTT (docs/integrations.md, PLC interface).
type PLC struct {
	Modbus PLCModbus `mapstructure:"modbus"`
}

// PLCModbus is a Modbus TCP server with a read-only register map per camera: a heartbeat,
// the agent's and the camera's state, the last decision and the counts. Modbus has no
// authentication: keep it on loopback or on a separate PLC network behind a firewall.
type PLCModbus struct {
	Enabled bool `mapstructure:"enabled"`
	// Listen is the server's host:port. The default, 127.0.0.1:5020, is reachable from this
	// machine only; another address (0.0.0.0:502, the PLC network's interface) is logged as
	// reachable by the plant network.
	Listen string `mapstructure:"listen"`
	// MaxClients bounds the Modbus clients connected at once; more are refused.
	MaxClients int `mapstructure:"max_clients"`
}

// HomeAssistant announces the agent and each camera to Home Assistant by MQTT discovery
// (docs/integrations.md): retained config messages under DiscoveryPrefix whose entities read
// the agent's own topics (status, counts, decisions, stats), so nothing more is published per
// frame.
type HomeAssistant struct {
	Enabled bool `mapstructure:"enabled"`
	// DiscoveryPrefix is the topic prefix Home Assistant's MQTT integration watches for
	// discovery (its "discovery prefix" option): homeassistant unless changed there. No '+',
	// '#', empty level, or leading or trailing '/'.
	DiscoveryPrefix string `mapstructure:"discovery_prefix"`
}

// Spool keeps predictions and samples on disk while the broker is unreachable.
type Spool struct {
	// Dir holds the spool. Default: $STATE_DIRECTORY/spool under systemd, else
	// /var/lib/cvedge/spool.
	Dir string `mapstructure:"dir"`
	// MaxMB bounds the spool's size in MiB.
	MaxMB int `mapstructure:"max_mb"`
	// MaxAge drops spooled messages older than this when they come up for delivery; 0 keeps
	// them until MaxMB forces them out.
	MaxAge time.Duration `mapstructure:"max_age"`
	// DropFirst is the class that loses its oldest messages first when MaxMB is hit:
	// samples or predictions.
	DropFirst string `mapstructure:"drop_first"`
	// DeadLetterMB bounds the dead-letter folder (<dir>/deadletter), where messages that
	// can never be delivered are kept as JSON files; past it the oldest go.
	DeadLetterMB int `mapstructure:"dead_letter_mb"`
}

// Samples says which predictions are published as likely misclassified samples, with their
// image, on <prefix>/cameras/<camera>/samples (docs/improvement.md).
type Samples struct {
	Enabled bool `mapstructure:"enabled"`
	// LowConfidence: the top probability is under Threshold.
	LowConfidence Rule `mapstructure:"low_confidence"`
	// SmallMargin: the top two probabilities are closer than Threshold.
	SmallMargin Rule `mapstructure:"small_margin"`
	// Disagreement: the classifier's top tag differs from the detector's tag, where the
	// classifier knows that tag.
	Disagreement Rule `mapstructure:"disagreement"`
	// QualityGate: the frame failed the camera's quality gate.
	QualityGate Rule `mapstructure:"quality_gate"`
	// Audit: a random share (Rate) of predictions, whatever their confidence.
	Audit Rule `mapstructure:"audit"`
	// Shadow: the candidate iteration's top tag differs from the active one's.
	Shadow Rule `mapstructure:"shadow"`
	// Unknown: a tracked part was decided unknown; its best frame is sent when it ends
	// (cameras with tracking, where the other rules also sample once per part).
	Unknown Rule `mapstructure:"unknown"`
	// DedupDistance drops a sample whose image hash (64-bit dHash) is within this many bits
	// of one sent in the last DedupWindow; 0 turns de-duplication off.
	DedupDistance int           `mapstructure:"dedup_distance"`
	DedupWindow   time.Duration `mapstructure:"dedup_window"`
	// FullFrame adds the whole frame to samples of a detector pipeline, beside the crop.
	FullFrame bool `mapstructure:"full_frame"`
	// MaxImageKB caps each JPEG; a larger image is scaled down until it fits.
	MaxImageKB int `mapstructure:"max_image_kb"`
	// JPEGQuality is the JPEG quality of sample images, 1-100.
	JPEGQuality int `mapstructure:"jpeg_quality"`
	// Store keeps every sample sent on disk, so that an operator's correction can name it
	// (by sampleId or predictionId) after its frame has left the ring.
	Store SampleStore `mapstructure:"store"`
}

// SampleStore keeps the samples an agent sent, with their images, for late corrections
// (docs/improvement.md, Feedback). Where the operator station is on (ui.enabled), its
// review queue (ui.review) is the store and these keys are not used.
type SampleStore struct {
	// Enabled keeps the samples; off, a correction must come while the frame is in the ring.
	Enabled bool `mapstructure:"enabled"`
	// Dir holds the store. Default: <spool.dir>/samples.
	Dir string `mapstructure:"dir"`
	// MaxMB and MaxAge bound the store: the oldest samples go first.
	MaxMB  int           `mapstructure:"max_mb"`
	MaxAge time.Duration `mapstructure:"max_age"`
}

// Rule is one sampling rule with its limits.
type Rule struct {
	Enabled bool `mapstructure:"enabled"`
	// Threshold is the rule's bound (low_confidence: probability; small_margin: margin).
	Threshold float64 `mapstructure:"threshold"`
	// PerModel overrides Threshold for the predictions of the named models.
	PerModel map[string]float64 `mapstructure:"per_model"`
	// Rate is the share of predictions sampled (audit), 0..1.
	Rate float64 `mapstructure:"rate"`
	// PerMinute and PerHour cap the samples this rule sends per camera; 0: no cap.
	PerMinute int `mapstructure:"per_minute"`
	PerHour   int `mapstructure:"per_hour"`
}

// Ring keeps each camera's recent frames in memory, so an operator's correction of a
// prediction can be answered with the image.
type Ring struct {
	// Frames, MaxMB and MaxAge bound the frames kept per camera; the first bound hit wins.
	Frames int           `mapstructure:"frames"`
	MaxMB  int           `mapstructure:"max_mb"`
	MaxAge time.Duration `mapstructure:"max_age"`
}

// Embedded configures the in-process broker.
type Embedded struct {
	Enabled bool `mapstructure:"enabled"`
	// Listen is the TCP address of the embedded broker. Keep it on loopback unless
	// dashboards on other hosts must connect.
	Listen string `mapstructure:"listen"`
	// AllowExisting lets the agent go on when Listen is already taken (by a mosquitto
	// service, say) and publish to the broker found there.
	AllowExisting bool `mapstructure:"allow_existing"`
}

// LLM is an OpenAI-compatible chat-completions endpoint with image input (Azure OpenAI,
// OpenAI, or a local server such as Ollama or vLLM), asked about crops whose confidence stays
// low. The prompt is per model (Model.LLM). Calls run in the background and never hold up a
// camera.
type LLM struct {
	Enabled bool `mapstructure:"enabled"`
	// Endpoint is the full chat-completions URL.
	Endpoint string `mapstructure:"endpoint"`
	// Model goes in the request (OpenAI, Ollama, vLLM); Azure deployments ignore it.
	Model string `mapstructure:"model"`
	// KeyEnv names the environment variable holding the key; KeyHeader is where it is sent:
	// Authorization (as a bearer token) or api-key (Azure OpenAI). The key is never logged.
	KeyEnv    string `mapstructure:"key_env"`
	KeyHeader string `mapstructure:"key_header"`
	// Timeout bounds one call.
	Timeout time.Duration `mapstructure:"timeout"`
	// PerMinute and PerHour are the budget of calls, all cameras together.
	PerMinute int `mapstructure:"per_minute"`
	PerHour   int `mapstructure:"per_hour"`
	// Queue bounds the calls waiting; more are dropped and counted.
	Queue int `mapstructure:"queue"`
	// MaxImageKB caps the crop sent.
	MaxImageKB int `mapstructure:"max_image_kb"`
	// PartWeight is how much the answer about a tracked part weighs in the part's decision:
	// as much as this fraction of the part's frames saying the LLM's tag with full confidence
	// (0: the answer is reported on the part's end event, and decides nothing).
	PartWeight float64 `mapstructure:"part_weight"`
	// PerDay caps the calls in any 24 hours, all cameras together, with PerMinute and
	// PerHour (0: no daily cap).
	PerDay int `mapstructure:"per_day"`
	// Structured is how the answer's form is asked for: auto (a strict JSON schema whose tag
	// is one of the allowed tags, and a JSON object from then on if the endpoint refuses
	// schemas), json_schema, json_object, or off (no response_format; the prompt asks). The
	// answer is parsed as strictly whatever is asked.
	Structured string `mapstructure:"structured"`
	// PromptPrice and CompletionPrice are what 1000 prompt and completion tokens cost, in
	// the currency of the bill, for the cost figures of the stats and metrics (0: no cost
	// reported, tokens only).
	PromptPrice     float64 `mapstructure:"prompt_price"`
	CompletionPrice float64 `mapstructure:"completion_price"`
}

// ModelLLM says when and how to ask the LLM about this classifier's answers.
type ModelLLM struct {
	// Prompt describes the task: the tags and the features that tell them apart. Empty: the
	// model's answers are never sent.
	Prompt string `mapstructure:"prompt"`
	// Below asks about crops whose top probability is under this.
	Below float64 `mapstructure:"below"`
	// Tags are the allowed answers; empty: the model's labels.
	Tags []string `mapstructure:"tags"`
}

// HTTP serves Prometheus /metrics, /healthz and /readyz, and the operator station (UI).
type HTTP struct {
	// Listen is host:port, 127.0.0.1:9810 by default (loopback only: what a Prometheus or
	// node_exporter on the same box scrapes). Empty turns the server off.
	Listen string `mapstructure:"listen"`
	// TLS serves https with this certificate and key (PEM files); empty: plain http.
	TLS ServerTLS `mapstructure:"tls"`
}

// ServerTLS is the certificate of a server.
type ServerTLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// UI is the operator station: a live view of the cameras and a review queue of the samples,
// served at / of the HTTP server (docs/operator.md).
type UI struct {
	// Enabled serves the station.
	Enabled bool `mapstructure:"enabled"`
	// FPS bounds the frames per second sent to each browser watching a camera; frames are
	// drawn and encoded only while someone watches.
	FPS float64 `mapstructure:"fps"`
	// MaxWidth scales the live frames down to this many pixels wide (0: as captured).
	MaxWidth int `mapstructure:"max_width"`
	// JPEGQuality of the live frames, 1-100.
	JPEGQuality int `mapstructure:"jpeg_quality"`
	// Auth is who may use the station. A listen address other than loopback requires it.
	Auth UIAuth `mapstructure:"auth"`
	// Review keeps the samples on disk until an operator has reviewed them.
	Review Review `mapstructure:"review"`
}

// UIAuth says who may use the station: a token (sent as "Authorization: Bearer TOKEN" or
// typed on the sign-in page), or users with a password, checked against a bcrypt hash
// (cvedge ui hash-password makes one).
type UIAuth struct {
	// Token, or TokenFile holding it; at least 16 characters.
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	// Users sign in with a name and password.
	Users []UIUser `mapstructure:"users"`
	// Session is how long a sign-in lasts.
	Session time.Duration `mapstructure:"session"`
}

// UIUser is one user of the station.
type UIUser struct {
	Name string `mapstructure:"name"`
	// PasswordHash is the bcrypt hash of the password ($2a$, $2b$ or $2y$).
	PasswordHash string `mapstructure:"password_hash"`
}

// On reports whether any sign-in is configured.
func (a UIAuth) On() bool { return a.Token != "" || a.TokenFile != "" || len(a.Users) > 0 }

// Review is the review queue: samples kept with their images until reviewed, and the folder
// where the answers go.
type Review struct {
	// Dir holds the samples waiting for review. Default: <spool.dir>/review.
	Dir string `mapstructure:"dir"`
	// MaxMB and MaxAge bound the queue: the oldest samples go first.
	MaxMB  int           `mapstructure:"max_mb"`
	MaxAge time.Duration `mapstructure:"max_age"`
	// Dataset is the data set folder the answers are saved into (the layout of cvedge
	// collect). Default: <spool.dir>/dataset.
	Dataset string `mapstructure:"dataset"`
}

// Store keeps the iterations of each model (docs/pipelines.md).
type Store struct {
	// Dir holds the store. Default: $STATE_DIRECTORY/models under systemd, else
	// /var/lib/cvedge/models.
	Dir string `mapstructure:"dir"`
	// CAFile adds CA certificates to trust for remote adds (https), beside the system's.
	CAFile string `mapstructure:"ca_file"`
	// MaxDownloadMB bounds the ZIP a remote add downloads; the download stops there.
	MaxDownloadMB int `mapstructure:"max_download_mb"`
	// MaxUnpackedMB bounds what a downloaded ZIP unpacks to (a zip bomb stops there).
	MaxUnpackedMB int `mapstructure:"max_unpacked_mb"`
	// DownloadTimeout bounds connecting, the TLS handshake, the wait for the answer, and
	// every silence of the server during a remote add.
	DownloadTimeout time.Duration `mapstructure:"download_timeout"`
}

// Commands says which commands on <prefix>/commands this agent takes, and which of them
// must be signed (docs/mqtt.md, "Trust model").
type Commands struct {
	// Allow lists the commands the agent takes; any other is answered with a refusal.
	// Default: every command but add.
	Allow []string `mapstructure:"allow"`
	// PublicKey is the ed25519 public key that signs commands: base64 of the 32 key bytes,
	// or a PEM "PUBLIC KEY" block. Empty (and no public_key_file): no command is signed.
	PublicKey string `mapstructure:"public_key"`
	// PublicKeyFile holds the key instead (PEM, as written by openssl pkey -pubout).
	PublicKeyFile string `mapstructure:"public_key_file"`
	// Signed lists the commands that must carry a valid signature once a key is set.
	Signed []string `mapstructure:"signed"`
	// MaxAge is how old a signed command's timestamp may be, and how far in the future
	// (clock skew); a signature is remembered this long to refuse its replay.
	MaxAge time.Duration `mapstructure:"max_age"`
}

// Model is one Custom Vision export: a ZIP, its unzipped folder, or a .onnx with labels.txt.
type Model struct {
	// Path to the export. Once the model store has an active iteration of this model, that
	// iteration is used instead; Path may then be left out.
	Path string `mapstructure:"path"`
	// Format overrides detection from the output names: auto, classifier, classifier-onnx12,
	// detector-yolo, detector-ssd.
	Format string `mapstructure:"format"`
	// Project is the id (a GUID) of the Custom Vision project the model was trained in. An
	// export does not carry it; the predictions of a pipeline whose first stage is this model
	// report it as "project", as the Prediction API does. Empty (the default): "project" is "".
	Project string `mapstructure:"project"`
	// Threshold is the lowest probability reported: detections below it are dropped,
	// classifier tags below it are left out of the prediction list.
	Threshold float64 `mapstructure:"threshold"`
	// NMSIoU is the overlap above which a weaker box of the same tag is suppressed (YOLO).
	NMSIoU float64 `mapstructure:"nms_iou"`
	// MaxDetections caps the boxes per image (detectors).
	MaxDetections int `mapstructure:"max_detections"`
	// Resize is how a region is fitted to the input: stretch, or center_crop.
	Resize string `mapstructure:"resize"`
	// MaxBatch is the most regions sent in one call when the model has a dynamic batch size.
	MaxBatch int `mapstructure:"max_batch"`
	// InputSize is used for a YOLO export whose height and width are symbolic.
	InputSize int `mapstructure:"input_size"`
	// Shadow runs a candidate iteration beside the active one (classifiers).
	Shadow Shadow `mapstructure:"shadow"`
	// LLM asks the configured LLM about low-confidence answers (classifiers).
	LLM ModelLLM `mapstructure:"llm"`
	// Type is onnx (a Custom Vision export, the default) or llm: the model is the LLM of the
	// llm: section, asked once per part (or per region, on a camera that does not track)
	// which of Tags a crop shows, with Prompt. An llm model has no Path; only routes may
	// name it.
	Type string `mapstructure:"type"`
	// Tags are the answers an llm model may give (type: llm; required).
	Tags []string `mapstructure:"tags"`
	// Prompt describes the task to an llm model: the tags and what tells them apart (type:
	// llm; required).
	Prompt string `mapstructure:"prompt"`
}

// ModelTypes are the values of models.<name>.type.
var ModelTypes = []string{"onnx", "llm"}

// IsLLM reports whether the model is answered by the LLM (type: llm).
func (m Model) IsLLM() bool { return m.Type == "llm" }

// Shadow names a candidate iteration to run beside the active one, on the same crops.
type Shadow struct {
	// Iteration is an iteration in the model store, or Path an export; neither: no shadow.
	Iteration string `mapstructure:"iteration"`
	Path      string `mapstructure:"path"`
	// MaxPerSecond caps how often the candidate runs, to bound its cost.
	MaxPerSecond float64 `mapstructure:"max_per_second"`
	// SummaryAfter, above 0, makes the agent log one summary of the shadow's agreement once
	// the candidate was compared that many times, keep it in the model store (`cvedge models
	// shadow-summary`) and publish it in the stats (shadowSummary). 0: no summary.
	SummaryAfter int `mapstructure:"summary_after"`
}

// Camera is one frame source and what runs on its frames.
type Camera struct {
	// Name identifies the camera in topics and payloads: letters, digits, '-' and '_'.
	Name string `mapstructure:"name"`
	// Source says where frames come from: a USB index ("0"), /dev/videoN, a
	// /dev/v4l/by-id path, rtsp:// or http(s):// URL, a GStreamer pipeline ending in appsink,
	// a video file, or a folder of images.
	Source string `mapstructure:"source"`
	// Type overrides the kind guessed from Source: auto, usb, stream, gstreamer, file, folder,
	// genicam (a GigE Vision or USB3 Vision camera through Aravis, see GenICam).
	Type string `mapstructure:"type"`
	// Loop replays a file or folder from the start when it ends.
	Loop bool `mapstructure:"loop"`
	// Realtime paces a file or folder at its frame rate and keeps only the latest frame, as a
	// live camera does. false hands every frame to the pipeline, as fast as it takes them.
	Realtime bool `mapstructure:"realtime"`
	// FPS is the frame rate for a folder of images, or a file that does not say.
	FPS float64 `mapstructure:"fps"`
	// Device holds the settings applied to a USB (V4L2) camera when it is opened; each is
	// read back, and a setting the device ignored is logged.
	Device Device `mapstructure:"device"`
	// RTSP holds the settings of an rtsp:// or rtsps:// camera: how its video is carried.
	RTSP RTSP `mapstructure:"rtsp"`
	// GenICam holds the settings of a camera of type genicam; each is set before the stream
	// starts, read back, and a setting the camera did not take is logged.
	GenICam GenICam `mapstructure:"genicam"`
	// Rotate turns frames clockwise by 0, 90, 180 or 270 degrees, before ROI.
	Rotate int `mapstructure:"rotate"`
	// ROI is the region of interest [x, y, width, height] in pixels of the rotated frame;
	// only it is passed on. Empty: the whole frame.
	ROI []int `mapstructure:"roi"`
	// Trigger says when a frame is processed: continuous (every fresh frame), interval (one
	// every Interval), mqtt (the next fresh frame after each trigger command), or hardware
	// (the camera is fired by a photo-eye or a PLC line: every frame it delivers is
	// processed, in order, none replaced by a newer one).
	Trigger  string        `mapstructure:"trigger"`
	Interval time.Duration `mapstructure:"interval"`
	// TriggerQueue is how many frames of a hardware-triggered camera may wait while the
	// pipeline is busy; a frame beyond it is an overflow, counted, logged and reported.
	TriggerQueue int `mapstructure:"trigger_queue"`
	// MaxFPS caps the frames processed per second in continuous mode; 0: no cap.
	MaxFPS float64 `mapstructure:"max_fps"`
	// Reconnect bounds how a failing source is reopened.
	Reconnect Reconnect `mapstructure:"reconnect"`
	// QualityGate flags or skips frames whose capture quality is out of bounds.
	QualityGate QualityGate `mapstructure:"quality_gate"`
	// Sampling turns the samples rules on for this camera (see Config.Samples).
	Sampling bool `mapstructure:"sampling"`
	// Collect saves frames or crops into a data set folder, for the first training rounds.
	Collect Collect `mapstructure:"collect"`
	// Pipeline says which models run on this camera's frames.
	Pipeline Pipeline `mapstructure:"pipeline"`
	// Tracking follows each detected part from frame to frame (cameras with a detector).
	Tracking Tracking `mapstructure:"tracking"`
	// Verdicts turns each part's decided tag into ok or nok, for a reject gate (cameras with
	// a detector and tracking); none set: parts get no verdict.
	Verdicts Verdicts `mapstructure:"verdicts"`
	// Masks are areas of the frame where detections are ignored: a detection whose centre
	// lies in a mask is dropped before it is classified or tracked (a reflection, the
	// operator's hands).
	Masks []Area `mapstructure:"masks"`
	// Zones restrict where parts are decided: when set, only the frames where a part's centre
	// lies in a zone count for its decision, and a part never seen in one is not reported.
	Zones []Area `mapstructure:"zones"`
	// Lines count the parts whose centre crosses them, once each, by direction.
	Lines []Line `mapstructure:"lines"`
	// Decision sets the deadline by which each part is decided (see Decision).
	Decision Decision `mapstructure:"decision"`
	// Parts says what is published about each tracked part beside its start and end events
	// (cameras with a detector and tracking).
	Parts Parts `mapstructure:"parts"`
	// Motion is the motion gate: while the picture does not change, the models are skipped
	// and the camera reports that it is unchanged (see Motion).
	Motion Motion `mapstructure:"motion"`
}

// Motion is a camera's motion gate (see docs/cameras.md, "Motion gate"): each frame, scaled
// to a small grey picture, is compared with the picture of the last frame that went through
// the models; while too little of it changed, no part was seen within Hold frames and
// MaxInterval has not passed, the frame skips the models and is counted as unchanged. An
// idle line (belt stopped or empty) then costs the comparison, about a millisecond a frame.
type Motion struct {
	// Enabled turns the gate on; off, every frame goes through the models.
	Enabled bool `mapstructure:"enabled"`
	// Threshold is the share (0 to below 1) of the picture's cells (64 x 36 for a 16:9 frame)
	// that must be exceeded for a frame to go through the models: 0, the default, lets one
	// changed cell through (a part covering a fifth of a cell, 6 x 6 px of a 1080p frame, at
	// 50 grey levels of contrast moves its cell by the default pixel_delta); 0.002 needs more
	// than 4 cells, for a picture with some motion of its own.
	Threshold float64 `mapstructure:"threshold"`
	// PixelDelta is how many grey levels (1-254) a cell's mean must move to count as changed:
	// above the flicker of the light and the noise of the sensor.
	PixelDelta int `mapstructure:"pixel_delta"`
	// ReportInterval is how often a camera whose picture stays unchanged publishes a
	// prediction saying so ("motion": "unchanged", no predictions), so that an idle line is
	// told from a dead camera; 0: never.
	ReportInterval time.Duration `mapstructure:"report_interval"`
	// MaxInterval is the longest time between two frames that go through the models,
	// changed or not: the safety net of a change too slow or too faint to show.
	MaxInterval time.Duration `mapstructure:"max_interval"`
	// Hold is how many frames go through the models, changed or not, after the last frame
	// with a detection, so that a part that stopped is still seen and a part that left ends
	// its track and is decided; 0: tracking.max_missed + 1, the least that does.
	Hold int `mapstructure:"hold"`
}

// MotionHold is the camera's motion.hold, or tracking.max_missed + 1 when it is 0.
func (c Camera) MotionHold() int {
	if c.Motion.Hold > 0 {
		return c.Motion.Hold
	}
	return c.Tracking.MaxMissed + 1
}

// Tracks reports whether the camera follows parts from frame to frame: tracking is on and
// it has a detector (a classifier alone has no boxes to track).
func (c Camera) Tracks() bool { return c.Tracking.Enabled && c.Pipeline.Detector != "" }

// Decision says when a part is decided, at the latest: when its centre crosses Line, or
// After it appeared, whichever comes first; with neither, when its track ends. The decision
// goes out at once on the camera's decisions topic, for a reject gate.
type Decision struct {
	// Line names one of the camera's lines.
	Line string `mapstructure:"line"`
	// After is the longest a part may be in view undecided; 0: no time limit.
	After time.Duration `mapstructure:"after"`
}

// Parts says what is published about each tracked part beside its events.
type Parts struct {
	// Image publishes, when each part ends, its best frame (the most confident one, whole in
	// the frame when it was once) as a JPEG with the part's box, tag and probability drawn,
	// on <prefix>/cameras/<camera>/parts/image. It keeps a copy of that frame for each part
	// in view.
	Image PartImage `mapstructure:"image"`
}

// PartImage is the annotated best frame of each part (Parts.Image).
type PartImage struct {
	Enabled bool `mapstructure:"enabled"`
	// MaxKB caps the JPEG; a larger image is scaled down until it fits (and under
	// mqtt.max_payload_kb).
	MaxKB int `mapstructure:"max_kb"`
	// JPEGQuality is the JPEG quality, 1-100.
	JPEGQuality int `mapstructure:"jpeg_quality"`
}

// Counts are the parts counted per camera (by tag, verdict and line), published retained and
// kept on disk (in spool.dir/counts) so that a restart does not lose a shift's figures.
type Counts struct {
	// ResetAt are the local times of day, "HH:MM", at which the counts start again from zero
	// (the shifts' starts). Empty: only the reset-counts command resets them.
	ResetAt []string `mapstructure:"reset_at"`
}

// Collect saves a camera's images into a data set (the layout of `cvedge collect`, in
// unreviewed/), on an interval and/or on every trigger.
type Collect struct {
	Enabled bool   `mapstructure:"enabled"`
	Dir     string `mapstructure:"dir"`
	// What is frames (the whole frame) or crops (each detection's padded crop).
	What string `mapstructure:"what"`
	// Every saves one image (set) per interval; 0: only on triggers.
	Every time.Duration `mapstructure:"every"`
	// OnTrigger saves the frame of every trigger command (trigger: mqtt).
	OnTrigger bool `mapstructure:"on_trigger"`
	// MaxMB is the disk quota of the data set; saving stops, with one warning, when it is
	// reached.
	MaxMB int `mapstructure:"max_mb"`
	// JPEGQuality of the saved images, 1-100.
	JPEGQuality int `mapstructure:"jpeg_quality"`
}

// Device holds USB camera settings; a setting left out is not touched.
type Device struct {
	Width        *int     `mapstructure:"width"`
	Height       *int     `mapstructure:"height"`
	FPS          *float64 `mapstructure:"fps"`
	FourCC       string   `mapstructure:"fourcc"` // e.g. MJPG, YUYV
	AutoExposure *bool    `mapstructure:"auto_exposure"`
	Exposure     *float64 `mapstructure:"exposure"` // device units (V4L2: 100 us steps)
	Autofocus    *bool    `mapstructure:"autofocus"`
	Focus        *float64 `mapstructure:"focus"`
	Gain         *float64 `mapstructure:"gain"`
}

// RTSP transports: the values of cameras[].rtsp.transport.
const (
	RTSPAuto   = "auto"   // GStreamer's rtspsrc, UDP first, TCP when no UDP packet comes; FFmpeg when GStreamer cannot play the stream
	RTSPTCP    = "tcp"    // RTP interleaved in the RTSP TCP connection, through GStreamer's rtspsrc
	RTSPUDP    = "udp"    // RTP over UDP, through GStreamer's rtspsrc
	RTSPFFmpeg = "ffmpeg" // FFmpeg through OpenCV, with FFmpeg's choice (UDP, then TCP)
)

// RTSP says how an rtsp:// camera's video is carried. auto, tcp and udp open the camera
// through GStreamer's rtspsrc, which takes the transport per camera and whose reads the agent
// bounds; ffmpeg leaves it to OpenCV's FFmpeg backend, whose only switch
// (OPENCV_FFMPEG_CAPTURE_OPTIONS) is one for the whole process and whose read waits 30 s on
// a camera that goes silent.
type RTSP struct {
	// Transport is auto, tcp, udp or ffmpeg. tcp suits lossy networks and firewalls (one TCP
	// connection, no smeared frames from lost packets); udp has the least delay on a clean
	// network; auto tries UDP and falls back to TCP, and to FFmpeg where GStreamer lacks
	// rtspsrc or the stream's decoder.
	Transport string `mapstructure:"transport"`
	// Latency is rtspsrc's jitter buffer (auto, tcp and udp): how long packets are held to put
	// them back in order. More smooths a jittery network, at that cost in delay.
	Latency time.Duration `mapstructure:"latency"`
}

// GenICam holds the settings of a GenICam camera (GigE Vision, USB3 Vision), opened through
// Aravis (libaravis, read directly). A setting left out is not touched.
type GenICam struct {
	// Camera is the camera as Aravis names it: its id (Vendor-Serial, as arv-tool-0.8 lists
	// it), serial number, IP address or MAC. Empty: the camera's source.
	Camera string `mapstructure:"camera"`
	// PixelFormat is the GenICam PixelFormat the camera streams (GenICamPixelFormats): Mono8,
	// Mono16, RGB8, or a Bayer format (BayerRG8, BayerGR8, BayerGB8, BayerBG8) that the agent
	// turns into colour.
	PixelFormat string `mapstructure:"pixel_format"`
	// ExposureUS is the exposure time in microseconds (auto exposure off).
	ExposureUS *float64 `mapstructure:"exposure_us"`
	// GainDB is the gain in dB (auto gain off).
	GainDB *float64 `mapstructure:"gain_db"`
	// FrameRate is the acquisition frame rate in frames per second (AcquisitionFrameRate).
	FrameRate *float64 `mapstructure:"frame_rate"`
	// PacketSize is the GigE Vision stream packet size in bytes (9000 for jumbo frames);
	// 0: Aravis negotiates the largest the network carries.
	PacketSize int `mapstructure:"packet_size"`
	// TriggerSource fires the camera from a line or by software (Line1, Software, ...):
	// with trigger: hardware, the camera is set to TriggerMode=On with this source and
	// delivers one frame per pulse. Otherwise the camera's trigger mode is turned off.
	TriggerSource string `mapstructure:"trigger_source"`
	// Features are further GenICam features, set in order after the settings above, each
	// "Name=Value" (BalanceWhiteAuto=Continuous). A list, not a map: feature names are case
	// sensitive.
	Features []string `mapstructure:"features"`
}

// Reconnect bounds the reopening of a failing source.
type Reconnect struct {
	// MinBackoff is the first wait before reopening; it doubles up to MaxBackoff.
	MinBackoff time.Duration `mapstructure:"min_backoff"`
	MaxBackoff time.Duration `mapstructure:"max_backoff"`
	// NoFrameTimeout marks a source that delivered no frame for this long as stalled and
	// reopens it; 0 turns the watch off. A GenICam camera with trigger hardware waits for
	// its line without it (the agent checks that the camera answers instead).
	NoFrameTimeout time.Duration `mapstructure:"no_frame_timeout"`
}

// QualityGate bounds the capture quality of frames (see docs/cameras.md). A bound left at 0
// is not checked.
type QualityGate struct {
	// Action is off, flag (process and mark the prediction) or skip (do not process).
	Action          string  `mapstructure:"action"`
	MinSharpness    float64 `mapstructure:"min_sharpness"`
	MinBrightness   float64 `mapstructure:"min_brightness"`
	MaxBrightness   float64 `mapstructure:"max_brightness"`
	MaxOverexposed  float64 `mapstructure:"max_overexposed"`
	MaxUnderexposed float64 `mapstructure:"max_underexposed"`
}

// Pipeline chains a detector and a classifier: detect regions, crop each, classify the crop.
// Either may be left out: a classifier alone sees the whole frame, a detector alone reports
// its boxes.
type Pipeline struct {
	// Detector and Classifier name entries of Config.Models.
	Detector   string `mapstructure:"detector"`
	Classifier string `mapstructure:"classifier"`
	// CropPadding grows each detected box by this fraction of its width and height on every
	// side before the crop goes to the classifier (clamped to the frame).
	CropPadding float64 `mapstructure:"crop_padding"`
	// Routes sends a region on to a second-level classifier chosen by the classifier's top
	// tag: tag -> model name (material first, then the product of that material).
	Routes map[string]string `mapstructure:"routes"`
	// Thresholds are per-tag minimum probabilities, at every level: a detection under its
	// tag's threshold is dropped; a classification under it is marked uncertain and not
	// routed further. Tags are matched without regard to case.
	Thresholds map[string]float64 `mapstructure:"thresholds"`
	// Vote decides a part by majority over the frames that see it (0: off).
	Vote Vote `mapstructure:"vote"`
}

// Tracking follows each detection of a camera's detector from frame to frame: every box of a
// prediction carries the trackId of the part it shows, the same while the part is in view.
// A part is expected where its last box moves at its last speed (a conveyor); a detection is
// that part when it overlaps the expected box, or when its centre is near the expected
// centre. A classifier alone has no boxes to track.
type Tracking struct {
	Enabled bool `mapstructure:"enabled"`
	// IoU is the least overlap of a detection with a part's expected box to be that part.
	IoU float64 `mapstructure:"iou"`
	// MaxJump is how far, as a fraction of the frame's diagonal, a detection's centre may be
	// from a part's expected centre to be that part without overlap (small or fast parts).
	MaxJump float64 `mapstructure:"max_jump"`
	// MaxMissed is how many frames in a row a part may go unseen (hidden, or missed by the
	// detector) before its track ends; a part seen again later is a new track.
	MaxMissed int `mapstructure:"max_missed"`
}

// Verdicts maps the decided tags of parts to ok or nok. Tags are matched without regard to
// case. A tag in neither list, and unknown, get Default.
type Verdicts struct {
	OK  []string `mapstructure:"ok"`
	NOK []string `mapstructure:"nok"`
	// Default is ok or nok: the verdict of any other tag and of unknown (nok: a part the
	// agent cannot decide is rejected).
	Default string `mapstructure:"default"`
}

// Of returns the verdict of tag, or "" when no verdicts are set.
func (v Verdicts) Of(tag string) string {
	if len(v.OK) == 0 && len(v.NOK) == 0 {
		return ""
	}
	if _, ok := TagIn(v.OK, tag); ok {
		return "ok"
	}
	if _, ok := TagIn(v.NOK, tag); ok {
		return "nok"
	}
	return v.Default
}

// Vote is N-frame agreement: detections are tracked across frames by overlap, and a part's
// tag is decided by majority once Frames frames have seen it.
type Vote struct {
	Frames int `mapstructure:"frames"`
	// IoU is the overlap that links a detection to the part seen in the previous frame.
	IoU float64 `mapstructure:"iou"`
	// MaxGap is how many frames a part may be missed before it is forgotten.
	MaxGap int `mapstructure:"max_gap"`
}

// Default returns the configuration used for every key a file does not set.
func Default() Config {
	return Config{
		Agent: Agent{
			LogLevel:  "info",
			LogFormat: "auto",
		},
		ONNXRuntime: ONNXRuntime{IntraOpThreads: max(1, runtime.NumCPU()-1), GraphOptimization: "all", MemoryArena: true, ExecutionProvider: "cpu"},
		MQTT: MQTT{
			Broker:               "tcp://127.0.0.1:1883",
			QoS:                  1,
			KeepAlive:            30 * time.Second,
			ConnectTimeout:       10 * time.Second,
			MaxReconnectInterval: 30 * time.Second,
			PublishTimeout:       10 * time.Second,
			QueueSize:            1024,
			Inflight:             64,
			StatsInterval:        10 * time.Second,
			Embedded: Embedded{
				Listen: "127.0.0.1:1883",
			},
			AzureIoTHub: AzureIoTHub{TokenTTL: time.Hour},
		},
		Spool: Spool{
			MaxMB:        256,
			MaxAge:       7 * 24 * time.Hour,
			DropFirst:    "samples",
			DeadLetterMB: 64,
		},
		Samples: Samples{
			Enabled:       true,
			LowConfidence: Rule{Enabled: true, Threshold: 0.5, PerMinute: 6, PerHour: 60},
			SmallMargin:   Rule{Enabled: true, Threshold: 0.1, PerMinute: 6, PerHour: 60},
			Disagreement:  Rule{Enabled: true, PerMinute: 6, PerHour: 60},
			QualityGate:   Rule{Enabled: true, PerMinute: 2, PerHour: 20},
			Audit:         Rule{Enabled: false, Rate: 0.001, PerMinute: 2, PerHour: 20},
			Shadow:        Rule{Enabled: true, PerMinute: 6, PerHour: 60},
			Unknown:       Rule{Enabled: true, PerMinute: 6, PerHour: 60},
			DedupDistance: 6,
			DedupWindow:   10 * time.Minute,
			MaxImageKB:    256,
			JPEGQuality:   85,
			Store:         SampleStore{Enabled: true, MaxMB: 256, MaxAge: 7 * 24 * time.Hour},
		},
		HTTP: HTTP{Listen: "127.0.0.1:9810"},
		UI: UI{FPS: 5, MaxWidth: 960, JPEGQuality: 75, Auth: UIAuth{Session: 12 * time.Hour},
			Review: Review{MaxMB: 512, MaxAge: 30 * 24 * time.Hour}},
		Ring: Ring{Frames: 100, MaxMB: 128, MaxAge: 10 * time.Minute},
		Commands: Commands{
			Allow:  []string{"trigger", "snapshot", "reload", "activate", "rollback", "reset-counts"},
			Signed: []string{"add", "activate", "reload"},
			MaxAge: 5 * time.Minute,
		},
		Sparkplug: Sparkplug{
			GroupID: "cvedge", DataInterval: time.Second,
		},
		PLC:   PLC{Modbus: PLCModbus{Listen: "127.0.0.1:5020", MaxClients: 4}},
		Store: Store{MaxDownloadMB: 512, MaxUnpackedMB: 1024, DownloadTimeout: 30 * time.Second},
		LLM: LLM{KeyEnv: "CVEDGE_LLM_KEY", KeyHeader: "Authorization", Timeout: 20 * time.Second,
			PerMinute: 6, PerHour: 60, Queue: 16, MaxImageKB: 256, PartWeight: 0.5, PerDay: 500, Structured: "auto"},
		Models:  map[string]Model{},
		Cameras: []Camera{},

		HomeAssistant: HomeAssistant{DiscoveryPrefix: "homeassistant"},
	}
}

// DefaultModel returns the settings of a model entry before the file's keys apply.
func DefaultModel() Model {
	return Model{
		Format:        "auto",
		Threshold:     0.1,
		NMSIoU:        0.45,
		MaxDetections: 20,
		Resize:        "stretch",
		MaxBatch:      8,
		InputSize:     416,
		Shadow:        Shadow{MaxPerSecond: 2},
		LLM:           ModelLLM{Below: 0.5},
		Type:          "onnx",
	}
}

// DefaultCamera returns the settings of a camera entry before the file's keys apply.
func DefaultCamera() Camera {
	return Camera{
		Type:         "auto",
		Realtime:     true,
		Trigger:      "continuous",
		TriggerQueue: 32,
		RTSP:         RTSP{Transport: RTSPAuto, Latency: 100 * time.Millisecond},
		Reconnect:    Reconnect{MinBackoff: time.Second, MaxBackoff: 30 * time.Second, NoFrameTimeout: 10 * time.Second},
		QualityGate:  QualityGate{Action: "off"},
		Sampling:     true,
		Collect:      Collect{What: "frames", MaxMB: 1024, JPEGQuality: 95},
		Pipeline:     Pipeline{CropPadding: 0.1, Vote: Vote{IoU: 0.3, MaxGap: 2}},
		Tracking:     Tracking{Enabled: true, IoU: 0.1, MaxJump: 0.05, MaxMissed: 10},
		Verdicts:     Verdicts{Default: "nok"},
		Parts:        Parts{Image: PartImage{MaxKB: 256, JPEGQuality: 85}},
		GenICam:      GenICam{PixelFormat: "Mono8"},
		Motion:       Motion{Threshold: 0, PixelDelta: 10, ReportInterval: 10 * time.Second, MaxInterval: 5 * time.Second},
	}
}
