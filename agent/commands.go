package agent

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
)

// commandState guards what commands may do: the signature check with its memory of the
// signatures seen, the one remote add at a time, and the context that shutdown cancels
// to end a remote add in flight.
type commandState struct {
	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc
	verifier *payload.Verifier
	keyOf    string // the commands.public_key, public_key_file and max_age the verifier was made for
	adding   string // the id of the remote add in flight, "" when none
	changes  int    // model changes and reloads queued or running
	// last is closed when the change queued last ends (nextTurn)
	last chan struct{}
}

// context is cancelled when the agent stops.
func (s *commandState) context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
	return s.ctx
}

// stop cancels the remote add in flight, if any.
func (s *commandState) stop() {
	s.context()
	s.cancel()
}

// startAdd claims the one remote add slot for id; it returns the id holding it otherwise.
func (s *commandState) startAdd(id string) (busy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adding != "" {
		return s.adding
	}
	s.adding = id
	return ""
}

// startChange counts one more model change or reload, unless max are queued or running
// already: then it returns false.
func (s *commandState) startChange(max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changes >= max {
		return false
	}
	s.changes++
	return true
}

// nextTurn returns what a change waits for before it runs (the end of the change queued
// before it) and what it closes when it ends, so that changes run in the order their
// commands came: activate 5, then activate 6, leaves 6 serving.
func (s *commandState) nextTurn() (prev <-chan struct{}, mine chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine = make(chan struct{})
	if s.last == nil {
		s.last = make(chan struct{})
		close(s.last)
	}
	prev, s.last = s.last, mine
	return prev, mine
}

func (s *commandState) doneChange() {
	s.mu.Lock()
	s.changes--
	s.mu.Unlock()
}

func (s *commandState) doneAdd() {
	s.mu.Lock()
	s.adding = ""
	s.mu.Unlock()
}

// verifierFor returns the signature check of the commands config c, kept across commands
// (and reloads that do not change the key) so that a replay is caught.
func (s *commandState) verifierFor(c configs.Commands) (*payload.Verifier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	of := fmt.Sprintf("%q %q %v", c.PublicKey, c.PublicKeyFile, c.MaxAge)
	if s.verifier != nil && s.keyOf == of {
		return s.verifier, nil
	}
	key, err := c.Key()
	if err != nil {
		return nil, err
	}
	var pub ed25519.PublicKey
	if key != nil {
		pub = key
	}
	s.verifier, s.keyOf = payload.NewVerifier(pub, c.MaxAge, time.Now), of
	return s.verifier, nil
}

// admit decides whether a parsed command may run here: it must be in commands.allow, and
// signed when commands.signed names it and a key is set. The error is the command's result.
func (a *Agent) admit(cmd payload.Command, signed *payload.SignedBody) error {
	c := a.c().Commands
	if !slices.Contains(c.Allow, cmd.Command) {
		return fmt.Errorf("command %s refused: this agent does not take it (add %s to commands.allow in its config to allow it)", cmd.Command, cmd.Command)
	}
	v, err := a.cmds.verifierFor(c)
	if err != nil {
		return fmt.Errorf("command %s refused: %w", cmd.Command, err)
	}
	return v.Check(cmd, signed, slices.Contains(c.Signed, cmd.Command))
}
