package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/configs"
	"github.com/cvedge/cvedge/models"
	"github.com/cvedge/cvedge/models/store"
)

// addTimeout bounds a whole remote add (download, unpacking, check), beside the silence
// bound of store.download_timeout.
const addTimeout = 15 * time.Minute

// Activate loads iteration id of a model from the store, checks it (shapes, labels, a
// warm-up inference, the same job, and the same tags unless allowTagChange), records it as
// active and swaps it in between frames. If anything fails, the serving iteration keeps
// serving and the store is unchanged.
func (a *Agent) Activate(name, id string, allowTagChange bool) (string, error) {
	a.life.change.Lock()
	defer a.life.change.Unlock()
	return a.activate(name, id, false, allowTagChange)
}

// Rollback activates the iteration that was active before the current one. Going back
// may change the tags back: a rollback is not held by the tag check, only by the job.
func (a *Agent) Rollback(name string) (string, error) {
	a.life.change.Lock()
	defer a.life.change.Unlock()
	id, err := a.store.RollbackTarget(name)
	if err != nil {
		return "", err
	}
	return a.activate(name, id, true, true)
}

func (a *Agent) activate(name, id string, rollback, allowTagChange bool) (string, error) {
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
	cur := stage.Model().Info
	m, err := models.LoadReplacement(a.rt, name, a.c().Models[name], path, &cur, allowTagChange) // the warm-up runs here
	if err != nil {
		return "", fmt.Errorf("iteration %s refused, %s keeps serving: %w", id, stage.Ref().Iteration, err)
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
	if sh := stage.ShadowStats(); sh != nil && sh.Iteration != "" && sh.Iteration == m.Info.Iteration {
		stage.SetShadow(nil, 0) // the candidate serves now: comparing it with itself tells nothing
		a.log.Info("shadow run ended: its candidate is active", "model", name, "iteration", m.Info.Iteration)
	}
	a.statusChanged(true)
	return m.Info.Iteration, nil
}

// AddRemote downloads an export from an https URL, checks its SHA-256, unpacks it within
// the store's bounds, checks that it loads, keeps it in the store, and activates it when
// asked (with the tag check of Activate). The download and unpacking hold no lock, so
// other commands, reloads and shutdown go on meanwhile; ctx ends them.
func (a *Agent) AddRemote(ctx context.Context, name, url, sha string, activate, allowTagChange bool) (store.Iteration, error) {
	if _, ok := a.stageNamed(name); !ok {
		return store.Iteration{}, fmt.Errorf("model %q serves no camera on this agent (models: %v)", name, a.stageNames())
	}
	sc := a.c().Store
	lim := store.Limits{MaxDownload: int64(sc.MaxDownloadMB) << 20, MaxUnpacked: int64(sc.MaxUnpackedMB) << 20, Timeout: sc.DownloadTimeout}
	client, err := a.downloadClient(lim.Timeout)
	if err != nil {
		return store.Iteration{}, err
	}
	file, err := a.store.Download(ctx, client, url, sha, lim)
	if err != nil {
		return store.Iteration{}, err
	}
	defer os.Remove(file)
	dir := file + ".d"
	defer os.RemoveAll(dir)
	if err := store.Unpack(ctx, file, dir, lim); err != nil {
		return store.Iteration{}, fmt.Errorf("export from %s refused: %w", store.ShownURL(url), err)
	}
	if err := ctx.Err(); err != nil {
		return store.Iteration{}, err
	}
	a.life.change.Lock()
	defer a.life.change.Unlock()
	if _, ok := a.stageNamed(name); !ok { // a reload may have taken it away meanwhile
		return store.Iteration{}, fmt.Errorf("model %q serves no camera on this agent (models: %v)", name, a.stageNames())
	}
	it, err := a.store.Add(name, dir, store.ShownURL(url), a.describe(name)) // a SAS URL's query is its key
	if err != nil {
		return it, err
	}
	if activate {
		_, err = a.activate(name, it.ID, false, allowTagChange)
	}
	return it, err
}

// describe returns the store's check: the export must load and run, as Load does.
func (a *Agent) describe(name string) func(string) (store.Described, error) {
	return func(path string) (store.Described, error) {
		m, err := models.LoadReplacement(a.rt, name, a.c().Models[name], path, nil, false)
		if err != nil {
			return store.Described{}, err
		}
		defer m.Close()
		return store.Described{IterationID: m.Info.Iteration, SHA256: m.Info.SHA256}, nil
	}
}

// downloadClient trusts the system's CAs and store.ca_file.
func (a *Agent) downloadClient(timeout time.Duration) (*http.Client, error) {
	var pool *x509.CertPool
	if f := a.c().Store.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("store.ca_file: %w", err)
		}
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store.ca_file %s: no PEM certificate in it", f)
		}
	}
	return store.Client(pool, timeout), nil
}

// lifecycleCommand runs activate, rollback and add for onCommand, off the goroutine that takes commands.
func (a *Agent) lifecycleCommand(cmd payload.Command) {
	var (
		iteration string
		err       error
		detail    = map[string]string{"model": cmd.Model}
	)
	switch cmd.Command {
	case payload.CmdActivate:
		iteration, err = a.Activate(cmd.Model, cmd.Iteration, cmd.AllowTagChange)
	case payload.CmdRollback:
		iteration, err = a.Rollback(cmd.Model)
	case payload.CmdAdd:
		var it store.Iteration
		ctx, cancel := context.WithTimeout(a.cmds.context(), addTimeout)
		it, err = a.AddRemote(ctx, cmd.Model, cmd.URL, cmd.SHA256, cmd.Activate, cmd.AllowTagChange)
		cancel()
		if errors.Is(err, context.Canceled) && a.cmds.context().Err() != nil {
			err = errors.New("cancelled: the agent is stopping; send the add again once it runs")
		}
		detail["storeId"] = it.ID
		if stage, ok := a.stageNamed(cmd.Model); ok && err == nil && cmd.Activate {
			iteration = stage.Ref().Iteration
		}
	}
	if iteration != "" {
		detail["iteration"] = iteration
	}
	if err != nil {
		a.log.Warn("model command failed", "command", cmd.Command, "model", cmd.Model, "err", configs.RedactError(err))
	}
	a.env.Result(cmd.ID, cmd.Command, err, detail)
}
