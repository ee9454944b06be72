package store

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// writeZip writes a ZIP of the given entries; a raw entry keeps its (possibly lying) header.
func writeZip(t *testing.T, entries func(zw *zip.Writer)) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "export.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	entries(zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// deflated returns n zero bytes, deflated, and their CRC-32.
func deflated(t *testing.T, n int) ([]byte, uint32) {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	crc := crc32.NewIEEE()
	for left := n; left > 0; left -= len(zeros) {
		chunk := zeros[:min(left, len(zeros))]
		fw.Write(chunk)
		crc.Write(chunk)
	}
	fw.Close()
	return buf.Bytes(), crc.Sum32()
}

// bomb is a ZIP whose model.onnx inflates to inflated bytes and whose header says declared.
func bomb(t *testing.T, inflated, declared int) string {
	raw, crc := deflated(t, inflated)
	return writeZip(t, func(zw *zip.Writer) {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "model.onnx", Method: zip.Deflate, CRC32: crc,
			CompressedSize64: uint64(len(raw)), UncompressedSize64: uint64(declared)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		w, _ = zw.Create("labels.txt")
		w.Write([]byte("a\nb\n"))
	})
}

// allocated returns the bytes the Go heap allocated while do ran.
func allocated(do func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	do()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestUnpackZipBomb: a 0.3 MB ZIP that inflates to 256 MiB is refused by the unpacked-size
// bound, by the ratio bound, and, when its header lies about the size, while inflating; in
// no case does the heap see more than a few MiB of it.
func TestUnpackZipBomb(t *testing.T) {
	const inflated = 256 << 20
	honest := bomb(t, inflated, inflated)
	liar := bomb(t, inflated, 1000)
	if st, _ := os.Stat(honest); st.Size() > 1<<20 {
		t.Fatalf("the bomb is %d bytes", st.Size())
	}
	cases := []struct {
		zip  string
		lim  Limits
		want string
	}{
		{honest, Limits{MaxUnpacked: 64 << 20}, "more than store.max_unpacked_mb (64 MiB)"},
		{honest, Limits{MaxUnpacked: 1 << 30}, "inflates 1"},
		{liar, Limits{MaxUnpacked: 64 << 20}, "model.onnx in the ZIP"},
	}
	for i, c := range cases {
		dir := filepath.Join(t.TempDir(), "out")
		var err error
		heap := allocated(func() { err = Unpack(context.Background(), c.zip, dir, c.lim) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: %v, want %q", i, err, c.want)
		}
		if heap > 16<<20 {
			t.Errorf("case %d: the heap took %d MiB for a refused ZIP", i, heap>>20)
		}
		if size := dirSize(t, dir); size > 64<<20+1 {
			t.Errorf("case %d: %d MiB written to disk", i, size>>20)
		}
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestUnpackStreams: a large export within the limits is written to disk, not held in
// memory; too many entries are refused; deeper folders (sample code) are skipped.
func TestUnpackStreams(t *testing.T) {
	const size = 48 << 20
	model := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(model)
	zipPath := writeZip(t, func(zw *zip.Writer) {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "export/model.onnx", Method: zip.Store})
		w.Write(model)
		w, _ = zw.Create("export/labels.txt")
		w.Write([]byte("a\nb\n"))
		w, _ = zw.Create("export/python/predict.py")
		w.Write([]byte("print()"))
	})
	model = nil
	dir := filepath.Join(t.TempDir(), "out")
	var err error
	heap := allocated(func() { err = Unpack(context.Background(), zipPath, dir, Limits{MaxUnpacked: 64 << 20}) })
	if err != nil {
		t.Fatal(err)
	}
	if heap > 8<<20 {
		t.Fatalf("unpacking %d MiB took %d MiB of heap: not streamed", size>>20, heap>>20)
	}
	if st, err := os.Stat(filepath.Join(dir, "model.onnx")); err != nil || st.Size() != size {
		t.Fatalf("model.onnx: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "predict.py")); err == nil {
		t.Fatal("a sample code file was unpacked")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Unpack(ctx, zipPath, filepath.Join(t.TempDir(), "c"), Limits{MaxUnpacked: 64 << 20}); !errors.Is(err, context.Canceled) {
		t.Fatalf("unpacking after shutdown: %v", err)
	}
	many := writeZip(t, func(zw *zip.Writer) {
		for i := 0; i <= MaxEntries; i++ {
			zw.Create(filepath.Join("x", strings.Repeat("a", 1+i%50), hex.EncodeToString([]byte{byte(i), byte(i >> 8)})))
		}
	})
	if err := Unpack(context.Background(), many, filepath.Join(t.TempDir(), "m"), Limits{}); err == nil || !strings.Contains(err.Error(), "entries, more than 1000") {
		t.Fatalf("many entries: %v", err)
	}
}

// TestDownloadLimit: the download stops after store.max_download_mb, whether or not the
// server announces the length (an endless body ends there too).
func TestDownloadLimit(t *testing.T) {
	body := make([]byte, 3<<20)
	sum := sha256.Sum256(body)
	for _, announce := range []bool{true, false} {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if announce {
				w.Write(body)
				return
			}
			for { // an endless body without Content-Length: only the limit ends it
				if _, err := w.Write(body); err != nil {
					return
				}
			}
		}))
		s, _ := Open(t.TempDir())
		_, err := s.Download(context.Background(), srv.Client(), srv.URL+"/x.zip", hex.EncodeToString(sum[:]), Limits{MaxDownload: 1 << 20})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "store.max_download_mb (1 MiB)") {
			t.Fatalf("announce %v: %v", announce, err)
		}
		if left, _ := filepath.Glob(filepath.Join(s.Dir(), ".downloads", "*")); len(left) != 0 {
			t.Fatalf("left behind: %v", left)
		}
	}
}

func trust(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// TestDownloadSilentServer: a server that accepts and never answers, and one that stops
// sending halfway, both fail after store.download_timeout, not after minutes.
func TestDownloadSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	stall := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(make([]byte, 10))
		w.(http.Flusher).Flush()
		<-stall
	}))
	defer srv.Close()
	defer close(stall)
	s, _ := Open(t.TempDir())
	lim := Limits{Timeout: 300 * time.Millisecond}
	client := Client(trust(srv), lim.Timeout)
	for url, want := range map[string]string{
		"https://" + ln.Addr().String() + "/x.zip": "TLS handshake timeout",
		srv.URL + "/x.zip":                         "the server sent nothing for 300ms (store.download_timeout)",
	} {
		done := make(chan error, 1)
		go func() {
			_, err := s.Download(context.Background(), client, url, strings.Repeat("0", 64), lim)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", url, err, want)
			}
		case <-time.After(30 * time.Second): // a deadline for a hang, not a speed assert
			t.Fatalf("%s: still waiting after 30 s with a 300 ms timeout", url)
		}
	}
	// a cancelled context ends the download too
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Download(ctx, Client(trust(srv), time.Hour), srv.URL+"/x.zip", strings.Repeat("0", 64), Limits{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestDownloadRedirect: https may redirect to https, never to plain http.
func TestDownloadRedirect(t *testing.T) {
	_, zipPath := export(t, "it-remote")
	body, _ := os.ReadFile(zipPath)
	sum := sha256.Sum256(body)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer plain.Close()
	var tlsSrv *httptest.Server
	tlsSrv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, plain.URL+"/x.zip", http.StatusFound)
		case "/to-https":
			http.Redirect(w, r, tlsSrv.URL+"/x.zip", http.StatusFound)
		default:
			w.Write(body)
		}
	}))
	defer tlsSrv.Close()
	s, _ := Open(t.TempDir())
	client := Client(trust(tlsSrv), 10*time.Second)
	if _, err := s.Download(context.Background(), client, tlsSrv.URL+"/to-https", hex.EncodeToString(sum[:]), Limits{}); err != nil {
		t.Fatalf("https to https: %v", err)
	}
	_, err := s.Download(context.Background(), client, tlsSrv.URL+"/to-http", hex.EncodeToString(sum[:]), Limits{})
	if err == nil || !strings.Contains(err.Error(), "to "+plain.URL+"/x.zip refused") {
		t.Fatalf("https to http: %v", err)
	}
}

// TestDownloadExportHidesTheSAS: the downloadUri of a Custom Vision export is a SAS URL whose
// query is a key. A refused answer, a dead server and a redirect to http name the URL
// without it; a good download needs no SHA-256.
func TestDownloadExportHidesTheSAS(t *testing.T) {
	const secret = "sig=planted-sas-secret"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.zip":
			w.Write([]byte("PK-ish"))
		case "/redirect.zip":
			http.Redirect(w, r, "http://127.0.0.1:1/plain.zip?"+secret, http.StatusFound)
		default:
			http.Error(w, "AuthenticationFailed", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	client := Client(pool, 5*time.Second)
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	for _, u := range []string{srv.URL + "/gone.zip?" + secret, srv.URL + "/redirect.zip?" + secret, deadURL + "/x.zip?" + secret, "ftp://host/x.zip?" + secret} {
		_, err := s.DownloadExport(context.Background(), client, u, Limits{Timeout: 5 * time.Second})
		if err == nil || strings.Contains(err.Error(), "planted") {
			t.Errorf("%s: %v", u, err)
		}
	}
	f, err := s.DownloadExport(context.Background(), client, srv.URL+"/ok.zip?"+secret, Limits{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f)
}

// TestShownURL: a URL as errors and records show it keeps its scheme, host and path, and
// loses its user info, query and fragment, whether it parses or not.
func TestShownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://acct.blob.core.windows.net/c/x.zip?sv=1&sig=planted": "https://acct.blob.core.windows.net/c/x.zip?...",
		"https://u:planted@host/x.zip":                                "https://host/x.zip",
		"https://u:planted@[::1/x.zip?sig=planted":                    "https://...@[::1/x.zip?...",
		"https://[::1/x.zip#planted":                                  "https://[::1/x.zip?...",
		"u:planted@host:1/x":                                          "...@host:1/x",
		"https://host/x.zip":                                          "https://host/x.zip",
		"https://u:pa#planted@host/x.zip":                             "https://...@host/x.zip",
		"https://u:12#planted@host/x.zip":                             "https://...@host/x.zip",
		"https://u:pa?planted@host/x.zip?sig=planted":                 "https://...@host/x.zip?...",
		"https://u:pa/planted@host/x.zip":                             "https://...@host/x.zip",
	} {
		if got := ShownURL(in); got != want || strings.Contains(got, "planted") {
			t.Errorf("ShownURL(%q) = %q, want %q", in, got, want)
		}
	}
	// Download refuses a URL that is no https one without quoting its key
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://host/x.zip?sig=planted", "https://u:planted@[::1/x.zip"} {
		if _, err := s.Download(context.Background(), http.DefaultClient, u, strings.Repeat("ab", 32), Limits{}); err == nil || strings.Contains(err.Error(), "planted") {
			t.Errorf("%s: %v", u, err)
		}
	}
}
