// Command cvedge is the on-device runner for Azure Custom Vision models: it grabs frames from
// cameras, runs exported ONNX models and publishes predictions over MQTT.
//
// Subcommands stay thin: they parse flags and call the library packages.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/agent/ops"
	"github.com/cvedge/cvedge/configs"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "cvedge:", configs.Redact(err.Error())) // errors may quote a source or URL
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "cvedge",
		Short:         "Run Azure Custom Vision models on cameras at the edge and publish predictions over MQTT",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCmd(stderr), versionCmd(stdout), configCmd(stdout, stderr), inspectCmd(stdout), predictCmd(stdout, stderr),
		collectCmd(stdout, stderr), evalCmd(stdout, stderr), modelsCmd(stdout), benchCmd(stdout, stderr))
	root.AddCommand(commandsCmd(os.Stdin, stdout))
	return root
}

func runCmd(stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(path)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Agent, stderr)
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			a.ReloadFrom(func() (*configs.Config, error) { return configs.Load(path) })
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
			err = a.Run(ctx)
			stop()
			<-done
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	return cmd
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(stdout, "cvedge %s (commit %s)\n", agent.Version, agent.Commit)
		},
	}
}

func configCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or print a config file"}
	var path string
	var offline bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a config file, load its models and open its cameras; exit non-zero on errors",
		Long: "Validate a config file, load every model through onnxruntime (the model store's active iteration when it has one), " +
			"check that every camera source parses and its file or folder exists, and open every camera once to read a frame. " +
			"--offline skips opening cameras (for a machine away from them, or while the service holds them).",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := configs.Load(path)
			if err != nil {
				return err
			}
			log := newLogger(configs.Agent{LogLevel: "warn", LogFormat: "text"}, stderr)
			if err := agent.CheckConfig(cfg, offline, log); err != nil {
				return fmt.Errorf("config %s: %w", path, err)
			}
			cams := "every camera opened and delivered a frame"
			if offline {
				cams = "every camera source parses (not opened: --offline)"
			}
			fmt.Fprintf(stdout, "%s: ok: %d models loaded, %s\n", path, len(cfg.Models), cams)
			return nil
		},
	}
	check.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	check.Flags().BoolVar(&offline, "offline", false, "do not open cameras and streams (sources are still parsed and files checked)")
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective config (file, environment and defaults) with secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := configs.Load(path)
			if err != nil {
				return err
			}
			return cfg.Print(stdout)
		},
	}
	print.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	cmd.AddCommand(check, print)
	return cmd
}

// newLogger builds the process logger: JSON when stderr is not a terminal (systemd), text on
// a terminal, or as configured.
func newLogger(c configs.Agent, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	format := c.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(ops.NewLimitedHandler(h, 10*time.Second)) // a failing camera does not flood the journal
}
