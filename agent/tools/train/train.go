// Package train is the engine of `cvedge train`, a desk tool: it trains a new iteration of
// a Custom Vision project through the Training API (collect.Training), waits for it,
// exports it as ONNX, downloads the export within the model store's bounds, and keeps it in
// the store as the model's shadow candidate, not active (iterations.Manager.AddCandidate).
// A running agent runs the candidate beside the active iteration from its next start or
// reload; promoting it stays a person's decision (`cvedge models activate`).
//
// The export's download URL is a SAS URL: its query string is a key. Nothing here logs it
// or puts it in an error; the store's downloader names it without its query.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/iterations"
	"github.com/cvedge/cvedge/models/store"
)

// Platform is the export platform the agent runs.
const Platform = "ONNX"

// The statuses of an iteration and of an export in the Training API.
const (
	StatusCompleted = "Completed"
	StatusFailed    = "Failed"
	ExportDone      = "Done"
	ExportFailed    = "Failed"
)

// Options say what to ship and how long to wait for it.
type Options struct {
	// Model is the model name in the store (as under models: in the config).
	Model string
	// Iteration, when set, is an existing iteration of the project to export and ship,
	// without training.
	Iteration string
	Train     collect.TrainOptions
	// Flavor is the ONNX export's flavor ("" for the default).
	Flavor string
	// Poll is the wait between two looks at the training or the export (default 10s).
	Poll time.Duration
	// TrainTimeout bounds the wait for the training, ExportTimeout that for the export
	// (defaults 2h and 30m).
	TrainTimeout, ExportTimeout time.Duration
	// AllowTagChange accepts a candidate whose tags differ from what serves now.
	AllowTagChange bool
	// Limits bound the download (store.*).
	Limits store.Limits
	// Client downloads the export (nil: store.Client with the system's CAs).
	Client *http.Client
}

// Result is what was shipped.
type Result struct {
	Iteration collect.Iteration
	Export    collect.Export
	Added     store.Iteration
}

// Shipper trains, exports and ships iterations of T's project into M's store.
type Shipper struct {
	T   *collect.Training
	M   *iterations.Manager
	Log *slog.Logger
	// Progress, when set, hears what is being waited for, after each look: for a line on a
	// terminal.
	Progress func(what string, since time.Duration)
}

func (s *Shipper) defaults(o *Options) {
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Poll <= 0 {
		o.Poll = 10 * time.Second
	}
	if o.TrainTimeout <= 0 {
		o.TrainTimeout = 2 * time.Hour
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = 30 * time.Minute
	}
	if o.Client == nil {
		o.Client = store.Client(nil, o.Limits.Timeout)
	}
}

// Ship trains a new iteration (or takes o.Iteration), waits for it, exports it, downloads
// the export and adds it to the store as the shadow candidate of o.Model. It stops when ctx
// ends. The result is filled as far as it got.
func (s *Shipper) Ship(ctx context.Context, o Options) (Result, error) {
	s.defaults(&o)
	var res Result
	if err := store.CheckModel(o.Model); err != nil {
		return res, err
	}
	var err error
	if o.Iteration == "" {
		if res.Iteration, err = s.T.Train(ctx, o.Train); err != nil {
			return res, err
		}
		s.Log.Info("training queued", "project", s.T.Project, "iteration", res.Iteration.ID, "name", res.Iteration.Name)
	} else if res.Iteration, err = s.T.Iteration(ctx, o.Iteration); err != nil {
		return res, err
	}
	if res.Iteration, err = s.waitTrained(ctx, res.Iteration, o); err != nil {
		return res, err
	}
	if !res.Iteration.Exportable || (len(res.Iteration.ExportableTo) > 0 && !slices.Contains(res.Iteration.ExportableTo, Platform)) {
		return res, fmt.Errorf("iteration %s (%s) is not exportable to %s (exportable: false): its project's domain is not a compact one; choose a \"(compact)\" domain in the project's settings in the portal, train again, and ship that iteration",
			res.Iteration.ID, res.Iteration.Name, Platform)
	}
	if res.Export, err = s.export(ctx, res.Iteration.ID, o); err != nil {
		return res, err
	}
	res.Added, err = s.add(ctx, res.Iteration, res.Export, o)
	return res, err
}

// waitTrained polls the iteration until its training completed or failed.
func (s *Shipper) waitTrained(ctx context.Context, it collect.Iteration, o Options) (collect.Iteration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.TrainTimeout)
	defer cancel()
	for {
		switch it.Status {
		case StatusCompleted:
			s.Log.Info("iteration trained", "iteration", it.ID, "name", it.Name, "took", time.Since(start).Round(time.Second))
			return it, nil
		case StatusFailed:
			return it, fmt.Errorf("the training of iteration %s (%s) failed: see the project's Performance page in the portal, fix the images or tags, and train again", it.ID, it.Name)
		}
		s.progress("training "+it.Name+": "+it.Status, time.Since(start))
		if err := sleep(ctx, o.Poll); err != nil {
			return it, s.waitErr(ctx, err, "training of iteration "+it.ID, o.TrainTimeout, "--train-timeout", it.ID)
		}
		next, err := s.T.Iteration(ctx, it.ID)
		if err != nil {
			return it, s.waitErr(ctx, err, "training of iteration "+it.ID, o.TrainTimeout, "--train-timeout", it.ID)
		}
		it = next
	}
}

// export asks for the ONNX export of iteration id (unless one is there or under way) and
// polls it until it is done.
func (s *Shipper) export(ctx context.Context, id string, o Options) (collect.Export, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.ExportTimeout)
	defer cancel()
	list, err := s.T.Exports(ctx, id)
	if err != nil {
		return collect.Export{}, err
	}
	e, found := s.pick(list, o.Flavor)
	if !found || e.Status == ExportFailed || (e.Status == ExportDone && e.NewerVersionAvailable) {
		if e, err = s.T.Export(ctx, id, Platform, o.Flavor); err != nil {
			return e, err
		}
		s.Log.Info("export requested", "iteration", id, "platform", Platform, "flavor", o.Flavor)
	}
	for {
		switch e.Status {
		case ExportDone:
			if e.DownloadURI == "" {
				return e, fmt.Errorf("the %s export of iteration %s is done but names no download URI: export it again", Platform, id)
			}
			s.Log.Info("export done", "iteration", id, "took", time.Since(start).Round(time.Second))
			return e, nil
		case ExportFailed:
			return e, fmt.Errorf("the %s export of iteration %s failed in Custom Vision: export it again (cvedge train --iteration %s), or from the portal's Performance page", Platform, id, id)
		}
		s.progress("exporting "+id+": "+e.Status, time.Since(start))
		if err := sleep(ctx, o.Poll); err != nil {
			return e, s.waitErr(ctx, err, "export of iteration "+id, o.ExportTimeout, "--export-timeout", id)
		}
		list, err := s.T.Exports(ctx, id)
		if err != nil {
			return e, s.waitErr(ctx, err, "export of iteration "+id, o.ExportTimeout, "--export-timeout", id)
		}
		var ok bool
		if e, ok = s.pick(list, o.Flavor); !ok {
			return e, fmt.Errorf("the %s export of iteration %s is no longer listed: export it again (cvedge train --iteration %s)", Platform, id, id)
		}
	}
}

// pick finds the ONNX export of flavor in list.
func (s *Shipper) pick(list []collect.Export, flavor string) (collect.Export, bool) {
	for _, e := range list {
		if e.Platform == Platform && e.Flavor == flavor {
			return e, true
		}
	}
	return collect.Export{}, false
}

// add downloads the export and keeps it in the store as the model's shadow candidate.
func (s *Shipper) add(ctx context.Context, it collect.Iteration, e collect.Export, o Options) (store.Iteration, error) {
	st := s.M.Store
	file, err := st.DownloadExport(ctx, o.Client, e.DownloadURI, o.Limits)
	if err != nil {
		return store.Iteration{}, fmt.Errorf("the export of iteration %s: %w", it.ID, err)
	}
	defer os.Remove(file)
	dir := file + ".d"
	defer os.RemoveAll(dir)
	if err := store.Unpack(ctx, file, dir, o.Limits); err != nil {
		return store.Iteration{}, fmt.Errorf("the export of iteration %s refused: %w", it.ID, err)
	}
	source := "customvision:" + s.T.Project + "/" + it.ID
	added, err := s.M.AddCandidate(o.Model, dir, source, o.AllowTagChange)
	if err != nil {
		return added, fmt.Errorf("the export of iteration %s: %w", it.ID, err)
	}
	s.Log.Info("candidate in the model store", "model", o.Model, "iteration", added.ID, "sha256", added.SHA256[:12])
	return added, nil
}

func (s *Shipper) progress(what string, since time.Duration) {
	if s.Progress != nil {
		s.Progress(what, since)
	}
}

// waitErr explains an error met while waiting for what: the wait's own timeout says how
// to wait longer or come back later.
func (s *Shipper) waitErr(ctx context.Context, err error, what string, limit time.Duration, flag, id string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the %s is not done after %v (%s): wait longer with a larger %s, or ship it later with --iteration %s", what, limit, flag, flag, id)
	}
	return err
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
