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
	for _, s := range []string{`{"tag":"steel","reason":"x"}`, `{"tag":1}`, `{}`, `[`, `{"tag":"brass"}{}`} {
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
	a, err := c.Ask(context.Background(), "Tell steel from brass.", []string{"steel", "brass"}, []byte{0xFF, 0xD8, 0xFF})
	if err != nil || a.Tag != "brass" || a.Reason != "yellow shine" {
		t.Fatalf("%+v %v", a, err)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := (&Client{Endpoint: slow.URL}).Ask(ctx, "p", []string{"a"}, nil); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("timeout: %v", err)
	}
}
