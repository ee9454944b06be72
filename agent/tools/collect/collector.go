// Package collect is `cvedge collect`, the plant-side half of the improvement loop and a desk
// tool beside eval and bench: it subscribes to the samples that agents publish, writes them
// into a data set (agent/dataset: a folder per corrected tag, unreviewed/, an index), and can
// upload the corrected images to a Custom Vision training project.
//
// It owns the subscription and the calls to the training API. It reads samples as a plain
// MQTT client (its connection from agent/publish, the one transport) and must not touch the
// daemon, the pipeline or the model store. It is pure Go.
package collect

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/payload"
	"github.com/cvedge/cvedge/agent/publish"
	"github.com/cvedge/cvedge/configs"
)

// Collector writes the samples it receives into a data set, and uploads the corrected ones
// when it has an Uploader.
type Collector struct {
	DS  *dataset.Dataset
	Up  *Uploader // nil: no upload
	Log *slog.Logger

	added, duplicate, bad atomic.Uint64
	pending               atomic.Bool
}

// Counts are what a Collector did since start.
type Counts struct{ Added, Duplicate, Bad uint64 }

// Counts returns the counters.
func (c *Collector) Counts() Counts {
	return Counts{Added: c.added.Load(), Duplicate: c.duplicate.Load(), Bad: c.bad.Load()}
}

// Handle takes one sample payload. A malformed one is logged and counted, never fatal.
func (c *Collector) Handle(topic string, raw []byte) {
	s, err := payload.ParseSample(raw)
	if err != nil {
		c.bad.Add(1)
		c.Log.Warn("sample refused", "topic", topic, "err", err)
		return
	}
	e, added, err := c.DS.Add(s)
	switch {
	case err != nil:
		c.bad.Add(1)
		c.Log.Error("sample not written", "sample", s.ID, "err", err)
	case !added:
		c.duplicate.Add(1)
	default:
		c.added.Add(1)
		c.Log.Info("sample added", "sample", s.ID, "agent", s.Agent, "camera", s.Camera, "reason", s.Reason, "tag", e.Tag, "file", e.File)
		if e.Tag != "" {
			c.pending.Store(true)
		}
	}
}

// Run subscribes to topic (QoS 1, persistent session, so samples sent while the collector
// was away still come) and collects until ctx ends; with an Uploader it uploads corrected
// samples every uploadEvery. It returns at once when ctx ends, also in the middle of an
// upload; what was not uploaded yet goes up on the next run.
func (c *Collector) Run(ctx context.Context, cfg configs.MQTT, topic string, uploadEvery time.Duration) error {
	opts, err := publish.ClientOptions(cfg)
	if err != nil {
		return err
	}
	// a message on another topic (an old subscription the session still has) is acknowledged
	// and dropped
	opts.SetDefaultPublishHandler(func(paho.Client, paho.Message) {})
	opts.SetOnConnectHandler(func(cl paho.Client) {
		c.Log.Info("connected; subscribing", "broker", configs.Redact(cfg.Broker), "topic", topic)
		cl.Subscribe(topic, 1, nil)
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) { c.Log.Warn("lost the broker; reconnecting", "err", err) })
	cl := paho.NewClient(opts)
	// routed before connecting: the broker hands over what the session kept as it accepts
	// the connection, before the subscription above is made again
	cl.AddRoute(topic, func(_ paho.Client, m paho.Message) { c.Handle(m.Topic(), m.Payload()) })
	cl.Connect()
	defer cl.Disconnect(250)
	c.pending.Store(true) // upload what an earlier run left
	tick := time.NewTicker(max(uploadEvery, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// no last upload: it could wait on a slow or unreachable Custom Vision for
			// minutes; the data set keeps the samples and the next run uploads them
			if c.Up != nil && c.pending.Load() {
				c.Log.Info("stopping; corrected samples not uploaded yet go up on the next run with --upload")
			}
			return nil
		case <-tick.C:
			if c.Up != nil && c.pending.Swap(false) {
				c.upload(ctx)
			}
		}
	}
}

func (c *Collector) upload(ctx context.Context) {
	sent, refused, err := c.Up.Sync(ctx)
	if err != nil {
		c.pending.Store(true) // try again on the next tick, or on the next run
		if ctx.Err() != nil {
			return // stopping
		}
		c.Log.Error("upload to Custom Vision failed; will retry", "err", err)
		return
	}
	if sent+refused > 0 {
		c.Log.Info("uploaded to Custom Vision", "images", sent, "refused", refused)
	}
}

// String describes the counters for a final log line.
func (c Counts) String() string {
	return fmt.Sprintf("%d added, %d duplicates, %d refused", c.Added, c.Duplicate, c.Bad)
}
