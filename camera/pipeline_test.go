package camera

import (
	"os"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// The boards' camera pipelines: the ones docs/cameras.md gives pass, and each fault that
// GStreamer's parser lets through but the camera could not use is named, with the fix.
func TestLintPipeline(t *testing.T) {
	for _, c := range []struct{ pipeline, err string }{
		{"libcamerasrc ! video/x-raw,width=1280,height=720,format=NV12 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false", ""},
		{"libcamerasrc camera-name=/base/soc/i2c0mux/i2c@1/imx219@10 ! video/x-raw,width=1280,height=720 ! videoconvert ! appsink", ""},
		{"nvarguscamerasrc sensor-id=1 sensor-mode=-1 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1,format=NV12 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false", ""},
		{"nvarguscamerasrc ! nvvidconv ! videoconvert ! appsink", ""},
		{"videotestsrc ! video/x-raw, format=(string)BGR ! appsink", ""},
		{`rtspsrc location="rtsp://u:p@h/x" ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! appsink`, ""},
		{"videotestsrc ! tee name=t t. ! queue ! video/x-raw,format=NV12 ! appsink", ""}, // branches: left to GStreamer
		{"nvarguscamerasrc ! video/x-raw(memory:NVMM),format=NV12 ! videoconvert ! appsink", "videoconvert cannot read the frames before it, which are in NVMM"},
		{"nvarguscamerasrc sensor-id=0 ! appsink", "appsink cannot read the frames before it, which are in NVMM"},
		{"nvarguscamerasrc ! nvvidconv ! video/x-raw(memory:NVMM),format=BGRx ! videoconvert ! appsink", "videoconvert cannot read"},
		{"libcamerasrc ! video/x-raw,width=1280,height=720,format=NV12 ! appsink", "gives appsink NV12 frames"},
		{"v4l2src ! video/x-raw, format=(string)YUY2 ! appsink", "gives appsink YUY2 frames"},
		{"libcamerasrc camera-name=\"\" ! videoconvert ! appsink", "camera-name is empty"},
		{"nvarguscamerasrc sensor-id=cam0 ! nvvidconv ! videoconvert ! appsink", "sensor-id=cam0 is not a camera number"},
		{"videotestsrc ! appsink ! fakesink", `ends in "fakesink"`},
		{"videotestsrc ! appsink ! video/x-raw,format=BGR", `ends in "video/x-raw"`},
	} {
		_, err := ParseSource(c.pipeline, "auto")
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.pipeline, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.pipeline, err, c.err)
		case err != nil && !strings.Contains(err.Error(), "cameras[].source"):
			t.Errorf("%s: the error does not name the key to fix: %v", c.pipeline, err)
		}
	}
}

// TestDocumentedBoardPipelines: every source of docs/cameras.md's section on the boards'
// cameras parses and passes the checks, so the page cannot drift from them.
func TestDocumentedBoardPipelines(t *testing.T) {
	doc, err := os.ReadFile(testenv.Path("docs", "cameras.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "### Raspberry Pi and Jetson cameras")
	section, _, _ = strings.Cut(section, "\n### ")
	lines := strings.Split(section, "\n")
	var sources []string
	for i := 0; i < len(lines); i++ {
		if !strings.HasSuffix(lines[i], "source: >-") {
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		var parts []string
		for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent && strings.TrimSpace(lines[i+1]) != "" {
			i++
			parts = append(parts, strings.TrimSpace(lines[i]))
		}
		sources = append(sources, strings.Join(parts, " "))
	}
	if len(sources) < 3 {
		t.Fatalf("found %d pipelines in the section, want the Pi's and the Jetson's: %q", len(sources), sources)
	}
	for _, s := range sources {
		if got, err := ParseSource(s, "auto"); err != nil || got.Kind != KindGStreamer {
			t.Errorf("documented pipeline %q: %+v, %v", s, got, err)
		}
	}
}

func FuzzLintPipeline(f *testing.F) {
	for _, s := range []string{"nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink", "a ! (b ! c) ! appsink",
		`x p="a ! b" ! appsink`, "libcamerasrc camera-name='' ! appsink", "! !", "video/x-raw,format={NV12,BGR} ! appsink", "t. ! appsink", "a ! b=c ! appsink"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = lintPipeline(s)
	})
}
