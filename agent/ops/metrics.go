// Package ops is what operators see of a running agent: Prometheus metrics, the /healthz
// and /readyz endpoints, systemd notifications (ready, watchdog, stopping), and a log handler
// that keeps repeated errors from flooding the journal. It is pure Go.
package ops

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cvedge/cvedge/agent/payload"
)

// Snapshot is the agent state read at each scrape.
type Snapshot struct {
	Cameras []CameraState
	Models  []ModelState
	// MQTT and Spool are the delivery state, as in the stats message.
	MQTT  payload.MQTTStats
	Spool payload.SpoolStats
	LLM   map[string]uint64 // outcome -> calls
	// LLMTokens are the LLM's tokens by kind (prompt, completion), and LLMCost what they
	// cost at the configured prices (0: no price set, not reported).
	LLMTokens map[string]uint64
	LLMCost   float64
}

// CameraState is one camera at scrape time.
type CameraState struct {
	Name, State                                                string
	Read, Dropped, Skipped, Overflow, Processed, Failed, Gated uint64
	Samples                                                    map[string]uint64 // reason -> samples
	// Unchanged counts the frames a motion gate kept from the models.
	Unchanged uint64
}

// ModelState is one loaded model at scrape time.
type ModelState struct {
	Name, Iteration, SHA256, Format string
	// ShadowAgreement is the candidate's agreement with the active iteration; negative when
	// no shadow runs.
	ShadowAgreement float64
}

// CameraStates are the states a camera can be in, for cvedge_camera_state.
var CameraStates = []string{"starting", "online", "reconnecting", "ended", "stopped"}

// Metrics are the agent's Prometheus metrics: histograms and counters updated as frames
// are processed, and the rest read from a Snapshot at scrape time.
type Metrics struct {
	Registry *prometheus.Registry
	// Stage is the time per stage of a frame: queue, preprocess, detect, classify, publish.
	Stage *prometheus.HistogramVec
	// Detections and Crops count regions per frame.
	Detections, Crops *prometheus.HistogramVec
	// Predictions counts the final tags reported, by camera, model and tag.
	Predictions *prometheus.CounterVec
	// Parts counts the parts decided (cameras that track), by camera, tag and verdict.
	Parts *prometheus.CounterVec
	// DecisionLatency is how long after the capture of the last frame that saw a part its
	// decision went out, by camera and what decided it (line, time, end, stop).
	DecisionLatency *prometheus.HistogramVec
}

// NewMetrics registers the metrics; snapshot is called at every scrape.
func NewMetrics(snapshot func() Snapshot) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvedge_stage_seconds", Help: "Time per stage of a frame: queue (capture to pipeline), preprocess, detect, classify, publish (to the broker's acknowledgement).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"camera", "stage"}),
		Detections: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvedge_detections_per_frame", Help: "Detections per processed frame.", Buckets: []float64{0, 1, 2, 3, 5, 8, 13, 20},
		}, []string{"camera"}),
		Crops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cvedge_crops_per_frame", Help: "Regions classified per processed frame.", Buckets: []float64{0, 1, 2, 3, 5, 8, 13, 20},
		}, []string{"camera"}),
		Predictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvedge_predictions_total", Help: "Final tags reported (the deepest level's top tag), by model and tag.",
		}, []string{"camera", "model", "tag"}),
		Parts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cvedge_parts_total", Help: "Parts decided, each once (at its decision deadline, or when its track ends), by tag and verdict (none when no verdicts are set).",
		}, []string{"camera", "tag", "verdict"}),
		DecisionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cvedge_part_decision_latency_seconds",
			Help:    "Time from the capture of the last frame that saw a part to its decision's message, by what decided it (line, time, end, stop).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"camera", "by"}),
	}
	reg.MustRegister(m.Stage, m.Detections, m.Crops, m.Predictions, m.Parts, m.DecisionLatency, &snapshotCollector{snap: snapshot},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descRead       = prometheus.NewDesc("cvedge_frames_read_total", "Frames read from the camera.", []string{"camera"}, nil)
	descProcessed  = prometheus.NewDesc("cvedge_frames_processed_total", "Frames processed and published.", []string{"camera"}, nil)
	descDropped    = prometheus.NewDesc("cvedge_frames_dropped_total", "Stale frames replaced by a newer one while the pipeline was busy (a continuous camera slower than its source).", []string{"camera"}, nil)
	descSkipped    = prometheus.NewDesc("cvedge_frames_skipped_total", "Frames not wanted, by design: replaced while a trigger interval, mqtt or max_fps camera waited.", []string{"camera"}, nil)
	descOverflow   = prometheus.NewDesc("cvedge_frames_overflow_total", "Frames of a hardware-triggered camera not inspected: its trigger_queue was full.", []string{"camera"}, nil)
	descFailed     = prometheus.NewDesc("cvedge_frames_failed_total", "Frames the pipeline could not process.", []string{"camera"}, nil)
	descGated      = prometheus.NewDesc("cvedge_frames_gated_total", "Frames a quality gate kept from the models.", []string{"camera"}, nil)
	descCamState   = prometheus.NewDesc("cvedge_camera_state", "1 for the camera's current state.", []string{"camera", "state"}, nil)
	descSamples    = prometheus.NewDesc("cvedge_samples_total", "Samples sent, by reason.", []string{"camera", "reason"}, nil)
	descModel      = prometheus.NewDesc("cvedge_model_info", "The iteration each model serves (value 1).", []string{"model", "iteration", "sha256", "format"}, nil)
	descShadow     = prometheus.NewDesc("cvedge_shadow_agreement", "How often the candidate iteration agrees with the active one (0..1).", []string{"model"}, nil)
	descConnected  = prometheus.NewDesc("cvedge_mqtt_connected", "1 while the MQTT broker is connected.", nil, nil)
	descMQTT       = prometheus.NewDesc("cvedge_mqtt_messages_total", "MQTT messages: sent (acknowledged), spooled, drained (from the spool), skipped (status and stats while offline), lost, set_aside (undeliverable, in the dead-letter folder).", []string{"outcome"}, nil)
	descSpoolMsgs  = prometheus.NewDesc("cvedge_spool_messages", "Messages waiting in the on-disk spool.", nil, nil)
	descSpoolBytes = prometheus.NewDesc("cvedge_spool_bytes", "Bytes of the messages waiting in the spool.", nil, nil)
	descSpoolDrop  = prometheus.NewDesc("cvedge_spool_dropped_total", "Messages the spool bounds dropped.", []string{"class", "reason"}, nil)
	descMQTTState  = prometheus.NewDesc("cvedge_mqtt_state", "1 for the publisher's state: connected, stalled (nothing acknowledged), connecting, refused.", []string{"state"}, nil)
	descInFlight   = prometheus.NewDesc("cvedge_mqtt_in_flight", "Messages published and not yet acknowledged.", nil, nil)
	descWritable   = prometheus.NewDesc("cvedge_spool_writable", "1 while the spool can write; 0 on a full or failing disk.", nil, nil)
	descSpoolDisk  = prometheus.NewDesc("cvedge_spool_disk_bytes", "Size of the spool's files.", nil, nil)
	descSpoolFail  = prometheus.NewDesc("cvedge_spool_write_failures_total", "Spool appends that failed (disk full, I/O error).", nil, nil)
	descCorrupt    = prometheus.NewDesc("cvedge_spool_corrupt_bytes_total", "Bytes of torn or corrupt spool records skipped.", nil, nil)
	descLLM        = prometheus.NewDesc("cvedge_llm_calls_total", "LLM fallback calls by outcome.", []string{"outcome"}, nil)
	descLLMTokens  = prometheus.NewDesc("cvedge_llm_tokens_total", "Tokens the LLM endpoint reported using, by kind: prompt, completion.", []string{"kind"}, nil)
	descLLMCost    = prometheus.NewDesc("cvedge_llm_cost_total", "What the LLM's tokens cost at llm.prompt_price and llm.completion_price (per 1000 tokens); absent when no price is set.", nil, nil)
	descUnchanged  = prometheus.NewDesc("cvedge_frames_unchanged_total", "Frames a motion gate kept from the models: the picture had not changed.", []string{"camera"}, nil)
)

// snapshotCollector turns a Snapshot into metrics at scrape time.
type snapshotCollector struct{ snap func() Snapshot }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRead, descProcessed, descDropped, descSkipped, descOverflow, descFailed, descGated, descCamState, descSamples,
		descModel, descShadow, descConnected, descMQTT, descSpoolMsgs, descSpoolBytes, descSpoolDrop, descLLM, descLLMTokens, descLLMCost,
		descMQTTState, descInFlight, descWritable, descSpoolDisk, descSpoolFail, descCorrupt, descUnchanged} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, cam := range s.Cameras {
		counter(descRead, cam.Read, cam.Name)
		counter(descProcessed, cam.Processed, cam.Name)
		counter(descDropped, cam.Dropped, cam.Name)
		counter(descSkipped, cam.Skipped, cam.Name)
		counter(descOverflow, cam.Overflow, cam.Name)
		counter(descFailed, cam.Failed, cam.Name)
		counter(descGated, cam.Gated, cam.Name)
		counter(descUnchanged, cam.Unchanged, cam.Name)
		for _, st := range CameraStates {
			v := 0.0
			if st == cam.State {
				v = 1
			}
			gauge(descCamState, v, cam.Name, st)
		}
		for reason, n := range cam.Samples {
			counter(descSamples, n, cam.Name, reason)
		}
	}
	for _, m := range s.Models {
		gauge(descModel, 1, m.Name, m.Iteration, m.SHA256, m.Format)
		if m.ShadowAgreement >= 0 {
			gauge(descShadow, m.ShadowAgreement, m.Name)
		}
	}
	mq, sp := s.MQTT, s.Spool
	gauge(descConnected, b2f(mq.Connected))
	for _, st := range []string{"connected", "stalled", "connecting", "refused"} {
		gauge(descMQTTState, b2f(st == mq.State), st)
	}
	gauge(descInFlight, float64(mq.InFlight))
	for outcome, v := range map[string]uint64{"sent": mq.Sent, "spooled": mq.Spooled, "drained": mq.Drained, "skipped": mq.Skipped, "lost": mq.Lost, "set_aside": mq.SetAside} {
		counter(descMQTT, v, outcome)
	}
	gauge(descWritable, b2f(sp.Writable))
	gauge(descSpoolMsgs, float64(sp.Messages))
	gauge(descSpoolBytes, float64(sp.Bytes))
	gauge(descSpoolDisk, float64(sp.DiskBytes))
	counter(descSpoolFail, sp.WriteFailures)
	counter(descCorrupt, uint64(sp.CorruptBytes))
	for key, n := range sp.Dropped {
		class, reason, _ := strings.Cut(key, "/")
		counter(descSpoolDrop, n, class, reason)
	}
	for outcome, n := range s.LLM {
		counter(descLLM, n, outcome)
	}
	for kind, n := range s.LLMTokens {
		counter(descLLMTokens, n, kind)
	}
	if s.LLMCost > 0 {
		ch <- prometheus.MustNewConstMetric(descLLMCost, prometheus.CounterValue, s.LLMCost)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
