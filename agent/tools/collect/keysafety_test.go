package collect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestCheckEndpoint: the training key goes over https, or plain http to loopback only.
func TestCheckEndpoint(t *testing.T) {
	for endpoint, ok := range map[string]bool{
		"https://myres.cognitiveservices.azure.com/": true,
		"http://127.0.0.1:8080/":                     true,
		"http://[::1]:8080/":                         true,
		"http://localhost:8080/":                     true,
		"http://myres.cognitiveservices.azure.com/":  false,
		"http://10.0.0.5/":                           false,
		"ftp://myres/":                               false,
		"myres.cognitiveservices.azure.com":          false,
	} {
		if err := CheckEndpoint(endpoint); (err == nil) != ok {
			t.Errorf("CheckEndpoint(%q) = %v, want ok %v", endpoint, err, ok)
		}
	}
}

// TestKeyNotSentAcrossARedirect: an endpoint that redirects to another host does not get the
// Training-Key header sent there; a Retry-After of a day waits MaxBackoff at most.
func TestKeyNotSentAcrossARedirect(t *testing.T) {
	const key = "planted-training-key"
	got := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Training-Key")
		w.Write([]byte(`{}`))
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	tr := &Training{Endpoint: redirect.URL, Key: key, Project: "p", Attempts: 1}
	err := tr.Get(context.Background(), "projects/p/iterations", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "the key is not sent there") || strings.Contains(err.Error(), key) {
		t.Errorf("a redirect to another host: %v", err)
	}
	select {
	case k := <-got:
		t.Fatalf("the other host got a request, with key %q", k)
	default:
	}

	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "86400")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	tr = &Training{Endpoint: busy.URL, Key: key, Project: "p", Attempts: 2, MaxBackoff: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.Get(ctx, "projects/p/iterations", nil, nil); err == nil || ctx.Err() != nil {
		t.Errorf("a Retry-After of a day was waited out, not capped at MaxBackoff: %v", err)
	}
}
