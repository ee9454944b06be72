package camera

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// TestProbe: Probe opens a source, reads one frame and shapes it, and says why when it
// cannot; it leaves no Mat behind (matprofile) and does not start the camera.
func TestProbe(t *testing.T) {
	video := testenv.Path("testdata", "demo", "conveyor.avi")
	notVideo := filepath.Join(t.TempDir(), "notes.avi")
	os.WriteFile(notVideo, []byte("not a video"), 0o600)
	empty := t.TempDir()
	cases := []struct {
		name, source string
		roi          []int
		want         string // "": no error
	}{
		{"video", video, nil, ""},
		{"video with roi", video, []int{0, 0, 64, 64}, ""},
		{"roi outside the frame", video, []int{0, 0, 100000, 10}, "lies outside the"},
		{"not a video", notVideo, nil, "cannot open file " + notVideo},
		{"folder without images", empty, nil, "holds no images"},
		{"pipeline that never delivers", "appsrc ! videoconvert ! appsink", nil, "did not finish within"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := configs.DefaultCamera()
			cc.Name, cc.Source, cc.ROI = "probe", c.source, c.roi
			cam, err := New(cc, quietLog)
			if err != nil {
				t.Fatal(err)
			}
			err = cam.Probe(3 * time.Second)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("probe: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("probe: %v, want an error containing %q", err, c.want)
			}
			if st := cam.Status(); st.State != StateStarting || st.Read != 0 {
				t.Errorf("the probe started the camera: %+v", st)
			}
		})
	}
}
