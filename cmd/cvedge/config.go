package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/configs"
)

func configCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or print a config file",
		Long: "Check a config file before the agent runs on it (config check), or print the config the agent would\n" +
			"run with (config print). Both read the file given by --config, default /etc/cvedge/cvedge.yaml, and write nothing.",
		Example: "  cvedge config check --config /etc/cvedge/cvedge.yaml\n  cvedge config print --config /etc/cvedge/cvedge.yaml",
	}
	cmd.AddCommand(configCheckCmd(stdout, stderr), configPrintCmd(stdout))
	return cmd
}

func configCheckCmd(stdout, stderr io.Writer) *cobra.Command {
	var path string
	var offline, asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config file, load its models and open its cameras; exit non-zero on errors",
		Long: "Validate a config file, load every model through onnxruntime (the model store's active iteration when it has one), " +
			"check that every camera source parses and its file or folder exists, and open every camera once to read a frame. " +
			"--offline skips opening cameras (for a machine away from them, or while the service holds them).\n\n" +
			"Reads the config file (--config, default /etc/cvedge/cvedge.yaml, with CVEDGE_* environment overrides), its\n" +
			"models and the model store (store.dir); writes nothing. Every problem is named by its key; the exit code is\n" +
			"1 when there is one. --json prints the result as one JSON object, problems included (docs/cli.md).",
		Example: "  cvedge config check --config /etc/cvedge/cvedge.yaml\n" +
			"  cvedge config check --offline --json --config new.yaml",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			res := checkJSON{Config: path, Offline: offline}
			err := runCheck(path, offline, &res, stderr)
			if asJSON {
				res.OK, res.Problems = err == nil, problemList(err)
				if werr := writeJSON(stdout, res); werr != nil {
					return werr
				}
				return err
			}
			if err != nil {
				return err
			}
			cams := "every camera opened and delivered a frame"
			if offline {
				cams = "every camera source parses (not opened: --offline)"
			}
			fmt.Fprintf(stdout, "%s: ok: %d models loaded, %s\n", path, res.Models, cams)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object, problems included (docs/cli.md)")
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/cvedge/cvedge.yaml", "config file (YAML)")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not open cameras and streams (sources are still parsed and files checked)")
	return cmd
}

// checkJSON is what `config check --json` prints.
type checkJSON struct {
	Config  string `json:"config"`
	OK      bool   `json:"ok"`
	Offline bool   `json:"offline"`
	Models  int    `json:"models"`
	Cameras int    `json:"cameras"`
	// Problems are what is wrong, one a problem, each naming its key; empty when OK.
	Problems []string `json:"problems"`
}

// runCheck loads and checks the config at path, counting its models and cameras into res.
func runCheck(path string, offline bool, res *checkJSON, stderr io.Writer) error {
	cfg, err := configs.Load(path)
	if err != nil {
		return err
	}
	res.Models, res.Cameras = len(cfg.Models), len(cfg.Cameras)
	log := newLogger(configs.Agent{LogLevel: "warn", LogFormat: "text"}, stderr)
	if err := agent.CheckConfig(cfg, offline, log); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// problemList is err as one line a problem, secrets masked: the errors it joins, or its lines.
func problemList(err error) []string {
	list := []string{}
	if err == nil {
		return list
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, p := range j.Unwrap() {
				list = append(list, configs.Redact(p.Error()))
			}
			return list
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			list = append(list, configs.Redact(line))
		}
	}
	return list
}

func configPrintCmd(stdout io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "print",
		Short: "Print the effective config (file, environment and defaults) with secrets redacted",
		Long: "Print, as YAML, the config the agent would run with: the file given by --config (default\n" +
			"/etc/cvedge/cvedge.yaml), the CVEDGE_* environment variables over it, and the defaults for every key\n" +
			"not set. Passwords in broker and camera URLs are masked. It reads the file and writes nothing.",
		Example: "  cvedge config print --config /etc/cvedge/cvedge.yaml\n" +
			"  CVEDGE_MQTT_BROKER=tcp://10.0.0.2:1883 cvedge config print",
		Args: cobra.NoArgs,
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
