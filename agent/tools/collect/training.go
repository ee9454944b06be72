package collect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cvedge/cvedge/agent/dataset"
)

// The environment variables that name the Custom Vision training project.
const (
	EnvEndpoint = "CUSTOMVISION_TRAINING_ENDPOINT" // https://<resource>.cognitiveservices.azure.com/
	EnvKey      = "CUSTOMVISION_TRAINING_KEY"
	EnvProject  = "CUSTOMVISION_PROJECT_ID"
)

// MaxBatch is the most images the Training API takes in one call.
const MaxBatch = 64

// UploadedFile records, in the data set, which samples were uploaded.
const UploadedFile = "uploaded.jsonl"

// Training talks to the Custom Vision Training REST API (v3.3) for one project.
type Training struct {
	Endpoint, Key, Project string
	Client                 *http.Client
	// Backoff is the first wait after a 429 or 5xx answer (without Retry-After); it doubles
	// up to MaxBackoff, for at most Attempts tries.
	Backoff, MaxBackoff time.Duration
	Attempts            int
	Log                 *slog.Logger
}

// TrainingFromEnv reads the project from the environment; the error names what is missing.
func TrainingFromEnv(log *slog.Logger) (*Training, error) {
	t := &Training{Endpoint: os.Getenv(EnvEndpoint), Key: os.Getenv(EnvKey), Project: os.Getenv(EnvProject)}
	var missing []string
	for _, kv := range [][2]string{{EnvEndpoint, t.Endpoint}, {EnvKey, t.Key}, {EnvProject, t.Project}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--upload needs %s in the environment (the training resource's endpoint and key, and the project id from the portal's project settings)", strings.Join(missing, ", "))
	}
	if u, err := url.Parse(t.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%s=%q is not a URL such as https://myresource.cognitiveservices.azure.com/", EnvEndpoint, t.Endpoint)
	}
	t.Log = log
	return t, nil
}

func (t *Training) defaults() {
	if t.Client == nil {
		t.Client = &http.Client{Timeout: 60 * time.Second}
	}
	if t.Backoff <= 0 {
		t.Backoff = time.Second
	}
	if t.MaxBackoff <= 0 {
		t.MaxBackoff = 30 * time.Second
	}
	if t.Attempts <= 0 {
		t.Attempts = 6
	}
	if t.Log == nil {
		t.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// call sends one request and decodes the JSON answer. It retries with backoff on 429 and
// 5xx answers and on timeouts and dropped connections; a refused connection, an unknown host
// or an untrusted certificate fail at once, naming the cause. It returns as soon as ctx ends,
// also during a request or a wait.
func (t *Training) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	t.defaults()
	u := strings.TrimRight(t.Endpoint, "/") + "/customvision/v3.3/training/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	wait := t.Backoff
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Training-Key", t.Key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := t.Client.Do(req)
		var status int
		var answer []byte
		if err == nil {
			status = resp.StatusCode
			answer, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		if err != nil {
			if hint, lasting := netProblem(err); lasting {
				return fmt.Errorf("%s %s: %s: %w", method, path, hint, err)
			}
		}
		retry := err != nil || status == http.StatusTooManyRequests || status >= 500
		if !retry {
			if status/100 != 2 {
				return fmt.Errorf("%s %s: %s: %s", method, path, http.StatusText(status), trim(answer))
			}
			if out != nil {
				if err := json.Unmarshal(answer, out); err != nil {
					return fmt.Errorf("%s %s: unexpected answer: %v", method, path, err)
				}
			}
			return nil
		}
		if attempt >= t.Attempts {
			if err != nil {
				return fmt.Errorf("%s %s: %w (gave up after %d tries)", method, path, err, attempt)
			}
			return fmt.Errorf("%s %s: %s (gave up after %d tries): %s", method, path, http.StatusText(status), attempt, trim(answer))
		}
		d := wait
		if resp != nil {
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
				d = time.Duration(s) * time.Second
			}
		}
		if err != nil {
			t.Log.Warn("Custom Vision unreachable; retrying", "call", method+" "+path, "err", err, "wait", d)
		} else {
			t.Log.Warn("Custom Vision busy; retrying", "call", method+" "+path, "status", status, "wait", d)
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		wait = min(2*wait, t.MaxBackoff)
	}
}

// netProblem says what a failed connection means, and whether trying again at once would
// only fail again: nothing listening at the endpoint, a host that does not exist, a
// certificate the box does not trust. Timeouts and dropped connections are worth a retry.
func netProblem(err error) (hint string, lasting bool) {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens at that address; check " + EnvEndpoint, true
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "no such host: check " + EnvEndpoint, true
	case errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &badHost):
		return "the endpoint's certificate is not trusted: check " + EnvEndpoint + " and the system's CA certificates", true
	}
	return "", false
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// ProjectKind asks whether the project classifies or detects.
func (t *Training) ProjectKind(ctx context.Context) (detection bool, err error) {
	var p struct {
		Settings struct {
			DomainID string `json:"domainId"`
		} `json:"settings"`
	}
	if err := t.call(ctx, http.MethodGet, "projects/"+url.PathEscape(t.Project), nil, nil, &p); err != nil {
		return false, fmt.Errorf("project %s: %w", t.Project, err)
	}
	var d struct {
		Type string `json:"type"`
	}
	if err := t.call(ctx, http.MethodGet, "domains/"+url.PathEscape(p.Settings.DomainID), nil, nil, &d); err != nil {
		return false, fmt.Errorf("project %s domain: %w", t.Project, err)
	}
	return d.Type == "ObjectDetection", nil
}

// TagIDs returns the project's tag ids by name, creating the tags in names it lacks.
func (t *Training) TagIDs(ctx context.Context, names []string) (map[string]string, error) {
	var tags []struct{ ID, Name string }
	if err := t.call(ctx, http.MethodGet, "projects/"+url.PathEscape(t.Project)+"/tags", nil, nil, &tags); err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, tg := range tags {
		ids[tg.Name] = tg.ID
	}
	for _, n := range names {
		if _, ok := ids[n]; ok {
			continue
		}
		var created struct{ ID, Name string }
		if err := t.call(ctx, http.MethodPost, "projects/"+url.PathEscape(t.Project)+"/tags", url.Values{"name": {n}}, nil, &created); err != nil {
			return nil, fmt.Errorf("creating tag %q: %w", n, err)
		}
		t.Log.Info("created tag in the training project", "tag", n, "id", created.ID)
		ids[n] = created.ID
	}
	return ids, nil
}

// ImageEntry is one image for the Training API.
type ImageEntry struct {
	Name     string   `json:"name"`
	Contents []byte   `json:"contents"`
	TagIDs   []string `json:"tagIds,omitempty"`
	Regions  []Region `json:"regions,omitempty"`
}

// Region is a tagged box in an image of a detection project, normalized.
type Region struct {
	TagID  string  `json:"tagId"`
	Left   float32 `json:"left"`
	Top    float32 `json:"top"`
	Width  float32 `json:"width"`
	Height float32 `json:"height"`
}

// AddImages uploads up to MaxBatch images and returns each one's status ("OK",
// "OKDuplicate", or an error status), in order.
func (t *Training) AddImages(ctx context.Context, images []ImageEntry) ([]string, error) {
	if len(images) > MaxBatch {
		return nil, fmt.Errorf("%d images in one batch; the Training API takes %d", len(images), MaxBatch)
	}
	var summary struct {
		IsBatchSuccessful bool `json:"isBatchSuccessful"`
		Images            []struct {
			SourceURL string `json:"sourceUrl"`
			Status    string `json:"status"`
		} `json:"images"`
	}
	if err := t.call(ctx, http.MethodPost, "projects/"+url.PathEscape(t.Project)+"/images/files", nil, map[string]any{"images": images}, &summary); err != nil {
		return nil, err
	}
	status := map[string]string{}
	for _, im := range summary.Images {
		status[im.SourceURL] = im.Status
	}
	out := make([]string, len(images))
	for i, im := range images {
		if s, ok := status[im.Name]; ok {
			out[i] = s
		} else if summary.IsBatchSuccessful {
			out[i] = "OK"
		} else {
			out[i] = "ErrorUnknown"
		}
	}
	return out, nil
}

// Uploader sends a data set's corrected images to the project, in batches, once each.
type Uploader struct {
	T   *Training
	Dir string
	// Progress, when set, hears how many images of an upload have been handed over, after
	// each batch: for a progress line on a terminal.
	Progress func(n, total int)

	mu        sync.Mutex
	done      map[string]bool
	detection *bool
	warned    bool
}

// uploaded is one line of UploadedFile.
type uploaded struct {
	SampleID string    `json:"sampleId"`
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
}

// Sync uploads every corrected sample of the data set not uploaded yet, and records each in
// UploadedFile. It returns how many were taken and how many the API refused.
func (u *Uploader) Sync(ctx context.Context) (sent, refused int, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done == nil {
		if u.done, err = readUploaded(u.Dir); err != nil {
			return 0, 0, err
		}
	}
	if u.detection == nil {
		det, err := u.T.ProjectKind(ctx)
		if err != nil {
			return 0, 0, err
		}
		u.detection = &det
	}
	entries, err := dataset.ReadIndex(u.Dir)
	if err != nil {
		return 0, 0, err
	}
	todo, names := u.pending(entries)
	if len(todo) == 0 {
		return 0, 0, nil
	}
	ids, err := u.T.TagIDs(ctx, names)
	if err != nil {
		return 0, 0, err
	}
	log, err := os.OpenFile(filepath.Join(u.Dir, UploadedFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer log.Close()
	for start := 0; start < len(todo); start += MaxBatch {
		batch := todo[start:min(start+MaxBatch, len(todo))]
		images, err := u.images(batch, ids)
		if err != nil {
			return sent, refused, err
		}
		statuses, err := u.T.AddImages(ctx, images)
		if err != nil {
			return sent, refused, err
		}
		s, r, err := u.record(log, batch, statuses)
		sent, refused = sent+s, refused+r
		if err != nil {
			return sent, refused, err
		}
		if u.Progress != nil {
			u.Progress(start+len(batch), len(todo))
		}
	}
	return sent, refused, log.Sync()
}

// pending returns the tagged entries not uploaded yet that the project can take, and their
// tags.
func (u *Uploader) pending(entries []dataset.Entry) (todo []dataset.Entry, tags []string) {
	tagSet := map[string]bool{}
	for _, e := range entries {
		if e.Tag == "" || u.done[e.SampleID] {
			continue
		}
		if *u.detection && (e.FrameFile == "" || e.Region == nil) {
			if !u.warned {
				u.T.Log.Warn("a detection project needs the whole frame and the region: set samples.full_frame: true on the agents; such samples are not uploaded", "sample", e.SampleID)
				u.warned = true
			}
			continue
		}
		todo = append(todo, e)
		if !tagSet[e.Tag] {
			tagSet[e.Tag] = true
			tags = append(tags, e.Tag)
		}
	}
	return todo, tags
}

// images reads the batch's images, with their tag (a classification project) or their
// tagged region on the whole frame (a detection project).
func (u *Uploader) images(batch []dataset.Entry, ids map[string]string) ([]ImageEntry, error) {
	images := make([]ImageEntry, 0, len(batch))
	for _, e := range batch {
		file := e.File
		im := ImageEntry{Name: e.SampleID + ".jpg"}
		if *u.detection {
			file = e.FrameFile
			r := e.Region
			im.Regions = []Region{{TagID: ids[e.Tag], Left: r.Left, Top: r.Top, Width: r.Width, Height: r.Height}}
		} else {
			im.TagIDs = []string{ids[e.Tag]}
		}
		var err error
		if im.Contents, err = os.ReadFile(filepath.Join(u.Dir, filepath.FromSlash(file))); err != nil {
			return nil, err
		}
		images = append(images, im)
	}
	return images, nil
}

// record notes each image's status in the upload log, so that it is never sent again, and
// counts those the Training API took and refused.
func (u *Uploader) record(log *os.File, batch []dataset.Entry, statuses []string) (sent, refused int, err error) {
	for i, st := range statuses {
		line, _ := json.Marshal(uploaded{SampleID: batch[i].SampleID, Status: st, At: time.Now().UTC()})
		if _, err := log.Write(append(line, '\n')); err != nil {
			return sent, refused, err
		}
		u.done[batch[i].SampleID] = true
		if st == "OK" || st == "OKDuplicate" {
			sent++
		} else {
			refused++
			u.T.Log.Warn("the Training API refused an image", "sample", batch[i].SampleID, "status", st)
		}
	}
	return sent, refused, nil
}

func readUploaded(dir string) (map[string]bool, error) {
	done := map[string]bool{}
	raw, err := os.ReadFile(filepath.Join(dir, UploadedFile))
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var u uploaded
		if json.Unmarshal(line, &u) == nil && u.SampleID != "" {
			done[u.SampleID] = true
		}
	}
	return done, nil
}
