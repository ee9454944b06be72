package testenv

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
)

// The fake hub's host name and its one device.
const (
	IoTHubHost   = "testhub.azure-devices.net"
	IoTHubDevice = "line3-box"
)

// IoTHubKey is the device key, planted in the tests: it must never show in a log.
var IoTHubKey = []byte("planted-device-key-0123456789abcdef")

// IoTHubConnectionString is the device's connection string.
func IoTHubConnectionString() string {
	return "HostName=" + IoTHubHost + ";DeviceId=" + IoTHubDevice + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(IoTHubKey)
}

// IoTHubEvent is a message the fake hub took from the device.
type IoTHubEvent struct {
	Topic    string
	Props    url.Values
	Payload  string
	Retained bool
	QoS      byte
}

// IoTHub is a local broker that holds the device to Azure IoT Hub's rules: TLS only, the
// client id is the device id, the username is <host>/<id>/?api-version=..., the password a
// SAS token signed with the device key and not expired; the device publishes only to
// devices/<id>/messages/events/..., at QoS 0 or 1, never retained, and subscribes only to
// devices/<id>/messages/devicebound/#. A connection whose token expires is closed, as the
// hub does. Every breach is recorded.
type IoTHub struct {
	mqtt.HookBase
	mu       sync.Mutex
	events   []IoTHubEvent
	breaches []string
	tokens   map[string]bool // each distinct token a connection signed in with
	expiry   map[*mqtt.Client]time.Time
	server   *mqtt.Server
	// Addr is host:port; CA the file of the CA that signed its certificate.
	Addr, CA string
	tlsConf  *tls.Config
	stopped  chan struct{}
	stopOnce sync.Once
}

func (h *IoTHub) ID() string { return "fake-iot-hub" }

func (h *IoTHub) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish || b == mqtt.OnDisconnect
}

func (h *IoTHub) breach(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.breaches = append(h.breaches, fmt.Sprintf(format, args...))
}

func (h *IoTHub) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.ID != IoTHubDevice {
		h.breach("client id %q is not the device id", cl.ID)
		return false
	}
	if u := string(pk.Connect.Username); u != IoTHubHost+"/"+IoTHubDevice+"/?api-version=2021-04-12" {
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
	if sr != IoTHubHost+"/devices/"+IoTHubDevice {
		h.breach("token resource %q", sr)
		return false
	}
	mac := hmac.New(sha256.New, IoTHubKey)
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

func (h *IoTHub) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if write && !strings.HasPrefix(topic, "devices/"+IoTHubDevice+"/messages/events/") {
		h.breach("publish to %q", topic)
		return false
	}
	if !write && !strings.HasPrefix(topic, "devices/"+IoTHubDevice+"/messages/devicebound/") { // the filter, and each message delivered
		h.breach("subscription to %q", topic)
		return false
	}
	return true
}

func (h *IoTHub) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
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
	bag, _ := strings.CutPrefix(pk.TopicName, "devices/"+IoTHubDevice+"/messages/events/")
	props, err := url.ParseQuery(bag)
	if err != nil {
		h.breach("property bag %q: %v", bag, err)
	}
	h.mu.Lock()
	h.events = append(h.events, IoTHubEvent{Topic: pk.TopicName, Props: props, Payload: string(pk.Payload), Retained: pk.FixedHeader.Retain, QoS: pk.FixedHeader.Qos})
	h.mu.Unlock()
	return pk, nil
}

func (h *IoTHub) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.expiry, cl)
	h.mu.Unlock()
}

// StartBroker starts the broker (again) on h.Addr, with TLS.
func (h *IoTHub) StartBroker(t testing.TB) {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InlineClient: true})
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: h.Addr, TLSConfig: h.tlsConf})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	h.server = s
}

// StopBroker stops it: the device loses its connection.
func (h *IoTHub) StopBroker() {
	if h.server != nil {
		h.server.Close()
		h.server = nil
	}
}

// watchExpiry closes connections whose token expired, as the hub does.
func (h *IoTHub) watchExpiry() {
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

// Snapshot returns the events taken, the breaches of the hub's rules, and the number of
// distinct SAS tokens the device signed in with.
func (h *IoTHub) Snapshot() ([]IoTHubEvent, []string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]IoTHubEvent(nil), h.events...), append([]string(nil), h.breaches...), len(h.tokens)
}

// EventsFor returns the events whose topic property is topic.
func (h *IoTHub) EventsFor(topic string) []IoTHubEvent {
	evs, _, _ := h.Snapshot()
	var out []IoTHubEvent
	for _, e := range evs {
		if e.Props.Get("topic") == topic {
			out = append(out, e)
		}
	}
	return out
}

// StartIoTHub starts a fake IoT hub with TLS on a free loopback port, stopped when the test
// ends. Its CA is h.CA; its address h.Addr.
func StartIoTHub(t testing.TB) *IoTHub {
	t.Helper()
	pki := NewPKI(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	h := &IoTHub{CA: pki.CA, Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		tokens: map[string]bool{}, expiry: map[*mqtt.Client]time.Time{}, stopped: make(chan struct{})}
	h.StartBroker(t)
	go h.watchExpiry()
	t.Cleanup(func() {
		h.stopOnce.Do(func() { close(h.stopped) })
		h.StopBroker()
	})
	return h
}

// SendC2D sends a cloud-to-device message with the property bag props (URL-encoded, as
// the service SDK sends them).
func (h *IoTHub) SendC2D(props string, payload []byte) error {
	return h.server.Publish("devices/"+IoTHubDevice+"/messages/devicebound/%24.to=%2Fdevices%2F"+IoTHubDevice+"%2Fmessages%2FdeviceBound&"+props, payload, false, 1)
}

// NoBreaches fails the test when the device broke one of the hub's rules.
func (h *IoTHub) NoBreaches(tb testing.TB) {
	tb.Helper()
	if _, b, _ := h.Snapshot(); len(b) > 0 {
		tb.Fatalf("the device broke the hub's rules:\n%s", strings.Join(b, "\n"))
	}
}
