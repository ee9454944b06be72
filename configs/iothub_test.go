package configs

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// iothubKey is planted in the tests below: no error or printout may show it.
var iothubKey = base64.StdEncoding.EncodeToString([]byte("planted-iothub-device-key-42"))

func iothubConn(host, id, key string) string {
	return "HostName=" + host + ";DeviceId=" + id + ";SharedAccessKey=" + key
}

// TestIoTHubConnectionString: a device connection string parses into host, device id and
// decoded key; each broken one is refused naming the field, never quoting the key.
func TestIoTHubConnectionString(t *testing.T) {
	d, err := ParseIoTHubConnectionString(iothubConn("myhub.azure-devices.net", "line3-box", iothubKey))
	if err != nil || d.HostName != "myhub.azure-devices.net" || d.DeviceID != "line3-box" || string(d.Key) != "planted-iothub-device-key-42" {
		t.Fatalf("parse: %+v, %v", d, err)
	}
	if _, err := ParseIoTHubConnectionString(iothubConn("myhub.azure-devices.net", "line3-box", iothubKey) + ";"); err != nil {
		t.Errorf("a trailing ; is refused: %v", err)
	}
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty: give the device's connection string"},
		{"no host", "DeviceId=a;SharedAccessKey=" + iothubKey, "HostName is missing"},
		{"no device", "HostName=h.azure-devices.net;SharedAccessKey=" + iothubKey, "DeviceId is missing"},
		{"no key", "HostName=h.azure-devices.net;DeviceId=a", "SharedAccessKey is missing"},
		{"key not base64", iothubConn("h.azure-devices.net", "a", "not*base64!"), "SharedAccessKey is not base64"},
		{"twice", iothubConn("h.azure-devices.net", "a", iothubKey) + ";DeviceId=b", "DeviceId is given twice"},
		{"hub string", "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + iothubKey, "SharedAccessKeyName: this is a hub (service) connection string"},
		{"module", iothubConn("h.azure-devices.net", "a", iothubKey) + ";ModuleId=m", `field "ModuleId" is not supported`},
		{"not pairs", "HostName=h.azure-devices.net;junk;SharedAccessKey=" + iothubKey, `part 2 is not name=value`},
		{"bad host", iothubConn("h/x.azure-devices.net", "a", iothubKey), `HostName "h/x.azure-devices.net" is not a host name`},
		{"bad device", iothubConn("h.azure-devices.net", "a/b#", iothubKey), `DeviceId "a/b#" must be`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIoTHubConnectionString(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), iothubKey) {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
}

// TestIoTHubConfig: the section's default ttl, its validation naming each key, and that
// neither `config print` nor an error shows the key.
func TestIoTHubConfig(t *testing.T) {
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.MQTT.AzureIoTHub; a.Enabled() || a.TokenTTL != time.Hour {
		t.Fatalf("defaults: %+v", a)
	}
	good := iothubConn("myhub.azure-devices.net", "line3-box", iothubKey)
	c, err = Load(write(t, minimal+"mqtt: {azure_iot_hub: {connection_string: '"+good+"', token_ttl: 30m}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.Print(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), iothubKey) || !strings.Contains(out.String(), "connection_string: <redacted>") {
		t.Fatalf("config print:\n%s", out.String())
	}
	file := filepath.Join(t.TempDir(), "iothub.conn")
	if err := os.WriteFile(file, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(write(t, minimal+"mqtt: {azure_iot_hub: {connection_string_file: '"+file+"'}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.MQTT.AzureIoTHub.Device(); err != nil || d.DeviceID != "line3-box" {
		t.Fatalf("from the file: %+v, %v", d, err)
	}
	t.Setenv("CVEDGE_MQTT_AZURE_IOT_HUB_CONNECTION_STRING", good)
	if c, err = Load(write(t, minimal)); err != nil || !c.MQTT.AzureIoTHub.Enabled() {
		t.Fatalf("from the environment: %v", err)
	}
	t.Setenv("CVEDGE_MQTT_AZURE_IOT_HUB_CONNECTION_STRING", "")

	cases := []struct{ name, yaml, want string }{
		{"both", "mqtt: {azure_iot_hub: {connection_string: '" + good + "', connection_string_file: '" + file + "'}}\n", "mqtt.azure_iot_hub.connection_string: set connection_string or connection_string_file, not both"},
		{"bad string", "mqtt: {azure_iot_hub: {connection_string: 'HostName=h.azure-devices.net;DeviceId=a;SharedAccessKey=" + iothubKey + "x!'}}\n", "mqtt.azure_iot_hub.connection_string: SharedAccessKey is not base64"},
		{"missing file", "mqtt: {azure_iot_hub: {connection_string_file: /nonexistent/iothub.conn}}\n", "mqtt.azure_iot_hub.connection_string_file: stat /nonexistent/iothub.conn"},
		{"short ttl", "mqtt: {azure_iot_hub: {connection_string: '" + good + "', token_ttl: 1s}}\n", "mqtt.azure_iot_hub.token_ttl: 1s must be from 10s"},
		{"username", "mqtt: {username: u, azure_iot_hub: {connection_string: '" + good + "'}}\n", "mqtt.azure_iot_hub: the device signs in with a SAS token"},
		{"embedded", "mqtt: {embedded: {enabled: true}, azure_iot_hub: {connection_string: '" + good + "'}}\n", "mqtt.azure_iot_hub: the agent publishes to the hub: turn mqtt.embedded.enabled off"},
		{"sparkplug on the hub", "sparkplug: {enabled: true}\nmqtt: {azure_iot_hub: {connection_string: '" + good + "'}}\n", "sparkplug.broker: empty, but mqtt.azure_iot_hub is set"},
		{"qos 2", "mqtt: {qos: 2, azure_iot_hub: {connection_string: '" + good + "'}}\n", "mqtt.qos: 2: Azure IoT Hub takes QoS 0 and 1 only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, minimal+tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), iothubKey) {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
}

// TestRedactSAS: a connection string's key and a SAS token's signature are masked in any
// text (a log line, an error).
func TestRedactSAS(t *testing.T) {
	in := `connect "HostName=h.azure-devices.net;DeviceId=a;SharedAccessKey=` + iothubKey + `" with SharedAccessSignature sr=h.azure-devices.net%2Fdevices%2Fa&sig=abc%2Bdef%3D&se=1700000000`
	out := Redact(in)
	if strings.Contains(out, iothubKey) || strings.Contains(out, "abc%2Bdef") || !strings.Contains(out, "SharedAccessKey="+Masked) || !strings.Contains(out, "sig="+Masked+"&se=1700000000") {
		t.Fatalf("Redact: %s", out)
	}
}

// FuzzParseIoTHubConnectionString: any input is parsed or refused without a panic, a
// refusal never quotes the key, and what parses has the three fields.
func FuzzParseIoTHubConnectionString(f *testing.F) {
	f.Add(iothubConn("myhub.azure-devices.net", "line3-box", iothubKey))
	f.Add("HostName=h;DeviceId=d;SharedAccessKey=")
	f.Add("HostName=h.azure-devices.net;DeviceId=d;SharedAccessKey=" + iothubKey + ";GatewayHostName=gw")
	f.Add(";;;")
	f.Add("HostName==;DeviceId==;SharedAccessKey===")
	f.Add("hostname=h;HostName=h;DeviceId=d;SharedAccessKey=" + iothubKey)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseIoTHubConnectionString(s)
		if err != nil {
			if strings.Contains(s, "SharedAccessKey="+iothubKey) && strings.Contains(err.Error(), iothubKey) {
				t.Fatalf("the error quotes the key: %v", err)
			}
			return
		}
		if d.HostName == "" || d.DeviceID == "" || len(d.Key) == 0 || strings.ContainsAny(d.DeviceID, "/+#") {
			t.Fatalf("parsed %q into %+v", s, d)
		}
	})
}
