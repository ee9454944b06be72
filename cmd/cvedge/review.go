package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/agent/review"
	"github.com/cvedge/cvedge/agent/station"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/agent/tools/plant"
	"github.com/cvedge/cvedge/configs"
)

// reviewFlags are the settings of cvedge review.
type reviewFlags struct {
	config             string
	mqtt               configs.MQTT
	prefixes           []string
	listen             string
	reviewDir, dataset string
}

// reviewFlagKeys are the flags a config file replaces, with the key that says the same.
var reviewFlagKeys = map[string]string{
	"broker": "mqtt.broker", "client-id": "mqtt.client_id", "username": "mqtt.username", "password-file": "mqtt.password_file",
	"ca-file": "mqtt.tls.ca_file", "cert-file": "mqtt.tls.cert_file", "key-file": "mqtt.tls.key_file",
	"listen": "http.listen", "review-dir": "ui.review.dir", "dataset": "ui.review.dataset",
}

func reviewCmd(stdout, stderr io.Writer) *cobra.Command {
	rf := &reviewFlags{mqtt: configs.Default().MQTT}
	host, _ := os.Hostname()
	rf.mqtt.ClientID = "cvedge-review-" + host
	cmd := &cobra.Command{
		Use:   "review [--config FILE | --broker URL [flags]]",
		Short: "Serve the operator station for a whole plant: every agent's status, counts and decisions, and the review of their samples",
		Long: "Serve the operator station (docs/operator.md) without cameras or models, for a whole plant: it follows over MQTT the\n" +
			"retained status, stats, part counts and decisions of every agent whose topic prefix matches --prefix (default\n" +
			plant.DefaultPrefix + "), keeps their samples in a review queue, and sends an operator's corrections back to the agent\n" +
			"that made the prediction, on that agent's <prefix>/feedback. It never subscribes to the predictions.\n\n" +
			"With --config it reads a config file of the agent's format: mqtt (the broker, its login and TLS), http.listen and\n" +
			"http.tls, and ui (auth, review.dir, review.max_mb, review.max_age, review.dataset); the file needs no camera or model,\n" +
			"and CVEDGE_* environment variables override its keys.\n" +
			"Without it the flags say where the broker is and where to keep the queue; the station then listens on loopback only,\n" +
			"with no sign-in: a listen address other machines can reach needs a config file with ui.auth.\n" +
			"It runs until Ctrl-C (or SIGTERM), then disconnects and stops serving; a second Ctrl-C ends it at once.",
		Example: "  # the station on this machine for every agent on the plant broker: open http://127.0.0.1:9810\n" +
			"  cvedge review --broker tcp://broker.plant.local:1883 --review-dir ./review --dataset ./dataset\n\n" +
			"  # agents with ISA-95 prefixes (acme/plant1/line3/cell2), and those with the default one\n" +
			"  cvedge review --broker tcp://broker.plant.local:1883 --prefix 'acme/+/+/+' --prefix 'cvedge/+'\n\n" +
			"  # served to the plant's network, with sign-in and TLS, as set in a config file\n" +
			"  cvedge review --config /etc/cvedge/review.yaml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := plant.Filters(rf.prefixes)
			if err != nil {
				return usageErrorf("--prefix: %v", err)
			}
			cfg, err := rf.settings(cmd)
			if err != nil {
				return err
			}
			return serveReview(cfg, filters, stdout, newLogger(cfg.Agent, stderr))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&rf.config, "config", "c", "", "config file (YAML): its mqtt, http and ui sections, instead of the broker, login, TLS, listen and folder flags")
	f.StringArrayVar(&rf.prefixes, "prefix", []string{plant.DefaultPrefix}, "topic prefix pattern of the agents followed, + for a level (repeat for more)")
	brokerFlags(f, &rf.mqtt, "station")
	f.StringVar(&rf.listen, "listen", configs.Default().HTTP.Listen, "address the station listens on: loopback only, without --config")
	f.StringVar(&rf.reviewDir, "review-dir", "review", "folder of the samples waiting for review (created)")
	f.StringVar(&rf.dataset, "dataset", "dataset", "data set folder the answers are saved into (created; the layout of cvedge collect)")
	return cmd
}

// settings are the config the station runs with: the file's, or one made of the flags.
func (rf *reviewFlags) settings(cmd *cobra.Command) (*configs.Config, error) {
	if rf.config != "" {
		for _, name := range slices.Sorted(maps.Keys(reviewFlagKeys)) {
			if cmd.Flags().Changed(name) {
				return nil, usageErrorf("--%s: the config file says it (%s); give one or the other", name, reviewFlagKeys[name])
			}
		}
		cfg, err := configs.LoadStation(rf.config)
		if err != nil {
			return nil, err
		}
		if cfg.MQTT.ClientID == "cvedge-"+cfg.Agent.ID {
			// the default: the agent's own id; the station must not take the session of the
			// agent of the same file
			cfg.MQTT.ClientID = "cvedge-review-" + cfg.Agent.ID
		}
		return cfg, nil
	}
	switch {
	case rf.listen == "":
		return nil, usageErrorf("--listen: give host:port, e.g. 127.0.0.1:9810")
	case !configs.LoopbackAddr(rf.listen):
		return nil, usageErrorf("--listen %s can be reached from other machines, and the station would be open to them: listen on 127.0.0.1, or run with --config FILE whose ui.auth sets a token or users (docs/operator.md)", rf.listen)
	case rf.reviewDir == "" || rf.dataset == "":
		return nil, usageErrorf("--review-dir and --dataset: give the folders")
	}
	cfg := configs.Default()
	cfg.Agent.ID = "review"
	cfg.MQTT = rf.mqtt
	cfg.MQTT.TopicPrefix = "review" // the station publishes under the agents' prefixes only
	cfg.MQTT.Password = os.Getenv("CVEDGE_MQTT_PASSWORD")
	cfg.HTTP.Listen = rf.listen
	cfg.UI.Enabled = true
	cfg.UI.Review.Dir, cfg.UI.Review.Dataset = rf.reviewDir, rf.dataset
	flagOf := map[string]string{}
	for name, key := range reviewFlagKeys {
		flagOf[key] = "--" + name
	}
	var problems []error
	for _, p := range configs.ProblemsUnder(cfg.Validate(), "") {
		if name, ok := flagOf[p.Key]; ok {
			problems = append(problems, fmt.Errorf("%s: %w", name, p.Err))
		} else if strings.HasPrefix(p.Key, "mqtt.") || strings.HasPrefix(p.Key, "http.") || strings.HasPrefix(p.Key, "ui.") {
			problems = append(problems, p)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// serveReview runs the station until SIGINT or SIGTERM, then stops what it started and
// prints what it did. A second signal kills it.
func serveReview(cfg *configs.Config, filters []string, stdout io.Writer, log *slog.Logger) error {
	r := cfg.UI.Review
	ds, err := dataset.Open(r.Dataset)
	if err != nil {
		return fmt.Errorf("ui.review.dataset: %w", err)
	}
	defer ds.Close()
	q, err := review.Open(r.Dir, int64(r.MaxMB)<<20, r.MaxAge, ds)
	if err != nil {
		return err
	}
	p := plant.New(plant.Options{Queue: q, Log: log})
	upload, err := collect.StationUpload(cfg.UI.Review.Dataset, log)
	if err != nil {
		return err
	}
	st, err := station.New(station.Options{Config: cfg.UI, Secure: cfg.HTTP.TLS.CertFile != "", State: p.View, Review: q, Feedback: p.Feedback, Upload: upload, Log: log})
	if err != nil {
		return err
	}
	ctx, stop := collect.UntilSignal(context.Background()) // a second Ctrl-C ends the process
	defer stop()
	if err := p.Start(cfg.MQTT, filters); err != nil {
		return err
	}
	defer p.Close()
	ready := func() []string {
		if !p.Connected() {
			return []string{"not connected to the broker"}
		}
		return nil
	}
	srv, err := ops.Serve(cfg.HTTP, reviewMetrics(p, q), ready, st, log)
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	log.Info("operator station for the plant", "component", "review", "address", srv.Addr(), "broker", configs.Redact(cfg.MQTT.Broker),
		"filters", filters, "review_dir", abs(r.Dir), "dataset", abs(r.Dataset), "pending", q.Stats().Pending, "auth", cfg.UI.Auth.On())
	<-ctx.Done()
	log.Info("stopping", "component", "review")
	err = srv.Close()
	p.Close()
	c := p.Counters()
	fmt.Fprintf(stdout, "%d agents; %d messages taken, %d samples queued for review (%d pending), %d refused, %d over the bounds\n",
		p.Agents(), c.Taken, c.Queued, q.Stats().Pending, c.Bad, c.OverLimit)
	return err
}

// reviewMetrics are the station's metrics on /metrics: what it follows and what it did with
// the messages.
func reviewMetrics(p *plant.Plant, q *review.Queue) *ops.Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cvedge_review_agents", Help: "Agents the station follows."},
			func() float64 { return float64(p.Agents()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cvedge_review_connected", Help: "1 while the station is connected to the broker."},
			func() float64 { return oneIf(p.Connected()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cvedge_review_pending", Help: "Samples waiting for review."},
			func() float64 { return float64(q.Stats().Pending) }),
	)
	for result, get := range map[string]func(plant.Counters) uint64{
		"taken": func(c plant.Counters) uint64 { return c.Taken }, "queued": func(c plant.Counters) uint64 { return c.Queued },
		"duplicate": func(c plant.Counters) uint64 { return c.Duplicates }, "not_queued": func(c plant.Counters) uint64 { return c.NotQueued },
		"refused": func(c plant.Counters) uint64 { return c.Bad }, "over_limit": func(c plant.Counters) uint64 { return c.OverLimit },
		"ignored": func(c plant.Counters) uint64 { return c.Ignored },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cvedge_review_messages_total",
			Help: "Messages from the agents, by what the station did with them.", ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(get(p.Counters())) }))
	}
	return &ops.Metrics{Registry: reg}
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
