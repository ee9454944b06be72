package publish_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/agent/testenv"
)

const (
	hubHost  = "testhub.azure-devices.net"
	hubDevID = "line3-box"
)

// hubKey is the device key planted in the tests: it must never show in a log.
var hubKey = []byte("planted-device-key-0123456789abcdef")

// hubEvent is a message the fake hub took from the device.
type hubEvent struct {
	topic    string
	props    url.Values
	payload  string
	retained bool
	qos      byte
}

// fakeHub is a local broker that holds the device to Azure IoT Hub's rules: TLS only, the
// client id is the device id, the username is <host>/<id>/?api-version=..., the password a
// SAS token signed with the device key and not expired; the device publishes only to
// devices/<id>/messages/events/..., at QoS 0 or 1, never retained, and subscribes only to
// devices/<id>/messages/devicebound/#. A connection whose token expires is closed, as the
// hub does. Every breach is recorded.
type fakeHub struct {
	mqtt.HookBase
	mu       sync.Mutex
	events   []hubEvent
	breaches []string
	tokens   map[string]bool // each distinct token a connection signed in with
	expiry   map[*mqtt.Client]time.Time
	server   *mqtt.Server
	addr     string
	tlsConf  *tls.Config
	stopped  chan struct{}
	stopOnce sync.Once
}

func (h *fakeHub) ID() string { return "fake-iot-hub" }

func (h *fakeHub) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish || b == mqtt.OnDisconnect
}

func (h *fakeHub) breach(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.breaches = append(h.breaches, fmt.Sprintf(format, args...))
}

func (h *fakeHub) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.ID != hubDevID {
		h.breach("client id %q is not the device id", cl.ID)
		return false
	}
	if u := string(pk.Connect.Username); u != hubHost+"/"+hubDevID+"/?api-version=2021-04-12" {
		h.breach("username %q", u)
		return false
	}
	pw := string(pk.Connect.Password)
	rest, ok := strings.CutPrefix(pw, "SharedAccessSignature ")
	q, err := url.ParseQuery(rest)
	if !ok || err != nil {
		h.breach("password is not a SAS token")
		return false
	}
	sr, se := q.Get("sr"), q.Get("se")
	if sr != hubHost+"/devices/"+hubDevID {
		h.breach("token resource %q", sr)
		return false
	}
	mac := hmac.New(sha256.New, hubKey)
	mac.Write([]byte(url.QueryEscape(sr) + "\n" + se))
	if q.Get("sig") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		h.breach("token signature does not verify with the device key")
		return false
	}
	sec, err := strconv.ParseInt(se, 10, 64)
	exp := time.Unix(sec, 0)
	if err != nil || !exp.After(time.Now()) {
		h.breach("token expired or without se: %q", se)
		return false
	}
	h.mu.Lock()
	h.tokens[pw] = true
	h.expiry[cl] = exp
	h.mu.Unlock()
	return true
}

func (h *fakeHub) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if write && !strings.HasPrefix(topic, "devices/"+hubDevID+"/messages/events/") {
		h.breach("publish to %q", topic)
		return false
	}
	if !write && !strings.HasPrefix(topic, "devices/"+hubDevID+"/messages/devicebound/") { // the filter, and each message delivered
		h.breach("subscription to %q", topic)
		return false
	}
	return true
}

func (h *fakeHub) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h.mu.Lock()
	exp := h.expiry[cl]
	h.mu.Unlock()
	switch {
	case pk.FixedHeader.Retain:
		h.breach("retained publish to %s", pk.TopicName)
		return pk, packets.ErrRejectPacket
	case pk.FixedHeader.Qos > 1:
		h.breach("QoS %d publish to %s", pk.FixedHeader.Qos, pk.TopicName)
		return pk, packets.ErrRejectPacket
	case !time.Now().Before(exp):
		h.breach("publish on a connection whose token expired at %s", exp)
		cl.Stop(fmt.Errorf("token expired"))
		return pk, packets.ErrRejectPacket
	}
	bag, _ := strings.CutPrefix(pk.TopicName, "devices/"+hubDevID+"/messages/events/")
	props, err := url.ParseQuery(bag)
	if err != nil {
		h.breach("property bag %q: %v", bag, err)
	}
	h.mu.Lock()
	h.events = append(h.events, hubEvent{topic: pk.TopicName, props: props, payload: string(pk.Payload), retained: pk.FixedHeader.Retain, qos: pk.FixedHeader.Qos})
	h.mu.Unlock()
	return pk, nil
}

func (h *fakeHub) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.expiry, cl)
	h.mu.Unlock()
}

// start starts (again) the broker on h.addr, with TLS.
func (h *fakeHub) start(t *testing.T) {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InlineClient: true})
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: h.addr, TLSConfig: h.tlsConf})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	h.server = s
}

func (h *fakeHub) stop() {
	if h.server != nil {
		h.server.Close()
		h.server = nil
	}
}

// watchExpiry closes connections whose token expired, as the hub does.
func (h *fakeHub) watchExpiry() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.stopped:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		for cl, exp := range h.expiry {
			if time.Now().After(exp) {
				delete(h.expiry, cl)
				h.breaches = append(h.breaches, "a connection outlived its token: the device did not renew it")
				go cl.Stop(fmt.Errorf("token expired"))
			}
		}
		h.mu.Unlock()
	}
}

func (h *fakeHub) snapshot() ([]hubEvent, []string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hubEvent(nil), h.events...), append([]string(nil), h.breaches...), len(h.tokens)
}

// eventsFor returns the events whose topic property is topic.
func (h *fakeHub) eventsFor(topic string) []hubEvent {
	evs, _, _ := h.snapshot()
	var out []hubEvent
	for _, e := range evs {
		if e.props.Get("topic") == topic {
			out = append(out, e)
		}
	}
	return out
}

func startHub(t *testing.T) *fakeHub {
	t.Helper()
	pki := testenv.NewPKI(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHub{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		tokens: map[string]bool{}, expiry: map[*mqtt.Client]time.Time{}, stopped: make(chan struct{})}
	h.start(t)
	go h.watchExpiry()
	t.Cleanup(func() {
		h.stopOnce.Do(func() { close(h.stopped) })
		h.stop()
	})
	hubCA[h] = pki.CA
	return h
}

var hubCA = map[*fakeHub]string{}

// hubHarness starts a publisher that is device hubDevID of the fake hub, with a token ttl.
func hubHarness(t *testing.T, h *fakeHub, ttl time.Duration, o publish.Options) *harness {
	t.Helper()
	cfg := mqttConfig("ssl://" + h.addr)
	cfg.TLS.CAFile = hubCA[h]
	cfg.AzureIoTHub.ConnectionString = "HostName=" + hubHost + ";DeviceId=" + hubDevID + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(hubKey)
	cfg.AzureIoTHub.TokenTTL = ttl
	return start(t, cfg, o)
}

func noBreaches(t *testing.T, h *fakeHub) {
	t.Helper()
	if _, b, _ := h.snapshot(); len(b) > 0 {
		t.Fatalf("the device broke the hub's rules:\n%s", strings.Join(b, "\n"))
	}
}

func keyNotLogged(t *testing.T, hr *harness) {
	t.Helper()
	logs := hr.logs.String()
	for _, secret := range []string{base64.StdEncoding.EncodeToString(hubKey), string(hubKey), "SharedAccessSignature", "sig="} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, logs)
		}
	}
}

// Predictions reach the hub on the device's events topic with their own topic in the
// property bag and the JSON intact; the retained status goes as a normal message with
// retained=true; a cloud-to-device command reaches the commands handler and its result
// comes back as an event.
func TestIoTHubEventsAndCommands(t *testing.T) {
	h := startHub(t)
	var hr *harness
	status := publish.Message{Topic: "t/status", QoS: 1, Retained: true, Payload: []byte(`{"state":"online"}`)}
	commands := make(chan string, 4)
	hr = hubHarness(t, h, time.Hour, publish.Options{
		Will:      &publish.Message{Topic: "t/status", QoS: 1, Retained: true, Payload: []byte(`{"state":"offline"}`)},
		OnConnect: func() []publish.Message { return []publish.Message{status} },
		Subscriptions: map[string]func([]byte){
			"t/commands": func(b []byte) { commands <- string(b) },
			"t/feedback": func([]byte) { t.Error("a command reached the feedback handler") },
		},
	})
	hr.waitConnected(t)
	pred := `{"schema":1,"camera":"conveyor","tags":[{"tag":"ok","p":0.93}],"note":"a&b=c /x"}`
	hr.pub.Send(publish.Message{Topic: "t/cameras/conveyor/predictions", QoS: 1, Payload: []byte(pred), Class: spool.Predictions})
	testenv.WaitFor(t, "the prediction at the hub", 10*time.Second, func() bool { return len(h.eventsFor("t/cameras/conveyor/predictions")) > 0 })
	e := h.eventsFor("t/cameras/conveyor/predictions")[0]
	if e.payload != pred || e.props.Get("kind") != "predictions" || e.props.Get("$.ct") != "application/json" || e.qos != 1 || e.props.Get("retained") != "" {
		t.Fatalf("prediction event %+v", e)
	}
	testenv.WaitFor(t, "the status at the hub", 10*time.Second, func() bool { return len(h.eventsFor("t/status")) > 0 })
	if s := h.eventsFor("t/status")[0]; s.retained || s.props.Get("retained") != "true" || s.payload != string(status.Payload) {
		t.Fatalf("status event %+v: want it not retained, with retained=true", s)
	}

	// the cloud sends a command, as the service SDK does: properties in the topic
	c2d := "devices/" + hubDevID + "/messages/devicebound/%24.mid=42&%24.to=%2Fdevices%2F" + hubDevID + "%2Fmessages%2FdeviceBound&topic=commands"
	if err := h.server.Publish(c2d, []byte(`{"command":"snapshot","id":"c1"}`), false, 1); err != nil {
		t.Fatal(err)
	}
	var got string
	select {
	case got = <-commands:
	case <-time.After(10 * time.Second):
		_, b, _ := h.snapshot()
		t.Fatalf("the cloud-to-device command did not reach the commands handler (hub: %v)", b)
	}
	if got != `{"command":"snapshot","id":"c1"}` {
		t.Fatalf("command payload %q", got)
	}
	hr.pub.Send(publish.Message{Topic: "t/results", QoS: 1, Payload: []byte(`{"id":"c1","ok":true}`), Class: spool.Predictions})
	testenv.WaitFor(t, "the command's result at the hub", 10*time.Second, func() bool { return len(h.eventsFor("t/results")) > 0 })
	noBreaches(t, h)
	keyNotLogged(t, hr)
}

// A token about to expire is renewed: the device reconnects with a fresh one before the
// hub would close the connection over it, and every message sent meanwhile arrives.
func TestIoTHubTokenRenewal(t *testing.T) {
	h := startHub(t)
	hr := hubHarness(t, h, 3*time.Second, publish.Options{})
	hr.waitConnected(t)
	n := 0
	testenv.WaitFor(t, "three tokens", 30*time.Second, func() bool {
		hr.pub.Send(msg("t/renew", n, 64))
		n++
		time.Sleep(100 * time.Millisecond)
		_, _, tokens := h.snapshot()
		return tokens >= 3
	})
	testenv.WaitFor(t, "every message at the hub", 20*time.Second, func() bool {
		seen := map[string]bool{}
		evs, _, _ := h.snapshot()
		for _, e := range evs {
			seen[e.props.Get("topic")] = true
		}
		for i := range n {
			if !seen[fmt.Sprintf("t/renew/%d", i)] {
				return false
			}
		}
		return true
	})
	noBreaches(t, h)
	keyNotLogged(t, hr)
}

// Messages sent while the hub is away are spooled and delivered once it is back, with
// their own topic in the property bag.
func TestIoTHubAwaySpools(t *testing.T) {
	h := startHub(t)
	hr := hubHarness(t, h, time.Hour, publish.Options{})
	hr.waitConnected(t)
	h.stop()
	testenv.WaitFor(t, "the publisher to see the hub gone", 15*time.Second, func() bool { return !hr.pub.Connected() })
	for i := range 20 {
		hr.pub.Send(msg("t/away", i, 64))
	}
	testenv.WaitFor(t, "the messages in the spool", 10*time.Second, func() bool { return hr.pub.Stats().Spooled >= 20 })
	h.start(t)
	testenv.WaitFor(t, "the spooled messages at the hub", 30*time.Second, func() bool {
		for i := range 20 {
			if len(h.eventsFor(fmt.Sprintf("t/away/%d", i))) == 0 {
				return false
			}
		}
		return true
	})
	if e := h.eventsFor("t/away/7")[0]; !strings.Contains(e.payload, `"i":7`) {
		t.Fatalf("spooled message 7 arrived as %q", e.payload)
	}
	noBreaches(t, h)
	keyNotLogged(t, hr)
}
