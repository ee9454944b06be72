package configs

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSparkplugDefaults: off; group cvedge, edge node id the agent id, data every second;
// no broker of its own (mqtt.broker); its files are taken relative to the config file.
func TestSparkplugDefaults(t *testing.T) {
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Sparkplug; s.Enabled || s.GroupID != "cvedge" || s.EdgeNodeID != "cell1" || s.DataInterval != time.Second || s.Broker != "" {
		t.Errorf("sparkplug defaults: %+v", s)
	}
	path := write(t, minimal+"sparkplug: {enabled: true, group_id: plant1, edge_node_id: line-4, broker: 'ssl://scada:8883', password_file: cvedge.yaml, tls: {ca_file: cvedge.yaml}, data_interval: 250ms}\n")
	c, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sparkplug
	if !s.Enabled || s.GroupID != "plant1" || s.EdgeNodeID != "line-4" || s.DataInterval != 250*time.Millisecond ||
		s.PasswordFile != filepath.Join(filepath.Dir(path), "cvedge.yaml") || s.TLS.CAFile != s.PasswordFile {
		t.Errorf("sparkplug: %+v", s)
	}
	t.Setenv("CVEDGE_SPARKPLUG_GROUP_ID", "from-env")
	if c, err = Load(write(t, minimal)); err != nil || c.Sparkplug.GroupID != "from-env" {
		t.Errorf("CVEDGE_SPARKPLUG_GROUP_ID: %v, %+v", err, c)
	}
}

// TestBadSparkplugConfigs: each bad value is refused with the key named.
func TestBadSparkplugConfigs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"wildcard group", "sparkplug: {enabled: true, group_id: 'plant+1'}\n", `sparkplug.group_id: "plant+1" must not hold '+', '#' or '/'`},
		{"slash in node", "sparkplug: {edge_node_id: 'cell/1'}\n", `sparkplug.edge_node_id: "cell/1" must not hold`},
		{"hash in node", "sparkplug: {enabled: true, edge_node_id: 'cell#'}\n", `sparkplug.edge_node_id: "cell#" must not hold`},
		{"empty group", "sparkplug: {enabled: true, group_id: ''}\n", "sparkplug.group_id: empty"},
		{"zero interval", "sparkplug: {data_interval: 0s}\n", "sparkplug.data_interval: 0s must be from 10ms to 1h"},
		{"interval without unit", "sparkplug: {data_interval: 1000}\n", "sparkplug.data_interval"},
		{"bad broker", "sparkplug: {broker: 'http://scada:80'}\n", `sparkplug.broker: scheme "http" is not one of`},
		{"credentials without broker", "sparkplug: {username: spb}\n", "sparkplug.broker: empty, but sparkplug has its own username"},
		{"password twice", "sparkplug: {broker: 'tcp://scada:1883', password: x, password_file: cvedge.yaml}\n", "sparkplug.password: set sparkplug.password or sparkplug.password_file, not both"},
		{"missing ca", "sparkplug: {broker: 'ssl://scada:8883', tls: {ca_file: /nonexistent/ca.pem}}\n", "sparkplug.tls.ca_file: stat /nonexistent/ca.pem"},
		{"cert without key", "sparkplug: {broker: 'ssl://scada:8883', tls: {cert_file: cvedge.yaml}}\n", "sparkplug.tls: cert_file and key_file go together"},
		{"unknown key", "sparkplug: {group: x}\n", "sparkplug.group: unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, minimal+c.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("accepted; want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestSparkplugPasswordNotPrinted: `cvedge config print` masks sparkplug.password.
func TestSparkplugPasswordNotPrinted(t *testing.T) {
	c, err := Load(write(t, minimal+"sparkplug: {broker: 'tcp://scada:1883', username: spb, password: s3cr3t-spb}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Print(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "s3cr3t-spb") || !strings.Contains(buf.String(), "username: spb") {
		t.Errorf("config print:\n%s", buf.String())
	}
}
