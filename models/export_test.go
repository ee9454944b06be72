package models

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

func demo(elem ...string) string {
	return testenv.Path(append([]string{"testdata", "demo"}, elem...)...)
}

// copyExport copies the files of a demo export into a fresh folder, so a test can break it.
func copyExport(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(demo(name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(demo(name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sampleCode is what an export ZIP carries beside the model: the portal's sample code.
var sampleCode = map[string]string{"python/onnxruntime_predict.py": "# sample code"}

func TestReadExportForms(t *testing.T) {
	folder := copyExport(t, "classifier")
	bare := t.TempDir()
	for _, n := range []string{"model.onnx", "labels.txt"} {
		raw, _ := os.ReadFile(filepath.Join(folder, n))
		os.WriteFile(filepath.Join(bare, n), raw, 0o600)
	}
	forms := map[string]string{
		"folder":          folder,
		"zip":             testenv.ZipDir(t, folder, "", sampleCode),
		"zip in a folder": testenv.ZipDir(t, folder, "export/", sampleCode),
		"bare onnx":       filepath.Join(bare, "model.onnx"),
	}
	for name, p := range forms {
		t.Run(name, func(t *testing.T) {
			e, err := ReadExport(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(e.Labels, ",") != "blue,green,red,yellow" || len(e.Model) == 0 || len(e.SHA256) != 64 {
				t.Fatalf("export %+v", e)
			}
			if name != "bare onnx" && (e.Manifest == nil || e.Manifest.DomainType != "Classification" || e.Properties["Image.BitmapPixelFormat"] != "Rgb8") {
				t.Fatalf("manifest %+v properties %v", e.Manifest, e.Properties)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"missing path", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, "no such file"},
		{"missing labels", func(t *testing.T) string {
			d := copyExport(t, "classifier")
			os.Remove(filepath.Join(d, "labels.txt"))
			return d
		}, "no labels.txt beside model.onnx"},
		{"sha1 mismatch", func(t *testing.T) string {
			d := copyExport(t, "classifier")
			raw, _ := os.ReadFile(filepath.Join(d, "model.onnx"))
			raw[len(raw)-1] ^= 0xff
			os.WriteFile(filepath.Join(d, "model.onnx"), raw, 0o600)
			return d
		}, "cvexport.manifest says"},
		{"label count", func(t *testing.T) string {
			d := copyExport(t, "classifier")
			os.WriteFile(filepath.Join(d, "labels.txt"), []byte("blue\ngreen\nred\n"), 0o600)
			return d
		}, "model has 4 classes but labels.txt has 3 tags"},
		{"yolo label count", func(t *testing.T) string {
			d := copyExport(t, "detector")
			os.WriteFile(filepath.Join(d, "labels.txt"), []byte("part\nscrew\n"), 0o600)
			return d
		}, "model has 1 classes but labels.txt has 2 tags"},
		{"zipmap label mismatch", func(t *testing.T) string {
			d := copyExport(t, "shape")
			os.WriteFile(filepath.Join(d, "labels.txt"), []byte("circle\nsquare\nhexagon\n"), 0o600)
			return d
		}, `model tag "triangle" is not in labels.txt`},
		{"truncated", func(t *testing.T) string {
			d := copyExport(t, "detector")
			raw, _ := os.ReadFile(filepath.Join(d, "model.onnx"))
			os.WriteFile(filepath.Join(d, "model.onnx"), raw[:len(raw)/2], 0o600)
			os.Remove(filepath.Join(d, "cvexport.manifest"))
			return d
		}, "not an ONNX model, or the file is truncated"},
		{"not onnx", func(t *testing.T) string {
			d := t.TempDir()
			os.WriteFile(filepath.Join(d, "model.onnx"), []byte("<html>404 not found</html>"), 0o600)
			os.WriteFile(filepath.Join(d, "labels.txt"), []byte("a\n"), 0o600)
			return filepath.Join(d, "model.onnx")
		}, "not an ONNX model"},
		{"two models no manifest", func(t *testing.T) string {
			d := copyExport(t, "classifier")
			os.Remove(filepath.Join(d, "cvexport.manifest"))
			raw, _ := os.ReadFile(filepath.Join(d, "model.onnx"))
			os.WriteFile(filepath.Join(d, "other.onnx"), raw, 0o600)
			return d
		}, "several .onnx files"},
		{"not a zip", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "export.zip")
			os.WriteFile(p, []byte("PK\x03\x04garbage"), 0o600)
			return p
		}, "not a readable ZIP"},
	}
	rt := newRuntime(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := configs.DefaultModel()
			cfg.Path = c.setup(t)
			m, err := Load(rt, "broken", cfg)
			if err == nil {
				m.Close()
				t.Fatalf("loaded; want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `model "broken"`) {
				t.Fatalf("error %q\nwant it to name the model and contain %q", err, c.want)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{"a\nb\n", "a,b", ""},
		{"\xef\xbb\xbfa\r\nb\r\n\r\n", "a,b", ""},
		{" a \n b", "a,b", ""},
		{"", "", "empty"},
		{"\n\n", "", "empty"},
		{"a\n\nb\n", "", "line 2 is empty"},
		{"a\nb\na\n", "", `tag "a" is on lines 1 and 3`},
		{"a\xff\n", "", "not UTF-8"},
	}
	for _, c := range cases {
		got, err := ParseLabels([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseLabels(%q): error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != c.want {
			t.Errorf("ParseLabels(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestParseManifest(t *testing.T) {
	if _, err := ParseManifest([]byte(`{"Platform":"TensorFlow"}`)); err == nil || !strings.Contains(err.Error(), "export the iteration as ONNX") {
		t.Errorf("TensorFlow export: %v", err)
	}
	if _, err := ParseManifest([]byte(`{"ModelFileName":"../../etc/passwd"}`)); err == nil {
		t.Error("a manifest naming a file outside the export was accepted")
	}
	if _, err := ParseManifest([]byte(`{`)); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("broken JSON: %v", err)
	}
	m, err := ParseManifest([]byte(`{"DomainType":"ObjectDetection","Platform":"ONNX","Flavor":null,"IterationId":"x"}`))
	if err != nil || m.Flavor != nil || m.IterationID != "x" {
		t.Errorf("manifest %+v %v", m, err)
	}
}

func TestParseGraphDemo(t *testing.T) {
	raw, err := os.ReadFile(demo("shape", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGraph(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Inputs) != 1 || g.Inputs[0].Type.String() != "float32[None,3,227,227]" {
		t.Fatalf("inputs %+v", g.Inputs)
	}
	loss, _ := output(g, "loss")
	if loss.Type.Kind != KindSequence || loss.Type.Key != ElemString || loss.Type.Elem != ElemFloat {
		t.Fatalf("loss %s", loss.Type)
	}
	if g.Opsets["ai.onnx.ml"] != 1 || g.Metadata["Image.BitmapPixelFormat"] != "Bgr8" || !g.Ops["ai.onnx.ml:ZipMap"] {
		t.Fatalf("graph %+v", g)
	}
	for n := 0; n < len(raw); n += 97 {
		if _, err := ParseGraph(raw[:n]); err == nil && n < len(raw)/2 {
			t.Fatalf("a model cut at %d of %d bytes parsed", n, len(raw))
		}
	}
}

func FuzzParseGraph(f *testing.F) {
	for _, name := range []string{"detector", "classifier", "shape"} {
		raw, err := os.ReadFile(demo(name, "model.onnx"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/3])
	}
	f.Add([]byte{})
	f.Add([]byte("\x08\x07:\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGraph(data)
		if err == nil {
			_, _ = detectFormat(g)
			_ = checkSupported(g)
			_, _ = describeInput(g, FormatDetectorYOLO, 416)
			_, _ = pixelsFrom(g.Metadata)
		}
	})
}

func FuzzParseLabels(f *testing.F) {
	f.Add([]byte("blue\ngreen\n"))
	f.Add([]byte("\xef\xbb\xbfa\r\n\r\nb"))
	f.Add([]byte{0xff, '\n'})
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, err := ParseLabels(data)
		if err == nil && len(labels) == 0 {
			t.Fatal("no labels and no error")
		}
		for _, l := range labels {
			if l == "" {
				t.Fatal("an empty label was accepted")
			}
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	raw, _ := os.ReadFile(demo("detector", "cvexport.manifest"))
	f.Add(raw)
	f.Add([]byte(`{"Flavor":7}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseManifest(data)
		_, _ = ParseProperties(data)
	})
}
