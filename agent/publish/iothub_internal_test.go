package publish

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSASToken: the token names the URL-encoded resource and expiry, and its signature is
// the HMAC-SHA256 of "<encoded resource>\n<expiry>" with the key, URL-encoded.
func TestSASToken(t *testing.T) {
	key := []byte("device-key")
	tok := SASToken("myhub.azure-devices.net/devices/line3-box", key, time.Unix(1700000000, 0))
	rest, ok := strings.CutPrefix(tok, "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fline3-box&sig=")
	if !ok || !strings.HasSuffix(rest, "&se=1700000000") {
		t.Fatalf("token %s", tok)
	}
	sig, err := url.QueryUnescape(strings.TrimSuffix(rest, "&se=1700000000"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("myhub.azure-devices.net%2Fdevices%2Fline3-box\n1700000000"))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); sig != want {
		t.Fatalf("signature %s, want %s", sig, want)
	}
}

// TestEventsTopic: the topic, kind, retained flag and content type go in the property bag;
// the message goes out not retained and at QoS 1 at most.
func TestEventsTopic(t *testing.T) {
	h := &hub{}
	h.dev.DeviceID = "line3-box"
	m := h.mapped(Message{Topic: "cvedge/line3/cameras/conveyor/predictions", QoS: 2, Retained: true, Payload: []byte(`{"a":1}`)})
	want := "devices/line3-box/messages/events/topic=cvedge%2Fline3%2Fcameras%2Fconveyor%2Fpredictions&kind=predictions&retained=true&$.ct=application%2Fjson&$.ce=utf-8"
	if m.Topic != want || m.Retained || m.QoS != 1 {
		t.Fatalf("mapped to %+v\nwant topic %s, not retained, QoS 1", m, want)
	}
}

// TestRouteDeviceBound: a cloud-to-device message reaches the subscription its topic (or
// kind) property names, with or without the topic prefix; one naming none reaches none.
func TestRouteDeviceBound(t *testing.T) {
	subs := map[string]func([]byte){"cvedge/line3/commands": nil, "cvedge/line3/feedback": nil}
	for topic, want := range map[string]string{
		"devices/d/messages/devicebound/%24.to=%2Fdevices%2Fd%2Fmessages%2FdeviceBound&topic=commands":  "cvedge/line3/commands",
		"devices/d/messages/devicebound/topic=cvedge%2Fline3%2Ffeedback":                                "cvedge/line3/feedback",
		"devices/d/messages/devicebound/kind=feedback":                                                  "cvedge/line3/feedback",
		"devices/d/messages/devicebound/topic=stats":                                                    "",
		"devices/d/messages/devicebound/":                                                               "",
		"devices/d/messages/devicebound/%24.mid=1&topic=other%2Fcommands%2Fx&kind=commands&%24.ct=text": "cvedge/line3/commands",
	} {
		got, err := route(topic, subs)
		if err != nil || got != want {
			t.Errorf("route(%s) = %q, %v; want %q", topic, got, err, want)
		}
	}
	if _, err := route("devices/d/messages/devicebound/topic=%zz", subs); err == nil {
		t.Error("a broken escape was taken")
	}
}

// FuzzPropertyBag: whatever the names and values, a bag decodes to what was encoded, and
// decoding any text never panics.
func FuzzPropertyBag(f *testing.F) {
	f.Add("topic", "cvedge/line3/cameras/conveyor/predictions", "$.ct", "application/json")
	f.Add("retained", "true", "a&b", "c=d e%f+g")
	f.Add("", "", "ü", "\x00/#+")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		props := []Property{{n1, v1}, {n2, v2}}
		got, err := DecodeProperties(EncodeProperties(props))
		if err != nil {
			t.Fatalf("decode of an encoded bag: %v", err)
		}
		var want []Property
		for _, p := range props {
			if p.Name != "" || p.Value != "" { // an empty pair encodes as "=" and reads back empty
				want = append(want, p)
			}
		}
		got = slices.DeleteFunc(got, func(p Property) bool { return p.Name == "" && p.Value == "" })
		if !slices.Equal(got, want) {
			t.Fatalf("encoded %q, decoded %q", props, got)
		}
		for _, s := range []string{n1, v1, n2 + v2} {
			DecodeProperties(s) //nolint:errcheck // must not panic
			route("devices/d/messages/devicebound/"+s, map[string]func([]byte){"p/commands": nil})
		}
	})
}
