package store

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// Limits bound a remote add: what is downloaded, what it unpacks to, and how long the
// server may stay silent. Zero values take the defaults of the config (store.*).
type Limits struct {
	// MaxDownload bounds the bytes of the ZIP (store.max_download_mb).
	MaxDownload int64
	// MaxUnpacked bounds the bytes of the unpacked export (store.max_unpacked_mb).
	MaxUnpacked int64
	// Timeout bounds connecting, the TLS handshake, the wait for the response and every
	// pause between two reads of the body (store.download_timeout).
	Timeout time.Duration
}

const (
	// MaxEntries bounds the files in an export ZIP; Custom Vision's have about ten.
	MaxEntries = 1000
	// MaxRatio bounds how much an entry of more than ratioFloor bytes may inflate: ONNX
	// weights hardly compress, a zip bomb inflates a thousandfold and more.
	MaxRatio   = 100
	ratioFloor = 1 << 20
)

var shaRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Client returns the HTTP client of remote adds: it trusts roots (nil: the system's CAs),
// gives up on a server silent for timeout at connect, handshake and response, and follows
// redirects only to https.
func Client(roots *x509.CertPool, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect from %s to %s refused: a remote add follows redirects only to https", Shown(via[len(via)-1].URL), Shown(req.URL))
		}
		if len(via) >= 10 {
			return errors.New("more than 10 redirects: give the export's final URL")
		}
		return nil
	}}
}

// Download fetches an export ZIP from an https URL into a temporary file in the store and
// checks its SHA-256 against want before anything uses it. It reads no more than
// lim.MaxDownload bytes and gives up when the server is silent for lim.Timeout or ctx ends.
// The caller removes the file.
func (s *Store) Download(ctx context.Context, client *http.Client, rawURL, want string, lim Limits) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("url %q: a remote add takes an https URL", ShownURL(rawURL))
	}
	want = strings.ToLower(want)
	if !shaRE.MatchString(want) {
		return "", errors.New(`"sha256" must be the 64 hex digits of the export's SHA-256 (sha256sum export.zip)`)
	}
	return s.download(ctx, client, u, want, lim)
}

// DownloadExport is Download for the downloadUri of a Custom Vision export: a SAS URL whose
// query string is a secret, and no SHA-256 to check (the caller checks the export by loading
// it). Errors name the URL without its query.
func (s *Store) DownloadExport(ctx context.Context, client *http.Client, rawURL string, lim Limits) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("export download URL %q is not an https URL: ask for the export again", ShownURL(rawURL))
	}
	return s.download(ctx, client, u, "", lim)
}

// Shown is u as errors and logs may show it: without user info, query and fragment (a SAS
// URL's query is its key).
func Shown(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment, c.RawFragment = nil, "", "", ""
	if u.RawQuery != "" {
		return c.String() + "?..."
	}
	return c.String()
}

// ShownURL is raw as errors, logs and the store's records may show it: Shown of it when it
// parses as a URL whose user info, if any, Go found; otherwise all from its "://" to its last
// '@' (a password with '#', '?' or '/' in it ends the host early), and its query and fragment,
// left out. A '@' in a query then hides the host too: the safe way to be wrong.
func ShownURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" && (u.User != nil || !strings.Contains(raw, "@")) {
		return Shown(u)
	}
	shown := raw
	if i := strings.LastIndex(shown, "@"); i >= 0 {
		scheme := ""
		if j := strings.Index(shown[:i], "://"); j >= 0 {
			scheme = shown[:j+3]
		}
		shown = scheme + "...@" + shown[i+1:]
	}
	if i := strings.IndexAny(shown, "?#"); i >= 0 {
		shown = shown[:i] + "?..."
	}
	return shown
}

// download fetches u (checking its SHA-256 against want, unless want is "").
func (s *Store) download(ctx context.Context, client *http.Client, u *url.URL, want string, lim Limits) (string, error) {
	rawURL := u.String()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			if eu, perr := url.Parse(ue.URL); perr == nil {
				ue.URL = Shown(eu) // the error would repeat the whole URL, query and all
			}
		}
		return "", fmt.Errorf("downloading %s: %w", Shown(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("downloading %s: %s", Shown(u), resp.Status)
	}
	if lim.MaxDownload > 0 && resp.ContentLength > lim.MaxDownload {
		return "", fmt.Errorf("downloading %s: the server announces %d MiB, more than store.max_download_mb (%d MiB): refused (raise it if the export is really that large)",
			Shown(u), resp.ContentLength>>20, lim.MaxDownload>>20)
	}
	tmpDir := filepath.Join(s.dir, ".downloads")
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(tmpDir, "export-*.zip")
	if err != nil {
		return "", err
	}
	body := io.Reader(resp.Body)
	var idle *idleReader
	if lim.Timeout > 0 {
		idle = newIdleReader(resp.Body, lim.Timeout, cancel)
		defer idle.stop()
		body = idle
	}
	if lim.MaxDownload > 0 {
		body = io.LimitReader(body, lim.MaxDownload+1)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil && idle != nil && idle.fired.Load():
		err = fmt.Errorf("the server sent nothing for %v (store.download_timeout): %w", lim.Timeout, err)
	case err == nil && lim.MaxDownload > 0 && n > lim.MaxDownload:
		err = fmt.Errorf("larger than store.max_download_mb (%d MiB): refused after reading that much (raise it if the export is really that large)", lim.MaxDownload>>20)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("downloading %s: %w", Shown(u), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		os.Remove(f.Name())
		return "", fmt.Errorf("downloaded export has SHA-256 %s, not %s: refused (wrong file, or it was changed on the way)", got, want)
	}
	return f.Name(), nil
}

// idleReader cancels the download when no Read returns for d.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelFunc) *idleReader {
	i := &idleReader{r: r, d: d}
	i.t = time.AfterFunc(d, func() {
		i.fired.Store(true)
		cancel()
	})
	return i
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.t.Reset(i.d)
	}
	return n, err
}

func (i *idleReader) stop() { i.t.Stop() }

// Unpack extracts the export files of the ZIP at zipPath into dir (created), streaming each
// to disk. It refuses a ZIP of more than MaxEntries entries, one whose files add up to more
// than lim.MaxUnpacked (as declared, and as actually inflated: headers can lie), and an entry
// that inflates more than MaxRatio times. Like the export reader, it takes the files at the
// top of the ZIP or one folder down, by their base names, and skips deeper folders (sample
// code). It stops when ctx ends. On error dir may hold part of the files; the caller
// removes it.
func Unpack(ctx context.Context, zipPath, dir string, lim Limits) error {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("not a readable ZIP: %w (download the export again)", err)
	}
	defer z.Close()
	if len(z.File) > MaxEntries {
		return fmt.Errorf("the ZIP has %d entries, more than %d: not a Custom Vision export", len(z.File), MaxEntries)
	}
	chosen := map[string]*zip.File{}
	for _, f := range z.File {
		if f.FileInfo().IsDir() {
			continue
		}
		name := strings.TrimPrefix(path.Clean("/"+f.Name), "/")
		if strings.Count(name, "/") > 1 || strings.ContainsRune(name, '\\') {
			continue
		}
		base := path.Base(name)
		if base == "." || base == ".." || base == "/" || base == "" {
			continue
		}
		if prev, ok := chosen[base]; ok && strings.Count(prev.Name, "/") <= strings.Count(f.Name, "/") {
			continue
		}
		chosen[base] = f
	}
	if len(chosen) == 0 {
		return errors.New("the ZIP is empty")
	}
	var declared uint64
	for base, f := range chosen {
		declared += f.UncompressedSize64
		if lim.MaxUnpacked > 0 && declared > uint64(lim.MaxUnpacked) {
			return fmt.Errorf("the export unpacks to more than store.max_unpacked_mb (%d MiB): refused (a zip bomb, or raise it)", lim.MaxUnpacked>>20)
		}
		if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64 > MaxRatio*max(f.CompressedSize64, 1) {
			return fmt.Errorf("%s in the ZIP inflates %d times: refused (a zip bomb, not a model)", base, f.UncompressedSize64/max(f.CompressedSize64, 1))
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	budget := lim.MaxUnpacked
	if budget <= 0 {
		budget = 1 << 62
	}
	for base, f := range chosen {
		n, err := unpackOne(ctx, f, filepath.Join(dir, base), budget)
		if err != nil {
			return fmt.Errorf("%s in the ZIP: %w", base, err)
		}
		budget -= n
	}
	return nil
}

// unpackOne writes entry f to dst, at most budget bytes and at most what its header
// declares, and returns the bytes written.
func unpackOne(ctx context.Context, f *zip.File, dst string, budget int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("%w (download the export again)", err)
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(ctxWriter{ctx, out}, io.LimitReader(rc, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return n, err
	case n > budget:
		return n, errors.New("the export unpacks to more than store.max_unpacked_mb: refused (a zip bomb, or raise it)")
	case uint64(n) != f.UncompressedSize64:
		return n, fmt.Errorf("inflates to %d bytes, its header says %d: refused (a damaged or forged ZIP)", n, f.UncompressedSize64)
	case n > ratioFloor && n > MaxRatio*int64(max(f.CompressedSize64, 1)):
		return n, errors.New("inflates more than 100 times: refused (a zip bomb, not a model)")
	}
	return n, nil
}

// ctxWriter stops a copy once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
