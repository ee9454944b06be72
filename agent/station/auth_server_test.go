package station

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/testenv"
	"github.com/cvedge/cvedge/configs"
)

// serveStation runs the agent's HTTP server (ops.Serve) with station s on cfg.
func serveStation(t *testing.T, cfg configs.HTTP, s *Station, log *authLog) *ops.Server {
	t.Helper()
	m := ops.NewMetrics(func() ops.Snapshot { return ops.Snapshot{} })
	srv, err := ops.Serve(cfg, m, func() []string { return nil }, s, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestStationRefusesOtherAddresses is the proof that a station reachable from other
// machines asks for a sign-in: the agent's HTTP server listens on a private address (in a
// network namespace of the test's own, on one end of a veth pair) and a client on the other
// end's address is sent to /login and refused by the API until it signs in; then it is
// served. /healthz stays open, as before.
func TestStationRefusesOtherAddresses(t *testing.T) {
	if !testenv.InOwnNetns(t) {
		return
	}
	for _, args := range [][]string{
		{"link", "add", "st0", "type", "veth", "peer", "name", "st1"},
		{"addr", "add", "10.77.0.1/24", "dev", "st0"},
		{"addr", "add", "10.77.0.2/24", "dev", "st1"},
		{"link", "set", "st0", "up"},
		{"link", "set", "st1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	listen := "10.77.0.1:0"
	if configs.LoopbackAddr(listen) {
		t.Fatalf("%s counts as loopback", listen)
	}
	s, log, _ := authStation(t, configs.UIAuth{Token: authTestToken, Users: []configs.UIUser{{Name: "ops", PasswordHash: authHash(t, authTestPassword)}}}, false)
	srv := serveStation(t, configs.HTTP{Listen: listen}, s, log)

	// the client's connections leave from 10.77.0.2: not loopback, not the server's address
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.77.0.2")}, Timeout: 5 * time.Second}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, Timeout: 10 * time.Second}
	b := newAuthClient(t, "http://"+srv.Addr(), client, nil)

	if resp, _ := b.do("GET", "/healthz", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET /healthz: %d", resp.StatusCode)
	}
	wantUnauthenticated(t, b, "from another address, before the sign-in")
	resp, body := b.do("GET", "/", nil, nil)
	if strings.Contains(body, "csrf-token") {
		t.Fatalf("the live page was served before the sign-in: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := b.signIn(url.Values{"user": {"ops"}, "password": {"guess"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d", resp.StatusCode)
	}
	if !strings.Contains(log.String(), "remote=10.77.0.2") {
		t.Fatalf("the server did not see the client's address 10.77.0.2:\n%s", log.String())
	}

	if resp, _ := b.signIn(url.Values{"user": {"ops"}, "password": {authTestPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right password: %d", resp.StatusCode)
	}
	if resp, body := b.do("GET", "/api/state", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, `"agents"`) {
		t.Fatalf("signed in, GET /api/state: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("GET", "/", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "csrf-token") {
		t.Fatalf("signed in, GET /: %d", resp.StatusCode)
	}
	script := newAuthClient(t, "http://"+srv.Addr(), client, nil)
	if resp, _ := script.do("GET", "/api/state", nil, map[string]string{"Authorization": "Bearer " + authTestToken}); resp.StatusCode != 200 {
		t.Fatalf("the bearer token: %d", resp.StatusCode)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key, and returns their
// paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cvedge station test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestStationOverHTTPS: with http.tls the station is served over https only: its cookies
// (the sign-in form's and the session's) are Secure, and a plain http request gets no page
// and no cookie.
func TestStationOverHTTPS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s, log, _ := authStation(t, configs.UIAuth{Token: authTestToken}, true)
	srv := serveStation(t, configs.HTTP{Listen: "127.0.0.1:0", TLS: configs.ServerTLS{CertFile: certFile, KeyFile: keyFile}}, s, log)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	b := newAuthClient(t, "https://"+srv.Addr(), client, nil)

	wantUnauthenticated(t, b, "over https, before the sign-in")
	resp, _ := b.do("GET", "/login", nil, nil)
	if c := cookieOf(resp, csrfCookie); c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("the sign-in form's cookie over https: %+v; want Secure, HttpOnly, SameSite=Strict", c)
	}
	resp, _ = b.signIn(url.Values{"token": {authTestToken}})
	c := cookieOf(resp, sessionCookie)
	if resp.StatusCode != http.StatusSeeOther || c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in over https: %d, session cookie %+v; want Secure, HttpOnly, SameSite=Strict", resp.StatusCode, c)
	}
	if resp, _ := b.do("GET", "/api/state", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("signed in over https, GET /api/state: %d", resp.StatusCode)
	}

	// plain http to the same port
	for _, path := range []string{"/", "/login", "/api/state"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+srv.Addr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+authTestToken)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || len(resp.Cookies()) > 0 || strings.Contains(string(body), "cvedge station") || strings.Contains(string(body), "agents") {
				t.Errorf("plain http GET %s was served: %d %v\n%s", path, resp.StatusCode, resp.Cookies(), body)
			}
		}
		cancel()
	}
}
