package store

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// export writes a fake export folder whose "model" is content, and its ZIP.
func export(t *testing.T, content string) (dir, zipPath string) {
	t.Helper()
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "model.onnx"), []byte(content), 0o644)
	os.WriteFile(filepath.Join(dir, "labels.txt"), []byte("a\nb\n"), 0o644)
	zipPath = filepath.Join(t.TempDir(), "export.zip")
	f, _ := os.Create(zipPath)
	zw := zip.NewWriter(f)
	for _, n := range []string{"model.onnx", "labels.txt"} {
		w, _ := zw.Create(n)
		b, _ := os.ReadFile(filepath.Join(dir, n))
		w.Write(b)
	}
	zw.Close()
	f.Close()
	return dir, zipPath
}

// check stands in for loading: the iteration id is the model file's content, when it
// looks like one.
func check(path string) (Described, error) {
	p := path
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		p = filepath.Join(path, "model.onnx")
	}
	var content []byte
	if strings.HasSuffix(p, ".zip") {
		zr, err := zip.OpenReader(p)
		if err != nil {
			return Described{}, err
		}
		defer zr.Close()
		rc, _ := zr.Open("model.onnx")
		defer rc.Close()
		buf := make([]byte, 1024)
		n, _ := rc.Read(buf)
		content = buf[:n]
	} else {
		var err error
		if content, err = os.ReadFile(p); err != nil {
			return Described{}, err
		}
	}
	if string(content) == "broken" {
		return Described{}, errors.New("does not load")
	}
	sum := sha256.Sum256(content)
	id := ""
	if strings.HasPrefix(string(content), "it-") {
		id = string(content)
	}
	return Described{IterationID: id, SHA256: hex.EncodeToString(sum[:])}, nil
}

func TestAddActivateRollback(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir1, _ := export(t, "it-one")
	_, zip2 := export(t, "it-two")
	dir3, _ := export(t, "no manifest id")
	one, err := s.Add("colour", dir1, "local", check)
	if err != nil || one.ID != "it-one" {
		t.Fatalf("%+v %v", one, err)
	}
	two, err := s.Add("colour", zip2, "https://example/two.zip", check)
	if err != nil || two.ID != "it-two" || !strings.HasSuffix(two.Export, "export.zip") {
		t.Fatalf("%+v %v", two, err)
	}
	three, err := s.Add("colour", filepath.Join(dir3, "model.onnx"), "local", check)
	if err != nil || !strings.HasPrefix(three.ID, "sha-") || !strings.HasSuffix(three.Export, "model.onnx") {
		t.Fatalf("%+v %v", three, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "colour", three.Export[:len(three.Export)-len("model.onnx")], "labels.txt")); err != nil {
		t.Fatalf("labels.txt not copied beside the bare model: %v", err)
	}
	st, _ := s.State("colour")
	if st.Active != "it-one" || len(st.Iterations) != 3 {
		t.Fatalf("state %+v: the first iteration becomes active", st)
	}
	if _, err := s.Activate("colour", "it-two"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate("colour", three.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RollbackTarget("colour"); got != "it-two" {
		t.Fatalf("rollback target %s", got)
	}
	st, _ = s.Rollback("colour")
	if st.Active != "it-two" {
		t.Fatalf("after rollback %s", st.Active)
	}
	st, _ = s.Rollback("colour")
	if st.Active != "it-one" {
		t.Fatalf("after second rollback %s", st.Active)
	}
	if _, err := s.Rollback("colour"); err == nil || !strings.Contains(err.Error(), "no earlier active iteration") {
		t.Fatalf("rollback past the first: %v", err)
	}
	p, err := s.ExportPath("colour", "it-two")
	if err != nil || !strings.HasPrefix(p, s.Dir()) {
		t.Fatalf("export path %s %v", p, err)
	}
	names, _ := s.Models()
	if strings.Join(names, ",") != "colour" {
		t.Fatalf("models %v", names)
	}
	// reopened, the state is the same
	s2, _ := Open(s.Dir())
	if st2, _ := s2.State("colour"); st2.Active != "it-one" || len(st2.Iterations) != 3 {
		t.Fatalf("reopened %+v", st2)
	}
}

func TestRefusals(t *testing.T) {
	s, _ := Open(t.TempDir())
	broken, _ := export(t, "broken")
	if _, err := s.Add("colour", broken, "local", check); err == nil || !strings.Contains(err.Error(), "does not load") {
		t.Fatalf("broken export: %v", err)
	}
	if st, _ := s.State("colour"); len(st.Iterations) != 0 {
		t.Fatal("a refused export entered the store")
	}
	one, _ := export(t, "it-one")
	s.Add("colour", one, "local", check)
	for _, c := range []struct {
		do   func() error
		want string
	}{
		{func() error { _, err := s.Add("../escape", one, "local", check); return err }, `model name "../escape" must be`},
		{func() error { _, err := s.Activate("colour", "../../etc"); return err }, `iteration "../../etc" must be`},
		{func() error { _, err := s.ExportPath("colour", "nope"); return err }, `has no iteration "nope"`},
		{func() error { _, err := s.ExportPath("Colour", "it-one"); return err }, `model name "Colour" must be`},
		{func() error { _, err := s.Activate("colour", "it-unknown"); return err }, `has no iteration "it-unknown"`},
		{func() error { _, err := s.inside("colour", "..", "..", "x"); return err }, "leaves the model store"},
	} {
		if err := c.do(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	// the same iteration id with another model file
	other, _ := export(t, "it-one")
	os.WriteFile(filepath.Join(other, "model.onnx"), []byte("it-one"), 0o644)
	if _, err := s.Add("colour", other, "local", check); err != nil {
		t.Fatalf("adding the same iteration again: %v", err)
	}
}

func TestDownload(t *testing.T) {
	_, zipPath := export(t, "it-remote")
	body, _ := os.ReadFile(zipPath)
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	s, _ := Open(t.TempDir())
	f, err := s.Download(context.Background(), srv.Client(), srv.URL+"/export.zip", strings.ToUpper(good), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := SHA256File(f); got != good || !strings.HasPrefix(f, s.Dir()) {
		t.Fatalf("downloaded %s with %s", f, got)
	}
	bad := strings.Repeat("0", 64)
	if _, err := s.Download(context.Background(), srv.Client(), srv.URL+"/export.zip", bad, Limits{}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("wrong hash: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), ".downloads", "*")); len(left) != 1 {
		t.Fatalf("a refused download was left behind: %v", left)
	}
	for url, want := range map[string]string{"http://example/export.zip": "takes an https URL", "https://": "takes an https URL"} {
		if _, err := s.Download(context.Background(), srv.Client(), url, good, Limits{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", url, err)
		}
	}
	if _, err := s.Download(context.Background(), srv.Client(), srv.URL, "abc", Limits{}); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("short hash: %v", err)
	}
}

// TestCandidate: a candidate is kept but not made active, even as a model's first iteration,
// and becomes its shadow; activating it ends its shadow run; the active iteration and an
// unknown one cannot be made the shadow.
func TestCandidate(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := export(t, "it-1")
	d2, _ := export(t, "it-2")
	if _, err := s.AddCandidate("colour", d1, "cv", check); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State("colour"); st.Active != "" || st.Shadow != "it-1" {
		t.Fatalf("first candidate: %+v", st)
	}
	if _, err := s.Activate("colour", "it-1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State("colour"); st.Active != "it-1" || st.Shadow != "" {
		t.Fatalf("after promoting it: %+v", st)
	}
	if _, err := s.AddCandidate("colour", d2, "cv", check); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State("colour"); st.Active != "it-1" || st.Shadow != "it-2" {
		t.Fatalf("second candidate: %+v", st)
	}
	if _, err := s.SetShadow("colour", "it-1"); err == nil || !strings.Contains(err.Error(), "active") {
		t.Fatalf("the active iteration as its own shadow: %v", err)
	}
	if _, err := s.SetShadow("colour", "nope"); err == nil {
		t.Fatal("an unknown iteration became the shadow")
	}
	if st, err := s.SetShadow("colour", ""); err != nil || st.Shadow != "" {
		t.Fatalf("clear: %+v %v", st, err)
	}
}

// TestDamagedState: a state file cut short (a power cut on a file system that kept the
// rename and lost the data) is refused with its path and the way out, not a bare JSON error.
// The store itself writes it whole: synced, renamed into place, no temporary file left.
func TestDamagedState(t *testing.T) {
	s, _ := Open(t.TempDir())
	dir, _ := export(t, "it-one")
	if _, err := s.Add("colour", dir, "local", check); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir(), "colour", "state.json")
	if left, _ := filepath.Glob(path + "*"); len(left) != 1 {
		t.Fatalf("files beside the state: %v", left)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := s.State("colour")
	for _, want := range []string{path, "is damaged", "remove it", "models.colour.path", "cvedge models add --model colour"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("damaged state: %v; want it to say %q", err, want)
		}
	}
}
