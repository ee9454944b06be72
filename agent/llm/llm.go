// Package llm asks a multimodal model, through an OpenAI-compatible chat-completions
// endpoint (Azure OpenAI, OpenAI, or a local server such as Ollama or vLLM), which of a
// fixed list of tags an image shows. The answer must be strict JSON, {"tag", "reason"}, with
// a tag from the list; anything else is an error, so a loose answer never reaches the line.
//
// It is pure Go and knows nothing of MQTT or cameras.
package llm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors an Ask can end with, for the stats.
var (
	ErrInvalid    = errors.New("the answer is not the JSON object asked for")
	ErrOutsideTag = errors.New("the answer's tag is not one of the allowed tags")
)

// Client talks to one chat-completions endpoint.
type Client struct {
	// Endpoint is the full URL, e.g. https://<res>.openai.azure.com/openai/deployments/<d>/chat/completions?api-version=2024-06-01
	// or http://127.0.0.1:11434/v1/chat/completions (Ollama).
	Endpoint string
	// Model goes in the request body (OpenAI, Ollama, vLLM); Azure deployments ignore it.
	Model string
	// Key authenticates: sent as "Authorization: Bearer <key>", or in the header named by
	// KeyHeader ("api-key" for Azure OpenAI). Empty: no authentication.
	Key, KeyHeader string
	HTTP           *http.Client
}

// Answer is the model's decision.
type Answer struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
}

// Ask sends the prompt, the allowed tags and a JPEG, and returns the checked answer.
func (c *Client) Ask(ctx context.Context, prompt string, tags []string, jpeg []byte) (Answer, error) {
	system := strings.TrimSpace(prompt) + "\n\nAnswer with one JSON object and nothing else: " +
		`{"tag": "<one of the allowed tags>", "reason": "<one short sentence>"}` +
		". Allowed tags: " + strings.Join(tags, ", ") + "."
	body := map[string]any{
		"temperature":     0,
		"response_format": map[string]string{"type": "json_object"},
		"messages": []any{
			map[string]any{"role": "system", "content": system},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "Which tag does this image show? Allowed tags: " + strings.Join(tags, ", ") + "."},
				map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(jpeg)}},
			}},
		},
	}
	if c.Model != "" {
		body["model"] = c.Model
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return Answer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(raw))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Key != "" {
		if c.KeyHeader == "" || strings.EqualFold(c.KeyHeader, "Authorization") {
			req.Header.Set("Authorization", "Bearer "+c.Key)
		} else {
			req.Header.Set(c.KeyHeader, c.Key)
		}
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Answer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out[:min(len(out), 300)])))
	}
	var completion struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(out, &completion); err != nil || len(completion.Choices) == 0 {
		return Answer{}, fmt.Errorf("%w: not a chat completion", ErrInvalid)
	}
	return ParseAnswer(completion.Choices[0].Message.Content, tags)
}

// ParseAnswer reads the model's reply: exactly one JSON object with a string "tag" from tags
// (matched without regard to case, returned as listed) and a string "reason".
func ParseAnswer(content string, tags []string) (Answer, error) {
	dec := json.NewDecoder(strings.NewReader(strings.TrimSpace(content)))
	dec.DisallowUnknownFields()
	var a Answer
	if err := dec.Decode(&a); err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Answer{}, fmt.Errorf("%w: text after the object", ErrInvalid)
	}
	if a.Tag == "" {
		return Answer{}, fmt.Errorf("%w: no \"tag\"", ErrInvalid)
	}
	for _, t := range tags {
		if strings.EqualFold(t, strings.TrimSpace(a.Tag)) {
			a.Tag = t
			if len(a.Reason) > 1000 {
				a.Reason = a.Reason[:1000]
			}
			return a, nil
		}
	}
	return Answer{}, fmt.Errorf("%w: %q", ErrOutsideTag, a.Tag)
}
