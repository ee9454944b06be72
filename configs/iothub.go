package configs

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"
)

// AzureIoTHub connects the agent to an Azure IoT hub as one of its devices, with no bridge
// (docs/integrations.md, "Azure IoT Hub"). Set ConnectionString or ConnectionStringFile to
// turn it on. The hub's HostName then wins over mqtt.broker: the agent connects to
// ssl://<HostName>:8883, unless mqtt.broker is itself an ssl:// (tls://, mqtts://) URL,
// which replaces the address only (a private endpoint, an IoT Edge gateway). The device
// signs in with a SAS token made from the key, so mqtt.username, mqtt.password and
// mqtt.password_file must be empty, and the embedded broker off.
type AzureIoTHub struct {
	// ConnectionString is the device's connection string,
	// HostName=<hub>.azure-devices.net;DeviceId=<id>;SharedAccessKey=<base64>. Best kept
	// out of the config: use ConnectionStringFile, or the environment variable
	// CVEDGE_MQTT_AZURE_IOT_HUB_CONNECTION_STRING. Never logged or printed.
	ConnectionString string `mapstructure:"connection_string"`
	// ConnectionStringFile is a file (mode 0600) holding the connection string.
	ConnectionStringFile string `mapstructure:"connection_string_file"`
	// TokenTTL is how long each SAS token is valid. The agent reconnects with a fresh
	// token before it expires (at four fifths of it).
	TokenTTL time.Duration `mapstructure:"token_ttl"`
}

// Enabled reports whether the agent connects to an IoT hub.
func (a AzureIoTHub) Enabled() bool { return a.ConnectionString != "" || a.ConnectionStringFile != "" }

// IoTHubDevice is a parsed device connection string.
type IoTHubDevice struct {
	// HostName is the hub's host, <hub>.azure-devices.net.
	HostName string
	// DeviceID is the device's id in the hub: the MQTT client id, and part of every topic.
	DeviceID string
	// Key is the decoded SharedAccessKey. Never log it.
	Key []byte
}

// Device reads and parses the connection string (from ConnectionStringFile when set).
func (a AzureIoTHub) Device() (IoTHubDevice, error) {
	s, key := a.ConnectionString, "mqtt.azure_iot_hub.connection_string"
	if a.ConnectionStringFile != "" {
		key = "mqtt.azure_iot_hub.connection_string_file"
		raw, err := os.ReadFile(a.ConnectionStringFile)
		if err != nil {
			return IoTHubDevice{}, fmt.Errorf("%s: %w", key, err)
		}
		s = strings.TrimSpace(string(raw))
	}
	d, err := ParseIoTHubConnectionString(s)
	if err != nil {
		return IoTHubDevice{}, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

// ParseIoTHubConnectionString parses a device connection string,
// HostName=<hub>.azure-devices.net;DeviceId=<id>;SharedAccessKey=<base64>, strictly: the
// three fields once each, no other (a GatewayHostName or an x509=true string is refused:
// this agent signs in with the key), a host name and device id without characters that
// break a topic or a URL. Errors name the field, never the key's value.
func ParseIoTHubConnectionString(s string) (IoTHubDevice, error) {
	d, err := parseIoTHub(s)
	return d, RedactError(err) // a separator missed puts the key in another field's value
}

func parseIoTHub(s string) (IoTHubDevice, error) {
	var d IoTHubDevice
	if strings.TrimSpace(s) == "" {
		return d, fmt.Errorf("empty: give the device's connection string from the Azure portal (IoT hub > Devices > the device > Primary connection string)")
	}
	seen := map[string]bool{}
	var key string
	for i, part := range strings.Split(strings.TrimSuffix(s, ";"), ";") {
		name, val, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return d, fmt.Errorf("part %d is not name=value: the connection string is HostName=<hub>.azure-devices.net;DeviceId=<id>;SharedAccessKey=<key>", i+1)
		}
		if seen[strings.ToLower(name)] {
			return d, fmt.Errorf("%s is given twice", name)
		}
		seen[strings.ToLower(name)] = true
		switch name {
		case "HostName":
			d.HostName = val
		case "DeviceId":
			d.DeviceID = val
		case "SharedAccessKey":
			key = val
		case "SharedAccessKeyName":
			return d, fmt.Errorf("SharedAccessKeyName: this is a hub (service) connection string, not a device's: give the device's own connection string")
		default:
			if len(name) > 24 { // not a field name: perhaps a key without its name
				return d, fmt.Errorf("part %d is not HostName, DeviceId or SharedAccessKey: the agent takes these three only (no module, gateway or X.509 connection strings)", i+1)
			}
			return d, fmt.Errorf("field %q is not supported: the agent takes HostName, DeviceId and SharedAccessKey only (no module, gateway or X.509 connection strings)", clip(name))
		}
	}
	switch {
	case d.HostName == "":
		return d, fmt.Errorf("HostName is missing or empty: give <hub>.azure-devices.net")
	case !validHost(d.HostName):
		return d, fmt.Errorf("HostName %q is not a host name such as myhub.azure-devices.net", clip(d.HostName))
	case d.DeviceID == "":
		return d, fmt.Errorf("DeviceId is missing or empty: give the device's id in the hub")
	case len(d.DeviceID) > 128 || strings.ContainsAny(d.DeviceID, "/+#?&=;% \t\r\n\x00"):
		return d, fmt.Errorf("DeviceId %q must be up to 128 characters without / + # ? & = ; %% or spaces", clip(d.DeviceID))
	case key == "":
		return d, fmt.Errorf("SharedAccessKey is missing or empty: give the device's primary or secondary key")
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(k) == 0 {
		return d, fmt.Errorf("SharedAccessKey is not base64: copy it again from the Azure portal")
	}
	d.Key = k
	return d, nil
}

func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// clip shortens a quoted piece of input.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (m MQTT) validateIoTHub(p *problems) {
	a := m.AzureIoTHub
	if !a.Enabled() {
		return
	}
	if a.ConnectionString != "" && a.ConnectionStringFile != "" {
		p.add("mqtt.azure_iot_hub.connection_string", "set connection_string or connection_string_file, not both")
	}
	if a.TokenTTL < 10*time.Second || a.TokenTTL > 365*24*time.Hour {
		p.add("mqtt.azure_iot_hub.token_ttl", "%v must be from 10s to 8760h (a SAS token's life; 1h is usual)", a.TokenTTL)
	}
	if a.ConnectionString != "" {
		if _, err := ParseIoTHubConnectionString(a.ConnectionString); err != nil {
			p.add("mqtt.azure_iot_hub.connection_string", "%v", err)
		}
	}
	checkFiles(p, map[string]string{"mqtt.azure_iot_hub.connection_string_file": a.ConnectionStringFile})
	if m.Username != "" || m.Password != "" || m.PasswordFile != "" {
		p.add("mqtt.azure_iot_hub", "the device signs in with a SAS token made from its connection string: leave mqtt.username, mqtt.password and mqtt.password_file empty")
	}
	if m.Embedded.Enabled {
		p.add("mqtt.azure_iot_hub", "the agent publishes to the hub: turn mqtt.embedded.enabled off")
	}
	if m.QoS > 1 {
		p.add("mqtt.qos", "%d: Azure IoT Hub takes QoS 0 and 1 only: give 1", m.QoS)
	}
}
