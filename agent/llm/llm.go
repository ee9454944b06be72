// Package llm asks a multimodal model, through an OpenAI-compatible chat-completions
// endpoint (Azure OpenAI, OpenAI, or a local server such as Ollama or vLLM), which of a
// fixed list of tags an image shows. The request asks for a structured output whose "tag" is
// an enum of the tags (response_format json_schema, strict) where the endpoint takes it, and
// a JSON object otherwise; either way the answer must be strict JSON, {"tag", "reason"}, with
// a tag from the list: anything else is an error, so a loose answer never reaches the line.
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
	"sync/atomic"
)

// The ways of asking for a structured answer (Client.Structured, config llm.structured).
const (
	// StructuredAuto sends json_schema, and json_object from then on once the endpoint
	// refuses json_schema (HTTP 400 naming response_format or json_schema).
	StructuredAuto = "auto"
	// StructuredSchema sends response_format json_schema: the tag is an enum of the tags.
	StructuredSchema = "json_schema"
	// StructuredObject sends response_format json_object (any JSON object).
	StructuredObject = "json_object"
	// StructuredOff sends no response_format (servers that refuse it); the prompt still
	// asks for the JSON object, and the answer is parsed as strictly.
	StructuredOff = "off"
)

// StructuredModes are the values of Client.Structured ("" is auto).
var StructuredModes = []string{StructuredAuto, StructuredSchema, StructuredObject, StructuredOff}

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
	// Structured is how the answer's form is asked for: one of StructuredModes ("": auto).
	Structured string

	noSchema atomic.Bool // auto: the endpoint refused json_schema once
}

// Usage is what one call cost, as the response's "usage" reports it (zero when it does not).
type Usage struct {
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
	TotalTokens      uint64 `json:"total_tokens"`
}

// answerSchema is the JSON schema of the answer: tag one of tags, and a reason.
func answerSchema(tags []string) map[string]any {
	return map[string]any{
		"name":   "cvedge_tag",
		"strict": true,
		"schema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"tag":    map[string]any{"type": "string", "enum": tags},
				"reason": map[string]any{"type": "string"},
			},
			"required":             []string{"tag", "reason"},
			"additionalProperties": false,
		},
	}
}

// Answer is the model's decision.
type Answer struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
}

// Ask sends the prompt, the allowed tags and a JPEG, and returns the checked answer with
// what the call cost (usage is returned whenever the endpoint reported it, even with an
// error about the answer). An error never contains the key.
func (c *Client) Ask(ctx context.Context, prompt string, tags []string, jpeg []byte) (Answer, Usage, error) {
	mode := c.Structured
	if mode == "" || mode == StructuredAuto {
		mode = StructuredSchema
		if c.noSchema.Load() {
			mode = StructuredObject
		}
	}
	a, u, status, err := c.ask(ctx, prompt, tags, jpeg, mode)
	if err != nil && status == http.StatusBadRequest && mode == StructuredSchema && (c.Structured == "" || c.Structured == StructuredAuto) &&
		(strings.Contains(err.Error(), "response_format") || strings.Contains(err.Error(), "json_schema")) {
		c.noSchema.Store(true) // this endpoint does not take a schema: ask for an object from now on
		a, u, _, err = c.ask(ctx, prompt, tags, jpeg, StructuredObject)
	}
	if err != nil && c.Key != "" {
		err = redacted{err, c.Key}
	}
	return a, u, err
}

// redacted is an error whose text has the key taken out (an endpoint may echo it).
type redacted struct {
	err error
	key string
}

func (r redacted) Error() string { return strings.ReplaceAll(r.err.Error(), r.key, "<key>") }
func (r redacted) Unwrap() error { return r.err }

// ask makes one call with response format mode, returning the HTTP status (0: none came).
func (c *Client) ask(ctx context.Context, prompt string, tags []string, jpeg []byte, mode string) (Answer, Usage, int, error) {
	system := strings.TrimSpace(prompt) + "\n\nAnswer with one JSON object and nothing else: " +
		`{"tag": "<one of the allowed tags>", "reason": "<one short sentence>"}` +
		". Allowed tags: " + strings.Join(tags, ", ") + "."
	body := map[string]any{
		"temperature": 0,
		"messages": []any{
			map[string]any{"role": "system", "content": system},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "Which tag does this image show? Allowed tags: " + strings.Join(tags, ", ") + "."},
				map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(jpeg)}},
			}},
		},
	}
	switch mode {
	case StructuredSchema:
		body["response_format"] = map[string]any{"type": "json_schema", "json_schema": answerSchema(tags)}
	case StructuredObject:
		body["response_format"] = map[string]string{"type": "json_object"}
	}
	if c.Model != "" {
		body["model"] = c.Model
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return Answer{}, Usage{}, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(raw))
	if err != nil {
		return Answer{}, Usage{}, 0, err
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
		return Answer{}, Usage{}, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Answer{}, Usage{}, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		body := string(out)
		if c.Key != "" { // before it is cut short: a key cut in two would not be found after
			body = strings.ReplaceAll(body, c.Key, "<key>")
		}
		return Answer{}, Usage{}, resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(body[:min(len(body), 300)]))
	}
	var completion struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage Usage `json:"usage"`
	}
	if err := json.Unmarshal(out, &completion); err != nil || len(completion.Choices) == 0 {
		return Answer{}, completion.Usage, resp.StatusCode, fmt.Errorf("%w: not a chat completion", ErrInvalid)
	}
	a, err := ParseAnswer(completion.Choices[0].Message.Content, tags)
	return a, completion.Usage, resp.StatusCode, err
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
