// Package store keeps the iterations of each model on disk: a folder per model, a folder per
// iteration (the export as downloaded: a ZIP, or the files of a folder), and a state file
// that says which iteration is active and which were active before (for rollback).
//
// It checks that every name and path stays inside the store. It does not judge whether an
// export runs: the caller passes a check that loads it. It is pure Go.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

var (
	modelRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	iterRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// stateFile is the state of one model, in its folder.
const stateFile = "state.json"

// Iteration is one stored export of a model.
type Iteration struct {
	// ID names the iteration in the store: the Custom Vision iteration id from the manifest,
	// or sha-<first 12 hex digits of the SHA-256> without one.
	ID string `json:"id"`
	// SHA256 is that of the model file; Source where the export came from.
	SHA256 string    `json:"sha256"`
	Source string    `json:"source"`
	Added  time.Time `json:"added"`
	// Export is the export's path inside the model's folder (a ZIP or a folder).
	Export string `json:"export"`
}

// State is a model's iterations, the active one, and those active before it.
type State struct {
	Active     string      `json:"active"`
	History    []string    `json:"history"` // earlier active iterations, oldest first
	Iterations []Iteration `json:"iterations"`
	// Shadow is the iteration to run beside the active one as a candidate (set by `cvedge
	// train`), "" for none. The config's models.<name>.shadow, when set, goes first.
	Shadow string `json:"shadow,omitempty"`
}

// Find returns the iteration id.
func (s State) Find(id string) (Iteration, bool) {
	for _, it := range s.Iterations {
		if it.ID == id {
			return it, true
		}
	}
	return Iteration{}, false
}

// Store is a model store folder. It is safe for concurrent use within one process.
type Store struct {
	dir string
	mu  sync.Mutex
}

// Open opens (creating) the store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("model store %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Store{dir: abs}, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// CheckModel refuses a model name that cannot be a store folder.
func CheckModel(name string) error {
	if !modelRE.MatchString(name) {
		return fmt.Errorf("model name %q must be 1-64 lower-case letters, digits, - or _", name)
	}
	return nil
}

// CheckIteration refuses an iteration id that cannot be a store folder.
func CheckIteration(id string) error {
	if !iterRE.MatchString(id) {
		return fmt.Errorf("iteration %q must be 1-64 letters, digits, - or _ (see `cvedge models list`)", id)
	}
	return nil
}

// inside joins elem under the store and refuses anything that would leave it.
func (s *Store) inside(elem ...string) (string, error) {
	p := filepath.Join(append([]string{s.dir}, elem...)...)
	rel, err := filepath.Rel(s.dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("path %q leaves the model store", filepath.Join(elem...))
	}
	return p, nil
}

// Models lists the models that have a state.
func (s *Store) Models() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && modelRE.MatchString(e.Name()) {
			if _, err := os.Stat(filepath.Join(s.dir, e.Name(), stateFile)); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// State reads a model's state; a model never added has an empty state.
func (s *Store) State(model string) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(model)
}

func (s *Store) state(model string) (State, error) {
	if err := CheckModel(model); err != nil {
		return State{}, err
	}
	raw, err := os.ReadFile(filepath.Join(s.dir, model, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return State{}, fmt.Errorf("model store: %s is damaged (%v): restore it from a backup, or remove it; the agent then serves models.%s.path of its config, and `cvedge models add --model %s` keeps iterations again", filepath.Join(s.dir, model, stateFile), err, model, model)
	}
	return st, nil
}

func (s *Store) save(model string, st State) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return syncedWrite(filepath.Join(s.dir, model, stateFile), append(raw, '\n'))
}

// syncedWrite replaces path with data so that a power cut at any moment leaves the old file
// or the new one, whole: a temporary file, synced, renamed into place, and the folder
// synced. Without the syncs a file system may keep the rename and lose the data, leaving an
// empty state file after a power cut during an activate, and an agent that cannot start.
func syncedWrite(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ExportPath is where iteration id of model lies, checked to be inside the store.
func (s *Store) ExportPath(model, id string) (string, error) {
	if err := CheckModel(model); err != nil {
		return "", err
	}
	if err := CheckIteration(id); err != nil {
		return "", err
	}
	st, err := s.State(model)
	if err != nil {
		return "", err
	}
	it, ok := st.Find(id)
	if !ok {
		return "", fmt.Errorf("model %q has no iteration %q in the store (see `cvedge models list`)", model, id)
	}
	return s.inside(model, it.Export)
}

// Described is what the caller's check learned of an export.
type Described struct {
	// IterationID is the manifest's, "" without one; SHA256 that of the model file.
	IterationID, SHA256 string
}

// Add copies the export at src (a ZIP, an export folder, or a .onnx with labels.txt beside
// it) into the store as an iteration of model, after check accepted it. An iteration that is
// already there (same id) is not copied again. The first iteration of a model becomes
// active.
func (s *Store) Add(model, src, source string, check func(path string) (Described, error)) (Iteration, error) {
	return s.add(model, src, source, check, false)
}

// AddCandidate is Add for a candidate: the iteration is not made active, also as the
// model's first, and becomes the model's shadow (State.Shadow), in the same change of state.
func (s *Store) AddCandidate(model, src, source string, check func(path string) (Described, error)) (Iteration, error) {
	return s.add(model, src, source, check, true)
}

func (s *Store) add(model, src, source string, check func(path string) (Described, error), candidate bool) (Iteration, error) {
	if err := CheckModel(model); err != nil {
		return Iteration{}, err
	}
	d, err := check(src)
	if err != nil {
		return Iteration{}, err
	}
	id := d.IterationID
	if id == "" || !iterRE.MatchString(id) {
		id = "sha-" + d.SHA256[:12]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(model)
	if err != nil {
		return Iteration{}, err
	}
	if it, ok := st.Find(id); ok {
		if it.SHA256 != d.SHA256 {
			return Iteration{}, fmt.Errorf("model %q already has an iteration %q with another model file (SHA-256 %s): remove it first, or export again", model, id, it.SHA256[:12])
		}
		if candidate && st.Shadow != id && st.Active != id {
			st.Shadow = id
			return it, s.save(model, st)
		}
		return it, nil
	}
	dir, err := s.inside(model, "iterations", id)
	if err != nil {
		return Iteration{}, err
	}
	export, err := copyExport(src, dir)
	if err != nil {
		os.RemoveAll(dir)
		return Iteration{}, fmt.Errorf("copying %s into the model store: %w", src, err)
	}
	it := Iteration{ID: id, SHA256: d.SHA256, Source: source, Added: time.Now().UTC(), Export: filepath.ToSlash(filepath.Join("iterations", id, export))}
	st.Iterations = append(st.Iterations, it)
	switch {
	case candidate:
		st.Shadow = id
	case st.Active == "":
		st.Active = id
	}
	if err := s.save(model, st); err != nil {
		return Iteration{}, err
	}
	return it, nil
}

// copyExport copies a ZIP as export.zip, or the files of an export (a folder, or a .onnx
// with the files beside it) into dir; it returns the export's name inside dir ("" for the
// folder itself).
func copyExport(src, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	st, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if !st.IsDir() && strings.EqualFold(filepath.Ext(src), ".zip") {
		return "export.zip", copyFile(src, filepath.Join(dir, "export.zip"))
	}
	from, only := src, ""
	if !st.IsDir() {
		from, only = filepath.Dir(src), filepath.Base(src)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if only != "" && strings.EqualFold(filepath.Ext(name), ".onnx") && name != only {
			continue // another model beside a bare .onnx
		}
		if err := copyFile(filepath.Join(from, name), filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return only, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Activate makes iteration id of model the active one and records the one it replaces.
func (s *Store) Activate(model, id string) (State, error) {
	if err := CheckIteration(id); err != nil {
		return State{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(model)
	if err != nil {
		return st, err
	}
	if _, ok := st.Find(id); !ok {
		return st, fmt.Errorf("model %q has no iteration %q in the store (see `cvedge models list`)", model, id)
	}
	if st.Active == id {
		return st, nil
	}
	if st.Active != "" {
		st.History = append(st.History, st.Active)
	}
	st.Active = id
	if st.Shadow == id { // the candidate is promoted: it no longer runs beside itself
		st.Shadow = ""
	}
	return st, s.save(model, st)
}

// SetShadow makes iteration id of model its shadow candidate ("" for none); the active
// iteration cannot be its own candidate.
func (s *Store) SetShadow(model, id string) (State, error) {
	if id != "" {
		if err := CheckIteration(id); err != nil {
			return State{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(model)
	if err != nil {
		return st, err
	}
	if _, ok := st.Find(id); !ok && id != "" {
		return st, fmt.Errorf("model %q has no iteration %q in the store (see `cvedge models list`)", model, id)
	}
	if id != "" && id == st.Active {
		return st, fmt.Errorf("iteration %q is the active iteration of %q: a shadow runs a candidate beside it, not itself", id, model)
	}
	if st.Shadow == id {
		return st, nil
	}
	st.Shadow = id
	return st, s.save(model, st)
}

// summaryFile is, in a model's folder, the last shadow summary the agent kept.
const summaryFile = "shadow-summary.json"

// WriteShadowSummary keeps raw (JSON) as the shadow summary of model, replacing the one
// before.
func (s *Store) WriteShadowSummary(model string, raw []byte) error {
	if err := CheckModel(model); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.dir, model)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return syncedWrite(filepath.Join(dir, summaryFile), append(raw, '\n'))
}

// ShadowSummary returns the shadow summary of model the agent kept; an error that wraps
// os.ErrNotExist when there is none.
func (s *Store) ShadowSummary(model string) ([]byte, error) {
	if err := CheckModel(model); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(s.dir, model, summaryFile))
}

// RollbackTarget is the iteration a rollback of model would activate.
func (s *Store) RollbackTarget(model string) (string, error) {
	st, err := s.State(model)
	if err != nil {
		return "", err
	}
	if len(st.History) == 0 {
		return "", fmt.Errorf("model %q has no earlier active iteration to roll back to", model)
	}
	return st.History[len(st.History)-1], nil
}

// Rollback makes the previously active iteration of model active again.
func (s *Store) Rollback(model string) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(model)
	if err != nil {
		return st, err
	}
	if len(st.History) == 0 {
		return st, fmt.Errorf("model %q has no earlier active iteration to roll back to", model)
	}
	st.Active = st.History[len(st.History)-1]
	st.History = st.History[:len(st.History)-1]
	if st.Shadow == st.Active {
		st.Shadow = ""
	}
	return st, s.save(model, st)
}

// SHA256File returns the hex SHA-256 of a file.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
