package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadStation: a station's config needs no camera or model, takes its paths relative to
// the file, and is checked in the sections it uses: a non-loopback listen without sign-in and
// a bad broker are refused, naming the keys; a bad camera is not its concern.
func TestLoadStation(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		path := filepath.Join(dir, "review.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg, err := LoadStation(write("agent: {id: station}\nmqtt: {broker: tcp://broker.plant:1883}\nui: {review: {dir: q, dataset: ds}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.UI.Enabled || cfg.MQTT.Broker != "tcp://broker.plant:1883" || cfg.UI.Review.Dir != filepath.Join(dir, "q") || cfg.UI.Review.Dataset != filepath.Join(dir, "ds") || cfg.HTTP.Listen != "127.0.0.1:9810" {
		t.Errorf("%+v %+v", cfg.UI, cfg.HTTP)
	}
	if _, err := Load(filepath.Join(dir, "review.yaml")); err == nil || !strings.Contains(err.Error(), "cameras") {
		t.Errorf("Load of a file without cameras: %v", err)
	}

	_, err = LoadStation(write("agent: {id: station}\nmqtt: {broker: 'ftp://x'}\nhttp: {listen: '0.0.0.0:9810'}\ncameras: [{name: 'bad name'}]\n"))
	if err == nil || !strings.Contains(err.Error(), "mqtt.broker") || !strings.Contains(err.Error(), "ui.auth") || strings.Contains(err.Error(), "cameras") {
		t.Errorf("problems: %v", err)
	}
	if _, err := LoadStation(write("agent: {id: station}\nui: {revue: 1}\n")); err == nil || !strings.Contains(err.Error(), "revue") {
		t.Errorf("an unknown key: %v", err)
	}
}
