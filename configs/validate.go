package configs

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"auto", "text", "json"}
	brokerScheme = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}
	// ModelFormats are the values of models.<name>.format.
	ModelFormats = []string{"auto", "classifier", "classifier-onnx12", "detector-yolo", "detector-ssd"}
	// ResizeModes are the values of models.<name>.resize.
	ResizeModes = []string{"stretch", "center_crop"}
	// CameraTypes are the values of cameras[].type.
	CameraTypes = []string{"auto", "usb", "stream", "gstreamer", "file", "folder", "genicam"}
)

// Validate checks every value and returns one error per problem, each naming its key.
func (c *Config) Validate() error {
	var p problems
	if !nameRE.MatchString(c.Agent.ID) {
		p.add("agent.id", "%q must be 1-64 letters, digits, '-' or '_' (it becomes an MQTT topic level)", c.Agent.ID)
	}
	p.oneOf("agent.log_level", c.Agent.LogLevel, logLevels)
	p.oneOf("agent.log_format", c.Agent.LogFormat, logFormats)
	c.ONNXRuntime.validate(&p)
	c.validateBounds(&p)
	c.MQTT.validate(&p)
	if c.MQTT.AzureIoTHub.Enabled() && c.Sparkplug.Enabled && c.Sparkplug.Broker == "" {
		p.add("sparkplug.broker", "empty, but mqtt.azure_iot_hub is set and the hub cannot carry Sparkplug: give Sparkplug its own broker, or turn sparkplug.enabled off")
	}
	c.Spool.validate(&p)
	c.Samples.validate(&p)
	c.LLM.validate(&p)
	c.Store.validate(&p)
	c.Commands.validate(&p)
	c.Counts.validate(&p)
	c.Sparkplug.validate(&p)
	c.PLC.validate(&p)
	c.HomeAssistant.validate(&p)
	if c.HomeAssistant.Enabled && c.MQTT.AzureIoTHub.Enabled() {
		p.add("homeassistant.enabled", "Home Assistant's discovery needs retained messages on a broker Home Assistant reads; an IoT hub (mqtt.azure_iot_hub) carries neither: turn one of them off")
	}
	if l := c.HTTP.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			p.add("http.listen", "%q must be host:port, e.g. 127.0.0.1:9810 (empty turns the server off)", l)
		}
	}
	c.HTTP.TLS.validate(&p, "http.tls")
	c.validateUI(&p)
	if c.Ring.Frames < 1 || c.Ring.MaxMB < 1 || c.Ring.MaxAge <= 0 {
		p.add("ring", "frames (%d) and max_mb (%d) must be 1 or more, max_age (%v) a positive duration", c.Ring.Frames, c.Ring.MaxMB, c.Ring.MaxAge)
	}
	names := make([]string, 0, len(c.Models))
	for name := range c.Models {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c.Models[name].validate(&p, "models."+name)
		if c.Models[name].Shadow.SummaryAfter > 0 && c.MQTT.StatsInterval == 0 {
			p.add("models."+name+".shadow.summary_after", "the summary is taken with the stats, which mqtt.stats_interval: 0 turns off: set mqtt.stats_interval (default 10s), or summary_after to 0")
		}
	}
	if len(c.Cameras) == 0 {
		p.add("cameras", "no camera configured: add at least one under 'cameras:' (see configs/cvedge.yaml)")
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		key := fmt.Sprintf("cameras[%d]", i)
		if !nameRE.MatchString(cam.Name) {
			p.add(key+".name", "%q must be 1-64 letters, digits, '-' or '_'", cam.Name)
		} else if seen[cam.Name] {
			p.add(key+".name", "%q is used by another camera; names must be unique", cam.Name)
		}
		seen[cam.Name] = true
		if cam.Type == "genicam" {
			cam.validateGenICam(&p, key)
		} else if strings.TrimSpace(cam.Source) == "" {
			p.add(key+".source", "empty: give a device index, /dev/video path, URL, GStreamer pipeline, file or folder")
		}
		p.oneOf(key+".type", cam.Type, CameraTypes)
		if cam.FPS < 0 {
			p.add(key+".fps", "%v must be 0 (from the source) or more", cam.FPS)
		}
		cam.validateCapture(&p, key)
		cam.validatePartImage(&p, key)
		c.validatePipeline(&p, key+".pipeline", cam.Pipeline, cam.Collect.Enabled)
		cam.validateParts(&p, key)
		cam.validateMotion(&p, key)
	}
	return p.err()
}

// Upper bounds of the size and count keys: far above any real use, and low enough that no
// value within them exhausts the box (a queue_size of 1e9 asked for gigabytes at start).
const (
	MaxQueueSize     = 100_000   // mqtt.queue_size, messages
	MaxDiskMB        = 1 << 20   // spool.max_mb and dead_letter_mb, cameras[].collect.max_mb, samples.store.max_mb, store.max_download_mb and max_unpacked_mb, ui.review.max_mb: 1 TiB
	MaxRingFrames    = 10_000    // ring.frames, per camera
	MaxRingMB        = 16 << 10  // ring.max_mb, per camera: 16 GiB
	MaxImageKB       = 16 << 10  // samples.max_image_kb and llm.max_image_kb: 16 MiB
	MaxLLMQueue      = 10_000    // llm.queue, calls
	MaxPartWeight    = 10        // llm.part_weight, times the part's frames
	MaxRate          = 1_000_000 // per_minute and per_hour of the samples rules and the LLM
	MaxDetections    = 10_000    // models.<name>.max_detections
	MaxThreads       = 1024      // onnxruntime.intra_op_threads and inter_op_threads
	MaxVoteGap       = 1000      // cameras[].pipeline.vote.max_gap, frames
	MaxCameraRateFPS = 1000      // cameras[].fps and max_fps
	MaxTriggerQueue  = 10_000    // cameras[].trigger_queue, frames
)

// validateBounds checks the upper bound of every size and count key; the lower bounds are
// checked beside the rest of each section. The error names the key and the range allowed.
func (c *Config) validateBounds(p *problems) {
	upTo := func(key string, v, lo, hi int) {
		if v > hi {
			p.add(key, "%d is too large: allowed %d to %d", v, lo, hi)
		}
	}
	upTo("mqtt.queue_size", c.MQTT.QueueSize, 1, MaxQueueSize)
	upTo("spool.max_mb", c.Spool.MaxMB, 1, MaxDiskMB)
	upTo("samples.store.max_mb", c.Samples.Store.MaxMB, 1, MaxDiskMB)
	upTo("spool.dead_letter_mb", c.Spool.DeadLetterMB, 1, MaxDiskMB)
	upTo("store.max_download_mb", c.Store.MaxDownloadMB, 1, MaxDiskMB)
	upTo("store.max_unpacked_mb", c.Store.MaxUnpackedMB, 1, MaxDiskMB)
	upTo("ui.review.max_mb", c.UI.Review.MaxMB, 1, MaxDiskMB)
	upTo("ring.frames", c.Ring.Frames, 1, MaxRingFrames)
	upTo("ring.max_mb", c.Ring.MaxMB, 1, MaxRingMB)
	upTo("samples.max_image_kb", c.Samples.MaxImageKB, 4, MaxImageKB)
	upTo("llm.max_image_kb", c.LLM.MaxImageKB, 4, MaxImageKB)
	upTo("llm.queue", c.LLM.Queue, 1, MaxLLMQueue)
	upTo("llm.per_minute", c.LLM.PerMinute, 0, MaxRate)
	upTo("llm.per_hour", c.LLM.PerHour, 0, MaxRate)
	rules := map[string]Rule{"low_confidence": c.Samples.LowConfidence, "small_margin": c.Samples.SmallMargin, "disagreement": c.Samples.Disagreement,
		"quality_gate": c.Samples.QualityGate, "audit": c.Samples.Audit, "shadow": c.Samples.Shadow, "unknown": c.Samples.Unknown}
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		upTo("samples."+name+".per_minute", rules[name].PerMinute, 0, MaxRate)
		upTo("samples."+name+".per_hour", rules[name].PerHour, 0, MaxRate)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Models)) {
		upTo("models."+name+".max_detections", c.Models[name].MaxDetections, 1, MaxDetections)
	}
	for i, cam := range c.Cameras {
		key := fmt.Sprintf("cameras[%d]", i)
		upTo(key+".collect.max_mb", cam.Collect.MaxMB, 1, MaxDiskMB)
		upTo(key+".pipeline.vote.max_gap", cam.Pipeline.Vote.MaxGap, 0, MaxVoteGap)
		if tr := cam.Tracking; tr.IoU <= 0 || tr.IoU > 1 {
			p.add(key+".tracking.iou", "%v must be above 0 and at most 1", tr.IoU)
		}
		if tr := cam.Tracking; tr.MaxJump < 0 || tr.MaxJump > 1 {
			p.add(key+".tracking.max_jump", "%v must be 0 (overlap only) to 1 (the whole frame's diagonal)", tr.MaxJump)
		}
		upTo(key+".tracking.max_missed", cam.Tracking.MaxMissed, 0, MaxVoteGap)
		p.oneOf(key+".verdicts.default", cam.Verdicts.Default, []string{"ok", "nok"})
		for _, tag := range cam.Verdicts.OK {
			if _, ok := TagIn(cam.Verdicts.NOK, tag); ok {
				p.add(key+".verdicts", "tag %q is both ok and nok: keep it in one list", tag)
			}
		}
		upTo(key+".parts.image.max_kb", cam.Parts.Image.MaxKB, 4, MaxImageKB)
		for name, v := range map[string]float64{"fps": cam.FPS, "max_fps": cam.MaxFPS} {
			if v > MaxCameraRateFPS {
				p.add(key+"."+name, "%v is too large: allowed 0 to %d frames a second", v, MaxCameraRateFPS)
			}
		}
	}
}

// validate checks the onnxruntime section.
func (o ONNXRuntime) validate(p *problems) {
	if o.IntraOpThreads < 0 || o.InterOpThreads < 0 {
		p.add("onnxruntime", "thread counts must be 0 (automatic) or more")
	}
	for key, n := range map[string]int{"onnxruntime.intra_op_threads": o.IntraOpThreads, "onnxruntime.inter_op_threads": o.InterOpThreads} {
		if n > MaxThreads {
			p.add(key, "%d is too large: allowed 0 to %d", n, MaxThreads)
		}
	}
	p.oneOf("onnxruntime.graph_optimization", o.GraphOptimization, GraphOptimizations)
	p.oneOf("onnxruntime.execution_provider", o.ExecutionProvider, ExecutionProviders)
	if o.DeviceID < 0 {
		p.add("onnxruntime.device_id", "%d must be 0 or more", o.DeviceID)
	}
}

// GraphOptimizations and ExecutionProviders are the values of onnxruntime.graph_optimization
// and onnxruntime.execution_provider.
var (
	GraphOptimizations = []string{"all", "extended", "basic", "disabled"}
	ExecutionProviders = []string{"cpu", "cuda", "tensorrt", "openvino"}
)

// Triggers are the values of cameras[].trigger; GateActions of cameras[].quality_gate.action.
var (
	Triggers    = []string{"continuous", "interval", "mqtt", "hardware"}
	GateActions = []string{"off", "flag", "skip"}
)

// RTSPTransports are the values of cameras[].rtsp.transport; MaxRTSPLatency bounds
// cameras[].rtsp.latency.
var (
	RTSPTransports = []string{RTSPAuto, RTSPTCP, RTSPUDP, RTSPFFmpeg}
	MaxRTSPLatency = 10 * time.Second
)

// validateRTSP checks the RTSP transport and jitter buffer; tcp, udp and ffmpeg only apply
// to an rtsp:// or rtsps:// source.
func (c Camera) validateRTSP(p *problems, key string) {
	r := c.RTSP
	p.oneOf(key+".rtsp.transport", r.Transport, RTSPTransports)
	if r.Transport != RTSPAuto && slices.Contains(RTSPTransports, r.Transport) && !IsRTSP(c.Source) {
		p.add(key+".rtsp.transport", "%q applies to rtsp:// and rtsps:// sources only: set it to auto, or give the camera's rtsp:// URL as source (a GStreamer pipeline sets rtspsrc's protocols itself)", r.Transport)
	}
	if r.Latency < 0 || r.Latency > MaxRTSPLatency {
		p.add(key+".rtsp.latency", "%v must be 0 to %v (rtspsrc's jitter buffer, e.g. 100ms)", r.Latency, MaxRTSPLatency)
	}
}

// IsRTSP reports whether a camera source is an rtsp:// or rtsps:// URL.
func IsRTSP(source string) bool {
	s := strings.ToLower(strings.TrimSpace(source))
	return strings.HasPrefix(s, "rtsp://") || strings.HasPrefix(s, "rtsps://")
}

// validatePartImage checks the image published of each tracked part.
func (c Camera) validatePartImage(p *problems, key string) {
	im := c.Parts.Image
	if !im.Enabled {
		return
	}
	if !c.Tracks() {
		p.add(key+".parts.image", "needs a detector (pipeline.detector) and tracking (tracking.enabled: true): only tracked parts have a best frame; turn it off, or turn those on")
	}
	if im.MaxKB < 4 {
		p.add(key+".parts.image.max_kb", "%d must be 4 or more", im.MaxKB)
	}
	if im.JPEGQuality < 1 || im.JPEGQuality > 100 {
		p.add(key+".parts.image.jpeg_quality", "%d must be between 1 and 100", im.JPEGQuality)
	}
}

func (c Camera) validateCapture(p *problems, key string) {
	if c.Rotate != 0 && c.Rotate != 90 && c.Rotate != 180 && c.Rotate != 270 {
		p.add(key+".rotate", "%d must be 0, 90, 180 or 270 (degrees clockwise)", c.Rotate)
	}
	if len(c.ROI) != 0 && (len(c.ROI) != 4 || c.ROI[0] < 0 || c.ROI[1] < 0 || c.ROI[2] < 1 || c.ROI[3] < 1) {
		p.add(key+".roi", "%v must be [x, y, width, height] in pixels, x and y 0 or more, width and height 1 or more", c.ROI)
	}
	p.oneOf(key+".trigger", c.Trigger, Triggers)
	if c.Trigger == "interval" && c.Interval <= 0 {
		p.add(key+".interval", "%v must be a positive duration such as 5s when trigger is interval", c.Interval)
	}
	if c.MaxFPS < 0 {
		p.add(key+".max_fps", "%v must be 0 (no cap) or more", c.MaxFPS)
	}
	if c.Trigger == "hardware" && c.MaxFPS > 0 {
		p.add(key+".max_fps", "%v would skip triggered frames: with trigger hardware every frame is processed; remove max_fps", c.MaxFPS)
	}
	if c.TriggerQueue < 1 || c.TriggerQueue > MaxTriggerQueue {
		p.add(key+".trigger_queue", "%d must be 1 to %d frames", c.TriggerQueue, MaxTriggerQueue)
	}
	r := c.Reconnect
	if r.MinBackoff <= 0 || r.MaxBackoff < r.MinBackoff {
		p.add(key+".reconnect", "min_backoff (%v) must be positive and max_backoff (%v) at least as long", r.MinBackoff, r.MaxBackoff)
	}
	if r.NoFrameTimeout < 0 {
		p.add(key+".reconnect.no_frame_timeout", "%v must be 0 (off) or a positive duration", r.NoFrameTimeout)
	}
	c.validateRTSP(p, key)
	if f := c.Device.FourCC; f != "" && len(f) != 4 {
		p.add(key+".device.fourcc", "%q must be 4 characters, such as MJPG or YUYV", f)
	}
	for name, v := range map[string]*int{"width": c.Device.Width, "height": c.Device.Height} {
		if v != nil && (*v < 1 || *v > 16384) {
			p.add(key+".device."+name, "%d must be between 1 and 16384", *v)
		}
	}
	if v := c.Device.FPS; v != nil && (*v <= 0 || *v > 1000) {
		p.add(key+".device.fps", "%v must be above 0 and at most 1000", *v)
	}
	if col := c.Collect; col.Enabled {
		if col.Dir == "" {
			p.add(key+".collect.dir", "empty: give the data set folder")
		}
		p.oneOf(key+".collect.what", col.What, []string{"frames", "crops"})
		if col.Every < 0 || (col.Every == 0 && !col.OnTrigger) {
			p.add(key+".collect", "set every (an interval such as 10s), on_trigger: true, or both")
		}
		if col.MaxMB < 1 {
			p.add(key+".collect.max_mb", "%d must be 1 or more", col.MaxMB)
		}
		if col.JPEGQuality < 1 || col.JPEGQuality > 100 {
			p.add(key+".collect.jpeg_quality", "%d must be between 1 and 100", col.JPEGQuality)
		}
	}
	g := c.QualityGate
	p.oneOf(key+".quality_gate.action", g.Action, GateActions)
	for name, v := range map[string]float64{"min_sharpness": g.MinSharpness, "min_brightness": g.MinBrightness, "max_brightness": g.MaxBrightness} {
		if v < 0 || (name != "min_sharpness" && v > 255) {
			p.add(key+".quality_gate."+name, "%v is out of range (brightness is 0-255, sharpness 0 or more)", v)
		}
	}
	for name, v := range map[string]float64{"max_overexposed": g.MaxOverexposed, "max_underexposed": g.MaxUnderexposed} {
		if v < 0 || v > 1 {
			p.add(key+".quality_gate."+name, "%v must be a share between 0 and 1", v)
		}
	}
	if g.MaxBrightness > 0 && g.MinBrightness > g.MaxBrightness {
		p.add(key+".quality_gate", "min_brightness %v is above max_brightness %v", g.MinBrightness, g.MaxBrightness)
	}
}

func (m MQTT) validate(p *problems) {
	if m.Broker == "" {
		p.add("mqtt.broker", "empty: give the broker URL, e.g. tcp://127.0.0.1:1883")
	} else {
		checkBroker(p, "mqtt.broker", m.Broker, "")
	}
	if m.TopicPrefix == "" || strings.ContainsAny(m.TopicPrefix, "+#") || strings.HasPrefix(m.TopicPrefix, "/") || strings.HasSuffix(m.TopicPrefix, "/") {
		p.add("mqtt.topic_prefix", "%q must be non-empty, without + or #, and not start or end with /", m.TopicPrefix)
	}
	if m.QoS < 0 || m.QoS > 2 {
		p.add("mqtt.qos", "%d must be 0, 1 or 2", m.QoS)
	}
	for key, d := range map[string]time.Duration{"mqtt.keepalive": m.KeepAlive, "mqtt.connect_timeout": m.ConnectTimeout, "mqtt.publish_timeout": m.PublishTimeout, "mqtt.max_reconnect_interval": m.MaxReconnectInterval} {
		if d <= 0 {
			p.add(key, "%v must be a positive duration such as 10s", d)
		}
	}
	if m.QueueSize < 1 {
		p.add("mqtt.queue_size", "%d must be 1 or more", m.QueueSize)
	}
	if m.Inflight < 1 || m.Inflight > 1024 {
		p.add("mqtt.inflight", "%d must be from 1 to 1024 (messages in flight without acknowledgement)", m.Inflight)
	}
	if m.MaxPayloadKB < 0 || m.MaxPayloadKB > 256<<10 {
		p.add("mqtt.max_payload_kb", "%d must be 0 (no limit) or up to 262144 (256 MiB, the most MQTT carries)", m.MaxPayloadKB)
	} else if m.MaxPayloadKB > 0 && m.MaxPayloadKB < 8 {
		p.add("mqtt.max_payload_kb", "%d KiB is too small for a prediction message: give 8 or more, or 0 for no limit", m.MaxPayloadKB)
	}
	if m.StatsInterval < 0 {
		p.add("mqtt.stats_interval", "%v must be 0 (off) or a positive duration", m.StatsInterval)
	}
	checkCredentials(p, "mqtt", m.Password, m.PasswordFile, m.TLS)
	if m.Embedded.Enabled {
		if _, port, err := net.SplitHostPort(m.Embedded.Listen); err != nil || port == "" {
			p.add("mqtt.embedded.listen", "%q must be host:port, e.g. 127.0.0.1:1883", m.Embedded.Listen)
		}
	}
	m.validateIoTHub(p)
}

func (s Samples) validate(p *problems) {
	rules := map[string]Rule{"low_confidence": s.LowConfidence, "small_margin": s.SmallMargin, "disagreement": s.Disagreement, "quality_gate": s.QualityGate, "audit": s.Audit, "shadow": s.Shadow, "unknown": s.Unknown}
	for name, r := range rules {
		key := "samples." + name
		if r.Threshold < 0 || r.Threshold > 1 {
			p.add(key+".threshold", "%v must be between 0 and 1", r.Threshold)
		}
		for m, v := range r.PerModel {
			if v < 0 || v > 1 {
				p.add(key+".per_model."+m, "%v must be between 0 and 1", v)
			}
		}
		if r.Rate < 0 || r.Rate > 1 {
			p.add(key+".rate", "%v must be a share between 0 and 1", r.Rate)
		}
		if r.PerMinute < 0 || r.PerHour < 0 {
			p.add(key, "per_minute (%d) and per_hour (%d) must be 0 (no cap) or more", r.PerMinute, r.PerHour)
		}
	}
	if s.DedupDistance < 0 || s.DedupDistance > 64 {
		p.add("samples.dedup_distance", "%d must be between 0 (off) and 64 bits", s.DedupDistance)
	}
	if s.DedupDistance > 0 && s.DedupWindow <= 0 {
		p.add("samples.dedup_window", "%v must be a positive duration when dedup_distance is set", s.DedupWindow)
	}
	if s.MaxImageKB < 4 {
		p.add("samples.max_image_kb", "%d must be 4 or more", s.MaxImageKB)
	}
	if s.JPEGQuality < 1 || s.JPEGQuality > 100 {
		p.add("samples.jpeg_quality", "%d must be between 1 and 100", s.JPEGQuality)
	}
	if s.Store.Enabled && (s.Store.MaxMB < 1 || s.Store.MaxAge <= 0) {
		p.add("samples.store", "max_mb (%d) must be 1 or more and max_age (%v) a positive duration; or set enabled: false", s.Store.MaxMB, s.Store.MaxAge)
	}
}

func (l LLM) validate(p *problems) {
	if !l.Enabled {
		return
	}
	if u, err := url.Parse(l.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.add("llm.endpoint", "%q must be the full chat-completions URL, e.g. https://myres.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01", l.Endpoint)
	}
	if l.Timeout <= 0 {
		p.add("llm.timeout", "%v must be a positive duration", l.Timeout)
	}
	if l.PerMinute < 0 || l.PerHour < 0 || l.Queue < 1 || l.MaxImageKB < 4 {
		p.add("llm", "per_minute (%d) and per_hour (%d) must be 0 (no cap) or more, queue (%d) 1 or more, max_image_kb (%d) 4 or more", l.PerMinute, l.PerHour, l.Queue, l.MaxImageKB)
	}
	if l.PerDay < 0 || l.PerDay > MaxRate {
		p.add("llm.per_day", "%d must be 0 (no daily cap) to %d", l.PerDay, MaxRate)
	}
	p.oneOf("llm.structured", l.Structured, []string{"auto", "json_schema", "json_object", "off"})
	if l.PromptPrice < 0 || l.CompletionPrice < 0 {
		p.add("llm", "prompt_price (%v) and completion_price (%v) are the price of 1000 tokens: 0 (not reported) or more", l.PromptPrice, l.CompletionPrice)
	}
	if !(l.PartWeight >= 0 && l.PartWeight <= MaxPartWeight) {
		p.add("llm.part_weight", "%v must be between 0 (the answer decides nothing) and %v (the answer counts as %v times the part's frames)", l.PartWeight, float64(MaxPartWeight), float64(MaxPartWeight))
	}
}

func (s Spool) validate(p *problems) {
	if s.Dir == "" {
		p.add("spool.dir", "empty: give a folder the agent can write")
	}
	if s.MaxMB < 1 {
		p.add("spool.max_mb", "%d must be 1 or more", s.MaxMB)
	}
	if s.MaxAge < 0 {
		p.add("spool.max_age", "%v must be 0 (no limit) or a positive duration", s.MaxAge)
	}
	p.oneOf("spool.drop_first", s.DropFirst, []string{"samples", "predictions"})
	if s.DeadLetterMB < 1 {
		p.add("spool.dead_letter_mb", "%d must be 1 or more", s.DeadLetterMB)
	}
}

// guid is the form of a Custom Vision id: 8-4-4-4-12 hex digits.
var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (m Model) validate(p *problems, key string) {
	p.oneOf(key+".type", m.Type, ModelTypes)
	if m.IsLLM() {
		m.validateLLM(p, key)
		return
	}
	if len(m.Tags) > 0 || m.Prompt != "" {
		p.add(key, "tags and prompt belong to a model of type: llm; for an onnx model's fallback, set llm.prompt and llm.tags")
	}
	if m.Shadow.Iteration != "" && m.Shadow.Path != "" {
		p.add(key+".shadow", "give iteration (in the model store) or path, not both")
	}
	if m.LLM.Below < 0 || m.LLM.Below > 1 {
		p.add(key+".llm.below", "%v must be between 0 and 1", m.LLM.Below)
	}
	if m.Shadow.MaxPerSecond <= 0 {
		p.add(key+".shadow.max_per_second", "%v must be above 0", m.Shadow.MaxPerSecond)
	}
	if m.Shadow.SummaryAfter < 0 {
		p.add(key+".shadow.summary_after", "%d must be 0 (no summary) or the number of compared parts after which to summarize", m.Shadow.SummaryAfter)
	}
	p.oneOf(key+".format", m.Format, ModelFormats)
	if m.Project != "" && !guid.MatchString(m.Project) {
		p.add(key+".project", "%q must be the Custom Vision project id, a GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e (customvision.ai: the project's settings, Project Id), or empty", m.Project)
	}
	p.oneOf(key+".resize", m.Resize, ResizeModes)
	if !(m.Threshold >= 0 && m.Threshold <= 1) { // NaN too
		p.add(key+".threshold", "%v must be between 0 and 1", m.Threshold)
	}
	if !(m.NMSIoU > 0 && m.NMSIoU <= 1) {
		p.add(key+".nms_iou", "%v must be above 0 and at most 1", m.NMSIoU)
	}
	if m.MaxDetections < 1 {
		p.add(key+".max_detections", "%d must be 1 or more", m.MaxDetections)
	}
	if m.MaxBatch < 1 || m.MaxBatch > 256 {
		p.add(key+".max_batch", "%d must be between 1 and 256", m.MaxBatch)
	}
	if m.InputSize < 32 || m.InputSize%32 != 0 || m.InputSize > 4096 {
		p.add(key+".input_size", "%d must be a multiple of 32 between 32 and 4096", m.InputSize)
	}
}

// validateLLM checks a model of type: llm, which the llm: section answers.
func (m Model) validateLLM(p *problems, key string) {
	if m.Path != "" {
		p.add(key+".path", "%q: a model of type: llm has no export; remove path (the llm: section says where the LLM is)", m.Path)
	}
	if strings.TrimSpace(m.Prompt) == "" {
		p.add(key+".prompt", "empty: describe the task and what tells the tags apart")
	}
	if len(m.Tags) == 0 {
		p.add(key+".tags", "empty: list the answers the LLM may give")
	}
	seen := map[string]bool{}
	for i, t := range m.Tags {
		if strings.TrimSpace(t) == "" || seen[strings.ToLower(t)] {
			p.add(fmt.Sprintf("%s.tags[%d]", key, i), "%q is empty or listed twice", t)
		}
		seen[strings.ToLower(t)] = true
	}
	d := DefaultModel() // the keys that mean nothing for the LLM: left at their defaults
	if m.LLM.Prompt != "" || len(m.LLM.Tags) > 0 || m.LLM.Below != 0 && m.LLM.Below != d.LLM.Below || m.Shadow.Iteration != "" || m.Shadow.Path != "" || m.Shadow.SummaryAfter != 0 {
		p.add(key, "a model of type: llm takes no llm: fallback and no shadow: it is the LLM; remove them (its answers are tags:, its question prompt:)")
	}
	if (m.Format != "" && m.Format != d.Format) || (m.InputSize != 0 && m.InputSize != d.InputSize) || m.Project != "" {
		p.add(key, "format, input_size and project describe an ONNX export; a model of type: llm has none: remove them")
	}
}

func (c *Config) validatePipeline(p *problems, key string, pl Pipeline, collecting bool) {
	if pl.Detector == "" && pl.Classifier == "" && !collecting {
		p.add(key, "needs a detector, a classifier, or both (names of entries under 'models:'); only a camera that collects images may run without models")
	}
	for stage, name := range map[string]string{"detector": pl.Detector, "classifier": pl.Classifier} {
		if name == "" {
			continue
		}
		if m, ok := c.Models[name]; !ok {
			p.add(key+"."+stage, "%q is not a model under 'models:' (have: %s)", name, strings.Join(c.modelNames(), ", "))
		} else if m.IsLLM() {
			p.add(key+"."+stage, "%q is of type: llm, which only routes may name (an LLM call takes seconds: route the rare tag to it, e.g. routes: {rare_line: %s})", name, name)
		}
	}
	if pl.CropPadding < 0 || pl.CropPadding > 1 {
		p.add(key+".crop_padding", "%v must be between 0 and 1 (a fraction of the box size)", pl.CropPadding)
	}
	if len(pl.Routes) > 0 && pl.Classifier == "" {
		p.add(key+".routes", "routes follow the classifier's tags: set pipeline.classifier")
	}
	for tag, model := range pl.Routes {
		if m, ok := c.Models[model]; !ok {
			p.add(key+".routes."+tag, "%q is not a model under 'models:' (have: %s)", model, strings.Join(c.modelNames(), ", "))
		} else if m.IsLLM() && !c.LLM.Enabled {
			p.add(key+".routes."+tag, "%q is of type: llm: set llm.enabled: true and the llm: endpoint", model)
		}
	}
	for tag, v := range pl.Thresholds {
		if v < 0 || v > 1 {
			p.add(key+".thresholds."+tag, "%v must be between 0 and 1", v)
		}
	}
	if v := pl.Vote; v.Frames < 0 || v.Frames > 1000 || v.IoU <= 0 || v.IoU > 1 || v.MaxGap < 0 {
		p.add(key+".vote", "frames (%d) must be 0 (off) to 1000, iou (%v) above 0 and at most 1, max_gap (%d) 0 or more", v.Frames, v.IoU, v.MaxGap)
	}
}

func (c *Config) modelNames() []string {
	out := make([]string, 0, len(c.Models))
	for n := range c.Models {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// Problem is one thing Validate found wrong: the key it is under (as written in the file,
// e.g. "mqtt.broker" or "cameras[0].name") and what is wrong with it. Validate returns its
// problems errors.Join-ed; ProblemsUnder finds those under a key.
type Problem struct {
	Key string
	Err error
}

// Error reads "key: what is wrong".
func (p *Problem) Error() string { return p.Key + ": " + p.Err.Error() }

// Unwrap returns what is wrong, without the key.
func (p *Problem) Unwrap() error { return p.Err }

// ProblemsUnder returns the problems in err whose key starts with prefix ("mqtt." for the
// MQTT section, "models.m." for model m), in the order found. err is Validate's error, or
// one that wraps it; nil finds none.
func ProblemsUnder(err error, prefix string) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case *Problem:
			if strings.HasPrefix(x.Key, prefix) {
				out = append(out, x)
			}
		case interface{ Unwrap() []error }:
			for _, inner := range x.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects validation errors in the order found.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &Problem{Key: key, Err: fmt.Errorf(format, args...)})
}

func (p *problems) oneOf(key, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		p.add(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

func (p problems) err() error { return errors.Join(p...) }

// CommandNames are the commands on <prefix>/commands: the values of commands.allow and
// commands.signed.
var CommandNames = []string{"trigger", "snapshot", "reload", "activate", "rollback", "add", "reset-counts"}

func (s Store) validate(p *problems) {
	if s.MaxDownloadMB < 1 {
		p.add("store.max_download_mb", "%d must be 1 or more (MiB)", s.MaxDownloadMB)
	}
	if s.MaxUnpackedMB < 1 {
		p.add("store.max_unpacked_mb", "%d must be 1 or more (MiB)", s.MaxUnpackedMB)
	}
	if s.DownloadTimeout <= 0 {
		p.add("store.download_timeout", "%v must be a positive duration, e.g. 30s", s.DownloadTimeout)
	}
}

func (c Commands) validate(p *problems) {
	for i, name := range c.Allow {
		p.oneOf(fmt.Sprintf("commands.allow[%d]", i), name, CommandNames)
	}
	for i, name := range c.Signed {
		p.oneOf(fmt.Sprintf("commands.signed[%d]", i), name, CommandNames)
	}
	if c.MaxAge <= 0 {
		p.add("commands.max_age", "%v must be a positive duration, e.g. 5m", c.MaxAge)
	}
	key, err := c.Key()
	switch {
	case err != nil:
		p.add(err.(keyError).key, "%v", err.(keyError).err)
	case key == nil && len(c.Signed) > 0 && !slices.Equal(c.Signed, Default().Commands.Signed):
		p.add("commands.signed", "names commands to sign but no key checks them: set commands.public_key or commands.public_key_file")
	}
}

// keyError names the key whose public key could not be read.
type keyError struct {
	key string
	err error
}

func (e keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e keyError) Unwrap() error { return e.err }

// Key returns the ed25519 key that signs commands, from public_key or public_key_file;
// nil when neither is set.
func (c Commands) Key() (ed25519.PublicKey, error) {
	text, key := c.PublicKey, "commands.public_key"
	switch {
	case c.PublicKey != "" && c.PublicKeyFile != "":
		return nil, keyError{key, errors.New("give public_key or public_key_file, not both")}
	case c.PublicKeyFile != "":
		key = "commands.public_key_file"
		raw, err := os.ReadFile(c.PublicKeyFile)
		if err != nil {
			return nil, keyError{key, fmt.Errorf("%w (write it with: openssl pkey -in key.pem -pubout)", err)}
		}
		text = string(raw)
	case c.PublicKey == "":
		return nil, nil
	}
	pub, err := ParsePublicKey(text)
	if err != nil {
		return nil, keyError{key, err}
	}
	return pub, nil
}

// ParsePublicKey reads an ed25519 public key: a PEM "PUBLIC KEY" block (openssl pkey
// -pubout), or base64 of the 32 raw key bytes.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	text = strings.TrimSpace(text)
	if block, _ := pem.Decode([]byte(text)); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("a PEM %q block; want an ed25519 \"PUBLIC KEY\" (openssl pkey -in key.pem -pubout)", block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("not a readable public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T key; commands are signed with ed25519 (openssl genpkey -algorithm ed25519)", k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("not an ed25519 public key: give a PEM \"PUBLIC KEY\" block or base64 of its 32 bytes (cvedge commands keygen)")
	}
	return ed25519.PublicKey(raw), nil
}

// checkBroker checks a broker URL set at key: parsed, one of brokerScheme, with a host; hint
// ends the scheme's message (what empty means, for a broker that may be left out).
func checkBroker(p *problems, key, broker, hint string) {
	u, err := url.Parse(broker)
	switch {
	case err != nil:
		p.add(key, "%q is not a URL: %v", broker, err)
	case !slices.Contains(brokerScheme, u.Scheme):
		p.add(key, "scheme %q is not one of %s (e.g. tcp://host:1883, ssl://host:8883)%s", u.Scheme, strings.Join(brokerScheme, ", "), hint)
	case u.Hostname() == "":
		p.add(key, "%q has no host", broker)
	}
}

// checkCredentials checks what a broker connection under section (mqtt, sparkplug) signs in
// with: a password or a password file, not both; the files readable; a client certificate
// with its key.
func checkCredentials(p *problems, section, password, passwordFile string, tls TLS) {
	if password != "" && passwordFile != "" {
		p.add(section+".password", "set %s.password or %s.password_file, not both", section, section)
	}
	checkFiles(p, map[string]string{section + ".password_file": passwordFile, section + ".tls.ca_file": tls.CAFile,
		section + ".tls.cert_file": tls.CertFile, section + ".tls.key_file": tls.KeyFile})
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		p.add(section+".tls", "cert_file and key_file go together (mutual TLS): set both or neither")
	}
}

// validate checks a server's certificate files: both or neither, and readable.
func (t ServerTLS) validate(p *problems, key string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add(key, "cert_file and key_file go together: set both (https) or neither (http)")
	}
	checkFiles(p, map[string]string{key + ".cert_file": t.CertFile, key + ".key_file": t.KeyFile})
}

// checkFiles reports each named file that is set and is missing or a folder.
func checkFiles(p *problems, files map[string]string) {
	for key, f := range files {
		if f == "" {
			continue
		}
		if st, err := os.Stat(f); err != nil {
			p.add(key, "%v", err)
		} else if st.IsDir() {
			p.add(key, "%s is a folder, not a file", f)
		}
	}
}

// UITokenUser names a sign-in with ui.auth.token; no user may take it.
const UITokenUser = "token"

// MinUITokenLen is the shortest ui.auth.token accepted.
const MinUITokenLen = 16

// bcryptRE matches a bcrypt hash as cvedge ui hash-password (or htpasswd -B) writes it.
var bcryptRE = regexp.MustCompile(`^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)

// validateUI checks the operator station: its frame rate and size, who may sign in, and
// that a station reachable from other machines asks for a sign-in.
func (c *Config) validateUI(p *problems) {
	u := c.UI
	if u.FPS <= 0 || u.FPS > 30 {
		p.add("ui.fps", "%v must be above 0 and at most 30 (frames a second to each browser)", u.FPS)
	}
	if u.MaxWidth != 0 && (u.MaxWidth < 64 || u.MaxWidth > 7680) {
		p.add("ui.max_width", "%d must be 0 (as captured) or 64 to 7680 pixels", u.MaxWidth)
	}
	if u.JPEGQuality < 1 || u.JPEGQuality > 100 {
		p.add("ui.jpeg_quality", "%d must be 1 to 100", u.JPEGQuality)
	}
	a := u.Auth
	if a.Token != "" && a.TokenFile != "" {
		p.add("ui.auth.token", "set ui.auth.token or ui.auth.token_file, not both")
	}
	if a.Token != "" && len(a.Token) < MinUITokenLen {
		p.add("ui.auth.token", "is %d characters: give at least %d (openssl rand -hex 16)", len(a.Token), MinUITokenLen)
	}
	checkFiles(p, map[string]string{"ui.auth.token_file": a.TokenFile})
	seen := map[string]bool{}
	for i, usr := range a.Users {
		key := fmt.Sprintf("ui.auth.users[%d]", i)
		if !nameRE.MatchString(usr.Name) {
			p.add(key+".name", "%q must be 1-64 letters, digits, '-' or '_'", usr.Name)
		} else if seen[usr.Name] {
			p.add(key+".name", "%q is given twice", usr.Name)
		} else if usr.Name == UITokenUser {
			p.add(key+".name", "%q is the name of a sign-in with ui.auth.token: choose another", usr.Name)
		}
		seen[usr.Name] = true
		if !bcryptRE.MatchString(usr.PasswordHash) {
			p.add(key+".password_hash", "must be a bcrypt hash ($2b$...): make one with cvedge ui hash-password (the password is never written in the config)")
		}
	}
	if a.Session <= 0 {
		p.add("ui.auth.session", "%v must be a positive duration, e.g. 12h", a.Session)
	}
	if u.Review.MaxMB < 1 || u.Review.MaxAge <= 0 {
		p.add("ui.review", "max_mb (%d) must be 1 or more and max_age (%v) a positive duration", u.Review.MaxMB, u.Review.MaxAge)
	}
	if !u.Enabled {
		return
	}
	switch {
	case c.HTTP.Listen == "":
		p.add("ui.enabled", "the station is served by the HTTP server: set http.listen (e.g. 127.0.0.1:9810)")
	case !a.On() && !LoopbackAddr(c.HTTP.Listen):
		p.add("ui.auth", "http.listen %q can be reached from other machines: set ui.auth.token (or token_file) or ui.auth.users, or listen on 127.0.0.1", c.HTTP.Listen)
	}
}

// LoopbackAddr reports whether a host:port listens on loopback only (127.0.0.0/8, ::1,
// localhost); an empty host listens on every interface.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateMotion checks cameras[].motion (key is the camera's).
func (c Camera) validateMotion(p *problems, key string) {
	m := c.Motion
	if !(m.Threshold >= 0 && m.Threshold < 1) { // NaN too
		p.add(key+".motion.threshold", "%v must be a share of the picture's cells from 0 (one changed cell is change) to below 1 (0.002: more than 4 cells of 64 x 36)", m.Threshold)
	}
	if m.PixelDelta < 1 || m.PixelDelta > 254 {
		p.add(key+".motion.pixel_delta", "%d must be 1 to 254 grey levels (10 is above the noise of most cameras)", m.PixelDelta)
	}
	if m.ReportInterval < 0 {
		p.add(key+".motion.report_interval", "%v must be 0 (no reports) or more, such as 10s", m.ReportInterval)
	}
	if m.MaxInterval <= 0 {
		p.add(key+".motion.max_interval", "%v must be above 0, such as 5s: a frame goes through the models at least this often", m.MaxInterval)
	}
	if m.Hold < 0 || m.Hold > MaxVoteGap {
		p.add(key+".motion.hold", "%d is out of range: allowed 0 (tracking.max_missed + 1) to %d frames", m.Hold, MaxVoteGap)
	} else if m.Hold > 0 && c.Tracks() && m.Hold < c.Tracking.MaxMissed+1 {
		p.add(key+".motion.hold", "%d is under tracking.max_missed + 1 (%d): a part that left would keep its track open and go undecided while the picture stays still; raise it, or set 0", m.Hold, c.Tracking.MaxMissed+1)
	}
	if m.Enabled && (c.Trigger == "mqtt" || c.Trigger == "hardware") {
		p.add(key+".motion.enabled", "a camera with trigger %s is asked for each frame it processes, which the gate must not skip: turn the gate off, or use trigger continuous or interval", c.Trigger)
	}
}
