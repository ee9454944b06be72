package configs

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func write(t testing.TB, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cvedge.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testHash has the form of a bcrypt hash (of no known password), for configs that need one.
const testHash = "$2a$04$Mhwx5hNzB38cSp0f3NiR5u7/2BvWd8o47G1JtGdRfZ8mO4eW4rE0K"

const minimal = `
agent: {id: cell1}
models:
  Parts: {path: parts.zip}
cameras:
  - name: cam1
    source: "0"
    pipeline: {detector: Parts}
`

func TestSamplesLoad(t *testing.T) {
	for _, f := range []string{"cvedge.yaml", "demo.yaml"} {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestDefaultsAndDerivedValues(t *testing.T) {
	path := write(t, minimal)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.TopicPrefix != "cvedge/cell1" || c.MQTT.ClientID != "cvedge-cell1" || c.MQTT.QoS != 1 || c.MQTT.KeepAlive != 30*time.Second {
		t.Errorf("mqtt defaults: %+v", c.MQTT)
	}
	m := c.Models["parts"]
	if m.NMSIoU != 0.45 || m.MaxDetections != 20 || m.Threshold != 0.1 || m.Resize != "stretch" {
		t.Errorf("model defaults: %+v", m)
	}
	if m.Project != "" {
		t.Errorf("models.parts.project defaults to %q, want empty", m.Project)
	}
	if m.Path != filepath.Join(filepath.Dir(path), "parts.zip") {
		t.Errorf("model path not made relative to the config file: %s", m.Path)
	}
	if rt := c.ONNXRuntime; rt.IntraOpThreads != max(1, runtime.NumCPU()-1) || rt.Spinning || !rt.MemoryArena || rt.ExecutionProvider != "cpu" || rt.GraphOptimization != "all" {
		t.Errorf("onnxruntime defaults: %+v", rt)
	}
	cam := c.Cameras[0]
	if cam.Source != "0" || !cam.Realtime || cam.Pipeline.CropPadding != 0.1 || cam.Pipeline.Detector != "parts" {
		t.Errorf("camera: %+v", cam)
	}
}

func TestSpoolDirDefault(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/cvedge:/var/lib/other")
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Spool.Dir != "/var/lib/cvedge/spool" {
		t.Errorf("spool dir under systemd: %s", c.Spool.Dir)
	}
	if c.Samples.Store.Dir != "/var/lib/cvedge/spool/samples" || !c.Samples.Store.Enabled {
		t.Errorf("sample store under systemd: %+v", c.Samples.Store)
	}
	t.Setenv("STATE_DIRECTORY", "")
	c, _ = Load(write(t, minimal+"spool: {dir: spool}\n"))
	if !filepath.IsAbs(c.Spool.Dir) || filepath.Base(c.Spool.Dir) != "spool" {
		t.Errorf("relative spool dir not made relative to the config file: %s", c.Spool.Dir)
	}
}

func TestExplicitZeroKeepsItsValue(t *testing.T) {
	c, err := Load(write(t, minimal+"    realtime: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cameras[0].Realtime {
		t.Error("realtime: false was replaced by the default")
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("CVEDGE_MQTT_BROKER", "ssl://broker.plant:8883")
	t.Setenv("CVEDGE_AGENT_LOG_LEVEL", "debug")
	t.Setenv("CVEDGE_MODELS_PARTS_PATH", "/models/parts-v2.zip")
	t.Setenv("CVEDGE_MQTT_QOS", "2")
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Broker != "ssl://broker.plant:8883" || c.Agent.LogLevel != "debug" || c.MQTT.QoS != 2 {
		t.Errorf("overrides not applied: %+v %+v", c.MQTT, c.Agent)
	}
	if c.Models["parts"].Path != "/models/parts-v2.zip" {
		t.Errorf("model path override: %s", c.Models["parts"].Path)
	}
	t.Setenv("CVEDGE_MODELS_PARTS_THRESHOLD", "0.7")            // not in the file
	t.Setenv("CVEDGE_CAMERAS_0_SOURCE", "rtsp://10.0.0.5/live") // in the file
	t.Setenv("CVEDGE_CAMERAS_0_PIPELINE_CROP_PADDING", "0.25")  // nested, not in the file
	t.Setenv("CVEDGE_CAMERAS_0_REALTIME", "false")
	t.Setenv("CVEDGE_CAMERAS_3_SOURCE", "ignored: no such camera")
	c, err = Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	cam := c.Cameras[0]
	if c.Models["parts"].Threshold != 0.7 || cam.Source != "rtsp://10.0.0.5/live" || cam.Pipeline.CropPadding != 0.25 || cam.Realtime {
		t.Errorf("entry overrides: threshold %v, camera %+v", c.Models["parts"].Threshold, cam)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top key", minimal + "mqt: {broker: x}\n", "mqt: unknown key"},
		{"unknown nested key", minimal + "mqtt: {brokr: x}\n", "mqtt.brokr: unknown key"},
		{"unknown camera key", strings.Replace(minimal, "source:", "sourc: x\n    source:", 1), "cameras[0].sourc: unknown key"},
		{"unknown model key", strings.Replace(minimal, "{path: parts.zip}", "{path: parts.zip, treshold: 2}", 1), "models.parts.treshold: unknown key"},
		{"bad qos", minimal + "mqtt: {qos: 3}\n", "mqtt.qos: 3 must be 0, 1 or 2"},
		{"bad graph optimization", minimal + "onnxruntime: {graph_optimization: max}\n", `onnxruntime.graph_optimization: "max" is not one of all, extended, basic, disabled`},
		{"bad provider", minimal + "onnxruntime: {execution_provider: rocm}\n", `onnxruntime.execution_provider: "rocm" is not one of cpu, cuda, tensorrt, openvino`},
		{"negative device", minimal + "onnxruntime: {device_id: -1}\n", "onnxruntime.device_id: -1 must be 0 or more"},
		{"negative threads", minimal + "onnxruntime: {intra_op_threads: -2}\n", "onnxruntime: thread counts must be 0 (automatic) or more"},
		{"spinning not a bool", minimal + "onnxruntime: {spinning: sometimes}\n", "spinning"},
		{"qos not a number", minimal + "mqtt: {qos: high}\n", "qos"},
		{"bad broker scheme", minimal + "mqtt: {broker: 'http://x:1883'}\n", `mqtt.broker: scheme "http" is not one of`},
		{"broker without host", minimal + "mqtt: {broker: 'tcp://'}\n", "mqtt.broker:"},
		{"bad duration", minimal + "mqtt: {keepalive: 0s}\n", "mqtt.keepalive: 0s must be a positive duration"},
		{"wildcard prefix", minimal + "mqtt: {topic_prefix: 'a/#'}\n", "mqtt.topic_prefix:"},
		{"bad log level", strings.Replace(minimal, "id: cell1", "id: x, log_level: loud", 1), `agent.log_level: "loud" is not one of debug, info, warn, error`},
		{"bad agent id", strings.Replace(minimal, "id: cell1", "id: 'cell/1'", 1), `agent.id: "cell/1" must be`},
		{"no cameras", "agent: {id: x}\n", "cameras: no camera configured"},
		{"cameras not a list", "agent: {id: x}\ncameras: {name: a}\n", "cameras: must be a list"},
		{"camera without name", strings.Replace(minimal, "name: cam1", "name: ''", 1), `cameras[0].name: "" must be`},
		{"duplicate camera", minimal + "  - name: cam1\n    source: '1'\n    pipeline: {detector: parts}\n", `cameras[1].name: "cam1" is used by another camera`},
		{"empty source", strings.Replace(minimal, `source: "0"`, `source: ""`, 1), "cameras[0].source: empty"},
		{"bad camera type", minimal + "    type: webcam\n", `cameras[0].type: "webcam" is not one of`},
		{"no stage", strings.Replace(minimal, "pipeline: {detector: Parts}", "pipeline: {}", 1), "cameras[0].pipeline: needs a detector, a classifier, or both"},
		{"unknown model", strings.Replace(minimal, "pipeline: {detector: Parts}", "pipeline: {detector: wheels}", 1), `cameras[0].pipeline.detector: "wheels" is not a model under 'models:' (have: parts)`},
		{"bad padding", strings.Replace(minimal, "{detector: Parts}", "{detector: Parts, crop_padding: 2}", 1), "cameras[0].pipeline.crop_padding: 2 must be between 0 and 1"},
		{"bad threshold", strings.Replace(minimal, "{path: parts.zip}", "{path: parts.zip, threshold: 1.5}", 1), "models.parts.threshold: 1.5 must be between 0 and 1"},
		{"bad format", strings.Replace(minimal, "{path: parts.zip}", "{path: parts.zip, format: yolo}", 1), `models.parts.format: "yolo" is not one of`},
		{"bad input size", strings.Replace(minimal, "{path: parts.zip}", "{path: parts.zip, input_size: 400}", 1), "models.parts.input_size: 400 must be a multiple of 32"},
		{"bad project id", strings.Replace(minimal, "{path: parts.zip}", "{path: parts.zip, project: my-project}", 1), `models.parts.project: "my-project" must be the Custom Vision project id, a GUID`},
		{"shadow twice", strings.Replace(minimal, "{path: parts.zip}", "{path: p, shadow: {iteration: a, path: b}}", 1), "models.parts.shadow: give iteration (in the model store) or path, not both"},
		{"bad embedded listen", minimal + "mqtt: {embedded: {enabled: true, listen: nowhere}}\n", `mqtt.embedded.listen: "nowhere" must be host:port`},
		{"not yaml", "cameras: [\n", "config"},
		{"ui open to the network", minimal + "http: {listen: '0.0.0.0:9810'}\nui: {enabled: true}\n", `ui.auth: http.listen "0.0.0.0:9810" can be reached from other machines: set ui.auth.token`},
		{"ui on every interface", minimal + "http: {listen: ':9810'}\nui: {enabled: true}\n", `ui.auth: http.listen ":9810" can be reached from other machines`},
		{"ui without server", minimal + "http: {listen: ''}\nui: {enabled: true}\n", "ui.enabled: the station is served by the HTTP server: set http.listen"},
		{"ui short token", minimal + "ui: {auth: {token: short}}\n", "ui.auth.token: is 5 characters: give at least 16"},
		{"ui token twice", minimal + "ui: {auth: {token: 0123456789abcdef, token_file: cvedge.yaml}}\n", "ui.auth.token: set ui.auth.token or ui.auth.token_file, not both"},
		{"ui plain password", minimal + "ui: {auth: {users: [{name: anna, password_hash: hunter2}]}}\n", "ui.auth.users[0].password_hash: must be a bcrypt hash"},
		{"ui user twice", minimal + "ui: {auth: {users: [{name: anna, password_hash: '" + testHash + "'}, {name: anna, password_hash: '" + testHash + "'}]}}\n", `ui.auth.users[1].name: "anna" is given twice`},
		{"ui user named token", minimal + "ui: {auth: {users: [{name: token, password_hash: '" + testHash + "'}]}}\n", `ui.auth.users[0].name: "token" is the name of a sign-in with ui.auth.token`},
		{"home assistant through an iot hub", minimal + "homeassistant: {enabled: true}\nmqtt: {azure_iot_hub: {connection_string: 'HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=a2V5'}}\n", "homeassistant.enabled: Home Assistant's discovery needs retained messages"},
		{"ui fps", minimal + "ui: {fps: 0}\n", "ui.fps: 0 must be above 0 and at most 30"},
		{"http tls half", minimal + "http: {tls: {cert_file: cvedge.yaml}}\n", "http.tls: cert_file and key_file go together"},
		{"bad llm part weight", minimal + "llm: {enabled: true, endpoint: 'http://127.0.0.1:1/v1/chat/completions', part_weight: -1}\n", "llm.part_weight: -1 must be between 0 (the answer decides nothing) and 10"},
		{"cert without key", minimal + "mqtt: {tls: {cert_file: cvedge.yaml}}\n", "mqtt.tls: cert_file and key_file go together"},
		{"missing ca file", minimal + "mqtt: {tls: {ca_file: /nonexistent/ca.pem}}\n", "mqtt.tls.ca_file: stat /nonexistent/ca.pem: no such file"},
		{"password twice", minimal + "mqtt: {password: x, password_file: cvedge.yaml}\n", "mqtt.password: set mqtt.password or mqtt.password_file, not both"},
		{"bad drop order", minimal + "spool: {drop_first: oldest}\n", `spool.drop_first: "oldest" is not one of samples, predictions`},
		{"spool too small", minimal + "spool: {max_mb: 0}\n", "spool.max_mb: 0 must be 1 or more"},
		{"bad queue size", minimal + "mqtt: {queue_size: 0}\n", "mqtt.queue_size: 0 must be 1 or more"},
		{"no window", minimal + "mqtt: {inflight: 0}\n", "mqtt.inflight: 0 must be from 1 to 1024"},
		{"window too wide", minimal + "mqtt: {inflight: 5000}\n", "mqtt.inflight: 5000 must be from 1 to 1024"},
		{"payload limit too small", minimal + "mqtt: {max_payload_kb: 2}\n", "mqtt.max_payload_kb: 2 KiB is too small for a prediction message"},
		{"negative payload limit", minimal + "mqtt: {max_payload_kb: -1}\n", "mqtt.max_payload_kb: -1 must be 0 (no limit) or up to 262144"},
		{"no dead-letter room", minimal + "spool: {dead_letter_mb: 0}\n", "spool.dead_letter_mb: 0 must be 1 or more"},
		{"bad rotation", minimal + "    rotate: 45\n", "cameras[0].rotate: 45 must be 0, 90, 180 or 270"},
		{"short roi", minimal + "    roi: [0, 0, 100]\n", "cameras[0].roi: [0 0 100] must be [x, y, width, height]"},
		{"bad trigger", minimal + "    trigger: gpio\n", `cameras[0].trigger: "gpio" is not one of continuous, interval, mqtt`},
		{"interval without interval", minimal + "    trigger: interval\n", "cameras[0].interval: 0s must be a positive duration"},
		{"bad fourcc", minimal + "    device: {fourcc: MJPEG}\n", `cameras[0].device.fourcc: "MJPEG" must be 4 characters`},
		{"bad device width", minimal + "    device: {width: 0}\n", "cameras[0].device.width: 0 must be between 1 and 16384"},
		{"bad gate action", minimal + "    quality_gate: {action: drop}\n", `cameras[0].quality_gate.action: "drop" is not one of off, flag, skip`},
		{"bad gate share", minimal + "    quality_gate: {action: flag, max_overexposed: 2}\n", "cameras[0].quality_gate.max_overexposed: 2 must be a share"},
		{"bad backoff", minimal + "    reconnect: {min_backoff: 10s, max_backoff: 1s}\n", "cameras[0].reconnect: min_backoff (10s) must be positive and max_backoff (1s) at least as long"},
		{"part image without tracking", minimal + "    tracking: {enabled: false}\n    parts: {image: {enabled: true}}\n", "cameras[0].parts.image: needs a detector (pipeline.detector) and tracking (tracking.enabled: true)"},
		{"part image quality", minimal + "    parts: {image: {enabled: true, jpeg_quality: 0}}\n", "cameras[0].parts.image.jpeg_quality: 0 must be between 1 and 100"},
		{"part image too small", minimal + "    parts: {image: {enabled: true, max_kb: 1}}\n", "cameras[0].parts.image.max_kb: 1 must be 4 or more"},
		{"unknown rule cap", minimal + "samples: {unknown: {per_minute: -1}}\n", "samples.unknown: per_minute (-1) and per_hour (60) must be 0 (no cap) or more"},
		{"sample store without room", minimal + "samples: {store: {max_mb: 0}}\n", "samples.store: max_mb (0) must be 1 or more and max_age (168h0m0s) a positive duration; or set enabled: false"},
		{"bad rtsp transport", minimal + "    rtsp: {transport: http}\n", `cameras[0].rtsp.transport: "http" is not one of auto, tcp, udp, ffmpeg`},
		{"rtsp transport on usb", minimal + "    rtsp: {transport: tcp}\n", `cameras[0].rtsp.transport: "tcp" applies to rtsp:// and rtsps:// sources only`},
		{"rtsp latency", minimal + "    rtsp: {latency: 30s}\n", "cameras[0].rtsp.latency: 30s must be 0 to 10s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, c.yaml))
			if err == nil {
				t.Fatalf("accepted; want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestDurationsNeedAUnit: a bare number for a duration key is refused, naming the key,
// instead of being taken as nanoseconds; from the file and from the environment alike.
func TestDurationsNeedAUnit(t *testing.T) {
	cases := []loadCase{
		{"keepalive", minimal + "mqtt: {keepalive: 30}\n", "", "mqtt.keepalive: 30 has no unit: write it as a duration with one, e.g. 30s (seconds), 30ms or 30m"},
		{"a fraction", minimal + "mqtt: {connect_timeout: 1.5}\n", "", "mqtt.connect_timeout: 1.5 has no unit: write it as a duration with one, e.g. 1.5s (seconds), 1.5ms or 1.5m"},
		{"spool age", minimal + "spool: {max_age: 3600}\n", "", "spool.max_age: 3600 has no unit"},
		{"ring age", minimal + "ring: {max_age: 60}\n", "", "ring.max_age: 60 has no unit"},
		{"samples window", minimal + "samples: {dedup_window: 600}\n", "", "samples.dedup_window: 600 has no unit"},
		{"llm timeout", minimal + "llm: {timeout: 20}\n", "", "llm.timeout: 20 has no unit"},
		{"camera interval", minimal + "    trigger: interval\n    interval: 5\n", "", "cameras[0].interval: 5 has no unit"},
		{"camera backoff", minimal + "    reconnect: {min_backoff: 1, max_backoff: 30s}\n", "", "cameras[0].reconnect.min_backoff: 1 has no unit"},
		{"collect every", minimal + "    collect: {enabled: true, dir: d, every: 10}\n", "", "cameras[0].collect.every: 10 has no unit"},
		{"rtsp latency", minimal + "    rtsp: {latency: 100}\n", "", "cameras[0].rtsp.latency: 100 has no unit"},
		{"not a duration", minimal + "mqtt: {keepalive: soon}\n", "", `mqtt.keepalive: "soon" is not a duration: write a number with a unit, e.g. 30s, 500ms, 5m or 1h30m`},
		{"environment", minimal, "CVEDGE_MQTT_KEEPALIVE=30", "mqtt.keepalive: 30 has no unit: write it as a duration with one, e.g. 30s (seconds), 30ms or 30m"},
		{"camera environment", minimal, "CVEDGE_CAMERAS_0_RECONNECT_NO_FRAME_TIMEOUT=10", "cameras[0].reconnect.no_frame_timeout: 10 has no unit"},
	}
	wantLoadErrors(t, cases)
	// a bare 0 is unambiguous, and a unit is a unit
	c, err := Load(write(t, minimal+"    collect: {enabled: true, dir: d, every: 0, on_trigger: true}\nmqtt: {stats_interval: 0, keepalive: 45s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.StatsInterval != 0 || c.MQTT.KeepAlive != 45*time.Second || c.Cameras[0].Collect.Every != 0 {
		t.Errorf("stats_interval %v, keepalive %v, collect.every %v", c.MQTT.StatsInterval, c.MQTT.KeepAlive, c.Cameras[0].Collect.Every)
	}
}

// TestSizesBounded: every size and count key has an upper bound, and a float given for a
// whole number is refused rather than cut (queue_size: 1e9 once crashed the agent at
// start).
func TestSizesBounded(t *testing.T) {
	model := func(kv string) string {
		return strings.Replace(minimal, "{path: parts.zip}", "{path: parts.zip, "+kv+"}", 1)
	}
	cases := []loadCase{
		{"queue 1e9", minimal + "mqtt: {queue_size: 1e9}\n", "", "mqtt.queue_size: 1e+09 must be a whole number written in digits, e.g. 1024 (no fraction, no exponent)"},
		{"queue fraction", minimal + "mqtt: {queue_size: 1.5}\n", "", "mqtt.queue_size: 1.5 must be a whole number written in digits"},
		{"queue too large", minimal + "mqtt: {queue_size: 1000000000}\n", "", "mqtt.queue_size: 1000000000 is too large: allowed 1 to 100000"},
		{"queue from the environment", minimal, "CVEDGE_MQTT_QUEUE_SIZE=1e9", `mqtt.queue_size: "1e9" must be a whole number written in digits, e.g. 1024`},
		{"queue far too large", minimal + "mqtt: {queue_size: 18446744073709551615}\n", "", "mqtt.queue_size: 18446744073709551615 is far too large"},
		{"spool", minimal + "spool: {max_mb: 2000000}\n", "", "spool.max_mb: 2000000 is too large: allowed 1 to 1048576"},
		{"sample store", minimal + "samples: {store: {max_mb: 9223372036854775807}}\n", "", "samples.store.max_mb: 9223372036854775807 is too large: allowed 1 to 1048576"},
		{"ring frames", minimal + "ring: {frames: 1000000}\n", "", "ring.frames: 1000000 is too large: allowed 1 to 10000"},
		{"dead letters", minimal + "spool: {dead_letter_mb: 17592186044416}\n", "", "spool.dead_letter_mb: 17592186044416 is too large: allowed 1 to 1048576"},
		{"download", minimal + "store: {max_download_mb: 17592186044416}\n", "", "store.max_download_mb: 17592186044416 is too large: allowed 1 to 1048576"},
		{"unpacked", minimal + "store: {max_unpacked_mb: 17592186044416}\n", "", "store.max_unpacked_mb: 17592186044416 is too large: allowed 1 to 1048576"},
		{"review queue", minimal + "ui: {review: {max_mb: 8796093022208}}\n", "", "ui.review.max_mb: 8796093022208 is too large: allowed 1 to 1048576"},
		{"padding not a number", strings.Replace(minimal, "{detector: Parts}", "{detector: Parts, crop_padding: .nan}", 1), "", "cameras[0].pipeline.crop_padding: NaN is not a number: write one, e.g. 0.5"},
		{"iou infinite", minimal + "    tracking: {iou: .inf}\n", "", "cameras[0].tracking.iou: +Inf is not a number"},
		{"threshold from the environment", minimal, "CVEDGE_SAMPLES_LOW_CONFIDENCE_THRESHOLD=NaN", "samples.low_confidence.threshold: NaN is not a number"},
		{"ring mb", minimal + "ring: {max_mb: 100000}\n", "", "ring.max_mb: 100000 is too large: allowed 1 to 16384"},
		{"sample image", minimal + "samples: {max_image_kb: 1000000}\n", "", "samples.max_image_kb: 1000000 is too large: allowed 4 to 16384"},
		{"sample rate", minimal + "samples: {audit: {per_hour: 1e7}}\n", "", "samples.audit.per_hour: 1e+07 must be a whole number"},
		{"sample cap", minimal + "samples: {audit: {per_hour: 10000000}}\n", "", "samples.audit.per_hour: 10000000 is too large: allowed 0 to 1000000"},
		{"llm queue", minimal + "llm: {queue: 1000000}\n", "", "llm.queue: 1000000 is too large: allowed 1 to 10000"},
		{"llm image", minimal + "llm: {max_image_kb: 100000}\n", "", "llm.max_image_kb: 100000 is too large: allowed 4 to 16384"},
		{"threads", minimal + "onnxruntime: {intra_op_threads: 100000}\n", "", "onnxruntime.intra_op_threads: 100000 is too large: allowed 0 to 1024"},
		{"collect", minimal + "    collect: {enabled: true, dir: d, every: 10s, max_mb: 9999999}\n", "", "cameras[0].collect.max_mb: 9999999 is too large: allowed 1 to 1048576"},
		{"camera fps", minimal + "    max_fps: 1e6\n", "", "cameras[0].max_fps: 1e+06 is too large: allowed 0 to 1000 frames a second"},
		{"vote gap", strings.Replace(minimal, "{detector: Parts}", "{detector: Parts, vote: {frames: 3, max_gap: 100000}}", 1), "", "cameras[0].pipeline.vote.max_gap: 100000 is too large: allowed 0 to 1000"},
		{"verdict default", minimal + "    verdicts: {ok: [a], default: maybe}\n", "", `cameras[0].verdicts.default: "maybe" is not one of ok, nok`},
		{"verdict twice", minimal + "    verdicts: {ok: [Brass], nok: [brass]}\n", "", `cameras[0].verdicts: tag "Brass" is both ok and nok`},
		{"part image size", minimal + "    parts: {image: {max_kb: 100000}}\n", "", "cameras[0].parts.image.max_kb: 100000 is too large: allowed 4 to 16384"},
		{"tracking missed", minimal + "    tracking: {max_missed: 5000}\n", "", "cameras[0].tracking.max_missed: 5000 is too large: allowed 0 to 1000"},
		{"tracking iou", minimal + "    tracking: {iou: 0}\n", "", "cameras[0].tracking.iou: 0 must be above 0 and at most 1"},
		{"tracking jump", minimal + "    tracking: {max_jump: 2}\n", "", "cameras[0].tracking.max_jump: 2 must be 0 (overlap only) to 1"},
		{"mask points", minimal + "    masks: [{points: [[0, 0], [1, 1]]}]\n", "", "cameras[0].masks[0].points: 2 points: a polygon needs at least 3"},
		{"zone outside", minimal + "    zones: [{name: belt, points: [[0, 0], [1, 0], [1, 1.5]]}]\n", "", "cameras[0].zones[0].points[2]: [1, 1.5] is outside the frame"},
		{"zone name", minimal + "    zones: [{points: [[0, 0], [1, 0], [1, 1]]}]\n", "", `cameras[0].zones[0].name: "" must be 1-64 letters`},
		{"line twice", minimal + "    lines: [{name: exit, from: [0.5, 0], to: [0.5, 1]}, {name: exit, from: [0.6, 0], to: [0.6, 1]}]\n", "", `cameras[0].lines[1].name: "exit" names another line`},
		{"line point", minimal + "    lines: [{name: exit, from: [0.5, 0], to: [0.5, 0]}]\n", "", "cameras[0].lines[0]: from and to are the same point"},
		{"decision line", minimal + "    decision: {line: exit}\n", "", `cameras[0].decision.line: "exit" is not one of the camera's lines`},
		{"decision after", minimal + "    decision: {after: -1s}\n", "", "cameras[0].decision.after: -1s must be 0 (no time limit)"},
		{"lines untracked", minimal + "    tracking: {enabled: false}\n    lines: [{name: exit, from: [0.5, 0], to: [0.5, 1]}]\n", "", "cameras[0]: zones, lines and decision work on tracked parts"},
		{"point not a number", minimal + "    zones: [{name: z, points: [[.nan, 0], [1, 0], [1, 1]]}]\n", "", "cameras[0].zones[0].points[0]: [NaN, 0] is outside the frame"},
		{"point of three", minimal + "    lines: [{name: l, from: [0.5, 0, 1], to: [0.5, 1]}]\n", "", "[0.5 0 1] is not a point: write [x, y]"},
		{"point of one", minimal + "    masks: [{points: [[0.5], [1, 0], [1, 1]]}]\n", "", "[0.5] is not a point"},
		{"reset time", minimal + "counts: {reset_at: ['6']}\n", "", `counts.reset_at[0]: "6" is not a time of day: write it as HH:MM`},
		{"device width", minimal + "    device: {width: 1280.5}\n", "", "cameras[0].device.width: 1280.5 must be a whole number"},
		{"roi", minimal + "    roi: [0, 0, 100.5, 100]\n", "", "cameras[0].roi[2]: 100.5 must be a whole number"},
		{"max detections", model("max_detections: 1000000"), "", "models.parts.max_detections: 1000000 is too large: allowed 1 to 10000"},
		{"max batch", model("max_batch: 1e3"), "", "models.parts.max_batch: 1000 must be a whole number"},
		{"max batch range", model("max_batch: 1000"), "", "models.parts.max_batch: 1000 must be between 1 and 256"},
		{"input size", model("input_size: 416.0"), "", "models.parts.input_size: 416 must be a whole number"},
		{"input size range", model("input_size: 8192"), "", "models.parts.input_size: 8192 must be a multiple of 32 between 32 and 4096"},
		{"model env", minimal, "CVEDGE_MODELS_PARTS_MAX_DETECTIONS=2.5", `models.parts.max_detections: "2.5" must be a whole number`},
	}
	wantLoadErrors(t, cases)
	// the bounds themselves are allowed
	c, err := Load(write(t, minimal+"mqtt: {queue_size: 100000}\nspool: {max_mb: 1048576}\nring: {frames: 10000, max_mb: 16384}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.QueueSize != 100000 || c.Spool.MaxMB != 1<<20 || c.Ring.Frames != 10000 {
		t.Errorf("bounds not kept: %+v %+v %+v", c.MQTT, c.Spool, c.Ring)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

// FuzzLoad: no config file, however broken, makes Load panic.
func FuzzLoad(f *testing.F) {
	f.Add(minimal)
	f.Add("cameras: [{name: a, source: '0', pipeline: {classifier: m}}]\nmodels: {m: {path: x}}\n")
	f.Add("mqtt: {qos: [1,2]}\n")
	f.Add("models: 7\ncameras: 'x'\n")
	f.Add("cameras:\n  - 3\n  - {pipeline: []}\n")
	f.Add("agent: {id: \x00}\n")
	f.Add(minimal + "onnxruntime: {spinning: [1], execution_provider: {a: b}, device_id: x}\n")
	f.Add(minimal + "mqtt: {keepalive: 30, queue_size: 1e9, connect_timeout: -1.5e300, stats_interval: .inf}\n")
	f.Add(minimal + "spool: {max_mb: 18446744073709551616, max_age: [1]}\nring: {frames: -1e400, max_age: true}\n")
	f.Add(minimal + "    roi: [1.5, '2', 3e9, .nan]\n    device: {width: 1e20, fps: '30'}\n    interval: 5\n")
	f.Add(minimal + "    masks: [{points: [[.nan, 0], [1, 2, 3], 'x', [1]]}]\n    zones: [{name: [], points: {}}]\n")
	f.Add(minimal + "    lines: [{name: exit, from: [0.5], to: 7}, {}]\n    decision: {line: [exit], after: 1e400}\ncounts: {reset_at: ['25:99', 6, null]}\n")
	f.Fuzz(func(t *testing.T, yaml string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err == nil && c.Validate() != nil {
			t.Fatal("Load returned a config that does not validate")
		}
	})
}

// loadCase is a config file (and an optional NAME=value environment override) that Load
// must refuse with an error containing want.
type loadCase struct{ name, yaml, env, want string }

func wantLoadErrors(t *testing.T, cases []loadCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if name, val, ok := strings.Cut(c.env, "="); ok {
				t.Setenv(name, val)
			}
			_, err := Load(write(t, c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestRTSPTransport: an rtsp:// camera takes tcp or udp, per camera, from the file or the
// environment; the default is auto with a 100ms jitter buffer.
func TestRTSPTransport(t *testing.T) {
	yaml := strings.Replace(minimal, `source: "0"`, `source: "rtsp://viewer:pw@10.0.0.5/stream1"`, 1) +
		"    rtsp: {transport: udp, latency: 0s}\n  - name: cam2\n    source: rtsps://10.0.0.6/s\n    pipeline: {detector: Parts}\n"
	c, err := Load(write(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Cameras[0].RTSP; r.Transport != RTSPUDP || r.Latency != 0 {
		t.Errorf("cameras[0].rtsp: %+v", r)
	}
	if r := c.Cameras[1].RTSP; r != DefaultCamera().RTSP || r.Transport != RTSPAuto || r.Latency != 100*time.Millisecond {
		t.Errorf("cameras[1].rtsp: %+v, want the defaults", r)
	}
	t.Setenv("CVEDGE_CAMERAS_1_RTSP_TRANSPORT", "tcp")
	if c, err = Load(write(t, yaml)); err != nil || c.Cameras[1].RTSP.Transport != RTSPTCP {
		t.Errorf("from the environment: %v %+v", err, c)
	}
}

// TestLoadRuntime: a file with the onnxruntime section alone is enough for the session
// settings (cvedge bench --config), with the environment over it; a bad value is refused with
// its key, as Load refuses it.
func TestLoadRuntime(t *testing.T) {
	rt, err := LoadRuntime(write(t, "onnxruntime: {intra_op_threads: 1, graph_optimization: basic}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rt.IntraOpThreads != 1 || rt.GraphOptimization != "basic" || !rt.MemoryArena {
		t.Errorf("runtime %+v", rt)
	}
	if _, err := Load(write(t, "onnxruntime: {intra_op_threads: 1}\n")); err == nil {
		t.Error("Load took a config without cameras")
	}
	t.Setenv("CVEDGE_ONNXRUNTIME_GRAPH_OPTIMIZATION", "fastest")
	if _, err := LoadRuntime(write(t, "onnxruntime: {intra_op_threads: 1}\n")); err == nil || !strings.Contains(err.Error(), "onnxruntime.graph_optimization") {
		t.Errorf("a bad value from the environment: %v", err)
	}
}
