package collect

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzAPIError: any answer body of a refused call gives an error with its status, never a
// panic; a JSON body's code is found at the top or under "error".
func FuzzAPIError(f *testing.F) {
	for _, seed := range []string{
		`{"code":"BadRequestTrainingNotNeeded","message":"Nothing changed since last training"}`,
		`{"error":{"code":"BadRequestNotEnoughImagesPerTag","message":"Not enough images"}}`,
		`{"code":42}`, `<html>502 Bad Gateway</html>`, ``, `null`, `[]`, strings.Repeat("x", 1000),
	} {
		f.Add(400, []byte(seed))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := apiError("POST", "projects/p/train", status, body)
		if e.Status != status || len(e.Body) > 303 || e.Error() == "" {
			t.Fatalf("%+v", e)
		}
		var probe struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.Code != "" && e.Code != probe.Code {
			t.Fatalf("code %q, body says %q", e.Code, probe.Code)
		}
	})
}

// TestTrainRefusalCodes: the Training API's 400 answers with a code become errors that say
// what to do, and keep the APIError for a caller that looks at the code.
func TestTrainRefusalCodes(t *testing.T) {
	for code, want := range map[string]string{
		CodeTrainingNotNeeded: "nothing to train", CodeNotEnoughImages: "not enough tagged images", "BadRequestOther": "training project p: POST",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"code": code, "message": "refused"})
		}))
		tr := &Training{Endpoint: srv.URL, Key: "k", Project: "p", Backoff: time.Millisecond}
		_, err := tr.Train(context.Background(), TrainOptions{})
		srv.Close()
		var api *APIError
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &api) || api.Code != code {
			t.Errorf("%s: %v", code, err)
		}
	}
}
