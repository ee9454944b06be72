package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/configs"
)

func runCmd(stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until SIGINT or SIGTERM",
		Long: `Run the agent: open the cameras of the config, run their models on every frame and publish the
predictions over MQTT, until SIGINT or SIGTERM (it then finishes the frame in flight, flushes
MQTT and marks itself offline). SIGHUP reloads the config.

Reads the config file (--config, default /etc/cvedge/cvedge.yaml; CVEDGE_* environment variables
override its keys), the models it names or the model store's active iterations (store.dir,
default /var/lib/cvedge/models). Writes messages not yet acknowledged by the broker to the
spool (spool.dir, default /var/lib/cvedge/spool), and its log to stderr: JSON when stderr is not
a terminal (the journal under systemd), text on a terminal. Serves metrics and health on
http.listen when set. The Debian package runs it as the cvedge service.`,
		Example: `  cvedge run --config /etc/cvedge/cvedge.yaml
  systemctl reload cvedge     # SIGHUP: reload the config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(path)
			if err != nil {
				return err
			}
			agent.TuneMemory() // frames reuse the memory of the frames before; the Go heap stays small
			a, err := agent.New(cfg, newLogger(cfg.Agent, stderr))
			if err != nil {
				return err
			}
			a.ReloadFrom(func() (*configs.Config, error) { return configs.Load(path) })
			return runAgent(a)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	return cmd
}

// runAgent runs a until SIGINT or SIGTERM; SIGHUP reloads its config.
func runAgent(a *agent.Agent) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				stop() // a second Ctrl-C kills at once
				signal.Stop(hup)
				return
			case <-hup:
				a.ReloadConfig("SIGHUP")
			}
		}
	}()
	err := a.Run(ctx)
	stop()
	<-done
	return err
}
