package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// The exit codes of cvedge (cvedge --help and docs/cli.md say the same).
const (
	exitOK      = 0 // the command did what it was asked
	exitFailure = 1 // it ran and failed
	exitUsage   = 2 // the command line is wrong: unknown command or flag, missing or extra argument, bad flag value
)

// usageError is a command line cvedge does not understand; it exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErrorf is a usage error with a message, e.g. a flag that is missing or out of range.
func usageErrorf(format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...)}
}

// isUsage reports whether err comes from the command line rather than from the work.
func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// usageErrors makes every way a command line can be wrong a usageError: flags that do not
// parse (unknown, or a value of the wrong type), positional arguments a command refuses, and
// unknown commands, also under a command that only groups others (cvedge config foo).
// A group given no command prints its help.
func usageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	walk(root, func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = unknownCommand
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
		if check := c.Args; check != nil {
			c.Args = func(c *cobra.Command, args []string) error {
				if err := check(c, args); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
	})
}

// unknownCommand refuses any argument of a command that only groups others, suggesting the
// commands whose names are close.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

// walk calls f on c and every command under it.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}
