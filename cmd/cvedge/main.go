// Command cvedge is the on-device runner for Azure Custom Vision models: it grabs frames from
// cameras, runs exported ONNX models and publishes predictions over MQTT.
//
// This package holds flag parsing and printing only, a file per command: run.go, config.go,
// inspect.go, predict.go, collect.go, eval.go, bench.go, models.go (the model store) and
// commands.go (signed MQTT commands); flags.go holds the model flags they share, log.go the
// process logger. The work is done by the library packages: agent (the daemon),
// agent/pipeline, agent/tools/eval, agent/tools/collect, agent/tools/bench, models,
// models/store and configs.
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
