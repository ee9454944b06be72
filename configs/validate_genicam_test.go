package configs

import (
	"strings"
	"testing"
)

const genicamCamera = `
agent: {id: cell1}
models:
  Parts: {path: parts.zip}
cameras:
  - name: gige
    type: genicam
    source: Basler-21987654
    pipeline: {detector: Parts}
    genicam:
      pixel_format: BayerRG8
      exposure_us: 1500
      gain_db: 0
      frame_rate: 7.5
      packet_size: 9000
      features: [BalanceWhiteAuto=Continuous, "  AcquisitionMode = Continuous "]
`

// TestGenICamLoads: a genicam camera loads with its settings; feature names keep their case
// (viper lowercases the keys of maps, which is why features are a list).
func TestGenICamLoads(t *testing.T) {
	c, err := Load(write(t, genicamCamera))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Cameras[0].GenICam
	if c.Cameras[0].GenICamCamera() != "Basler-21987654" || g.PixelFormat != "BayerRG8" || *g.ExposureUS != 1500 || *g.GainDB != 0 ||
		*g.FrameRate != 7.5 || g.PacketSize != 9000 || g.TriggerSource != "" {
		t.Errorf("settings %+v", g)
	}
	if len(g.Features) != 2 || g.Features[0] != "BalanceWhiteAuto=Continuous" {
		t.Errorf("features %q, want their case kept", g.Features)
	}
	if name, value, err := ParseGenICamFeature(g.Features[1]); err != nil || name != "AcquisitionMode" || value != "Continuous" {
		t.Errorf("a feature with spaces around '=': %q %q %v", name, value, err)
	}
	hw, err := Load(write(t, strings.Replace(genicamCamera, "    genicam:\n", "    trigger: hardware\n    genicam:\n      trigger_source: Line1\n", 1)))
	if err != nil || hw.Cameras[0].GenICam.TriggerSource != "Line1" {
		t.Errorf("trigger: hardware with trigger_source Line1: %v", err)
	}
	if d := DefaultCamera().GenICam; d.PixelFormat != "Mono8" || d.ExposureUS != nil || d.Camera != "" {
		t.Errorf("defaults %+v", d)
	}
}

// TestGenICamRefused: each bad genicam setting is refused with its key and what to do.
func TestGenICamRefused(t *testing.T) {
	cam := func(extra string) string {
		return strings.Replace(genicamCamera, "    genicam:\n", "    genicam:\n"+extra, 1)
	}
	wantLoadErrors(t, []loadCase{
		{"no camera", strings.Replace(genicamCamera, "source: Basler-21987654", "source: ''", 1), "", "cameras[0].genicam.camera: empty: give the camera's name as Aravis lists it"},
		{"two cameras", cam("      camera: Basler-1\n"), "", `cameras[0].genicam.camera: "Basler-1" and cameras[0].source "Basler-21987654" name different cameras`},
		{"quote in the name", strings.Replace(genicamCamera, "source: Basler-21987654", `source: 'x" ! filesink location=/tmp/x'`, 1), "", "cameras[0].genicam.camera: "},
		{"pixel format", strings.Replace(genicamCamera, "BayerRG8", "YUV422", 1), "", `cameras[0].genicam.pixel_format: "YUV422" is not one of Mono8, Mono16, RGB8, BayerRG8`},
		{"exposure", strings.Replace(genicamCamera, "exposure_us: 1500", "exposure_us: 0", 1), "", "cameras[0].genicam.exposure_us: 0 must be above 0"},
		{"gain", strings.Replace(genicamCamera, "gain_db: 0", "gain_db: -3", 1), "", "cameras[0].genicam.gain_db: -3 must be 0 to 100 dB"},
		{"frame rate", strings.Replace(genicamCamera, "frame_rate: 7.5", "frame_rate: 5000", 1), "", "cameras[0].genicam.frame_rate: 5000 must be above 0 and at most 1000"},
		{"packet size", strings.Replace(genicamCamera, "packet_size: 9000", "packet_size: 100", 1), "", "cameras[0].genicam.packet_size: 100 must be 0 (negotiated) or 576 to 16384"},
		{"trigger without hardware", cam("      trigger_source: Line1\n"), "", `cameras[0].genicam.trigger_source: "Line1" fires the camera from a line: set cameras[0].trigger: hardware`},
		{"hardware without a source", strings.Replace(genicamCamera, "    genicam:\n", "    trigger: hardware\n    genicam:\n", 1), "", "cameras[0].genicam.trigger_source: empty: a genicam camera with trigger: hardware needs the source"},
		{"trigger source name", cam("      trigger_source: 'Line1 TriggerMode=Off'\n"), "", "cameras[0].genicam.trigger_source: \"Line1 TriggerMode=Off\" must be a TriggerSource"},
		{"feature without value", strings.Replace(genicamCamera, "BalanceWhiteAuto=Continuous", "TriggerSoftware", 1), "", `cameras[0].genicam.features[0]: "TriggerSoftware" is not Name=Value`},
		{"feature adds a feature", strings.Replace(genicamCamera, "BalanceWhiteAuto=Continuous", "'Gain=1 R[0x30c]=1'", 1), "", `cameras[0].genicam.features[0]: "Gain=1 R[0x30c]=1": the value "1 R[0x30c]=1" must be a number or a name`},
		{"feature quotes", strings.Replace(genicamCamera, "BalanceWhiteAuto=Continuous", `'A="x" ! fakesink'`, 1), "", "cameras[0].genicam.features[0]: "},
		{"register write", strings.Replace(genicamCamera, "BalanceWhiteAuto=Continuous", "'R[0x30c]=1'", 1), "", `the feature name "R[0x30c]" must be a GenICam name`},
	})
}

// FuzzGenICamFeature: whatever a feature entry holds, an accepted one splits into a name of
// letters, digits and _ and a value without space, quote or '=', and joins back to itself,
// so it cannot carry a second feature when the camera's features are set at open.
func FuzzGenICamFeature(f *testing.F) {
	for _, s := range []string{"BalanceWhiteAuto=Continuous", "Gain=1.5", "ExposureTime=-1e3", " Width = 320 ", "A=1 B=2", `A="x y"`, "A='x'", "R[0x30c]=1",
		"TriggerSoftware", "=1", "A=", "A==1", "A=1\n", "A=\x00", "Ä=1", "A=ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseGenICamFeature(s)
		if err != nil {
			if !strings.Contains(err.Error(), "Name=Value") && !strings.Contains(err.Error(), "must be") {
				t.Fatalf("error %q does not say what a feature looks like", err)
			}
			return
		}
		if strings.ContainsAny(name+value, " \t\r\n\"'=\\!\x00") || name == "" || value == "" {
			t.Fatalf("%q accepted as %q = %q", s, name, value)
		}
		if n2, v2, err := ParseGenICamFeature(name + "=" + value); err != nil || n2 != name || v2 != value {
			t.Fatalf("%q does not join back: %q %q %v", s, n2, v2, err)
		}
	})
}
