package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/cvedge/cvedge/agent/broker"
	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/agent/spool"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/camera"
	"github.com/cvedge/cvedge/configs"
)

// Run starts the spool, the broker (when embedded), the publisher, the HTTP server, the
// cameras and their pipelines, and runs until ctx ends. Then it shuts down in order and
// frees everything; the Agent cannot run again.
func (a *Agent) Run(ctx context.Context) error {
	defer a.Close()
	cfg := a.c()
	a.started = time.Now().UTC()
	if err := a.openSpool(); err != nil {
		return err
	}
	var embedded *broker.Broker
	if cfg.MQTT.Embedded.Enabled {
		b, err := broker.Start(cfg.MQTT.Embedded.Listen, quiet(a.log))
		switch {
		case errors.Is(err, broker.ErrAddressInUse) && cfg.MQTT.Embedded.AllowExisting:
			a.log.Warn("embedded broker not started: the address is taken, publishing to the broker already there",
				"address", cfg.MQTT.Embedded.Listen, "broker", configs.Redact(cfg.MQTT.Broker))
		case err != nil:
			return err
		default:
			embedded = b
			defer b.Close()
		}
	}
	if cfg.HTTP.Listen != "" {
		var ui http.Handler
		if cfg.UI.Enabled {
			upload, err := collect.StationUpload(cfg.UI.Review.Dataset, a.log)
			if err != nil {
				return err
			}
			st, err := station.New(station.Options{Config: cfg.UI, Secure: cfg.HTTP.TLS.CertFile != "", State: a.stationView, Live: a.live,
				Review: a.review, Feedback: a.sendFeedback, Upload: upload, Log: a.log})
			if err != nil {
				return err
			}
			ui = st
		}
		srv, err := ops.Serve(cfg.HTTP, a.metrics, a.readiness, ui, a.log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	defer func() { // an early return (one that failed to start, too); after a clean stop there is nothing left to end
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		a.stopIntegrations(ctx)
	}()
	if err := a.startIntegrations(cfg); err != nil {
		return err
	}
	pub, err := a.connect()
	if err != nil {
		return err
	}
	a.out.pub, a.env.Pub = pub, pub
	a.llm.Start()
	started := a.startLoops(a.runs)
	a.life.mu.Lock() // a reload command may come as soon as the publisher is connected
	a.life.loops = started
	a.life.mu.Unlock()

	stopBackground := a.background()
	a.log.Info("agent running", "agent", cfg.Agent.ID, "cameras", len(a.runsNow()), "topic_prefix", cfg.MQTT.TopicPrefix, "broker", configs.Redact(cfg.MQTT.Broker), "spool", cfg.Spool.Dir)
	<-ctx.Done()
	ops.NewNotifier().Send("STOPPING=1")
	a.log.Info("stopping: finishing in-flight frames and flushing MQTT")
	pub.StopHandling() // commands and corrections from now on wait at the broker for the next run
	a.life.mu.Lock()
	a.life.stopping = true
	a.life.mu.Unlock()
	a.cmds.stop()         // a remote add in flight ends now and answers "cancelled"
	a.life.running.Wait() // a reload or model change in progress finishes first
	a.life.loops.stop(a.runsNow(), nil)
	for _, r := range a.runsNow() { // the parts in view get their end events while MQTT is up
		r.close()
	}
	stopBackground()
	a.llm.Stop()
	ended, cancelEnd := context.WithTimeout(context.Background(), ShutdownTimeout)
	a.stopIntegrations(ended) // Sparkplug's DDEATHs and NDEATH, after the parts' last decisions
	cancelEnd()
	drain, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := pub.Close(drain, a.statusMessage("offline", "stopped")); err != nil {
		a.log.Warn("MQTT shutdown incomplete", "err", err)
	}
	// the embedded broker closes next: let it read the disconnect first (or it sends the last
	// will, "connection lost") and hand the "stopped" status to the dashboards
	if embedded != nil && !embedded.Settle(cfg.MQTT.ClientID, time.Second) {
		a.log.Warn("embedded broker closing with the agent's disconnect or messages to dashboards still in flight: they may see \"connection lost\" last")
	}
	st := pub.Stats()
	a.log.Info("stopped", "sent", st.Sent, "spooled", st.Spooled, "lost", st.Lost, "left_in_spool", a.out.spool.Len())
	return nil
}

// onConnect returns what goes out after every (re)connection: the retained status, and the
// retained part counts, which changes while the broker was away did not update.
func (a *Agent) onConnect() []publish.Message {
	out := []publish.Message{a.statusMessage("online", "")}
	out = append(out, a.discovery()...) // Home Assistant's, after the status its entities read
	for _, pc := range a.countsNow() {
		out = append(out, pc.Message())
	}
	return out
}

// connect starts the MQTT publisher, with the agent's last will, its status on each
// connection, and the subscriptions to commands and feedback.
func (a *Agent) connect() (*publish.Publisher, error) {
	cfg := a.c()
	will, _ := json.Marshal(payload.Status{Schema: payload.Schema, Agent: cfg.Agent.ID, State: "offline", Reason: "connection lost", Boot: a.boot, Updated: time.Now().UTC()})
	return publish.Connect(cfg.MQTT, publish.Options{
		Will:       &publish.Message{Topic: a.Topic("status"), QoS: 1, Retained: true, Payload: will},
		OnConnect:  a.onConnect,
		Spool:      a.out.spool,
		DeadLetter: a.out.dead,
		Subscriptions: map[string]func([]byte){
			a.Topic("commands"): a.onCommand,
			a.Topic("feedback"): a.onFeedback,
		},
		Busy:    a.onBusy,
		Observe: a.observePublish,
	}, a.log)
}

// background starts the stats loop, the systemd watchdog and the C heap's trim, tells
// systemd the agent is ready, and returns what stops them.
func (a *Agent) background() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { releaseMemory(ctx, ReleaseMemoryEvery) })
	if a.c().MQTT.StatsInterval > 0 {
		wg.Go(func() { a.statsLoop(ctx) })
	}
	notify := ops.NewNotifier()
	notify.Send("READY=1")
	if every := ops.WatchdogInterval(); every > 0 && notify != nil {
		wg.Go(func() { a.watchdog(ctx, notify, every) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// loops are the running camera goroutines of one set of runs.
type loops struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLoops starts the cameras not running yet, and each camera's loop.
func (a *Agent) startLoops(runs []*cameraRun) *loops {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loops{cancel: cancel}
	for _, r := range runs {
		if !r.camStarted {
			r.cam.OnStatus(func(camera.Status) { a.statusChanged(true) })
			// not under ctx: a camera that a reload keeps outlives these loops; Close stops it
			r.cam.Start(context.Background())
			r.camStarted = true
		}
		l.wg.Go(func() { a.loop(ctx, r) })
	}
	return l
}

// stop ends the loops, letting each finish its frame, and stops the cameras, except those in
// keep (taken over by a reload).
func (l *loops) stop(runs []*cameraRun, keep map[*camera.Camera]bool) {
	l.cancel()
	l.wg.Wait()
	for _, r := range runs {
		if !keep[r.cam] {
			r.cam.Close()
		}
	}
}

// openSpool opens the on-disk spool and counts what its bounds drop.
func (a *Agent) openSpool() error {
	c := a.c().Spool
	order := []string{spool.Samples, spool.Predictions}
	if c.DropFirst == spool.Predictions {
		order = []string{spool.Predictions, spool.Samples}
	}
	s, err := spool.Open(c.Dir, spool.Options{
		MaxBytes:  int64(c.MaxMB) << 20,
		MaxAge:    c.MaxAge,
		DropOrder: order,
		OnDrop: func(class, reason string) {
			if n := a.out.drops.Add(class + "/" + reason); n == 1 || n%100 == 0 {
				a.log.Warn("spool full or too old: message dropped", "class", class, "reason", reason, "dropped_total", n)
			}
		},
		OnRepair: func(msg string) { a.log.Warn("spool repaired after a crash", "detail", msg) },
	})
	if err != nil {
		return fmt.Errorf("spool.dir: %w (the agent must be able to write there)", err)
	}
	a.out.spool = s
	if a.out.dead, err = spool.OpenDeadLetter(filepath.Join(c.Dir, "deadletter"), int64(c.DeadLetterMB)<<20); err != nil {
		return fmt.Errorf("spool.dir: %w (the agent must be able to write there)", err)
	}
	if n := s.Len(); n > 0 {
		a.log.Info("spool holds messages from before; delivering them once connected", "messages", n, "bytes", s.Bytes())
	}
	return nil
}
