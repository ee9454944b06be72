package configs

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// GenICamPixelFormats are the values of cameras[].genicam.pixel_format: the GenICam pixel
// formats the agent turns into BGR frames.
var GenICamPixelFormats = []string{"Mono8", "Mono16", "RGB8", "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8"}

// Limits of the GenICam settings: far above any camera, low enough to catch a slip.
const (
	MaxGenICamExposureUS = 100_000_000 // 100 s
	MaxGenICamGainDB     = 100
	MinGenICamPacketSize = 576   // the smallest IPv4 datagram every host takes
	MaxGenICamPacketSize = 16384 // above the largest jumbo frame
	maxGenICamFeatures   = 64
)

var (
	// genicamCameraRE is what a camera name, serial, IP or MAC may hold: the text goes into
	// a GStreamer pipeline, inside double quotes, so no quote, backslash or control byte.
	genicamCameraRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.:()+/@-]{0,127}$`)
	// genicamNameRE is a GenICam feature name (or a trigger source): letters, digits and _.
	genicamNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)
	// genicamValueRE is a feature's value: a number, an enumeration entry, a boolean; no
	// space, quote or '=' that could start another feature or leave the value.
	genicamValueRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]{1,64}$`)
)

// GenICamCamera is the camera a genicam entry opens: genicam.camera, else the source.
func (c Camera) GenICamCamera() string {
	if name := strings.TrimSpace(c.GenICam.Camera); name != "" {
		return name
	}
	return strings.TrimSpace(c.Source)
}

// ParseGenICamFeature splits one cameras[].genicam.features entry, "Name=Value", and checks
// both parts. The error says what is wrong and what a feature looks like.
func ParseGenICamFeature(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%q is not Name=Value: write a GenICam feature and its value, such as BalanceWhiteAuto=Continuous", s)
	}
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !genicamNameRE.MatchString(name) {
		return "", "", fmt.Errorf("%q: the feature name %q must be a GenICam name (a letter, then letters, digits or _, up to 64), such as BalanceWhiteAuto", s, name)
	}
	if !genicamValueRE.MatchString(value) {
		return "", "", fmt.Errorf("%q: the value %q must be a number or a name (letters, digits, _ . + -, up to 64), without spaces or quotes", s, value)
	}
	return name, value, nil
}

// validateGenICam checks a camera of type genicam: the camera it names and its settings.
func (c Camera) validateGenICam(p *problems, key string) {
	g := c.GenICam
	k := key + ".genicam"
	name := c.GenICamCamera()
	switch {
	case name == "":
		p.add(k+".camera", "empty: give the camera's name as Aravis lists it (arv-tool-0.8, e.g. Basler-21987654), its serial number or IP address, here or in %s.source", key)
	case g.Camera != "" && strings.TrimSpace(c.Source) != "" && strings.TrimSpace(c.Source) != strings.TrimSpace(g.Camera):
		p.add(k+".camera", "%q and %s.source %q name different cameras: give the camera in one of them", g.Camera, key, c.Source)
	case !genicamCameraRE.MatchString(name):
		p.add(k+".camera", "%q must be the camera's name, serial number or address: letters, digits, spaces and _ . : ( ) + / @ -, up to 128, no quotes", name)
	}
	if !slices.Contains(GenICamPixelFormats, g.PixelFormat) {
		p.add(k+".pixel_format", "%q is not one of %s", g.PixelFormat, strings.Join(GenICamPixelFormats, ", "))
	}
	if v := g.ExposureUS; v != nil && (*v <= 0 || *v > MaxGenICamExposureUS) {
		p.add(k+".exposure_us", "%v must be above 0 and at most %d microseconds", *v, MaxGenICamExposureUS)
	}
	if v := g.GainDB; v != nil && (*v < 0 || *v > MaxGenICamGainDB) {
		p.add(k+".gain_db", "%v must be 0 to %d dB", *v, MaxGenICamGainDB)
	}
	if v := g.FrameRate; v != nil && (*v <= 0 || *v > MaxCameraRateFPS) {
		p.add(k+".frame_rate", "%v must be above 0 and at most %d frames a second", *v, MaxCameraRateFPS)
	}
	if v := g.PacketSize; v != 0 && (v < MinGenICamPacketSize || v > MaxGenICamPacketSize) {
		p.add(k+".packet_size", "%d must be 0 (negotiated) or %d to %d bytes (9000 for jumbo frames)", v, MinGenICamPacketSize, MaxGenICamPacketSize)
	}
	if g.TriggerSource == "" && c.Trigger == "hardware" {
		p.add(k+".trigger_source", "empty: a genicam camera with trigger: hardware needs the source that fires it (Line1, Software, ... as the camera names it); without it the camera runs free and nearly every frame would overflow")
	}
	if s := g.TriggerSource; s != "" {
		if !genicamNameRE.MatchString(s) {
			p.add(k+".trigger_source", "%q must be a TriggerSource of the camera, such as Line1 or Software", s)
		} else if c.Trigger != "hardware" {
			p.add(k+".trigger_source", "%q fires the camera from a line: set %s.trigger: hardware, or remove trigger_source to let the camera run free", s, key)
		}
	}
	if len(g.Features) > maxGenICamFeatures {
		p.add(k+".features", "%d features: at most %d", len(g.Features), maxGenICamFeatures)
	}
	for i, f := range g.Features {
		if _, _, err := ParseGenICamFeature(f); err != nil {
			p.add(fmt.Sprintf("%s.features[%d]", k, i), "%v", err)
		}
	}
}
