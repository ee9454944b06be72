package pipeline

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"strings"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
)

// LLMRoute is the Stage of a model of type: llm that a route names. An LLM call takes
// seconds, so nothing is asked in the frame loop: each region routed to it gets a level with
// no predictions, which the llm step asks the LLM about in the background (once per part on
// a camera that tracks) and completes with a follow-up or the part's decision.
type LLMRoute struct {
	ref payload.ModelRef
}

// NewLLMRoute returns the stage of model entry name (type: llm) asked through deployment
// (llm.model; "" for an Azure deployment in the URL). Its iteration is the deployment, and
// its sha256 that of the prompt and tags, so that a change of either shows in the payloads.
func NewLLMRoute(name, deployment string, mc configs.Model) *LLMRoute {
	sum := sha256.Sum256([]byte(mc.Prompt + "\x00" + strings.Join(mc.Tags, "\x00")))
	return &LLMRoute{ref: payload.ModelRef{Name: name, Format: "llm", Iteration: cmp.Or(deployment, "llm"), SHA256: hex.EncodeToString(sum[:])}}
}

// Infer implements Stage: no predictions for any region.
func (s *LLMRoute) Infer(_ *camera.Frame, regions []image.Rectangle, _ *models.Results) (Inference, error) {
	return Inference{Preds: make([][]models.Prediction, len(regions)), Ref: s.ref}, nil
}

// Ref implements Stage.
func (s *LLMRoute) Ref() payload.ModelRef { return s.ref }

// Detector implements Stage: it names crops.
func (s *LLMRoute) Detector() bool { return false }
