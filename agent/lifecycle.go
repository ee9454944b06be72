package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/store"
	"github.com/cvedge/cvedge/models"
)

// Activate loads iteration id of a model from the store, checks it (shapes, labels, a
// warm-up inference, the same job), records it as active and swaps it in between frames.
// If anything fails, the serving iteration keeps serving and the store is unchanged.
func (a *Agent) Activate(name, id string) (string, error) {
	a.lifecycle.Lock()
	defer a.lifecycle.Unlock()
	return a.activate(name, id, false)
}

// Rollback activates the iteration that was active before the current one.
func (a *Agent) Rollback(name string) (string, error) {
	a.lifecycle.Lock()
	defer a.lifecycle.Unlock()
	id, err := a.store.RollbackTarget(name)
	if err != nil {
		return "", err
	}
	return a.activate(name, id, true)
}

func (a *Agent) activate(name, id string, rollback bool) (string, error) {
	stage, ok := a.stageNamed(name)
	if !ok {
		return "", fmt.Errorf("model %q serves no camera on this agent (models: %v)", name, a.stageNames())
	}
	if err := store.CheckIteration(id); err != nil {
		return "", err
	}
	path, err := a.store.ExportPath(name, id)
	if err != nil {
		return "", err
	}
	mc := a.c().Models[name]
	mc.Path = path
	m, err := models.Load(a.rt, name, mc) // the warm-up runs here
	if err != nil {
		return "", fmt.Errorf("iteration %s refused, %s keeps serving: %w", id, stage.Ref().Iteration, err)
	}
	if m.Info.Format.IsDetector() != stage.Detector() {
		m.Close()
		return "", fmt.Errorf("iteration %s is a %s and cannot replace a %s; %s keeps serving", id, m.Info.Format, stage.Model().Info.Format, stage.Ref().Iteration)
	}
	old := stage.Ref().Iteration
	if rollback {
		_, err = a.store.Rollback(name)
	} else {
		_, err = a.store.Activate(name, id)
	}
	if err != nil {
		m.Close()
		return "", err
	}
	if err := stage.Swap(m); err != nil {
		m.Close()
		return "", err
	}
	a.log.Info("model iteration swapped", "model", name, "from", old, "to", m.Info.Iteration, "store_id", id)
	a.pub.Send(a.statusMessage("online", ""))
	return m.Info.Iteration, nil
}

// AddRemote downloads an export from an https URL, checks its SHA-256 and that it loads,
// keeps it in the store, and activates it when asked.
func (a *Agent) AddRemote(ctx context.Context, name, url, sha string, activate bool) (store.Iteration, error) {
	a.lifecycle.Lock()
	defer a.lifecycle.Unlock()
	if _, ok := a.stageNamed(name); !ok {
		return store.Iteration{}, fmt.Errorf("model %q serves no camera on this agent (models: %v)", name, a.stageNames())
	}
	client, err := a.downloadClient()
	if err != nil {
		return store.Iteration{}, err
	}
	file, err := a.store.Download(ctx, client, url, sha)
	if err != nil {
		return store.Iteration{}, err
	}
	defer os.Remove(file)
	it, err := a.store.Add(name, file, url, a.describe(name))
	if err != nil {
		return it, err
	}
	if activate {
		_, err = a.activate(name, it.ID, false)
	}
	return it, err
}

// describe returns the store's check: the export must load and run, as Load does.
func (a *Agent) describe(name string) func(string) (store.Described, error) {
	return func(path string) (store.Described, error) {
		mc := a.c().Models[name]
		mc.Path = path
		m, err := models.Load(a.rt, name, mc)
		if err != nil {
			return store.Described{}, err
		}
		defer m.Close()
		return store.Described{IterationID: m.Info.Iteration, SHA256: m.Info.SHA256}, nil
	}
}

// downloadClient trusts the system's CAs and store.ca_file.
func (a *Agent) downloadClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f := a.c().Store.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("store.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store.ca_file %s: no PEM certificate in it", f)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Minute}, nil
}

// lifecycleCommand runs activate, rollback and add for onCommand, off paho's goroutine.
func (a *Agent) lifecycleCommand(cmd payload.Command) {
	var (
		iteration string
		err       error
		detail    = map[string]string{"model": cmd.Model}
	)
	switch cmd.Command {
	case payload.CmdActivate:
		iteration, err = a.Activate(cmd.Model, cmd.Iteration)
	case payload.CmdRollback:
		iteration, err = a.Rollback(cmd.Model)
	case payload.CmdAdd:
		var it store.Iteration
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		it, err = a.AddRemote(ctx, cmd.Model, cmd.URL, cmd.SHA256, cmd.Activate)
		cancel()
		detail["storeId"] = it.ID
		if stage, ok := a.stageNamed(cmd.Model); ok && err == nil && cmd.Activate {
			iteration = stage.Ref().Iteration
		}
	}
	if iteration != "" {
		detail["iteration"] = iteration
	}
	if err != nil {
		a.log.Warn("model command failed", "command", cmd.Command, "model", cmd.Model, "err", err)
	}
	a.result(cmd.ID, cmd.Command, err, detail)
}
