package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/dataset"
	"github.com/cvedge/cvedge/agent/tools/collect"
	"github.com/cvedge/cvedge/configs"
)

// collectFlags are the settings of cvedge collect.
type collectFlags struct {
	mqtt       configs.MQTT
	out, topic string
	upload     bool
	every      time.Duration
}

func collectCmd(stdout, stderr io.Writer) *cobra.Command {
	cf := &collectFlags{mqtt: configs.Default().MQTT}
	host, _ := os.Hostname()
	cf.mqtt.ClientID = "cvedge-collect-" + host
	cmd := &cobra.Command{
		Use:   "collect --out DIR",
		Short: "Collect the samples of many agents into a Custom Vision data set, and optionally upload them",
		Long: "Subscribe to the samples that agents publish and write them into DIR: a folder per corrected tag, unreviewed/ for\n" +
			"samples nobody tagged yet, frames/ for whole frames, and index.jsonl. A restart resumes the data set. With --upload\n" +
			"the corrected images go to the Custom Vision training project named by " + collect.EnvEndpoint + ",\n" +
			collect.EnvKey + " and " + collect.EnvProject + "; samples not uploaded when it stops go up on the next run.\n" +
			"It runs until Ctrl-C (or SIGTERM); a second Ctrl-C ends it at once.",
		Example: "  # gather the samples of every agent on the plant broker into ./dataset\n" +
			"  cvedge collect --out ./dataset --broker tcp://broker.plant.local:1883\n\n" +
			"  # and upload the corrected images every minute\n" +
			"  export " + collect.EnvEndpoint + "=https://westeurope.api.cognitive.microsoft.com\n" +
			"  export " + collect.EnvKey + "=... " + collect.EnvProject + "=...\n" +
			"  cvedge collect --out ./dataset --upload --upload-interval 1m",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if cf.out == "" {
				return usageErrorf("--out: give the data set folder")
			}
			check := configs.Default()
			check.MQTT = cf.mqtt
			check.Agent.ID, check.MQTT.TopicPrefix = "collect", "collect"
			if err := mqttProblems(check.Validate()); err != nil {
				return err
			}
			return cf.collect(stdout, stderr, newLogger(configs.Agent{LogLevel: "info", LogFormat: "auto"}, stderr))
		},
	}
	cf.register(cmd)
	cmd.AddCommand(augmentCmd(stdout, stderr))
	cf.mqtt.Password = os.Getenv("CVEDGE_MQTT_PASSWORD")
	return cmd
}

func (cf *collectFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&cf.out, "out", "", "data set folder (created; resumed when it exists)")
	f.StringVar(&cf.topic, "topic", "cvedge/+/cameras/+/samples", "MQTT topic filter of the samples")
	brokerFlags(f, &cf.mqtt, "collector")
	f.BoolVar(&cf.upload, "upload", false, "upload corrected images to the Custom Vision training project")
	f.DurationVar(&cf.every, "upload-interval", 30*time.Second, "how often to upload new corrected images")
}

// collect runs the collector until SIGINT or SIGTERM and prints what it collected. A second
// signal kills it.
func (cf *collectFlags) collect(stdout, stderr io.Writer, log *slog.Logger) error {
	ds, err := dataset.Open(cf.out)
	if err != nil {
		return err
	}
	defer ds.Close()
	c := &collect.Collector{DS: ds, Log: log}
	if cf.upload {
		t, err := collect.TrainingFromEnv(log)
		if err != nil {
			return err
		}
		prog := newProgress(stderr) // a line per upload on a terminal; nothing when piped
		c.Up = &collect.Uploader{T: t, Dir: cf.out, Progress: func(n, total int) { prog.update("uploading", n, total) }}
	}
	ctx, stop := collect.UntilSignal(context.Background()) // a second Ctrl-C ends the process
	defer stop()
	log.Info("collecting", "data_set", cf.out, "samples", ds.Len(), "topic", cf.topic, "upload", cf.upload)
	err = c.Run(ctx, cf.mqtt, cf.topic, cf.every)
	fmt.Fprintf(stdout, "%s: %s; %d samples in the data set\n", cf.out, c.Counts(), ds.Len())
	return err
}

// mqttProblems keeps the MQTT part of a validation error: the problems under mqtt., one a
// line; nil when there are none.
func mqttProblems(err error) error {
	var keep []error
	for _, p := range configs.ProblemsUnder(err, "mqtt.") {
		keep = append(keep, p)
	}
	return errors.Join(keep...)
}
