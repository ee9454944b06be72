// Command cvedge is the on-device runner for Azure Custom Vision models: it grabs frames from
// cameras, runs exported ONNX models and publishes predictions over MQTT.
//
// This package holds flag parsing and printing only, a file per command: run.go, config.go,
// inspect.go, predict.go, collect.go, eval.go, bench.go, models.go (the model store),
// commands.go (signed MQTT commands) and ui.go (the operator station's tools); flags.go holds
// the model flags they share, log.go the process logger, progress.go the progress line of
// long commands, usage.go the exit codes and the usage errors, man.go the manual pages. The
// work is done by the library packages: agent (the daemon), agent/pipeline,
// agent/tools/eval, agent/tools/collect, agent/tools/bench, models, models/store and configs.
// docs/cli.md describes every command.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent"
	"github.com/cvedge/cvedge/configs"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run executes the command line and returns the exit code: exitOK, exitFailure, or
// exitUsage for a command line cvedge does not understand.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "cvedge:", configs.Redact(err.Error())) // errors may quote a source or URL
	if isUsage(err) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailure
}

const rootLong = `cvedge runs Azure Custom Vision models (ONNX exports) on camera frames and publishes
every prediction over MQTT. "cvedge run" is the agent that runs under systemd; the other
commands check, try and measure models, configs and data sets at a desk or on the box.

The agent reads /etc/cvedge/cvedge.yaml unless --config says otherwise. Every command's
--help says what it reads and writes; "man cvedge-COMMAND" has the same offline, and
/usr/share/doc/cvedge/docs/cli.md describes every command and its --json output.

Exit codes:
  0  success
  1  failure: the command ran and failed
  2  usage error: an unknown command or flag, a missing or extra
     argument, a bad flag value`

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "cvedge",
		Short: "Run Azure Custom Vision models on cameras at the edge and publish predictions over MQTT",
		Long:  rootLong,
		Example: `  cvedge run --config /etc/cvedge/cvedge.yaml
  cvedge config check --config /etc/cvedge/cvedge.yaml
  cvedge inspect model.zip
  cvedge --version`,
		Version:       versionText(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.InitDefaultVersionFlag() // now, so that the manual page lists it
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCmd(stderr), versionCmd(stdout), configCmd(stdout, stderr), inspectCmd(stdout), predictCmd(stdout, stderr),
		collectCmd(stdout, stderr), evalCmd(stdout, stderr), modelsCmd(stdout), benchCmd(stdout, stderr),
		trainCmd(stdout, stderr))
	root.AddCommand(commandsCmd(os.Stdin, stdout), manCmd(root))
	root.AddCommand(uiCmd(os.Stdin, stdout, stderr))
	root.AddCommand(reviewCmd(stdout, stderr))
	root.InitDefaultCompletionCmd()
	completionHelp(root)
	usageErrors(root)
	return root
}

// versionText is what cvedge version and cvedge --version print.
func versionText() string {
	return fmt.Sprintf("cvedge %s (commit %s)", agent.Version, agent.Commit)
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit",
		Long: "Print the version of this cvedge binary and the commit it was built from, as cvedge --version does.\n" +
			"It reads and writes nothing.",
		Example: "  cvedge version",
		Args:    cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(stdout, versionText())
		},
	}
}
