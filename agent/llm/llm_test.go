package llm

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

func TestParseAnswer(t *testing.T) {
	tags := []string{"steel", "brass"}
	cases := []struct {
		in   string
		tag  string
		want error
	}{
		{`{"tag":"steel","reason":"grey, matte"}`, "steel", nil},
		{` {"tag":"Brass","reason":"yellow"} `, "brass", nil},
		{`{"tag":"copper","reason":"red"}`, "", ErrOutsideTag},
		{"```json\n{\"tag\":\"steel\"}\n```", "", ErrInvalid},
		{`{"tag":"steel","reason":"x"} and more`, "", ErrInvalid},
		{`{"tag":"steel","confidence":0.9}`, "", ErrInvalid},
		{`{"reason":"no tag"}`, "", ErrInvalid},
		{`steel`, "", ErrInvalid},
	}
	for _, c := range cases {
		a, err := ParseAnswer(c.in, tags)
		if !errors.Is(err, c.want) || a.Tag != c.tag {
			t.Errorf("%q: %+v %v, want tag %q err %v", c.in, a, err, c.tag, c.want)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{`{"tag":"steel","reason":"x"}`, `{"tag":1}`, `{}`, `[`, `{"tag":"brass"}{}`,
		`{"tag":"steel","reason":"x","extra":1}`, `{"tag":"  BRASS ","reason":""}`, `{"tag":null,"reason":"x"}`, `{"tag":"steel","reason":["x"]}`,
		"{\"tag\":\"st\u0065el\"}", `"steel"`, `{"tag":"steel"} {"tag":"brass"}`, "\x00", `{"tag":"copper","reason":"not listed"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAnswer(s, []string{"steel", "brass"})
		if err == nil && a.Tag != "steel" && a.Tag != "brass" {
			t.Fatalf("accepted tag %q", a.Tag)
		}
	})
}

func TestAskSendsTheRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("api-key") != "k" || r.Header.Get("Authorization") != "" {
			t.Errorf("headers %v", r.Header)
		}
		var body struct {
			Model    string
			Messages []struct {
				Role    string
				Content json.RawMessage
			}
		}
		json.NewDecoder(r.Body).Decode(&body)
		raw := string(body.Messages[1].Content)
		if body.Model != "gpt-4o" || !strings.Contains(string(body.Messages[0].Content), "Allowed tags: steel, brass") || !strings.Contains(raw, "data:image/jpeg;base64,/9j/") {
			t.Errorf("request %+v", body)
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"content": `{"tag":"brass","reason":"yellow shine"}`}}}})
	}))
	defer srv.Close()
	c := &Client{Endpoint: srv.URL, Model: "gpt-4o", Key: "k", KeyHeader: "api-key"}
	a, _, err := c.Ask(context.Background(), "Tell steel from brass.", []string{"steel", "brass"}, []byte{0xFF, 0xD8, 0xFF})
	if err != nil || a.Tag != "brass" || a.Reason != "yellow shine" {
		t.Fatalf("%+v %v", a, err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := (&Client{Endpoint: slow.URL}).Ask(ctx, "p", []string{"a"}, nil); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("timeout: %v", err)
	}
}

// fakeLLM is an OpenAI-compatible endpoint on loopback: it records each request's body and
// answers with reply (status 200) and usage, or with status and a body when status is not 0.
type fakeLLM struct {
	bodies []map[string]any
	reply  func(body map[string]any) (status int, content string)
}

func (f *fakeLLM) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("request body: %v", err)
		}
		f.bodies = append(f.bodies, body)
		status, content := f.reply(body)
		if status != 0 && status != http.StatusOK {
			w.WriteHeader(status)
			w.Write([]byte(content))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"content": content}}},
			"usage": map[string]int{"prompt_tokens": 812, "completion_tokens": 14, "total_tokens": 826}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAskStructured: by default the request asks for a strict JSON schema whose tag is an
// enum of the tags, and the usage of the answer comes back.
func TestAskStructured(t *testing.T) {
	f := &fakeLLM{reply: func(map[string]any) (int, string) { return 0, `{"tag":"brass","reason":"yellow"}` }}
	srv := f.start(t)
	c := &Client{Endpoint: srv.URL, Model: "gpt-4o"}
	a, u, err := c.Ask(context.Background(), "p", []string{"steel", "brass"}, []byte{0xFF, 0xD8})
	if err != nil || a.Tag != "brass" || u != (Usage{812, 14, 826}) {
		t.Fatalf("%+v %+v %v", a, u, err)
	}
	rf, _ := json.Marshal(f.bodies[0]["response_format"])
	want := `{"json_schema":{"name":"cvedge_tag","schema":{"additionalProperties":false,"properties":{"reason":{"type":"string"},"tag":{"enum":["steel","brass"],"type":"string"}},"required":["tag","reason"],"type":"object"},"strict":true},"type":"json_schema"}`
	if string(rf) != want {
		t.Fatalf("response_format %s\nwant %s", rf, want)
	}
	for mode, want := range map[string]string{StructuredObject: `{"type":"json_object"}`, StructuredOff: `null`} {
		f.bodies = nil
		if _, _, err := (&Client{Endpoint: srv.URL, Structured: mode}).Ask(context.Background(), "p", []string{"brass"}, nil); err != nil {
			t.Fatal(mode, err)
		}
		if rf, _ := json.Marshal(f.bodies[0]["response_format"]); string(rf) != want {
			t.Errorf("%s: response_format %s, want %s", mode, rf, want)
		}
	}
}

// TestAskAutoFallsBack: an endpoint that refuses json_schema (400) is asked again, and from
// then on, for a JSON object; with json_schema forced, the refusal is the error.
func TestAskAutoFallsBack(t *testing.T) {
	f := &fakeLLM{reply: func(body map[string]any) (int, string) {
		if rf, _ := body["response_format"].(map[string]any); rf["type"] == "json_schema" {
			return http.StatusBadRequest, `{"error":{"message":"Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."}}`
		}
		return 0, `{"tag":"steel","reason":"grey"}`
	}}
	srv := f.start(t)
	c := &Client{Endpoint: srv.URL}
	for i := 0; i < 2; i++ {
		if a, _, err := c.Ask(context.Background(), "p", []string{"steel"}, nil); err != nil || a.Tag != "steel" {
			t.Fatalf("call %d: %+v %v", i, a, err)
		}
	}
	if len(f.bodies) != 3 { // schema refused, object; then object at once
		t.Fatalf("%d requests, want 3", len(f.bodies))
	}
	if _, _, err := (&Client{Endpoint: srv.URL, Structured: StructuredSchema}).Ask(context.Background(), "p", []string{"steel"}, nil); err == nil {
		t.Fatal("json_schema forced: the refusal went unnoticed")
	}
}

// TestAskKeyNotInErrors: an endpoint that echoes the key in its error does not put it in
// the error returned (which is logged).
func TestAskKeyNotInErrors(t *testing.T) {
	const key = "sk-PLANTED-4f1d9c"
	f := &fakeLLM{reply: func(map[string]any) (int, string) { return http.StatusUnauthorized, "bad key " + key }}
	srv := f.start(t)
	_, _, err := (&Client{Endpoint: srv.URL, Key: key}).Ask(context.Background(), "p", []string{"a"}, nil)
	if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("error %v", err)
	}
	// the key where the error's text is cut (300 characters): no part of it is left
	f.reply = func(map[string]any) (int, string) { return http.StatusUnauthorized, strings.Repeat("x", 290) + key }
	_, _, err = (&Client{Endpoint: srv.URL, Key: key}).Ask(context.Background(), "p", []string{"a"}, nil)
	if err == nil || strings.Contains(err.Error(), key[:10]) {
		t.Fatalf("a cut key is left in the error: %v", err)
	}
}
