package agent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// runAgent runs an agent in-process, logging warnings to stderr, until the returned stop is
// called.
func runAgent(t *testing.T, cfg *configs.Config) (stop func()) {
	t.Helper()
	return runAgentLogged(t, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// runAgentLogged is runAgent with the agent's log going to log.
func runAgentLogged(t *testing.T, cfg *configs.Config, log *slog.Logger) (stop func()) {
	t.Helper()
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// frameIDs returns the distinct frame ids of the predictions received, for one boot.
func frameIDs(t *testing.T, msgs [][]byte) (ids map[uint64]time.Time, boots map[string]bool) {
	t.Helper()
	ids, boots = map[uint64]time.Time{}, map[string]bool{}
	for _, raw := range msgs {
		var p payload.Prediction
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("bad prediction: %v", err)
		}
		ids[p.FrameID] = p.Created
		boots[p.Boot] = true
	}
	return ids, boots
}

// lastStats returns the newest stats message.
func lastStats(col *testenv.Inbox, topic string) (payload.Stats, bool) {
	msgs := col.Get(topic)
	if len(msgs) == 0 {
		return payload.Stats{}, false
	}
	var s payload.Stats
	return s, json.Unmarshal(msgs[len(msgs)-1], &s) == nil
}

// TestBrokerOutage stops the broker for 20 s while the agent publishes at well over 10
// messages a second, then starts it again: the dashboard gets every frame id, with no gap.
func TestBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s broker outage")
	}
	broker := testenv.StartMosquitto(t, testenv.Persistent(t.TempDir())...)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.MQTT.PublishTimeout = 2 * time.Second
	cfg.MQTT.MaxReconnectInterval = time.Second
	cfg.MQTT.StatsInterval = 500 * time.Millisecond
	col := testenv.Dashboard(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	preds := "cvedge/e2e/cameras/conveyor/predictions"

	testenv.WaitFor(t, "50 predictions", 30*time.Second, func() bool { return len(col.Get(preds)) >= 50 })
	broker.Stop()
	outage := time.Now()
	time.Sleep(20 * time.Second)
	broker.Start(t)
	back := time.Now()
	// the agent spooled during the outage; wait until the spool is delivered
	testenv.WaitFor(t, "the spool to drain", 60*time.Second, func() bool {
		s, ok := lastStats(col, "cvedge/e2e/stats")
		return ok && s.Time.After(back) && s.MQTT.Connected && s.Spool.Messages == 0 && s.MQTT.Spooled > 0
	})
	stop()
	// the broker hands the drained messages on to the dashboard at its own pace: wait up to
	// 30 s for the last of them (a deadline against a hang, not a speed assert)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ids, _ := frameIDs(t, col.Get(preds))
		var top uint64
		for id := range ids {
			top = maxU(top, id)
		}
		if uint64(len(ids)) == top {
			break
		}
	}

	ids, boots := frameIDs(t, col.Get(preds))
	var max uint64
	duringOutage := 0
	for id, created := range ids {
		max = maxU(max, id)
		if created.After(outage) && created.Before(back) {
			duringOutage++
		}
	}
	var missing []uint64
	for id := uint64(1); id <= max; id++ {
		if _, ok := ids[id]; !ok {
			missing = append(missing, id)
		}
	}
	s, _ := lastStats(col, "cvedge/e2e/stats")
	t.Logf("%d frames, %d made during the 20 s outage (%.0f/s), spooled %d, drained %d, lost %d", max, duringOutage, float64(duringOutage)/20, s.MQTT.Spooled, s.MQTT.Drained, s.MQTT.Lost)
	if s.MQTT.Lost != 0 {
		t.Errorf("%d messages lost", s.MQTT.Lost)
	}
	if len(boots) != 1 {
		t.Fatalf("boots %v", boots)
	}
	if len(missing) > 0 {
		t.Fatalf("%d frame ids missing of %d, first %v", len(missing), max, missing[:min(10, len(missing))])
	}
	if duringOutage < 200 {
		t.Fatalf("only %d predictions made during the 20 s outage arrived; the test needs 10/s or more", duringOutage)
	}
	col.ValidateAll(t)
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// TestCommands sends good and malformed commands and feedback: each gets a result naming
// its id, and the agent keeps running.
func TestCommands(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	runAgent(t, cfg)
	preds := "cvedge/e2e/cameras/conveyor/predictions"
	testenv.WaitFor(t, "predictions", 20*time.Second, func() bool { return len(col.Get(preds)) > 5 })

	cases := []struct {
		topic, body, id, want string
		ok                    bool
	}{
		{"commands", `{"id":"c1","command":"snapshot","camera":"conveyor"}`, "c1", "", true},
		{"commands", `{"id":"c1a","command":"snapshot","camera":"conveyor","annotate":true}`, "c1a", "", true},
		{"commands", `not json`, "", "not a valid JSON object", false},
		{"commands", `{"id":"c2","command":"explode"}`, "c2", `"command" "explode" is not one of trigger, snapshot, reload, activate, rollback, add`, false},
		{"commands", `{"id":"c3","command":"snapshot"}`, "c3", `command snapshot needs "camera"`, false},
		{"commands", `{"id":"c4","command":"snapshot","camera":"dock"}`, "c4", `no camera "dock" (cameras: conveyor)`, false},
		{"commands", `{"id":"c5","command":"trigger","camera":"conveyor","extra":1}`, "c5", `unknown field "extra"`, false},
		{"commands", `{"id":"c6","command":"trigger","camera":"conveyor"}`, "c6", `has trigger "continuous" and takes no trigger commands`, false},
		{"commands", `{"id":"bad id!","command":"reload"}`, "bad id!", `"id" "bad id!" must be`, false},
		{"commands", `{"id":"c7","command":"reload"} {"x":1}`, "c7", "data after the object", false},
		{"commands", `{"id":"c8","command":"reload"}`, "c8", "not started from a config file: there is nothing to reload", false},
		{"commands", "\xff\xfe", "", "not UTF-8", false},
		{"commands", `[]`, "", "not a valid JSON object", false},
		{"feedback", `{"id":"f1","predictionId":"p1"}`, "f1", `"tag" must be the correct tag`, false},
		{"feedback", `{"id":"f2","predictionId":"p1","tag":"red","detection":-1}`, "f2", `"detection" -1`, false},
		{"feedback", `{`, "", "not a valid JSON object", false},
	}
	for _, c := range cases {
		col.Publish(t, "cvedge/e2e/"+c.topic, c.body)
	}
	results := "cvedge/e2e/commands/results"
	testenv.WaitFor(t, "a result per message", 20*time.Second, func() bool { return len(col.Get(results)) >= len(cases) })
	var got []payload.Result
	for _, raw := range col.Get(results) {
		var r payload.Result
		json.Unmarshal(raw, &r)
		got = append(got, r)
	}
	for _, c := range cases {
		found := false
		for i, r := range got {
			if r.ID == c.id && r.OK == c.ok && strings.Contains(r.Error, c.want) {
				got = append(got[:i], got[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no result for %s %q: want id %q ok %v error containing %q", c.topic, c.body, c.id, c.ok, c.want)
		}
	}
	snaps := col.Get("cvedge/e2e/cameras/conveyor/snapshot")
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	for _, raw := range snaps {
		var snap payload.Snapshot
		json.Unmarshal(raw, &snap)
		b, err := base64.StdEncoding.DecodeString(snap.JPEG)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() != 640 || img.Bounds().Dy() != 360 || snap.CommandID != "c1" && snap.CommandID != "c1a" {
			t.Fatalf("snapshot: %v %v %+v", err, img.Bounds(), snap.CommandID)
		}
		// "annotate": the boxes of the frame's prediction are drawn, in pure green
		green := 0
		for y := 0; y < 360; y++ {
			for x := 0; x < 640; x++ {
				if r, g, b, _ := img.At(x, y).RGBA(); g>>8 > 200 && r>>8 < 80 && b>>8 < 80 {
					green++
				}
			}
		}
		found := 0 // the parts in the frame's prediction: a frame between parts has no box to draw
		for _, raw := range col.Get(preds) {
			var p payload.Prediction
			if json.Unmarshal(raw, &p) == nil && p.ID == snap.PredictionID {
				found = len(p.Predictions)
			}
		}
		if drawn := snap.CommandID == "c1a" && found > 0; drawn != (green > 500) {
			t.Errorf("snapshot %s of a frame with %d parts has %d pixels of the boxes' green", snap.CommandID, found, green)
		}
	}
	for _, raw := range col.Get(results) {
		var r payload.Result
		json.Unmarshal(raw, &r)
		if r.ID == "c1a" && r.Detail["annotated"] != "true" || r.ID == "c1" && r.Detail["annotated"] != "" {
			t.Errorf("result %+v", r)
		}
	}
	before := len(col.Get(preds))
	testenv.WaitFor(t, "predictions after the bad commands", 10*time.Second, func() bool { return len(col.Get(preds)) > before+5 })
	col.ValidateAll(t)
}

// TestTLS publishes over TLS with a test CA, and over mutual TLS with a client certificate.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	pki := testenv.NewPKI(t, dir)
	tlsPort, mtlsPort := testenv.FreePort(t), testenv.FreePort(t)
	broker := testenv.StartMosquitto(t,
		fmt.Sprintf("listener %d 127.0.0.1", tlsPort), "cafile "+pki.CA, "certfile "+pki.ServerCert, "keyfile "+pki.ServerKey,
		fmt.Sprintf("listener %d 127.0.0.1", mtlsPort), "cafile "+pki.CA, "certfile "+pki.ServerCert, "keyfile "+pki.ServerKey,
		"require_certificate true", "use_identity_as_username true")
	col := testenv.Subscribe(t, broker.URL, "#") // the plain listener
	for _, c := range []struct {
		name string
		port int
		mtls bool
	}{{"tls", tlsPort, false}, {"mtls", mtlsPort, true}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := demoConfig(t, fmt.Sprintf("ssl://127.0.0.1:%d", c.port), "")
			cfg.Agent.ID = c.name
			cfg.MQTT.TopicPrefix = "cvedge/" + c.name
			cfg.MQTT.TLS.CAFile = pki.CA
			if c.mtls {
				cfg.MQTT.TLS.CertFile, cfg.MQTT.TLS.KeyFile = pki.ClientCert, pki.ClientKey
			}
			stop := runAgent(t, cfg)
			topic := "cvedge/" + c.name + "/cameras/conveyor/predictions"
			testenv.WaitFor(t, "predictions over "+c.name, 30*time.Second, func() bool { return len(col.Get(topic)) >= 20 })
			stop()
		})
	}
	t.Run("mtls without a client certificate is refused", func(t *testing.T) {
		cfg := demoConfig(t, fmt.Sprintf("ssl://127.0.0.1:%d", mtlsPort), "")
		cfg.Agent.ID, cfg.MQTT.TopicPrefix, cfg.MQTT.TLS.CAFile = "nocert", "cvedge/nocert", pki.CA
		stop := runAgent(t, cfg)
		time.Sleep(3 * time.Second)
		stop()
		if n := len(col.Get("cvedge/nocert/cameras/conveyor/predictions")); n != 0 {
			t.Fatalf("%d predictions arrived without a client certificate", n)
		}
	})
}

// TestDocsExamplesMatchSchemas: every JSON example in docs/mqtt.md that names its schema
// validates against it.
func TestDocsExamplesMatchSchemas(t *testing.T) {
	raw, err := os.ReadFile(testenv.Path("docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	schemas := testenv.LoadSchemas(t)
	re := regexp.MustCompile("(?s)<!-- schema: ([a-z]+) -->\\s*```json\\n(.*?)```")
	found := re.FindAllSubmatch(raw, -1)
	names := map[string]bool{}
	for _, m := range found {
		names[string(m[1])] = true
		if err := schemas.Validate(string(m[1]), m[2]); err != nil {
			t.Errorf("docs/mqtt.md example for %s: %v\n%s", m[1], err, m[2])
		}
	}
	var list []string
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	files, _ := filepath.Glob(testenv.Path("docs", "schemas", "*.schema.json"))
	var messages []string // every message's schema; common holds the shared parts
	for _, f := range files {
		if n := strings.TrimSuffix(filepath.Base(f), ".schema.json"); n != "common" {
			messages = append(messages, n)
		}
	}
	sort.Strings(messages)
	want := strings.Join(messages, ",")
	if strings.Join(list, ",") != want {
		t.Fatalf("docs/mqtt.md has examples for %v, want one for each of %s", list, want)
	}
	// and the schemas do reject what they must
	bad := map[string]string{
		"prediction": `{"schema":1}`,
		"status":     `{"schema":1,"agent":"a","state":"asleep","updated":"2026-01-01T00:00:00Z"}`,
		"result":     `{"schema":1,"agent":"a","id":"x","ok":false,"time":"2026-01-01T00:00:00Z"}`,
		"command":    `{"id":"x","command":"snapshot"}`,
		"feedback":   `{"id":"x","partId":"p","predictionId":"q","tag":"red"}`,
	}
	for name, body := range bad {
		if schemas.Validate(name, []byte(body)) == nil {
			t.Errorf("schema %s accepted %s", name, body)
		}
	}
}
