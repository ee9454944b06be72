package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/agent/tools/bench"
)

// TestBench: `cvedge bench` on the demo measures every part of its report, from real runs;
// the figures are checked for presence and consistency, not for speed. The config asks for
// CUDA, which this onnxruntime build lacks: the report says the models ran on the CPU.
func TestBench(t *testing.T) {
	needRuntime(t)
	md := filepath.Join(t.TempDir(), "bench.md")
	session := filepath.Join(t.TempDir(), "session.yaml") // the onnxruntime section alone
	if err := os.WriteFile(session, []byte("onnxruntime: {graph_optimization: extended, execution_provider: cuda}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cvedge(t, "bench", "--json", "--markdown", md, "--config", session,
		"--detector", testenv.Path("testdata", "demo", "detector"), "--classifier", testenv.Path("testdata", "demo", "classifier"),
		"--source", testenv.Path("testdata", "demo", "conveyor.avi"), "--frames", "30", "--cameras", "2", "--fps", "5", "--seconds", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if strings.Contains(errs, "\r") {
		t.Errorf("progress drawn on stderr that is not a terminal:\n%q", errs)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Frames != 30 || r.Machine["onnxruntime"] != "1.24.1" || r.Machine["opencv"] == "" || !strings.Contains(r.Machine["onnxruntime session"], "spinning false") ||
		!strings.Contains(r.Machine["onnxruntime session"], "graph_optimization extended") || !strings.Contains(r.Machine["onnxruntime session"], "provider cuda") {
		t.Errorf("frames and machine: %d %v", r.Frames, r.Machine)
	}
	if len(r.Raw) < 2 || r.Raw[0].Model != "detector" || r.Raw[0].Batch != 1 || r.Raw[0].Calls != 100 || r.Raw[0].MeanMs <= 0 {
		t.Errorf("raw timings: %+v", r.Raw)
	}
	for _, x := range r.Raw[1:] {
		if x.Model != "classifier" || x.Batch < 1 || x.MeanMs <= 0 {
			t.Errorf("classifier timing: %+v", x)
		}
	}
	for _, x := range r.Raw {
		if x.Provider != "cpu" {
			t.Errorf("%s ran on %q: this onnxruntime has no CUDA, so it fell back to the CPU", x.Model, x.Provider)
		}
	}
	p := r.Pipeline
	// the demo video has two parts in most frames, each cropped and classified
	if p.FPS <= 0 || p.CropsPerFrame < 1 || p.DetectionsPerFrame < p.CropsPerFrame || p.AllocsPerFrame <= 0 || p.StageMs["detect"].P50 <= 0 || p.StageMs["classify"].P50 <= 0 {
		t.Errorf("pipeline: %+v", p)
	}
	if r.EndToEnd.FPS <= 0 || r.ModelBoundFPS <= 0 || r.Efficiency != math.Round(r.EndToEnd.FPS/r.ModelBoundFPS*1000)/1000 {
		t.Errorf("end to end %v fps, model-bound %v fps, efficiency %v", r.EndToEnd.FPS, r.ModelBoundFPS, r.Efficiency)
	}
	// the CPU outside the model: both sides measured, the overhead their ratio (the pipeline's
	// CPU includes the models', so it cannot be much under it)
	if r.Pipeline.CPUMsPerFrame <= 0 || r.ModelCPUMsPerFrame <= 0 || r.Pipeline.CPUMsPerFrame < 0.5*r.ModelCPUMsPerFrame ||
		math.Abs(r.CPUOverhead-(r.Pipeline.CPUMsPerFrame-r.ModelCPUMsPerFrame)/r.ModelCPUMsPerFrame) > 0.01 {
		t.Errorf("CPU per frame: pipeline %v ms, model %v ms, overhead %v", r.Pipeline.CPUMsPerFrame, r.ModelCPUMsPerFrame, r.CPUOverhead)
	}
	if r.PeakRSSMB <= 0 || r.AnonRSSMB <= 0 || r.FileRSSMB <= 0 || r.AnonRSSMB+r.FileRSSMB > r.PeakRSSMB+1 {
		t.Errorf("memory: peak %v, anon %v, file %v", r.PeakRSSMB, r.AnonRSSMB, r.FileRSSMB)
	}
	if len(r.Cameras) != 2 {
		t.Fatalf("cameras: %+v", r.Cameras)
	}
	if r.CamerasCPUPercent <= 0 {
		t.Errorf("the cameras' run has no CPU figure: %v", r.CamerasCPUPercent)
	}
	for _, c := range r.Cameras {
		if c.FPS < 2 || c.FPS > 6 {
			t.Errorf("camera %s at 5 fps processed %v fps", c.Name, c.FPS)
		}
	}
	doc, err := os.ReadFile(md)
	if err != nil || !strings.Contains(string(doc), "**efficiency**") || !strings.Contains(string(doc), "| cam2 |") || !strings.Contains(string(doc), "| detector | cpu | 1 |") ||
		!strings.Contains(string(doc), "**CPU outside the model**") {
		t.Errorf("markdown: %v\n%s", err, doc)
	}
}

// TestBenchErrors: what bench is missing or cannot open is named.
func TestBenchErrors(t *testing.T) {
	needRuntime(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--detector", testenv.Path("testdata", "demo", "detector")}, "--source: give a video file or an image folder"},
		{[]string{"--source", testenv.Path("testdata", "demo", "conveyor.avi")}, "give a detector, a classifier, or both"},
		{[]string{"--detector", "/nonexistent/model.zip", "--source", testenv.Path("testdata", "demo", "conveyor.avi")}, "/nonexistent/model.zip"},
		{[]string{"--detector", testenv.Path("testdata", "demo", "detector"), "--source", "/nonexistent/video.avi"}, "/nonexistent/video.avi"},
		{[]string{"--config", "/nonexistent/cvedge.yaml", "--detector", "x", "--source", "y"}, "/nonexistent/cvedge.yaml"},
	} {
		code, _, errs := cvedge(t, append([]string{"bench"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("bench %v: exit %d, want an error with %q:\n%s", c.args, code, c.want, errs)
		}
	}
}
