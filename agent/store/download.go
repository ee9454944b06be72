package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// MaxDownload bounds a remote export.
const MaxDownload = 1 << 30

var shaRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Download fetches an export ZIP from an https URL into a temporary file in the store and
// checks its SHA-256 against want before anything uses it. The caller removes the file.
func (s *Store) Download(ctx context.Context, client *http.Client, rawURL, want string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("url %q: a remote add takes an https URL", rawURL)
	}
	want = strings.ToLower(want)
	if !shaRE.MatchString(want) {
		return "", errors.New(`"sha256" must be the 64 hex digits of the export's SHA-256 (sha256sum export.zip)`)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("downloading %s: %s", u.Redacted(), resp.Status)
	}
	tmpDir := filepath.Join(s.dir, ".downloads")
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(tmpDir, "export-*.zip")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, MaxDownload+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > MaxDownload {
		err = fmt.Errorf("larger than %d MiB", MaxDownload>>20)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("downloading %s: %w", u.Redacted(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(f.Name())
		return "", fmt.Errorf("downloaded export has SHA-256 %s, not %s: refused (wrong file, or it was changed on the way)", got, want)
	}
	return f.Name(), nil
}
