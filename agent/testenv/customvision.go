package testenv

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Secrets a fake Training API plants, for tests to check that they appear in no output.
const (
	FakeTrainingKey = "planted-training-key-0f3a9c"
	FakeSASSecret   = "planted-sas-signature-7b21e4"
)

// FakeTraining is a Custom Vision Training API v3.3 on loopback (TLS), for one project: it
// checks each call's method, path, query and Training-Key header (a wrong one fails the test)
// and answers with the documented JSON shapes. It serves the export's download too, at a
// SAS-like URL whose query holds FakeSASSecret. Set the fields before the first call.
type FakeTraining struct {
	*httptest.Server
	Project, IterationID string
	// TrainCode, when set, refuses the training with 400 and that error code.
	TrainCode string
	// TrainingPolls is how many looks see the iteration Training; TrainingFails ends it Failed.
	TrainingPolls int
	TrainingFails bool
	// NotExportable marks the iteration's domain as not compact.
	NotExportable bool
	// ExportPolls is how many looks see the export Exporting; ExportFails ends it Failed.
	ExportPolls int
	ExportFails bool
	// Throttle answers that many calls with 429 and Retry-After: 0 first.
	Throttle int
	// Download is the body of the export's download (a ZIP; ExportZip makes one).
	Download []byte

	tb         testing.TB
	mu         sync.Mutex
	calls      []string
	iterLooks  int
	exportLook int
	exported   bool
	downloads  int
}

// StartFakeTraining starts the fake API for project, whose new iteration is iterationID.
func StartFakeTraining(tb testing.TB, project, iterationID string) *FakeTraining {
	f := &FakeTraining{Project: project, IterationID: iterationID, tb: tb}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Close)
	return f
}

// CAFile writes the server's certificate as a PEM file and returns its path.
func (f *FakeTraining) CAFile(tb testing.TB) string {
	p := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Calls lists the calls served, as "METHOD path?query".
func (f *FakeTraining) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Downloads counts the export's downloads.
func (f *FakeTraining) Downloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downloads
}

func (f *FakeTraining) iteration(status string) map[string]any {
	return map[string]any{"id": f.IterationID, "name": "Iteration 7", "status": status, "created": "2026-11-29T10:00:00Z",
		"lastModified": "2026-11-29T10:00:00Z", "domainId": "0732100f-1a38-4e49-a514-c9b44c697ab5", "exportable": !f.NotExportable,
		"exportableTo": exportableTo(!f.NotExportable), "trainingType": "Regular", "reservedBudgetInHours": 0, "projectId": f.Project}
}

func exportableTo(ok bool) []string {
	if !ok {
		return []string{}
	}
	return []string{"ONNX", "DockerFile", "TensorFlow", "CoreML"}
}

func (f *FakeTraining) export(status string) map[string]any {
	e := map[string]any{"platform": "ONNX", "status": status, "downloadUri": nil, "flavor": nil, "newerVersionAvailable": false}
	if status == "Done" {
		e["downloadUri"] = f.URL + "/exports/" + f.IterationID + "/ONNX.zip?sv=2020-08-04&se=2026-11-30&sr=b&sp=r&sig=" + FakeSASSecret
	}
	return e
}

func (f *FakeTraining) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(format string, a ...any) {
		f.tb.Errorf("fake Training API: "+format, a...)
		reply(http.StatusBadRequest, map[string]string{"code": "BadRequest", "message": fmt.Sprintf(format, a...)})
	}
	if strings.HasPrefix(r.URL.Path, "/exports/") {
		if r.Method != http.MethodGet || r.URL.Query().Get("sig") != FakeSASSecret || r.Header.Get("Training-Key") != "" {
			fail("download %s %s: a GET of the SAS URL as given, without the Training-Key", r.Method, r.URL.Path)
			return
		}
		f.downloads++
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(f.Download)
		return
	}
	if got := r.Header.Get("Training-Key"); got != FakeTrainingKey {
		reply(http.StatusUnauthorized, map[string]string{"code": "Unauthorized", "message": "Access denied due to invalid subscription key"})
		f.tb.Errorf("fake Training API: %s %s with Training-Key %q", r.Method, r.URL.Path, got)
		return
	}
	if f.Throttle > 0 {
		f.Throttle--
		w.Header().Set("Retry-After", "0")
		reply(http.StatusTooManyRequests, map[string]string{"code": "TooManyRequests", "message": "Rate limit is exceeded"})
		return
	}
	base := "/customvision/v3.3/training/projects/" + f.Project
	iter := base + "/iterations/" + f.IterationID
	q := r.URL.Query()
	switch {
	case r.URL.Path == base+"/train":
		if r.Method != http.MethodPost {
			fail("train with %s", r.Method)
			return
		}
		for k := range q {
			if k != "trainingType" && k != "reservedBudgetInHours" && k != "forceTrain" && k != "notificationEmailAddress" {
				fail("train with query %s", k)
				return
			}
		}
		if tt := q.Get("trainingType"); tt != "" && tt != "Regular" && tt != "Advanced" {
			fail("trainingType %q", tt)
			return
		}
		if f.TrainCode != "" {
			reply(http.StatusBadRequest, map[string]string{"code": f.TrainCode, "message": "refused: " + f.TrainCode})
			return
		}
		reply(http.StatusOK, f.iteration("Training"))
	case r.URL.Path == iter && r.Method == http.MethodGet:
		f.iterLooks++
		switch {
		case f.iterLooks <= f.TrainingPolls:
			reply(http.StatusOK, f.iteration("Training"))
		case f.TrainingFails:
			reply(http.StatusOK, f.iteration("Failed"))
		default:
			reply(http.StatusOK, f.iteration("Completed"))
		}
	case r.URL.Path == iter+"/export" && r.Method == http.MethodPost:
		if q.Get("platform") != "ONNX" {
			fail("export to platform %q", q.Get("platform"))
			return
		}
		if f.NotExportable {
			reply(http.StatusBadRequest, map[string]string{"code": "BadRequestExportPlatformNotSupportedForModel", "message": "not exportable"})
			return
		}
		f.exported = true
		reply(http.StatusOK, f.export("Exporting"))
	case r.URL.Path == iter+"/export" && r.Method == http.MethodGet:
		if !f.exported {
			reply(http.StatusOK, []any{})
			return
		}
		f.exportLook++
		switch {
		case f.exportLook <= f.ExportPolls:
			reply(http.StatusOK, []any{f.export("Exporting")})
		case f.ExportFails:
			reply(http.StatusOK, []any{f.export("Failed")})
		default:
			reply(http.StatusOK, []any{f.export("Done")})
		}
	case strings.HasPrefix(r.URL.Path, base+"/iterations/"):
		reply(http.StatusNotFound, map[string]string{"code": "BadRequestIterationInvalid", "message": "Invalid iteration"})
	default:
		fail("unexpected call %s %s", r.Method, r.URL.Path)
	}
}

// ExportZip packs the files of an export folder (testdata/...) into a ZIP, as Custom Vision's
// download is.
func ExportZip(tb testing.TB, dir string) []byte {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		w, err := z.Create(e.Name())
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(raw)
	}
	if err := z.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
