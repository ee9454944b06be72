package publish

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/configs"
)

// IoTHubAPIVersion is the api-version the agent names in its MQTT username.
const IoTHubAPIVersion = "2021-04-12"

// Property is one entry of an IoT Hub message's property bag.
type Property struct{ Name, Value string }

// hub is the Azure IoT Hub dialect of a connection (mqtt.azure_iot_hub): the device signs
// in with a SAS token made afresh on each (re)connection, every message goes to the
// device's events topic with its own topic and retained flag in the property bag, and
// cloud-to-device messages are handed to the subscription their topic or kind property
// names.
type hub struct {
	dev     configs.IoTHubDevice
	ttl     time.Duration
	expires atomic.Int64 // when the token of the last connection attempt expires (Unix ns)
}

func newHub(cfg configs.MQTT) (*hub, error) {
	dev, err := cfg.AzureIoTHub.Device()
	if err != nil {
		return nil, err
	}
	return &hub{dev: dev, ttl: cfg.AzureIoTHub.TokenTTL}, nil
}

// options makes paho's options fit the hub: its address, the device id as client id, and a
// fresh SAS token as the password of each connection attempt.
func (h *hub) options(opts *paho.ClientOptions, cfg configs.MQTT) {
	broker := "ssl://" + h.dev.HostName + ":8883"
	if u, err := url.Parse(cfg.Broker); err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts") {
		broker = cfg.Broker
	}
	opts.Servers = nil
	opts.AddBroker(broker)
	opts.SetClientID(h.dev.DeviceID)
	opts.SetCredentialsProvider(h.credentials)
}

// credentials returns the username and a SAS token valid for the TTL from now.
func (h *hub) credentials() (string, string) {
	exp := time.Unix(time.Now().Add(h.ttl).Unix(), 0) // se is in whole seconds
	h.expires.Store(exp.UnixNano())
	return IoTHubUsername(h.dev), SASToken(h.dev.HostName+"/devices/"+h.dev.DeviceID, h.dev.Key, exp)
}

// IoTHubUsername is the MQTT username of a device: <hub host>/<device id>/?api-version=...
func IoTHubUsername(d configs.IoTHubDevice) string {
	return d.HostName + "/" + d.DeviceID + "/?api-version=" + IoTHubAPIVersion
}

// SASToken signs resource (<hub host>/devices/<device id>) until expiry with key:
// SharedAccessSignature sr=<resource>&sig=<HMAC-SHA256 of "<resource>\n<expiry>">&se=<expiry>,
// the resource and signature URL-encoded.
func SASToken(resource string, key []byte, expiry time.Time) string {
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sr + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + se
}

// renewIn is how long until the connection's token must be renewed: at four fifths of its
// life.
func (h *hub) renewIn() time.Duration {
	exp := time.Unix(0, h.expires.Load())
	return time.Until(exp) - h.ttl/5
}

// EventsTopic is where a device sends message m: devices/<id>/messages/events/ with m's
// topic (topic=), its last level (kind=), retained=true for a message that would be
// retained on a plain broker, and the JSON content type.
func EventsTopic(deviceID string, m Message) string {
	kind := m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]
	props := []Property{{"topic", m.Topic}, {"kind", kind}}
	if m.Retained {
		props = append(props, Property{"retained", "true"})
	}
	if len(m.Payload) > 0 && m.Payload[0] == '{' {
		props = append(props, Property{"$.ct", "application/json"}, Property{"$.ce", "utf-8"})
	}
	return "devices/" + deviceID + "/messages/events/" + EncodeProperties(props)
}

// mapped is where m goes on the hub, never retained (the hub keeps no retained messages),
// at QoS 0 or 1 (it takes no QoS 2).
func (h *hub) mapped(m Message) Message {
	m.Topic, m.Retained, m.QoS = EventsTopic(h.dev.DeviceID, m), false, min(m.QoS, 1)
	return m
}

// EncodeProperties writes a property bag: name=value pairs joined by &, each URL-encoded
// (a system property keeps its $. prefix).
func EncodeProperties(props []Property) string {
	var b strings.Builder
	for i, p := range props {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escapeProperty(p.Name))
		b.WriteByte('=')
		b.WriteString(escapeProperty(p.Value))
	}
	return b.String()
}

func escapeProperty(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~$", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// DecodeProperties reads a property bag (the end of a cloud-to-device topic). A name
// without =value has the value "".
func DecodeProperties(s string) ([]Property, error) {
	var props []Property
	if s == "" {
		return nil, nil
	}
	for _, pair := range strings.Split(s, "&") {
		if pair == "" {
			continue
		}
		n, v, _ := strings.Cut(pair, "=")
		name, err := url.PathUnescape(n)
		if err != nil {
			return nil, fmt.Errorf("property name %q: %w", clipped(n), err)
		}
		value, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("property %s: %w", clipped(name), err)
		}
		props = append(props, Property{name, value})
	}
	return props, nil
}

func clipped(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// deviceBound is the topic filter of the device's cloud-to-device messages.
func (h *hub) deviceBound() string { return "devices/" + h.dev.DeviceID + "/messages/devicebound/#" }

// route picks the subscription a cloud-to-device message on topic is for: the one whose
// topic is its topic property, or ends with /<topic> or /<kind> (so topic=commands reaches
// <prefix>/commands). "" when none.
func route[V any](topic string, subs map[string]V) (string, error) {
	i := strings.Index(topic, "/messages/devicebound/")
	if i < 0 {
		return "", fmt.Errorf("topic %q is not a cloud-to-device topic", clipped(topic))
	}
	props, err := DecodeProperties(topic[i+len("/messages/devicebound/"):])
	if err != nil {
		return "", err
	}
	for _, want := range []string{"topic", "kind"} {
		for _, p := range props {
			if p.Name != want || p.Value == "" {
				continue
			}
			for sub := range subs {
				if sub == p.Value || strings.HasSuffix(sub, "/"+p.Value) {
					return sub, nil
				}
			}
		}
	}
	return "", nil
}

// onDeviceBound is paho's handler of cloud-to-device messages: each goes to its
// subscription's inbox; one it cannot place is acknowledged and logged (without its payload,
// at most every logEvery).
func (p *Publisher) onDeviceBound(_ paho.Client, m paho.Message) {
	sub, err := route(m.Topic(), p.inboxes)
	if err == nil && sub == "" {
		err = fmt.Errorf("no topic or kind property names commands or feedback")
	}
	if err != nil {
		m.Ack()
		if p.strayLog.due(time.Now()) {
			p.log.Warn("cloud-to-device message ignored: send it with the property topic=commands (or feedback)", "err", err)
		}
		return
	}
	p.take(p.inboxes[sub], m)
}

// renewToken reconnects with a fresh SAS token before the connection's token expires, so
// the hub never closes the connection over it. It runs while the publisher does.
func (p *Publisher) renewToken() {
	defer p.wg.Done()
	timer := stoppedTimer()
	for {
		wait := time.Second
		if p.client.IsConnectionOpen() {
			wait = max(p.hub.renewIn(), 0)
		}
		timer.Reset(wait)
		select {
		case <-p.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		if !p.client.IsConnectionOpen() || p.hub.renewIn() > 0 {
			continue
		}
		p.log.Info("renewing the IoT Hub SAS token: reconnecting", "broker", p.broker)
		p.alarm.fire()
		p.client.Disconnect(250)
		p.connectionLost(nil)
		p.client.Connect()
	}
}
