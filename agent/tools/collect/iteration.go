package collect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Iteration is the Training API's description of a trained (or training) iteration.
type Iteration struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Status     string    `json:"status"` // Training, Completed, Failed
	Created    time.Time `json:"created"`
	DomainID   string    `json:"domainId"`
	Exportable bool      `json:"exportable"`
	// ExportableTo lists the platforms the iteration's domain exports to ("ONNX", ...).
	ExportableTo  []string `json:"exportableTo"`
	TrainingType  string   `json:"trainingType"`
	ReservedHours int      `json:"reservedBudgetInHours"`
}

// Export is the Training API's description of an export of an iteration. DownloadURI is a
// SAS URL: its query string is a secret and must not be logged.
type Export struct {
	Platform              string `json:"platform"`
	Status                string `json:"status"` // Exporting, Failed, Done
	DownloadURI           string `json:"downloadUri"`
	Flavor                string `json:"flavor"`
	NewerVersionAvailable bool   `json:"newerVersionAvailable"`
}

// TrainOptions are the optional query parameters of a training call.
type TrainOptions struct {
	// Type is "Regular" or "Advanced"; "" leaves the API's default (Regular).
	Type string
	// ReservedHours is the budget of an advanced training, in hours; 0 leaves it out.
	ReservedHours int
	// Force trains even when the API finds nothing changed since the last iteration.
	Force bool
}

// The Training API's error codes that a training call's refusal names.
const (
	CodeTrainingNotNeeded   = "BadRequestTrainingNotNeeded"
	CodeNotEnoughImages     = "BadRequestNotEnoughImagesPerTag"
	CodeNotEnoughImagesTags = "BadRequestNotEnoughImages"
)

// Train queues the training of a new iteration of the project and returns it (its status
// is Training). A refusal of the API is explained: nothing to train (add images, or force),
// too few images per tag.
func (t *Training) Train(ctx context.Context, o TrainOptions) (Iteration, error) {
	q := url.Values{}
	if o.Type != "" {
		q.Set("trainingType", o.Type)
	}
	if o.ReservedHours > 0 {
		q.Set("reservedBudgetInHours", strconv.Itoa(o.ReservedHours))
	}
	if o.Force {
		q.Set("forceTrain", "true")
	}
	var it Iteration
	err := t.call(ctx, http.MethodPost, "projects/"+url.PathEscape(t.Project)+"/train", q, nil, &it)
	var api *APIError
	if errors.As(err, &api) {
		switch api.Code {
		case CodeTrainingNotNeeded:
			return it, fmt.Errorf("project %s: nothing to train: no image or tag changed since the last iteration (add tagged images, give --force-train, or ship an existing one with --iteration ID): %w", t.Project, err)
		case CodeNotEnoughImages, CodeNotEnoughImagesTags:
			return it, fmt.Errorf("project %s: not enough tagged images to train (Custom Vision wants at least 5 per tag, and 2 tags for a classifier): tag more images, then train again: %w", t.Project, err)
		}
	}
	if err != nil {
		return it, fmt.Errorf("training project %s: %w", t.Project, err)
	}
	if it.ID == "" {
		return it, fmt.Errorf("training project %s: the answer names no iteration id", t.Project)
	}
	return it, nil
}

// Iteration reads iteration id of the project.
func (t *Training) Iteration(ctx context.Context, id string) (Iteration, error) {
	var it Iteration
	if err := t.call(ctx, http.MethodGet, t.IterationPath(id), nil, nil, &it); err != nil {
		return it, fmt.Errorf("iteration %s of project %s: %w", id, t.Project, err)
	}
	return it, nil
}

// Export asks for an export of iteration id to platform (with flavor, when not empty).
func (t *Training) Export(ctx context.Context, id, platform, flavor string) (Export, error) {
	q := url.Values{"platform": {platform}}
	if flavor != "" {
		q.Set("flavor", flavor)
	}
	var e Export
	if err := t.call(ctx, http.MethodPost, t.IterationPath(id)+"/export", q, nil, &e); err != nil {
		return e, fmt.Errorf("exporting iteration %s of project %s: %w", id, t.Project, err)
	}
	return e, nil
}

// Exports lists the exports of iteration id.
func (t *Training) Exports(ctx context.Context, id string) ([]Export, error) {
	var list []Export
	if err := t.call(ctx, http.MethodGet, t.IterationPath(id)+"/export", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("exports of iteration %s of project %s: %w", id, t.Project, err)
	}
	return list, nil
}

// IterationPath is the Training API path of iteration id of the project, under
// /customvision/v3.3/training/.
func (t *Training) IterationPath(id string) string {
	return "projects/" + url.PathEscape(t.Project) + "/iterations/" + url.PathEscape(id)
}
