package agent_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// zipBomb writes a ZIP whose model.onnx inflates to n zero bytes (a few hundred KB on disk).
func zipBomb(t *testing.T, n int) string {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	crc := crc32.NewIEEE()
	for left := n; left > 0; left -= len(zeros) {
		fw.Write(zeros[:min(left, len(zeros))])
		crc.Write(zeros[:min(left, len(zeros))])
	}
	fw.Close()
	p := filepath.Join(t.TempDir(), "bomb.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	w, _ := zw.CreateRaw(&zip.FileHeader{Name: "model.onnx", Method: zip.Deflate, CRC32: crc.Sum32(), CompressedSize64: uint64(buf.Len()), UncompressedSize64: uint64(n)})
	w.Write(buf.Bytes())
	w, _ = zw.Create("labels.txt")
	w.Write([]byte("blue\ngreen\nred\nyellow\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestCommandTrust: with the default commands.allow, add is refused and names the key that
// allows it; with a public key, reload must be signed, and a good signature is admitted
// once, while a replay, a changed body, another key and a stale timestamp are each refused.
func TestCommandTrust(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	cfg := demoConfig(t, broker.URL, "")
	cfg.Commands.PublicKey = base64.StdEncoding.EncodeToString(pub)
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	runAgent(t, cfg)
	testenv.WaitFor(t, "status", 20*time.Second, func() bool { return len(col.Get("cvedge/e2e/status")) > 0 })

	reload := func(id string, at time.Time) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"command":"reload","timestamp":%q}`, id, at.UTC().Format(time.RFC3339)))
	}
	good := payload.Sign(reload("s1", time.Now()), priv)
	var changed payload.Signed // signed, then the body changed
	json.Unmarshal(payload.Sign(reload("s2", time.Now()), priv), &changed)
	changed.Body = base64.StdEncoding.EncodeToString(reload("s2", time.Now().Add(time.Second)))
	changedRaw, _ := json.Marshal(changed)

	cases := []struct{ id, body, want string }{
		{"g1", `{"id":"g1","command":"add","model":"colour","url":"https://127.0.0.1:1/x.zip","sha256":"` + strings.Repeat("0", 64) + `"}`,
			"command add refused: this agent does not take it (add add to commands.allow"},
		{"g2", `{"id":"g2","command":"rollback","model":"colour"}`, "has no earlier active iteration"}, // admitted unsigned: not in commands.signed
		{"g3", `{"id":"g3","command":"reload"}`, "command reload must be signed on this agent (commands.signed)"},
		{"s1", string(good), "not started from a config file"}, // admitted: the reload itself answers
		{"s2", string(changedRaw), "does not verify with commands.public_key"},
		{"s3", string(payload.Sign(reload("s3", time.Now()), other)), "does not verify with commands.public_key"},
		{"s4", string(payload.Sign(reload("s4", time.Now().Add(-time.Hour)), priv)), "stale, signed 1h0m"},
	}
	for _, c := range cases {
		col.Publish(t, "cvedge/e2e/commands", c.body)
		if r := resultFor(t, col, c.id); r.OK || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: %+v, want %q", c.id, r, c.want)
		}
	}
	col.Publish(t, "cvedge/e2e/commands", string(good))
	testenv.WaitFor(t, "the replay's result", 30*time.Second, func() bool {
		n := 0
		for _, raw := range col.Get("cvedge/e2e/commands/results") {
			if bytes.Contains(raw, []byte(`"id":"s1"`)) {
				n++
				if n == 2 && !bytes.Contains(raw, []byte("a replay")) {
					t.Fatalf("the replay was not refused as one: %s", raw)
				}
			}
		}
		return n == 2
	})
}

// TestRemoteAddInBackground: an add whose server never answers blocks neither another
// model command nor shutdown; shutdown cancels it and its result says so.
func TestRemoteAddInBackground(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		select { // never answers while the test runs
		case <-release:
		case <-r.Context().Done():
		}
		// No response at all: a handler that just returned would send an empty 200, which
		// can reach the agent before its own cancel and fail the export's checksum instead.
		panic(http.ErrAbortHandler)
	}))
	defer srv.Close()
	defer close(release)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	cfg.Store.CAFile = caFile
	cfg.Store.DownloadTimeout = time.Hour // only shutdown ends this add
	cfg.Commands.Allow = append(cfg.Commands.Allow, "add")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	stop := runAgent(t, cfg)
	testenv.WaitFor(t, "predictions", 20*time.Second, func() bool { return len(col.Get("cvedge/e2e/cameras/conveyor/predictions")) > 5 })

	sum := sha256.Sum256([]byte("x"))
	add := func(id string) {
		command(t, col, fmt.Sprintf(`{"id":%q,"command":"add","model":"colour","url":%q,"sha256":%q}`, id, srv.URL+"/x.zip", hex.EncodeToString(sum[:])))
	}
	add("b1")
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		t.Fatal("the add never reached the server")
	}
	command(t, col, `{"id":"b2","command":"rollback","model":"colour"}`)
	if r := resultFor(t, col, "b2"); r.OK || !strings.Contains(r.Error, "no earlier active iteration") {
		t.Fatalf("rollback during the add: %+v", r)
	}
	add("b3")
	if r := resultFor(t, col, "b3"); r.OK || !strings.Contains(r.Error, "the remote add b1 is still running") {
		t.Fatalf("a second add: %+v", r)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second): // a deadline for a hang, not a speed assert
		t.Fatal("shutdown still waits for the add after 30 s")
	}
	if r := resultFor(t, col, "b1"); r.OK || !strings.Contains(r.Error, "cancelled: the agent is stopping") {
		t.Fatalf("the cancelled add: %+v", r)
	}
}

// TestChangeCommandsBounded: a flood of reload commands while reloads are slow queues no more
// than maxChanges of them; the rest are refused at once, each with a result, and the queued
// ones still run once the config can be read, one after another, in the order sent.
func TestChangeCommandsBounded(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	cfg := demoConfig(t, broker.URL, "    loop: true\n")
	col := testenv.Subscribe(t, broker.URL, "cvedge/e2e/#")
	release := make(chan struct{})
	var reading atomic.Int32
	startAgent(t, cfg, func() (*configs.Config, error) {
		reading.Add(1)
		<-release
		return cfg, nil
	})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the agent stops, which waits for the reloads
	testenv.WaitFor(t, "predictions", 20*time.Second, func() bool { return len(col.Get("cvedge/e2e/cameras/conveyor/predictions")) > 2 })
	const n = 40
	for i := range n {
		command(t, col, fmt.Sprintf(`{"id":"q%d","command":"reload"}`, i))
	}
	results := func() (refused, ok int) {
		for _, raw := range col.Get("cvedge/e2e/commands/results") {
			var r payload.Result
			json.Unmarshal(raw, &r)
			switch {
			case r.OK:
				ok++
			case strings.Contains(r.Error, "4 model changes or reloads are still queued"):
				refused++
			default:
				t.Errorf("result %+v", r)
			}
		}
		return refused, ok
	}
	testenv.WaitFor(t, "the refusals", 10*time.Second, func() bool { r, _ := results(); return r >= n-4 })
	time.Sleep(300 * time.Millisecond)
	if r, ok := results(); r != n-4 || ok != 0 || reading.Load() != 1 {
		t.Fatalf("%d refused, %d done, %d reading the config, while the config cannot be read: want %d, 0, and 1 (the others wait their turn)", r, ok, reading.Load(), n-4)
	}
	free()
	testenv.WaitFor(t, "the queued reloads", 30*time.Second, func() bool { _, ok := results(); return ok == 4 })
	var done []string
	for _, raw := range col.Get("cvedge/e2e/commands/results") {
		var r payload.Result
		if json.Unmarshal(raw, &r) == nil && r.OK {
			done = append(done, r.ID)
		}
	}
	if strings.Join(done, " ") != "q0 q1 q2 q3" {
		t.Errorf("reloads done in the order %v; want the first four sent, in the order sent", done)
	}
	command(t, col, `{"id":"after","command":"reload"}`)
	if r := resultFor(t, col, "after"); !r.OK {
		t.Fatalf("a reload once the queue emptied: %+v", r)
	}
}
