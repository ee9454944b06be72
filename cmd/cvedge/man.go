package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/cvedge/cvedge/agent"
)

// manCmd writes a manual page per command (cvedge.1, cvedge-run.1, cvedge-config-check.1,
// ...) into a folder, from the commands' help. make deb runs it; it is hidden from the help.
func manCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write a manual page per command into DIR (for packaging)",
		Long:   "Write a manual page per command, section 1, into DIR (created if needed), from the help of the commands.",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root.DisableAutoGenTag = true // the pages do not change with the day they are made
			header := &doc.GenManHeader{Title: "CVEDGE", Section: "1", Source: "cvedge " + agent.Version, Manual: "cvedge manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("manual pages into %s: %w", args[0], err)
			}
			return nil
		},
	}
}

// completionHelp completes the help of cobra's completion commands: where the Debian package
// puts the scripts, and an example each.
func completionHelp(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Long = "Print the shell completion script of cvedge for bash, zsh, fish or powershell on stdout.\n" +
			"The Debian package installs the bash, zsh and fish scripts already:\n" +
			"  /usr/share/bash-completion/completions/cvedge\n" +
			"  /usr/share/zsh/vendor-completions/_cvedge\n" +
			"  /usr/share/fish/vendor_completions.d/cvedge.fish\n" +
			"so they work in every new shell. See each shell's command for loading it by hand."
		c.Example = "  source <(cvedge completion bash)\n  cvedge completion zsh > \"${fpath[1]}/_cvedge\""
		for _, sh := range c.Commands() {
			sh.Example = fmt.Sprintf("  cvedge completion %s > cvedge.%s", sh.Name(), sh.Name())
		}
	}
}
