package camera

import (
	"fmt"
	"strconv"
	"strings"
)

// A GStreamer pipeline can parse, start, and still hand OpenCV frames it cannot use: the
// boards' own cameras are where this happens most. lintPipeline checks a camera's pipeline
// string for those faults before anything opens it, so that `cvedge config check` names them
// on a desk that has none of the plugins (GStreamer's own parser, checkPipeline, runs when
// the camera opens, on the box that has them). It reads the gst-launch syntax of a single
// chain of elements and caps; a pipeline with branches (tee, named pads) is left to
// GStreamer.

// pipeSegment is one link of a chain: an element with its properties, or caps.
type pipeSegment struct {
	name  string            // the element ("videoconvert"), or the caps' media type ("video/x-raw")
	caps  bool              // a caps filter: video/x-raw(memory:NVMM),format=BGRx,...
	nvmm  bool              // caps with the memory:NVMM feature (Jetson GPU buffers)
	props map[string]string // element properties, or caps fields
}

// splitPipeline cuts a gst-launch string into its links. ok is false when the pipeline is not
// a single chain (branches, named pads, bins), or quotes are unbalanced.
func splitPipeline(s string) (segs []pipeSegment, ok bool) {
	parts, ok := cutOutsideQuotes(s, func(r rune, cur string) int {
		switch {
		case r == '!':
			return cutHere
		case (r == '(' || r == ')') && !strings.Contains(cur, "/"): // a bin, not a caps feature
			return refuse
		}
		return keep
	})
	if !ok {
		return nil, false
	}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, false
		}
		seg, ok := parseSegment(p)
		if !ok {
			return nil, false
		}
		segs = append(segs, seg)
	}
	return segs, true
}

const (
	keep    = iota // the rune belongs to the part
	cutHere        // the rune ends the part, and is dropped
	refuse         // the text is not what the caller reads
)

// cutOutsideQuotes splits s where cut says, outside single and double quotes (which stay in
// the parts). cut sees each rune outside quotes with the part so far. ok is false when cut
// refuses a rune, or a quote is left open.
func cutOutsideQuotes(s string, cut func(r rune, cur string) int) (parts []string, ok bool) {
	var cur strings.Builder
	quote := rune(0)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		default:
			switch cut(r, cur.String()) {
			case cutHere:
				parts = append(parts, cur.String())
				cur.Reset()
				continue
			case refuse:
				return nil, false
			}
		}
		cur.WriteRune(r)
	}
	if quote != 0 {
		return nil, false
	}
	return append(parts, cur.String()), true
}

// parseSegment reads one link: caps ("video/x-raw,format=BGR") or an element with its
// properties ("nvarguscamerasrc sensor-id=0").
func parseSegment(p string) (pipeSegment, bool) {
	fields := splitFields(p)
	if len(fields) == 0 {
		return pipeSegment{}, false
	}
	head := fields[0]
	if strings.Contains(head, "/") { // caps: the media type, then comma-separated fields
		capFields := splitCaps(p)
		media := strings.TrimSpace(capFields[0])
		seg := pipeSegment{caps: true, props: map[string]string{}}
		if i := strings.IndexByte(media, '('); i >= 0 {
			seg.nvmm = strings.Contains(media[i:], "memory:NVMM")
			media = media[:i]
		}
		seg.name = media
		for _, f := range capFields[1:] {
			k, v, _ := strings.Cut(f, "=")
			v = strings.TrimSpace(v)
			if i := strings.IndexByte(v, ')'); strings.HasPrefix(v, "(") && i > 0 { // (string)BGR
				v = v[i+1:]
			}
			seg.props[strings.TrimSpace(k)] = strings.Trim(v, `"'`)
		}
		return seg, true
	}
	seg := pipeSegment{name: head, props: map[string]string{}}
	for _, f := range fields[1:] {
		k, v, found := strings.Cut(f, "=")
		if !found { // a second element without a link, or a pad name ("t."): not a chain
			return pipeSegment{}, false
		}
		seg.props[k] = strings.Trim(v, `"'`)
	}
	if strings.HasSuffix(head, ".") || seg.props["name"] != "" && seg.name == "tee" {
		return pipeSegment{}, false
	}
	return seg, true
}

// splitFields splits on blanks outside quotes; nothing when a quote is left open.
func splitFields(p string) []string {
	parts, _ := cutOutsideQuotes(p, func(r rune, _ string) int {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return cutHere
		}
		return keep
	})
	var out []string
	for _, f := range parts {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// splitCaps splits caps on the commas outside braces and quotes, blanks removed.
func splitCaps(p string) []string {
	var out []string
	var cur strings.Builder
	depth, quote := 0, rune(0)
	for _, r := range p {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '{' || r == '[' || r == '(':
			depth++
		case r == '}' || r == ']' || r == ')':
			depth--
		case r == ',' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
			continue
		case r == ' ' || r == '\t' || r == '\n':
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

// nvmmSources give frames in NVMM (GPU) memory on a Jetson; nvmmConverters take them back
// to system memory when the caps after them do not ask for NVMM.
var (
	nvmmSources    = map[string]bool{"nvarguscamerasrc": true, "nvv4l2decoder": true, "nvv4l2camerasrc": true}
	nvmmConverters = map[string]bool{"nvvidconv": true, "nvvideoconvert": true}
	// systemMemory are elements that read frames from system memory only.
	systemMemory = map[string]bool{"videoconvert": true, "videoscale": true, "videoflip": true, "videocrop": true,
		"jpegenc": true, "appsink": true, "videobalance": true}
	// rawFormats are the formats OpenCV 4.6's appsink hands on unconverted: planar YUV comes
	// out as a one-channel image of 1.5 times the height, and RGB with red and blue swapped.
	rawFormats = map[string]bool{"UYVY": true, "YUY2": true, "YVYU": true, "NV12": true, "NV21": true, "YV12": true,
		"I420": true, "RGBA": true, "RGBx": true, "RGB": true}
)

// lintPipeline returns the first fault of a single-chain pipeline that GStreamer would accept
// and the camera could still not use; nil when it finds none, or the pipeline is not a chain.
func lintPipeline(s string) error {
	segs, ok := splitPipeline(s)
	if !ok || len(segs) < 2 {
		return nil
	}
	const fix = `cameras[].source (see docs/cameras.md, "Raspberry Pi and Jetson cameras")`
	last := segs[len(segs)-1]
	if last.caps || last.name != "appsink" {
		return fmt.Errorf("GStreamer pipeline ends in %q: the agent reads frames from appsink, which must be the last element: end %s with '! appsink drop=true max-buffers=1 sync=false'", last.name, fix)
	}
	nvmm := false
	for i, seg := range segs {
		switch {
		case seg.caps:
			if seg.nvmm {
				nvmm = true
			} else if i > 0 && nvmmConverters[segs[i-1].name] {
				nvmm = false
			}
		case nvmm && systemMemory[seg.name]:
			return fmt.Errorf("GStreamer pipeline: %s cannot read the frames before it, which are in NVMM (GPU) memory on a Jetson (nvarguscamerasrc and nvv4l2decoder give them): put '! nvvidconv ! video/x-raw,format=BGRx' before it in %s", seg.name, fix)
		case nvmmSources[seg.name]:
			nvmm = true
		case nvmmConverters[seg.name]:
			nvmm = false // system memory, unless the caps after it ask for NVMM
		}
		if err := lintElement(seg); err != nil {
			return fmt.Errorf("GStreamer pipeline: %w: fix %s", err, fix)
		}
	}
	if prev := segs[len(segs)-2]; prev.caps && rawFormats[prev.props["format"]] {
		return fmt.Errorf("GStreamer pipeline gives appsink %s frames, which OpenCV's appsink passes on unconverted or refuses (the agent reads BGR): put '! videoconvert ! video/x-raw,format=BGR' before appsink in %s", prev.props["format"], fix)
	}
	return nil
}

// lintElement checks the properties of the boards' camera sources.
func lintElement(seg pipeSegment) error {
	switch seg.name {
	case "nvarguscamerasrc":
		for _, k := range []string{"sensor-id", "sensor-mode"} {
			v, ok := seg.props[k]
			if !ok {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < -1 || n > 15 || k == "sensor-id" && n < 0 {
				return fmt.Errorf("nvarguscamerasrc %s=%s is not a camera number: give the CSI camera's number (0, 1, ...; nvgstcapture-1.0 --sensor-id or ls /dev/video*)", k, v)
			}
		}
	case "libcamerasrc":
		if v, ok := seg.props["camera-name"]; ok && strings.TrimSpace(v) == "" {
			return fmt.Errorf("libcamerasrc camera-name is empty: leave it out for the first camera, or give the name rpicam-hello --list-cameras prints")
		}
	}
	return nil
}
