package collect

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

	guarded bool // Client refuses redirects to another host (defaults)
}

// TrainingFromEnv reads the project from the environment; the error names what is missing.
func TrainingFromEnv(log *slog.Logger) (*Training, error) {
	return TrainingFor("--upload", "", "", log)
}

// TrainingFor is TrainingFromEnv for a command that also takes the endpoint and the project
// as flags: a non-empty endpoint or project is used instead of the environment's. The key
// comes from the environment only. what names the command in the error.
func TrainingFor(what, endpoint, project string, log *slog.Logger) (*Training, error) {
	t := &Training{Endpoint: cmp.Or(endpoint, os.Getenv(EnvEndpoint)), Key: os.Getenv(EnvKey), Project: cmp.Or(project, os.Getenv(EnvProject))}
	var missing []string
	for _, kv := range [][2]string{{EnvEndpoint, t.Endpoint}, {EnvKey, t.Key}, {EnvProject, t.Project}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s needs %s in the environment (the training resource's endpoint and key, and the project id from the portal's project settings)", what, strings.Join(missing, ", "))
	}
	if err := CheckEndpoint(t.Endpoint); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvEndpoint, err)
	}
	t.Log = log
	return t, nil
}

// CheckEndpoint refuses a Training API endpoint the key must not be sent to: not a URL, or
// plain http to anything but this machine (loopback: a local proxy, a test server).
func CheckEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%q is not a URL such as https://myresource.cognitiveservices.azure.com/", endpoint)
	}
	if u.Scheme == "https" {
		return nil
	}
	ip := net.ParseIP(u.Hostname())
	if u.Scheme == "http" && (u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%q: the training key goes only over https (http only to this machine's loopback): use https://", endpoint)
}

// APIError is an answer of the Training API that refuses a call (a 4xx, or a 429 or 5xx
// after the last try): its HTTP status and the error code of its body
// ("BadRequestTrainingNotNeeded"), when it has one.
type APIError struct {
	Call   string // "POST projects/..."
	Status int
	Code   string
	Body   string // trimmed
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Call, http.StatusText(e.Status), e.Body)
}

func apiError(method, path string, status int, answer []byte) *APIError {
	var body struct {
		Code  string `json:"code"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(answer, &body) // a body that is not JSON has no code
	return &APIError{Call: method + " " + path, Status: status, Code: cmp.Or(body.Code, body.Error.Code), Body: trim(answer)}
}

func (t *Training) defaults() {
	if t.Client == nil {
		t.Client = &http.Client{Timeout: 60 * time.Second}
	}
	if !t.guarded { // the Training-Key header would follow a redirect anywhere
		c := *t.Client
		then := c.CheckRedirect
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("the Training API redirected to %s://%s: the key is not sent there; check %s", req.URL.Scheme, req.URL.Host, EnvEndpoint)
			}
			if then != nil {
				return then(req, via)
			}
			return nil
		}
		t.Client, t.guarded = &c, true
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
				return apiError(method, path, status, answer)
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
				d = min(time.Duration(s)*time.Second, t.MaxBackoff) // a day's Retry-After must not stall a command
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

// Get sends a GET of path (under /customvision/v3.3/training/) with query, and decodes the
// JSON answer into out, retrying as call does. A refusal is an *APIError.
func (t *Training) Get(ctx context.Context, path string, query url.Values, out any) error {
	return t.call(ctx, http.MethodGet, path, query, nil, out)
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

// NegativeTag is the data set folder of images that show none of the tags: the review
// queue's false detections (review.NegativeTag). A classification project takes them under
// its tag of type Negative; a detection project does not take them.
const NegativeTag = "Negative"

// TagIDs returns the project's tag ids by name, creating the tags in names it lacks.
// NegativeTag names the project's tag of type Negative, whatever it is called there; a
// project without one gets it created (a regular tag called NegativeTag, made by hand in the
// portal, is used as it is, with a warning).
func (t *Training) TagIDs(ctx context.Context, names []string) (map[string]string, error) {
	var tags []struct{ ID, Name, Type string }
	if err := t.call(ctx, http.MethodGet, "projects/"+url.PathEscape(t.Project)+"/tags", nil, nil, &tags); err != nil {
		return nil, err
	}
	ids, negative := map[string]string{}, ""
	for _, tg := range tags {
		ids[tg.Name] = tg.ID
		if tg.Type == "Negative" {
			negative = tg.ID
		}
	}
	for _, n := range names {
		if n == NegativeTag && negative != "" {
			ids[n] = negative
			continue
		}
		if id, ok := ids[n]; ok {
			if n == NegativeTag {
				t.Log.Warn("the training project's tag Negative is a regular tag, not Custom Vision's negative tag: false detections go up under it as a class of their own",
					"tag", n, "id", id)
			}
			continue
		}
		q := url.Values{"name": {n}}
		if n == NegativeTag {
			q.Set("type", "Negative")
		}
		var created struct{ ID, Name string }
		if err := t.call(ctx, http.MethodPost, "projects/"+url.PathEscape(t.Project)+"/tags", q, nil, &created); err != nil {
			return nil, fmt.Errorf("creating tag %q: %w", n, err)
		}
		t.Log.Info("created tag in the training project", "tag", n, "id", created.ID, "type", q.Get("type"))
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
	res, err := t.addImages(ctx, images)
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.Status
	}
	return out, err
}

// imageResult is the Training API's answer about one image: its status, and its id in the
// project when it is there (taken, or a duplicate of an image there).
type imageResult struct{ Status, ID string }

func (t *Training) addImages(ctx context.Context, images []ImageEntry) ([]imageResult, error) {
	if len(images) > MaxBatch {
		return nil, fmt.Errorf("%d images in one batch; the Training API takes %d", len(images), MaxBatch)
	}
	var summary struct {
		IsBatchSuccessful bool `json:"isBatchSuccessful"`
		Images            []struct {
			SourceURL string `json:"sourceUrl"`
			Status    string `json:"status"`
			Image     *struct {
				ID string `json:"id"`
			} `json:"image"`
		} `json:"images"`
	}
	if err := t.call(ctx, http.MethodPost, "projects/"+url.PathEscape(t.Project)+"/images/files", nil, map[string]any{"images": images}, &summary); err != nil {
		return nil, err
	}
	byName := map[string]imageResult{}
	for _, im := range summary.Images {
		r := imageResult{Status: im.Status}
		if im.Image != nil {
			r.ID = im.Image.ID
		}
		byName[im.SourceURL] = r
	}
	out := make([]imageResult, len(images))
	for i, im := range images {
		if r, ok := byName[im.Name]; ok {
			out[i] = r
		} else if summary.IsBatchSuccessful {
			out[i] = imageResult{Status: "OK"}
		} else {
			out[i] = imageResult{Status: "ErrorUnknown"}
		}
	}
	return out, nil
}

// imageRegion is a region to add to an image already in a detection project.
type imageRegion struct {
	ImageID string `json:"imageId"`
	Region
}

// addRegions adds up to MaxBatch regions to images already in the project (a region already
// there is taken as it is) and returns the images that had no room for some of them.
func (t *Training) addRegions(ctx context.Context, regions []imageRegion) (full map[string]bool, err error) {
	if len(regions) > MaxBatch {
		return nil, fmt.Errorf("%d regions in one batch; the Training API takes %d", len(regions), MaxBatch)
	}
	var summary struct {
		Exceeded []struct {
			ImageID string `json:"imageId"`
		} `json:"exceeded"`
	}
	if err := t.call(ctx, http.MethodPost, "projects/"+url.PathEscape(t.Project)+"/images/regions", nil, map[string]any{"regions": regions}, &summary); err != nil {
		return nil, err
	}
	full = map[string]bool{}
	for _, e := range summary.Exceeded {
		full[e.ImageID] = true
	}
	return full, nil
}

// The Training API's limits on one image (Custom Vision's limits and quotas): it refuses an
// image over MaxImageBytes, and a detection image with more than MaxRegions regions. Such
// images are not sent; they are recorded as refused, with the status the API would give.
const (
	MaxImageBytes = 6 << 20
	MaxRegions    = 300
)

// MaxBatchBytes bounds the image bytes of one batch, so that a batch of large frames stays a
// request of bounded size and memory: a batch ends at MaxBatch images or MaxBatchBytes,
// whichever comes first.
const MaxBatchBytes = 24 << 20

// Uploader sends a data set's tagged images to the project, in batches, once each.
//
// A classification project gets each tagged image (the crop) under its tag, and the images
// of the Negative folder under the project's negative tag. A detection project gets whole
// frames: each frame once, with every region marked on it by the samples that carry it (see
// frames), the parts a review's missed answer cut out of it included; a sample of a frame
// that is in the project already adds its region to that image. A detection project does
// not take negative images, nor samples without the whole frame or a box, which are counted
// in the Report and logged.
type Uploader struct {
	T   *Training
	Dir string
	// Progress, when set, hears how many images of an upload have been handed over, after
	// each batch: for a progress line on a terminal.
	Progress func(n, total int)

	mu        sync.Mutex
	done      map[string]bool
	inProject map[string]string // a frame sent -> its image id in the project
	detection *bool
}

// UploadFunc returns the upload of the data set in dir to t's project, for a button such as
// the station's: each call sends what was not sent yet (Uploader.Sync); calls wait for one
// another, and the upload log is read once.
func UploadFunc(t *Training, dir string) func(ctx context.Context) (sent, refused int, err error) {
	u := &Uploader{T: t, Dir: dir}
	return u.Sync
}

// Report is what an upload did.
type Report struct {
	// Sent and Refused count images: taken by the Training API (or frames already in the
	// project that took new regions, also counted in Regions), and refused by it (or not
	// sent, being over its limits). Each is recorded in UploadedFile and never sent again.
	Sent, Refused, Regions int
	// Samples left out, not recorded, so that they are counted again on the next upload:
	// Negative, false detections, which a detection project does not take; NoFrame and
	// NoRegion, samples without the whole frame or without a box, which a detection project
	// needs; Missing, samples whose image is no longer in the data set folder.
	Negative, NoFrame, NoRegion, Missing int
}

// Skipped is the number of samples left out.
func (r Report) Skipped() int { return r.Negative + r.NoFrame + r.NoRegion + r.Missing }

// uploaded is one line of UploadedFile.
type uploaded struct {
	SampleID string `json:"sampleId"`
	// Image is the name the sample went up under, when it is another sample's: a frame
	// carries the regions of every sample of it.
	Image  string    `json:"image,omitempty"`
	Status string    `json:"status"`
	At     time.Time `json:"at"`
	// ImageID is the image's id in a detection project, and Frame names its frame (by its
	// bytes, and by where it comes from), so that a sample of the frame answered later adds
	// its region to that image.
	ImageID string   `json:"imageId,omitempty"`
	Frame   []string `json:"frame,omitempty"`
}

// item is one image to upload: a crop with its tag, or a whole frame with its regions.
type item struct {
	name    string // in the batch: the first sample's id, .jpg
	file    string // relative to the data set
	size    int64
	members []string // the samples it carries, recorded when it is sent
	tag     string
	regions []dataset.Region
	keys    []string // the frame's names, for a detection project
	status  string   // set when it is not to be sent: over a limit of the Training API
	// imageID is the frame's id in the project: set when the frame went up before (only the
	// regions are sent), or when the API found the frame there already.
	imageID  string
	existing bool // the frame went up before: only its regions are sent
	final    string
}

// Sync uploads every tagged sample of the data set not uploaded yet (see Upload). It returns
// how many images were taken and how many refused.
func (u *Uploader) Sync(ctx context.Context) (sent, refused int, err error) {
	r, err := u.Upload(ctx)
	return r.Sent, r.Refused, err
}

// Upload uploads every tagged sample of the data set not uploaded yet, and records each in
// UploadedFile, so that a restart sends nothing twice. It reports the images taken and
// refused, and the samples it left out, which it also logs.
func (u *Uploader) Upload(ctx context.Context) (r Report, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.T.defaults()
	if u.done == nil {
		if u.done, u.inProject, err = readUploaded(u.Dir); err != nil {
			return r, err
		}
	}
	if u.detection == nil {
		det, err := u.T.ProjectKind(ctx)
		if err != nil {
			return r, err
		}
		u.detection = &det
	}
	entries, err := dataset.ReadIndex(u.Dir)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(u.Dir); serr != nil {
			return r, fmt.Errorf("data set %s: %w", u.Dir, serr)
		}
		entries = nil // nothing in it yet
	} else if err != nil {
		return r, fmt.Errorf("data set %s: %w", u.Dir, err)
	}
	var todo []*item
	if *u.detection {
		todo, r = u.frames(entries)
	} else {
		todo, r = u.crops(entries)
	}
	u.tellSkipped(r)
	if len(todo) == 0 {
		return r, nil
	}
	ids, err := u.T.TagIDs(ctx, tagNames(todo))
	if err != nil {
		return r, err
	}
	log, err := os.OpenFile(filepath.Join(u.Dir, UploadedFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return r, err
	}
	defer log.Close()
	for start := 0; start < len(todo); {
		batch := todo[start:batchEnd(todo, start)]
		images, sending, err := u.images(batch, ids)
		if err != nil {
			return r, err
		}
		if len(images) > 0 {
			results, err := u.T.addImages(ctx, images)
			if err != nil {
				return r, err
			}
			for i, it := range sending {
				it.final = results[i].Status
				if it.final == "OK" || it.final == "OKDuplicate" {
					it.imageID = results[i].ID
				}
			}
		}
		rerr := u.addRegions(ctx, batch, ids)
		s, f, g, err := u.record(log, batch)
		r.Sent, r.Refused, r.Regions = r.Sent+s, r.Refused+f, r.Regions+g
		if err = errors.Join(rerr, err); err != nil {
			return r, err
		}
		start += len(batch)
		if u.Progress != nil {
			u.Progress(start, len(todo))
		}
	}
	return r, log.Sync()
}

// tellSkipped logs the samples an upload left out, and why.
func (u *Uploader) tellSkipped(r Report) {
	if r.Negative > 0 {
		u.T.Log.Warn("false detections (the Negative folder) not uploaded: a detection project takes no negative images",
			"samples", r.Negative)
	}
	if r.NoFrame > 0 {
		u.T.Log.Warn("samples without the whole frame not uploaded: a detection project needs it; set samples.full_frame: true on the agents",
			"samples", r.NoFrame)
	}
	if r.NoRegion > 0 {
		u.T.Log.Warn("samples without a box on the frame not uploaded: a detection project needs the part's region",
			"samples", r.NoRegion)
	}
	if r.Missing > 0 {
		u.T.Log.Warn("samples whose image is no longer in the data set folder not uploaded", "samples", r.Missing, "data_set", u.Dir)
	}
}

// crops plans a classification project's images: each tagged sample's image, under its tag.
func (u *Uploader) crops(entries []dataset.Entry) (todo []*item, r Report) {
	for _, e := range entries {
		if e.Tag == "" || u.done[e.SampleID] {
			continue
		}
		st, err := os.Stat(filepath.Join(u.Dir, filepath.FromSlash(e.File)))
		if err != nil || e.File == "" {
			r.Missing++
			continue
		}
		it := &item{name: e.SampleID + ".jpg", file: e.File, size: st.Size(), members: []string{e.SampleID}, tag: e.Tag}
		if it.size > MaxImageBytes {
			it.status = "ErrorImageSize"
		}
		todo = append(todo, it)
	}
	return todo, r
}

// frames plans a detection project's images: each whole frame once, with the union of the
// regions of the samples that carry it (the same file, the same bytes, or the same
// prediction of an agent's camera, whose copies may differ in size). A sample without
// a frame whose box another sample of the same frame marks with all the others (a review's
// missed answer carries the frame and every box on its first entry) goes up with that frame.
func (u *Uploader) frames(entries []dataset.Entry) (todo []*item, r Report) {
	// the samples that mark every part on their frame, by the frame they come from
	marking := map[string][]*dataset.Entry{}
	for i := range entries {
		if e := &entries[i]; len(e.Regions) > 0 && e.FrameFile != "" {
			marking[frameKey(e)] = append(marking[frameKey(e)], e)
		}
	}
	byFrame := map[string]*item{} // by the frame's bytes, and by where it comes from
	bySample := map[string]*item{}
	var markers []string
	parts := map[string][]string{} // a marking sample -> the samples of parts it marks
	for i := range entries {
		e := &entries[i]
		if e.Tag == "" || u.done[e.SampleID] {
			continue
		}
		if e.Tag == NegativeTag {
			r.Negative++
			continue
		}
		if e.FrameFile == "" {
			if e.Region == nil && len(e.Regions) == 0 { // a whole frame of a classifier: no box
				r.NoRegion++
			} else if m := markedBy(marking[frameKey(e)], e); m != nil {
				if parts[m.SampleID] == nil {
					markers = append(markers, m.SampleID)
				}
				parts[m.SampleID] = append(parts[m.SampleID], e.SampleID)
			} else {
				r.NoFrame++
			}
			continue
		}
		regions := e.Regions
		if len(regions) == 0 && e.Region != nil {
			regions = []dataset.Region{{Tag: boxTag(e), Box: *e.Region}}
		}
		if regions = clampRegions(regions); len(regions) == 0 {
			r.NoRegion++
			continue
		}
		sum, size, err := frameHash(filepath.Join(u.Dir, filepath.FromSlash(e.FrameFile)))
		if err != nil {
			r.Missing++
			continue
		}
		frame := "" // the same prediction, or the same moment of a camera: the same frame
		if e.PredictionID != "" || !e.Captured.IsZero() {
			frame = "frame:" + frameKey(e)
		}
		it := byFrame[sum]
		if it == nil && frame != "" {
			it = byFrame[frame]
		}
		if it == nil {
			it = &item{name: e.SampleID + ".jpg", file: e.FrameFile, size: size}
			for _, k := range []string{sum, frame} {
				if id := u.inProject[k]; k != "" && id != "" && it.imageID == "" {
					it.imageID, it.existing = id, true // up already: add the regions
				}
			}
			todo = append(todo, it)
		}
		for _, k := range []string{sum, frame} {
			if k != "" && byFrame[k] == nil {
				byFrame[k] = it
				it.keys = append(it.keys, k)
			}
		}
		it.members = append(it.members, e.SampleID)
		it.regions = unionRegions(it.regions, regions)
		bySample[e.SampleID] = it
	}
	for _, m := range markers {
		switch it := bySample[m]; {
		case it != nil:
			it.members = append(it.members, parts[m]...)
		case u.done[m]: // went up with its frame already
		default: // its frame does not go up
			r.Missing += len(parts[m])
		}
	}
	for _, it := range todo {
		switch {
		case it.existing:
		case it.size > MaxImageBytes:
			it.status = "ErrorImageSize"
		case len(it.regions) > MaxRegions:
			it.status = "ErrorRegionLimitExceed"
		}
	}
	return todo, r
}

// frameKey names the frame a sample comes from.
func frameKey(e *dataset.Entry) string {
	return e.Agent + "\x00" + e.Camera + "\x00" + e.Captured.UTC().Format(time.RFC3339Nano) + "\x00" + e.PredictionID
}

// boxTag is the tag a detection project gets for e's box. A detection project trains the
// detector: where a classifier named e's tag (the detector found a "part", the classifier
// called it "brass"), the box takes the detector's own tag; else (a detector alone) e's tag,
// which the operator may have corrected.
func boxTag(e *dataset.Entry) string {
	if e.Prediction != nil && e.Prediction.TagName != "" {
		for _, m := range e.Models {
			if m.Stage != "detector" {
				return e.Prediction.TagName
			}
		}
	}
	return e.Tag
}

// markedBy is the sample of marking whose regions hold e's box with e's tag, or nil.
func markedBy(marking []*dataset.Entry, e *dataset.Entry) *dataset.Entry {
	if e.Region == nil {
		return nil
	}
	for _, m := range marking {
		for _, r := range m.Regions {
			if sameRegion(r, dataset.Region{Tag: e.Tag, Box: *e.Region}) {
				return m
			}
		}
	}
	return nil
}

func sameRegion(a, b dataset.Region) bool {
	const eps = 1e-6
	near := func(x, y float32) bool { return x-y < eps && y-x < eps }
	return a.Tag == b.Tag && near(a.Left, b.Left) && near(a.Top, b.Top) && near(a.Width, b.Width) && near(a.Height, b.Height)
}

// unionRegions adds to rs the regions of add it does not have.
func unionRegions(rs, add []dataset.Region) []dataset.Region {
	for _, a := range add {
		if !slices.ContainsFunc(rs, func(r dataset.Region) bool { return sameRegion(r, a) }) {
			rs = append(rs, a)
		}
	}
	return rs
}

// clampRegions keeps the regions inside the frame, as the Training API takes them; a region
// with nothing inside is dropped.
func clampRegions(rs []dataset.Region) []dataset.Region {
	out := make([]dataset.Region, 0, len(rs))
	for _, r := range rs {
		if r.Left < 0 {
			r.Left, r.Width = 0, r.Width+r.Left
		}
		if r.Top < 0 {
			r.Top, r.Height = 0, r.Height+r.Top
		}
		r.Width, r.Height = min(r.Width, 1-r.Left), min(r.Height, 1-r.Top)
		if r.Tag == "" || !(r.Width > 0 && r.Height > 0) { // also NaN
			continue
		}
		out = append(out, r)
	}
	return out
}

// frameHash names a frame by its bytes, so that copies of a frame go up once; a frame over
// the Training API's size limit is named by its path (it is not sent).
func frameHash(path string) (key string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if st.Size() > MaxImageBytes {
		return "path:" + path, st.Size(), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), st.Size(), nil
}

// tagNames are the tags the items name, in order.
func tagNames(items []*item) []string {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, it := range items {
		if it.status != "" {
			continue
		}
		if it.tag != "" {
			add(it.tag)
		}
		for _, r := range it.regions {
			add(r.Tag)
		}
	}
	return names
}

// batchEnd is where the batch starting at start ends: at MaxBatch images or MaxBatchBytes,
// with at least one item.
func batchEnd(items []*item, start int) int {
	n, bytes := 0, int64(0)
	end := start
	for ; end < len(items); end++ {
		it := items[end]
		if it.status == "" && !it.existing {
			if n == MaxBatch || (n > 0 && bytes+it.size > MaxBatchBytes) {
				break
			}
			n, bytes = n+1, bytes+it.size
		}
	}
	return end
}

// images reads the batch's images to send, with their tag (a classification project) or
// their tagged regions on the whole frame (a detection project), and says whose they are.
func (u *Uploader) images(batch []*item, ids map[string]string) (images []ImageEntry, sending []*item, err error) {
	for _, it := range batch {
		if it.status != "" || it.existing {
			continue
		}
		im := ImageEntry{Name: it.name}
		if it.tag != "" {
			im.TagIDs = []string{ids[it.tag]}
		}
		for _, r := range it.regions {
			im.Regions = append(im.Regions, Region{TagID: ids[r.Tag], Left: r.Left, Top: r.Top, Width: r.Width, Height: r.Height})
		}
		if im.Contents, err = os.ReadFile(filepath.Join(u.Dir, filepath.FromSlash(it.file))); err != nil {
			return nil, nil, fmt.Errorf("data set %s: %w", u.Dir, err)
		}
		images = append(images, im)
		sending = append(sending, it)
	}
	return images, sending, nil
}

// addRegions adds the regions of the batch's frames that are in the project already to
// their images: frames that went up before, and frames the API found there (a duplicate
// keeps the regions the image had, so they are added). A frame already in the project whose
// image has no room for them is refused.
func (u *Uploader) addRegions(ctx context.Context, batch []*item, ids map[string]string) error {
	var add []imageRegion
	var to []*item
	for _, it := range batch {
		if it.status != "" || len(it.regions) == 0 || !(it.existing || it.final == "OKDuplicate" && it.imageID != "") {
			continue
		}
		to = append(to, it)
		for _, r := range it.regions {
			add = append(add, imageRegion{ImageID: it.imageID, Region: Region{TagID: ids[r.Tag], Left: r.Left, Top: r.Top, Width: r.Width, Height: r.Height}})
		}
	}
	full := map[string]bool{}
	for start := 0; start < len(add); start += MaxBatch {
		f, err := u.T.addRegions(ctx, add[start:min(start+MaxBatch, len(add))])
		if err != nil {
			for _, it := range to {
				it.final = "" // not known: not recorded, so the next upload tries again
			}
			return err
		}
		maps.Copy(full, f)
	}
	for _, it := range batch {
		switch {
		case it.existing && full[it.imageID]:
			it.final = "ErrorRegionLimitExceed"
		case it.existing:
			it.final = "OKRegions"
		case it.final == "OKDuplicate" && full[it.imageID]:
			u.T.Log.Warn("a frame the project had already has no room for more regions", "image", it.name, "id", it.imageID)
		}
	}
	return nil
}

// record notes each image's status in the upload log, for every sample it carries, so that
// none is sent again, and counts the images the Training API took and refused, and the
// frames already in the project that took new regions.
func (u *Uploader) record(log *os.File, batch []*item) (sent, refused, regions int, err error) {
	for _, it := range batch {
		st := it.final
		if it.status != "" {
			st = it.status
		}
		if st == "" {
			continue // not sent, or what became of it is not known
		}
		ok := st == "OK" || st == "OKDuplicate" || st == "OKRegions"
		for _, id := range it.members {
			l := uploaded{SampleID: id, Status: st, At: time.Now().UTC()}
			if id+".jpg" != it.name {
				l.Image = it.name
			}
			if ok && it.imageID != "" {
				l.ImageID, l.Frame = it.imageID, it.keys
			}
			line, _ := json.Marshal(l)
			if _, err := log.Write(append(line, '\n')); err != nil {
				return sent, refused, regions, err
			}
			u.done[id] = true
		}
		if ok && it.imageID != "" {
			for _, k := range it.keys {
				u.inProject[k] = it.imageID
			}
		}
		switch {
		case st == "OKRegions":
			sent++
			regions++
		case ok:
			sent++
		case it.status != "":
			refused++
			u.T.Log.Warn("image not sent: over the Training API's limits", "image", it.name, "file", it.file, "status", st,
				"bytes", it.size, "regions", len(it.regions))
		case it.existing:
			refused++
			u.T.Log.Warn("the Training API refused the regions of a frame it has", "image", it.name, "id", it.imageID, "status", st)
		default:
			refused++
			u.T.Log.Warn("the Training API refused an image", "image", it.name, "status", st)
		}
	}
	return sent, refused, regions, nil
}

// readUploaded reads the upload log: the samples sent, and the frames in the project.
func readUploaded(dir string) (done map[string]bool, frames map[string]string, err error) {
	done, frames = map[string]bool{}, map[string]string{}
	raw, err := os.ReadFile(filepath.Join(dir, UploadedFile))
	if errors.Is(err, os.ErrNotExist) {
		return done, frames, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		var u uploaded
		if json.Unmarshal(line, &u) == nil && u.SampleID != "" {
			done[u.SampleID] = true
			for _, k := range u.Frame {
				if u.ImageID != "" {
					frames[k] = u.ImageID
				}
			}
		}
	}
	return done, frames, nil
}

// StationUpload is the upload behind the operator station's Upload button: the data set in
// dir to the project the environment names (EnvEndpoint, EnvKey, EnvProject). With none of
// them set it returns nil (no button) and no error; with some, the error says what is
// missing.
func StationUpload(dir string, log *slog.Logger) (func(ctx context.Context) (sent, refused int, err error), error) {
	if os.Getenv(EnvEndpoint) == "" && os.Getenv(EnvKey) == "" && os.Getenv(EnvProject) == "" {
		return nil, nil
	}
	t, err := TrainingFromEnv(log.With("component", "upload"))
	if err != nil {
		return nil, fmt.Errorf("the review page's upload: %w", err)
	}
	return UploadFunc(t, dir), nil
}
