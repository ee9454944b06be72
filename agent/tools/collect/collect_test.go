package collect

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/broker"
	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// jpegOf returns a small JPEG whose colour depends on n, so different n give different files.
func jpegOf(t testing.TB, n int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 16, 12))
	for y := 0; y < 12; y++ {
		for x := 0; x < 16; x++ {
			img.Set(x, y, color.RGBA{uint8(n * 37), uint8(n * 11), uint8(x * y), 255})
		}
	}
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, nil)
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func sample(t testing.TB, n int, tag string, frame bool) payload.Sample {
	s := payload.Sample{Schema: 1, ID: fmt.Sprintf("s-%03d", n), Agent: "line3", Camera: "cam1", Reason: "operator", Detail: "d",
		PredictionID: fmt.Sprintf("p-%d", n), FrameID: uint64(n + 1), Captured: time.Unix(1700000000, 0).UTC(), CorrectTag: tag,
		Prediction: &payload.Tag{TagName: "part", Probability: 0.9, BoundingBox: &payload.Box{Left: 0.1, Top: 0.2, Width: 0.3, Height: 0.4}},
		Crop:       &payload.Image{JPEG: jpegOf(t, n), Width: 16, Height: 12, Box: &payload.Box{Left: 0.05, Top: 0.15, Width: 0.4, Height: 0.5}}}
	if frame {
		s.Frame = &payload.Image{JPEG: jpegOf(t, n+1000), Width: 16, Height: 12}
	}
	if tag == "" {
		s.Reason = "low_confidence"
	}
	return s
}

func TestDatasetLayoutDedupAndResume(t *testing.T) {
	dir := t.TempDir()
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []payload.Sample{sample(t, 1, "red", true), sample(t, 2, "", false), sample(t, 3, "../../etc", false)} {
		if _, added, err := ds.Add(s); err != nil || !added {
			t.Fatalf("sample %d: %v %v", i, added, err)
		}
	}
	if _, added, _ := ds.Add(sample(t, 1, "red", true)); added {
		t.Fatal("the same sample id was added twice")
	}
	same := sample(t, 1, "red", true)
	same.ID = "s-other"
	if _, added, _ := ds.Add(same); added {
		t.Fatal("the same image under another id was added")
	}
	ds.Close()
	for _, f := range []string{"red/s-001.jpg", "frames/s-001.jpg", "unreviewed/s-002.jpg", "_._.._etc/s-003.jpg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// a crash cut the last index line short: reopening drops it and goes on
	f, _ := os.OpenFile(filepath.Join(dir, dataset.IndexFile), os.O_WRONLY|os.O_APPEND, 0o644)
	f.WriteString(`{"sampleId":"s-9`)
	f.Close()
	ds, err = dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 3 {
		t.Fatalf("after reopening: %d samples", ds.Len())
	}
	if _, added, _ := ds.Add(sample(t, 2, "", false)); added {
		t.Fatal("a sample from before the restart was added again")
	}
	if _, added, err := ds.Add(sample(t, 4, "green", false)); err != nil || !added {
		t.Fatal("a new sample was not added after the restart")
	}
	ds.Close()
	entries, err := dataset.ReadIndex(dir)
	if err != nil || len(entries) != 4 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	e := entries[0]
	if e.Tag != "red" || e.FrameFile != "frames/s-001.jpg" || e.Region.Left != 0.1 || e.Crop.Left != 0.05 || e.Agent != "line3" || len(e.SHA256) != 64 {
		t.Fatalf("entry %+v", e)
	}
}

func TestFolderName(t *testing.T) {
	for in, want := range map[string]string{"red": "red", "../x": "_._x", "a/b": "a_b", "unreviewed": "_unreviewed", "": "_", " Japanese Cherry ": "Japanese Cherry", ".hidden": "_hidden"} {
		if got := dataset.FolderName(in); got != want {
			t.Errorf("dataset.FolderName(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeTraining implements the part of the Custom Vision Training API that the uploader uses,
// and checks every request.
type fakeTraining struct {
	t         *testing.T
	detection bool
	mu        sync.Mutex
	tags      map[string]string // name -> id
	types     map[string]string // name -> type, when not Regular
	refuse    map[string]string // image name -> the status to answer it with
	images    []ImageEntry
	bodies    [][]byte            // the image batches as sent
	byContent map[string]string   // image bytes -> image id: the project's images
	regions   map[string][]Region // image id -> its regions
	batches   []int
	calls     []string
	busy      int  // answer this many image uploads with 429, then 503, before taking them
	noRegions bool // refuse region batches (400)
}

func (f *fakeTraining) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Training-Key") != "secret-key" {
		f.t.Errorf("%s %s without the training key", r.Method, r.URL.Path)
		http.Error(w, `{"code":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	const base = "/customvision/v3.3/training/"
	path := strings.TrimPrefix(r.URL.Path, base)
	switch {
	case r.Method == "GET" && path == "projects/proj-1":
		json.NewEncoder(w).Encode(map[string]any{"id": "proj-1", "settings": map[string]any{"domainId": "dom-1"}})
	case r.Method == "GET" && path == "domains/dom-1":
		typ := "Classification"
		if f.detection {
			typ = "ObjectDetection"
		}
		json.NewEncoder(w).Encode(map[string]any{"id": "dom-1", "type": typ})
	case r.Method == "GET" && path == "projects/proj-1/tags":
		var list []map[string]string
		for n, id := range f.tags {
			typ := f.types[n]
			if typ == "" {
				typ = "Regular"
			}
			list = append(list, map[string]string{"id": id, "name": n, "type": typ})
		}
		json.NewEncoder(w).Encode(list)
	case r.Method == "POST" && path == "projects/proj-1/tags":
		name := r.URL.Query().Get("name")
		if name == "" || f.tags[name] != "" {
			f.t.Errorf("bad tag creation %q", name)
		}
		f.tags[name] = "tag-" + name
		if typ := r.URL.Query().Get("type"); typ != "" {
			if f.types == nil {
				f.types = map[string]string{}
			}
			f.types[name] = typ
		}
		json.NewEncoder(w).Encode(map[string]string{"id": f.tags[name], "name": name})
	case r.Method == "POST" && path == "projects/proj-1/images/files":
		if f.busy > 0 {
			f.busy--
			if f.busy%2 == 1 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"code":"TooManyRequests"}`, http.StatusTooManyRequests)
			} else {
				http.Error(w, `{"code":"ServiceUnavailable"}`, http.StatusServiceUnavailable)
			}
			return
		}
		raw, _ := io.ReadAll(r.Body)
		f.bodies = append(f.bodies, raw)
		var body struct{ Images []ImageEntry }
		if err := json.Unmarshal(raw, &body); err != nil {
			f.t.Errorf("image batch: %v", err)
		}
		names := map[string]bool{}
		for _, im := range body.Images {
			if names[im.Name] {
				f.t.Errorf("two images named %s in one batch: their statuses cannot be told apart", im.Name)
			}
			names[im.Name] = true
		}
		if len(body.Images) == 0 || len(body.Images) > 64 {
			f.t.Errorf("batch of %d images", len(body.Images))
		}
		var answer []map[string]any
		for _, im := range body.Images {
			if _, err := jpeg.Decode(bytes.NewReader(im.Contents)); err != nil {
				f.t.Errorf("%s: not a JPEG: %v", im.Name, err)
			}
			if f.detection && (len(im.Regions) == 0 || len(im.TagIDs) != 0) {
				f.t.Errorf("%s: a detection image needs regions and no image tags: %+v %+v", im.Name, im.Regions, im.TagIDs)
			}
			for _, r := range im.Regions {
				if !(r.Left >= 0 && r.Top >= 0 && r.Width > 0 && r.Height > 0 && r.Left+r.Width <= 1 && r.Top+r.Height <= 1) {
					f.t.Errorf("%s: region %+v is not a box inside the image, normalized", im.Name, r)
				}
			}
			if !f.detection && (len(im.TagIDs) != 1 || len(im.Regions) != 0) {
				f.t.Errorf("%s: a classification image needs one tag: %+v", im.Name, im.TagIDs)
			}
			for _, id := range append(im.TagIDs, regionTags(im.Regions)...) {
				if !f.knownID(id) {
					f.t.Errorf("%s: unknown tag id %q", im.Name, id)
				}
			}
			status := "OK"
			if st, ok := f.refuse[im.Name]; ok {
				status = st
			}
			res := map[string]any{"sourceUrl": im.Name, "status": status}
			if status == "OK" {
				if f.byContent == nil {
					f.byContent, f.regions = map[string]string{}, map[string][]Region{}
				}
				id, dup := f.byContent[string(im.Contents)]
				if dup { // as the service does: the image there keeps its regions
					res["status"] = "OKDuplicate"
				} else {
					id = fmt.Sprintf("img-%d", len(f.byContent)+1)
					f.byContent[string(im.Contents)] = id
					f.regions[id] = im.Regions
				}
				res["image"] = map[string]any{"id": id}
			}
			answer = append(answer, res)
		}
		f.images = append(f.images, body.Images...)
		f.batches = append(f.batches, len(body.Images))
		json.NewEncoder(w).Encode(map[string]any{"isBatchSuccessful": len(f.refuse) == 0, "images": answer})
	case r.Method == "POST" && path == "projects/proj-1/images/regions" && f.noRegions:
		http.Error(w, `{"code":"BadRequest"}`, http.StatusBadRequest)
	case r.Method == "POST" && path == "projects/proj-1/images/regions":
		var body struct {
			Regions []struct {
				ImageID string `json:"imageId"`
				Region
			} `json:"regions"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Regions) == 0 || len(body.Regions) > 64 {
			f.t.Errorf("region batch of %d: %v", len(body.Regions), err)
		}
		answer := map[string][]any{"created": {}, "duplicated": {}, "exceeded": {}}
		for _, rg := range body.Regions {
			have, ok := f.regions[rg.ImageID]
			switch {
			case !ok:
				f.t.Errorf("region for unknown image %q", rg.ImageID)
			case !f.knownID(rg.TagID):
				f.t.Errorf("region with unknown tag id %q", rg.TagID)
			case slices.Contains(have, rg.Region):
				answer["duplicated"] = append(answer["duplicated"], rg)
			case len(have) >= 300:
				answer["exceeded"] = append(answer["exceeded"], rg)
			default:
				f.regions[rg.ImageID] = append(have, rg.Region)
				answer["created"] = append(answer["created"], rg)
			}
		}
		json.NewEncoder(w).Encode(answer)
	default:
		f.t.Errorf("unexpected call %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func regionTags(rs []Region) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.TagID)
	}
	return out
}

func (f *fakeTraining) knownID(id string) bool {
	for _, v := range f.tags {
		if v == id {
			return true
		}
	}
	return false
}

func TestUploadClassification(t *testing.T) {
	dir := t.TempDir()
	ds, _ := dataset.Open(dir)
	for i := 0; i < 70; i++ {
		tag := []string{"red", "green"}[i%2]
		ds.Add(sample(t, i, tag, false))
	}
	ds.Add(sample(t, 500, "", false)) // unreviewed: not uploaded
	ds.Close()
	fake := &fakeTraining{t: t, tags: map[string]string{"red": "tag-red"}, busy: 2}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	var progress []string
	up := &Uploader{T: &Training{Endpoint: srv.URL + "/", Key: "secret-key", Project: "proj-1", Backoff: time.Millisecond, Log: quiet}, Dir: dir,
		Progress: func(n, total int) { progress = append(progress, fmt.Sprintf("%d/%d", n, total)) }}
	sent, refused, err := up.Sync(context.Background())
	if err != nil || sent != 70 || refused != 0 {
		t.Fatalf("sent %d refused %d: %v", sent, refused, err)
	}
	if got := strings.Join(progress, " "); got != "64/70 70/70" {
		t.Fatalf("progress %q, want 64/70 70/70 (after each batch)", got)
	}
	if fmt.Sprint(fake.batches) != "[64 6]" {
		t.Fatalf("batches %v, want [64 6]", fake.batches)
	}
	if fake.tags["green"] != "tag-green" {
		t.Fatal("the missing tag was not created")
	}
	if retries := strings.Count(strings.Join(fake.calls, "\n"), "images/files"); retries != 4 {
		t.Fatalf("%d image calls: want a 429 and a 503 retried, then two batches", retries)
	}
	// a restart uploads nothing again
	up2 := &Uploader{T: up.T, Dir: dir}
	if sent, _, err := up2.Sync(context.Background()); err != nil || sent != 0 {
		t.Fatalf("second sync sent %d: %v", sent, err)
	}
}

func TestUploadDetectionNeedsFrames(t *testing.T) {
	dir := t.TempDir()
	ds, _ := dataset.Open(dir)
	ds.Add(sample(t, 1, "scratch", true))
	ds.Add(sample(t, 2, "scratch", false)) // no frame: cannot be a detection image
	ds.Close()
	fake := &fakeTraining{t: t, detection: true, tags: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	up := &Uploader{T: &Training{Endpoint: srv.URL, Key: "secret-key", Project: "proj-1", Backoff: time.Millisecond, Log: quiet}, Dir: dir}
	sent, _, err := up.Sync(context.Background())
	if err != nil || sent != 1 || len(fake.images) != 1 {
		t.Fatalf("sent %d: %v", sent, err)
	}
	r := fake.images[0].Regions[0]
	if r.Left != 0.1 || r.Top != 0.2 || r.Width != 0.3 || r.Height != 0.4 || r.TagID != "tag-scratch" {
		t.Fatalf("region %+v: want the detection's box", r)
	}
}

func TestUploadGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	tr := &Training{Endpoint: srv.URL, Key: "k", Project: "p", Backoff: time.Millisecond, Attempts: 3, Log: quiet}
	if _, err := tr.ProjectKind(context.Background()); err == nil || !strings.Contains(err.Error(), "gave up after 3 tries") {
		t.Fatalf("err %v", err)
	}
	t.Setenv(EnvEndpoint, "")
	t.Setenv(EnvKey, "")
	t.Setenv(EnvProject, "p")
	if _, err := TrainingFromEnv(quiet); err == nil || !strings.Contains(err.Error(), EnvEndpoint) || !strings.Contains(err.Error(), EnvKey) {
		t.Fatalf("missing environment: %v", err)
	}
}

// TestCollectorOverMQTT: samples published by agents end up in the data set; a malformed one
// is refused and the collector goes on.
func TestCollectorOverMQTT(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	dir := t.TempDir()
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	c := &Collector{DS: ds, Log: quiet}
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = broker.URL, "collector-test"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, cfg, "cvedge/+/cameras/+/samples", time.Second) }()

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL).SetClientID("agent-sim"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("publisher did not connect")
	}
	defer pub.Disconnect(100)
	time.Sleep(500 * time.Millisecond) // the collector subscribes on connect
	for i := 0; i < 5; i++ {
		raw, _ := json.Marshal(sample(t, i, "red", false))
		pub.Publish("cvedge/line3/cameras/cam1/samples", 1, false, raw).Wait()
	}
	pub.Publish("cvedge/line3/cameras/cam1/samples", 1, false, []byte(`{"schema":1,"id":"x"}`)).Wait()
	raw, _ := json.Marshal(sample(t, 0, "red", false))
	pub.Publish("cvedge/line3/cameras/cam1/samples", 1, false, raw).Wait() // redelivery
	deadline := time.Now().Add(10 * time.Second)
	for c.Counts().Added+c.Counts().Bad+c.Counts().Duplicate < 7 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if got := c.Counts(); got.Added != 5 || got.Bad != 1 || got.Duplicate != 1 {
		t.Fatalf("counts %v", got)
	}
	if ds.Len() != 5 {
		t.Fatalf("data set has %d samples", ds.Len())
	}
}

// onBroker starts a broker, and returns an empty data set, the collector's MQTT config
// (clientID, on that broker) and a client that plays the agents.
func onBroker(t *testing.T, clientID string) (*dataset.Dataset, configs.MQTT, *testenv.Inbox) {
	t.Helper()
	broker := testenv.StartMosquitto(t)
	ds, err := dataset.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = broker.URL, clientID
	return ds, cfg, testenv.Subscribe(t, broker.URL, "none")
}

// runUntil runs c on topic until until returns true (within 10 s), then stops it.
func runUntil(t *testing.T, c *Collector, cfg configs.MQTT, topic string, until func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, cfg, topic, time.Second) }()
	defer func() { cancel(); <-done }()
	testenv.WaitFor(t, "the samples", 10*time.Second, until)
}

// TestSamplesSentWhileAwayCollected: samples published while the collector is stopped wait
// in its persistent session, and the broker hands them over as it connects again, before
// the collector has logged its connection and subscribed (a busy box, here a slow log).
// Each one is collected.
func TestSamplesSentWhileAwayCollected(t *testing.T) {
	ds, cfg, agent := onBroker(t, "collector-away-test")
	send := func(i int) {
		raw, _ := json.Marshal(sample(t, i, "red", false))
		agent.Publish(t, "cvedge/line3/cameras/cam1/samples", string(raw))
	}
	first := &Collector{DS: ds, Log: quiet}
	runUntil(t, first, cfg, "cvedge/+/cameras/+/samples", func() bool { send(0); return first.Counts().Added > 0 }) // its session is made
	const n = 8
	for i := 1; i <= n; i++ {
		send(i)
	}
	second := &Collector{DS: ds, Log: testenv.SlowLog(300 * time.Millisecond)}
	runUntil(t, second, cfg, "cvedge/+/cameras/+/samples", func() bool { return second.Counts().Added >= n })
}

// TestOldTopicNotCollected: the collector's persistent session still has the subscription
// of an earlier run with another --topic. Samples on that old topic are not collected.
func TestOldTopicNotCollected(t *testing.T) {
	ds, cfg, agent := onBroker(t, "collector-topic-test")
	send := func(line string, i int) {
		raw, _ := json.Marshal(sample(t, i, "red", false))
		agent.Publish(t, "cvedge/"+line+"/cameras/cam1/samples", string(raw))
	}
	first := &Collector{DS: ds, Log: quiet}
	runUntil(t, first, cfg, "cvedge/line1/cameras/+/samples", func() bool { send("line1", 0); return first.Counts().Added > 0 })
	second := &Collector{DS: ds, Log: quiet}
	runUntil(t, second, cfg, "cvedge/line2/cameras/+/samples", func() bool {
		send("line1", 1)
		send("line2", 2)
		if second.Counts().Added == 0 {
			return false
		}
		time.Sleep(500 * time.Millisecond) // the rest of what was sent
		return true
	})
	if got := second.Counts(); got.Added != 1 || ds.Len() != 2 {
		t.Fatalf("counts %+v, %d in the data set: samples of the old topic were collected", got, ds.Len())
	}
}

// TestRunStopsAtOnceMidUpload: a Ctrl-C while Custom Vision does not answer ends Run within
// a second; it does not wait out the answer, the retries or a last upload.
func TestRunStopsAtOnceMidUpload(t *testing.T) {
	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select { // hang until the client goes or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	b, err := broker.Start("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	dir := t.TempDir()
	ds, err := dataset.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if _, _, err := ds.Add(sample(t, 1, "red", false)); err != nil {
		t.Fatal(err)
	}
	c := &Collector{DS: ds, Log: quiet, Up: &Uploader{T: &Training{Endpoint: srv.URL, Key: "k", Project: "p", Log: quiet}, Dir: dir}}
	cfg := configs.Default().MQTT
	cfg.Broker, cfg.ClientID = "tcp://"+b.Addr(), "collector-stop"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, cfg, "cvedge/+/cameras/+/samples", time.Second) }()
	select {
	case <-asked: // the first upload waits on the project
	case <-time.After(10 * time.Second):
		t.Fatal("no upload started")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run still running a second after its context ended")
	}
}

// TestUploadSaysConnectionRefused: with nothing listening at the endpoint the upload fails at
// once saying so, and never calls Custom Vision busy.
func TestUploadSaysConnectionRefused(t *testing.T) {
	var logs testenv.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/", testenv.FreePort(t))
	tr := &Training{Endpoint: endpoint, Key: "k", Project: "p", Backoff: time.Millisecond, Log: log}
	_, err := tr.ProjectKind(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), EnvEndpoint) {
		t.Fatalf("err %v, want connection refused and %s", err, EnvEndpoint)
	}
	if strings.Contains(err.Error(), "gave up") || strings.Contains(logs.String(), "busy") {
		t.Errorf("a refused connection was retried as a busy service: %v\n%s", err, logs.String())
	}
}
