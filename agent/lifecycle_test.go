package agent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// describe reads an export the way the store's check needs, without onnxruntime.
func describe(path string) (store.Described, error) {
	e, err := models.ReadExport(path)
	if err != nil {
		return store.Described{}, err
	}
	d := store.Described{SHA256: e.SHA256}
	if e.Manifest != nil {
		d.IterationID = e.Manifest.IterationID
	}
	return d, nil
}

func addToStore(t *testing.T, dir, model, export string) store.Iteration {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.Add(model, export, "test", describe)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func command(t *testing.T, col *testenv.Inbox, body string) {
	t.Helper()
	col.Publish(t, "cvedge/e2e/commands", body)
}

func resultFor(t *testing.T, col *testenv.Inbox, id string) payload.Result {
	t.Helper()
	var found payload.Result
	testenv.WaitFor(t, "result "+id, 30*time.Second, func() bool {
		for _, raw := range col.Get("cvedge/e2e/commands/results") {
			var r payload.Result
			json.Unmarshal(raw, &r)
			if r.ID == id {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// TestHotSwapUnderLoad swaps the colour classifier's iteration back and forth while frames
// flow: no frame is lost, every classification names the iteration whose tags it carries,
// and an iteration that cannot do the job is refused while the old one keeps serving.
func TestHotSwapUnderLoad(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	storeDir := t.TempDir()
	v1 := addToStore(t, storeDir, "colour", testenv.Path("testdata", "demo", "classifier"))
	v2 := addToStore(t, storeDir, "colour", testenv.Path("testdata", "models", "classifier-v2"))
	wrongJob := addToStore(t, storeDir, "colour", testenv.Path("testdata", "demo", "detector"))
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.Store.Dir = storeDir
	m := cfg.Models["colour"]
	m.Path = "" // the store's active iteration serves
	cfg.Models["colour"] = m
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	preds := "cvedge/e2e/cameras/conveyor/predictions"
	testenv.WaitFor(t, "predictions", 20*time.Second, func() bool { return len(col.Get(preds)) > 30 })

	command(t, col, fmt.Sprintf(`{"id":"a0","command":"activate","model":"colour","iteration":%q}`, v2.ID))
	if r := resultFor(t, col, "a0"); r.OK || !strings.Contains(r.Error, `tags change (added: "blue_v2", "green_v2", "red_v2", "yellow_v2"; removed: "blue", "green", "red", "yellow")`) ||
		!strings.Contains(r.Error, `"allowTagChange": true`) || !strings.Contains(r.Error, v1.ID+" keeps serving") {
		t.Fatalf("activate v2 with other tags, not allowed: %+v", r)
	}
	command(t, col, fmt.Sprintf(`{"id":"a1","command":"activate","model":"colour","iteration":%q,"allowTagChange":true}`, v2.ID))
	if r := resultFor(t, col, "a1"); !r.OK || r.Detail["iteration"] != v2.ID {
		t.Fatalf("activate v2: %+v", r)
	}
	n := len(col.Get(preds))
	testenv.WaitFor(t, "frames on v2", 20*time.Second, func() bool { return len(col.Get(preds)) > n+30 })
	command(t, col, fmt.Sprintf(`{"id":"a2","command":"activate","model":"colour","iteration":%q,"allowTagChange":true}`, wrongJob.ID))
	if r := resultFor(t, col, "a2"); r.OK || !strings.Contains(r.Error, "a detector-yolo cannot replace a classifier") || !strings.Contains(r.Error, v2.ID+" keeps serving") {
		t.Fatalf("wrong job: %+v", r)
	}
	command(t, col, `{"id":"a3","command":"activate","model":"colour","iteration":"../../etc"}`)
	if r := resultFor(t, col, "a3"); r.OK || !strings.Contains(r.Error, `iteration "../../etc" must be`) {
		t.Fatalf("path escape: %+v", r)
	}
	command(t, col, `{"id":"a4","command":"rollback","model":"colour"}`)
	if r := resultFor(t, col, "a4"); !r.OK || r.Detail["iteration"] != v1.ID {
		t.Fatalf("rollback: %+v", r)
	}
	n = len(col.Get(preds))
	testenv.WaitFor(t, "frames after the rollback", 20*time.Second, func() bool { return len(col.Get(preds)) > n+30 })
	stop()

	seen := map[string]int{}
	ids := map[uint64]bool{}
	var maxID uint64
	for _, raw := range col.Get(preds) {
		var p payload.Prediction
		json.Unmarshal(raw, &p)
		ids[p.FrameID] = true
		maxID = max(maxID, p.FrameID)
		for _, d := range p.Predictions {
			c := d.Classification
			if c == nil {
				continue
			}
			seen[c.Iteration]++
			v2Tags := strings.HasSuffix(c.Predictions[0].TagName, "_v2")
			if (c.Iteration == v2.ID) != v2Tags {
				t.Fatalf("frame %d: iteration %s answered with tag %s", p.FrameID, c.Iteration, c.Predictions[0].TagName)
			}
			var ref payload.ModelRef
			for _, m := range p.Models {
				if m.Stage == "classifier" {
					ref = m
				}
			}
			if ref.Iteration != c.Iteration {
				t.Fatalf("frame %d: models[] names %s, the classification %s", p.FrameID, ref.Iteration, c.Iteration)
			}
		}
	}
	for id := uint64(1); id <= maxID; id++ {
		if !ids[id] {
			t.Fatalf("frame %d of %d lost during the swaps", id, maxID)
		}
	}
	if seen[v1.ID] == 0 || seen[v2.ID] == 0 {
		t.Fatalf("iterations seen %v", seen)
	}
	statuses := col.Get("cvedge/e2e/status")
	var last payload.Status
	json.Unmarshal(statuses[len(statuses)-1], &last)
	for _, m := range last.Models {
		if m.Name == "colour" && m.Iteration != v1.ID {
			t.Fatalf("status after rollback names %s", m.Iteration)
		}
	}
	s, _ := store.Open(storeDir)
	if st, _ := s.State("colour"); st.Active != v1.ID {
		t.Fatalf("store active %s", st.Active)
	}
	col.ValidateAll(t)
}

// TestRemoteAdd downloads an iteration over https, checks its SHA-256, and activates it
// once the tag change is allowed; a zip bomb is refused by store.max_unpacked_mb. The URLs
// carry a SAS key in their query (and one a password), which no result, log line or record
// of the store shows.
func TestRemoteAdd(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	zipPath := testenv.ZipDir(t, testenv.Path("testdata", "models", "classifier-v2"), "", nil)
	body, _ := os.ReadFile(zipPath)
	sum := sha256.Sum256(body)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()

	bombZip := zipBomb(t, 256<<20)
	bombBody, _ := os.ReadFile(bombZip)
	bombSum := sha256.Sum256(bombBody)
	bombSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(bombBody) }))
	defer bombSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bombSrv.Certificate().Raw})...), 0o644)

	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.Store.Dir, cfg.Store.CAFile = t.TempDir(), caFile
	cfg.Store.MaxUnpackedMB = 64
	cfg.Commands.Allow = append(cfg.Commands.Allow, "add")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	var logs testenv.LogBuffer
	stop := runAgentLogged(t, cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	testenv.WaitFor(t, "predictions", 20*time.Second, func() bool { return len(col.Get("cvedge/e2e/cameras/conveyor/predictions")) > 5 })
	const sas = "?sv=2022-11-02&se=2026-12-01&sp=r&sig=PlantedSig%2Bkey%3D"

	command(t, col, fmt.Sprintf(`{"id":"r0","command":"add","model":"colour","url":%q,"sha256":%q}`, bombSrv.URL+"/bomb.zip"+sas, hex.EncodeToString(bombSum[:])))
	if r := resultFor(t, col, "r0"); r.OK || !strings.Contains(r.Error, "more than store.max_unpacked_mb (64 MiB)") {
		t.Fatalf("zip bomb: %+v", r)
	}

	command(t, col, fmt.Sprintf(`{"id":"r1","command":"add","model":"colour","url":%q,"sha256":%q}`, srv.URL+"/v2.zip", strings.Repeat("ab", 32)))
	if r := resultFor(t, col, "r1"); r.OK || !strings.Contains(r.Error, "refused") {
		t.Fatalf("bad hash: %+v", r)
	}
	command(t, col, fmt.Sprintf(`{"id":"r2","command":"add","model":"colour","url":%q,"sha256":%q}`, "http://127.0.0.1:1/v2.zip"+sas, hex.EncodeToString(sum[:])))
	if r := resultFor(t, col, "r2"); r.OK || !strings.Contains(r.Error, "takes an https URL") {
		t.Fatalf("http: %+v", r)
	}
	command(t, col, fmt.Sprintf(`{"id":"r2a","command":"add","model":"colour","url":%q,"sha256":%q}`, "https://user:PlantedPw@[::1/v2.zip"+sas, hex.EncodeToString(sum[:])))
	if r := resultFor(t, col, "r2a"); r.OK || !strings.Contains(r.Error, "takes an https URL") {
		t.Fatalf("an https URL that does not parse: %+v", r)
	}
	command(t, col, fmt.Sprintf(`{"id":"r2b","command":"add","model":"colour","url":%q,"sha256":%q,"activate":true}`, srv.URL+"/v2.zip", hex.EncodeToString(sum[:])))
	if r := resultFor(t, col, "r2b"); r.OK || !strings.Contains(r.Error, `tags change (added: "blue_v2"`) {
		t.Fatalf("add and activate with other tags, not allowed: %+v", r)
	}
	command(t, col, fmt.Sprintf(`{"id":"r3","command":"add","model":"colour","url":%q,"sha256":%q,"activate":true,"allowTagChange":true}`, srv.URL+"/v2.zip"+sas, hex.EncodeToString(sum[:])))
	r := resultFor(t, col, "r3")
	if !r.OK || r.Detail["storeId"] == "" || r.Detail["iteration"] != r.Detail["storeId"] {
		t.Fatalf("add and activate: %+v", r)
	}
	testenv.WaitFor(t, "a v2 answer", 20*time.Second, func() bool {
		msgs := col.Get("cvedge/e2e/cameras/conveyor/predictions")
		var p payload.Prediction
		json.Unmarshal(msgs[len(msgs)-1], &p)
		return len(p.Predictions) > 0 && p.Predictions[0].Classification != nil && strings.HasSuffix(p.Predictions[0].Classification.Predictions[0].TagName, "_v2")
	})
	stop()
	for _, secret := range []string{"PlantedSig", "PlantedPw"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows %s:\n%s", secret, logs.String())
		}
		for _, m := range col.Get("cvedge/e2e/commands/results") {
			if strings.Contains(string(m), secret) {
				t.Errorf("a result shows %s: %s", secret, m)
			}
		}
		filepath.WalkDir(cfg.Store.Dir, func(path string, d fs.DirEntry, err error) error {
			if b, _ := os.ReadFile(path); err == nil && !d.IsDir() && strings.Contains(string(b), secret) {
				t.Errorf("the model store's %s shows %s", path, secret)
			}
			return nil
		})
	}
}
