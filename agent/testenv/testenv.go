// Package testenv finds what tests need outside the Go code (the repository root, the shared
// real-data folder, the onnxruntime library, a mosquitto binary) and applies one rule when
// something is missing: skip on a developer machine, fail under CI=true. It also holds what
// the tests of several packages share: an MQTT test client, schema checks, the demo's ground
// truth, export ZIPs.
//
// It is imported by tests only, and imports nothing of cvedge but the embedded broker
// (StartEmbedded), for tests that need a broker and not mosquitto.
package testenv

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// CI reports whether tests run under CI=true, where a missing dependency is a failure.
func CI() bool { return os.Getenv("CI") == "true" }

// EndToEnd marks a test that runs real onnxruntime sessions, a real broker or whole agents:
// `go test -short` skips it, so that the unit tests with fakes run in seconds. Without
// -short (make test, CI) it runs.
func EndToEnd(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end to end (real models, broker or agent): runs without -short")
	}
}

// Missing skips the test, or fails it under CI=true, saying what is missing and how to get it.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if CI() {
		tb.Fatalf("CI=true and a test dependency is missing: "+format, args...)
	}
	tb.Skipf("skipped, dependency missing: "+format, args...)
}

// Root returns the repository root (the folder holding go.mod).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path joins elements under the repository root.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Root()}, elem...)...)
}

// RealData returns ../shared/realdata/customvision/<elem...> beside the repository, or
// reports it missing.
func RealData(tb testing.TB, elem ...string) string {
	tb.Helper()
	dir := filepath.Join(append([]string{Root(), "..", "shared", "realdata", "customvision"}, elem...)...)
	if _, err := os.Stat(dir); err != nil {
		Missing(tb, "real Custom Vision exports at %s (the shared data folder beside the repository)", dir)
	}
	return dir
}

// Mosquitto returns the path of the mosquitto broker binary, or reports it missing.
func Mosquitto(tb testing.TB) string {
	tb.Helper()
	EndToEnd(tb)
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	Missing(tb, "mosquitto (run scripts/setup.sh, or apt-get install mosquitto)")
	return ""
}

// Broker is a mosquitto process started for one test.
type Broker struct {
	// Addr is host:port; URL is tcp://host:port.
	Addr, URL string
	cmd       *exec.Cmd
	conf      string
}

// StartMosquitto starts a mosquitto broker on a free loopback port, stopped when the test
// ends. Extra lines are appended to its configuration file.
func StartMosquitto(tb testing.TB, extra ...string) *Broker {
	tb.Helper()
	Mosquitto(tb) // skip or fail early when absent
	port := FreePort(tb)
	dir := tb.TempDir()
	b := &Broker{Addr: fmt.Sprintf("127.0.0.1:%d", port), URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), conf: filepath.Join(dir, "mosquitto.conf")}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)
	if os.Geteuid() == 0 {
		// else mosquitto drops to user mosquitto and cannot read or write the test's files
		conf += "user root\n"
	}
	persist := false
	for _, l := range extra {
		persist = persist || strings.HasPrefix(l, "persistence ")
	}
	if !persist {
		conf += "persistence false\n"
	}
	for _, l := range extra {
		conf += l + "\n"
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	b.Start(tb)
	tb.Cleanup(b.Stop)
	return b
}

// Start (re)starts the broker process and waits until it accepts connections.
func (b *Broker) Start(tb testing.TB) {
	tb.Helper()
	b.cmd = exec.Command(Mosquitto(tb), "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = io.Discard, io.Discard
	if err := b.cmd.Start(); err != nil {
		tb.Fatalf("starting mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", b.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Stop()
	tb.Fatalf("mosquitto did not listen on %s within 10s", b.Addr)
}

// Stop ends the broker process as a service manager would (SIGTERM, so a broker with
// persistence saves its sessions), kills it if it lingers, and waits for it.
func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// Persistent returns the mosquitto configuration lines that keep sessions and queued
// messages across a restart of the broker, in dir.
func Persistent(dir string) []string {
	return []string{"persistence true", "persistence_location " + dir + "/", "autosave_interval 1"}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Schemas validates payloads against the JSON Schemas in docs/schemas.
type Schemas struct {
	byName map[string]*jsonschema.Schema
}

// LoadSchemas compiles every docs/schemas/*.schema.json.
func LoadSchemas(tb testing.TB) *Schemas {
	tb.Helper()
	files, err := filepath.Glob(Path("docs", "schemas", "*.schema.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no schemas in docs/schemas: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, f := range files {
		raw, err := os.Open(f)
		if err != nil {
			tb.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(raw)
		raw.Close()
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource("https://cvedge.dev/schemas/"+filepath.Base(f), doc); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
	}
	s := &Schemas{byName: map[string]*jsonschema.Schema{}}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".schema.json")
		sch, err := c.Compile("https://cvedge.dev/schemas/" + filepath.Base(f))
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		s.byName[name] = sch
	}
	return s
}

// Validate checks raw against the schema called name ("prediction", "status", ...).
func (s *Schemas) Validate(name string, raw []byte) error {
	sch, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("no schema %q", name)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// SchemaForTopic names the schema of a topic the agent publishes, from its last levels.
func SchemaForTopic(topic string) string {
	switch {
	case strings.HasSuffix(topic, "/predictions"):
		return "prediction"
	case strings.HasSuffix(topic, "/status"):
		return "status"
	case strings.HasSuffix(topic, "/stats"):
		return "stats"
	case strings.HasSuffix(topic, "/commands/results"):
		return "result"
	case strings.HasSuffix(topic, "/snapshot"):
		return "snapshot"
	case strings.HasSuffix(topic, "/samples"):
		return "sample"
	case strings.HasSuffix(topic, "/followups"):
		return "followup"
	case strings.HasSuffix(topic, "/parts/image"):
		return "partimage"
	case strings.HasSuffix(topic, "/parts"):
		return "part"
	case strings.HasSuffix(topic, "/decisions"):
		return "decision"
	case strings.HasSuffix(topic, "/counts"):
		return "counts"
	case strings.HasSuffix(topic, "/commands"):
		return "command"
	case strings.HasSuffix(topic, "/feedback"):
		return "feedback"
	}
	return ""
}

// Truth is a demo video's ground truth, testdata/demo/<video>.truth.json (conveyor, crowded),
// written by testdata/gen_demo.py.
type Truth struct {
	Width, Height int
	Frames        []struct {
		Index int
		Parts []struct {
			ID      int
			Colour  string
			Shape   string
			Box     [4]float64 // pixels: x, y, w, h
			Visible float64
		}
	}
}

// DemoTruth reads the demo video's ground truth.
func DemoTruth(tb testing.TB) Truth {
	tb.Helper()
	return VideoTruth(tb, "conveyor")
}

// VideoTruth reads the ground truth of testdata/demo/<video>.avi.
func VideoTruth(tb testing.TB, video string) Truth {
	tb.Helper()
	raw, err := os.ReadFile(Path("testdata", "demo", video+".truth.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var tr Truth
	if err := json.Unmarshal(raw, &tr); err != nil {
		tb.Fatalf("%s.truth.json: %v", video, err)
	}
	return tr
}

// ZipDir writes the files of dir (not its subfolders) into a new ZIP, each named under
// prefix, with extra files beside them (name under prefix: contents), and returns its path.
func ZipDir(tb testing.TB, dir, prefix string, extra map[string]string) string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	for name, contents := range extra {
		files[name] = []byte(contents)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		w, err := zw.Create(prefix + name)
		if err == nil {
			_, err = w.Write(files[name])
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(tb.TempDir(), filepath.Base(dir)+".zip")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Freeze stops the broker process with SIGSTOP: its connections stay open and nothing
// answers, as with a hung broker or a pulled cable. Thaw lets it go on.
func (b *Broker) Freeze(tb testing.TB) {
	tb.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("freezing mosquitto: %v", err)
	}
	tb.Cleanup(func() { b.Thaw(tb) })
}

// Thaw resumes a frozen broker (SIGCONT).
func (b *Broker) Thaw(tb testing.TB) {
	tb.Helper()
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGCONT)
	}
}
