package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
)

// TestInspectRefusesONNX10: the 2018 ONNX 1.0 export is refused with what it is and what to do.
func TestInspectRefusesONNX10(t *testing.T) {
	needRuntime(t)
	model := filepath.Join(testenv.RealData(t, "legacy-onnx10-plankton"), "model.onnx")
	code, _, errs := cvedge(t, "inspect", model)
	for _, want := range []string{"ONNX 1.0 export", "opset 1", "re-export the iteration from the Custom Vision portal as ONNX"} {
		if code == 0 || !strings.Contains(errs, want) {
			t.Fatalf("exit %d, stderr %q; want it to contain %q", code, errs, want)
		}
	}
}

func TestInspectDemo(t *testing.T) {
	needRuntime(t)
	code, out, errs := cvedge(t, "inspect", testenv.Path("testdata", "demo", "detector"))
	for _, want := range []string{"format:      detector-yolo (ObjectDetection)", "input:       data float32, 416x416, batch 1",
		"pixels:      BGR, NominalRange_0_255 (from metadata_props: Bgr8)", "labels (1): part", "iteration:   b43331db-0554-52bc-9c48-3c8a25250027",
		"metadata_properties.json says Rgb8 Normalized_0_1; ignored"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want %q in\n%s%s", code, want, out, errs)
		}
	}
}

// TestInspectJSON: inspect --json prints the model as one JSON object, the same facts as
// the text.
func TestInspectJSON(t *testing.T) {
	needRuntime(t)
	code, out, errs := cvedge(t, "inspect", "--json", testenv.Path("testdata", "demo", "detector"))
	var m inspectJSON
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("exit %d: %v\n%s%s", code, err, out, errs)
	}
	in := m.Input
	if code != 0 || m.Format != "detector-yolo" || m.Domain != "ObjectDetection" || m.Iteration != "b43331db-0554-52bc-9c48-3c8a25250027" ||
		len(m.SHA256) != 64 || strings.Join(m.Labels, ",") != "part" || len(m.Outputs) == 0 || m.Properties["Image.BitmapPixelFormat"] != "Rgb8" {
		t.Errorf("exit %d, %+v", code, m)
	}
	if in.Name != "data" || in.Type != "float32" || in.Width != 416 || in.Height != 416 || in.DynamicBatch || in.RegionsPerCall != 1 ||
		in.PixelOrder != "BGR" || in.PixelRange != "NominalRange_0_255" || in.PixelFormatKey != "Bgr8" {
		t.Errorf("input %+v", in)
	}
}
