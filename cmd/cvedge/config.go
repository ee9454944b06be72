package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/configs"
)

func configCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or print a config file"}
	cmd.AddCommand(configCheckCmd(stdout, stderr), configPrintCmd(stdout))
	return cmd
}

func configCheckCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	var offline bool
	cmd := &cobra.Command{
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
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not open cameras and streams (sources are still parsed and files checked)")
	return cmd
}

func configPrintCmd(stdout io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
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
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	return cmd
}
