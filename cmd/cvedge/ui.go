package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// uiCmd holds the tools of the operator station (docs/operator.md).
func uiCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Tools for the operator station: hash-password for its users",
		Long: "Tools for the operator station, the web page the agent serves when ui.enabled is set (docs/operator.md).\n" +
			"hash-password makes the bcrypt hash of a password for ui.auth.users[].password_hash.",
		Example: "  cvedge ui hash-password",
	}
	cmd.AddCommand(hashPasswordCmd(stdin, stdout, stderr))
	return cmd
}

const (
	// passwordCost is the bcrypt cost of the hashes made: about a quarter of a second to check
	// on a small box, so that a stolen hash cannot be guessed fast.
	passwordCost = 12
	// minPasswordLen and maxPasswordLen bound a password: bcrypt reads at most 72 bytes.
	minPasswordLen = 8
	maxPasswordLen = 72
)

func hashPasswordCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password on stdin and print its bcrypt hash for ui.auth.users[].password_hash",
		Long: "Read a password on stdin and print its bcrypt hash (cost 12) on stdout, for the password_hash of a user\n" +
			"of the operator station (ui.auth.users). On a terminal the password is asked twice and not shown; otherwise\n" +
			"the first line of stdin is the password. It must be 8 to 72 bytes. The password itself is written nowhere:\n" +
			"the config holds only the hash.",
		Example: "  cvedge ui hash-password\n" +
			"  systemd-ask-password 'Password:' | cvedge ui hash-password",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			password, err := readPassword(stdin, stderr)
			if err != nil {
				return err
			}
			hash, err := bcrypt.GenerateFromPassword(password, passwordCost)
			if err != nil {
				return fmt.Errorf("hashing the password: %w", err)
			}
			fmt.Fprintf(stdout, "%s\n", hash)
			return nil
		},
	}
}

// readPassword reads the password: asked twice without echo when stdin is a terminal, the
// first line of stdin otherwise.
func readPassword(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var password []byte
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		ask := func(prompt string) ([]byte, error) {
			fmt.Fprint(stderr, prompt)
			p, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(stderr)
			if err != nil {
				return nil, fmt.Errorf("reading the password from the terminal: %w", err)
			}
			return p, nil
		}
		p, err := ask("Password: ")
		if err != nil {
			return nil, err
		}
		again, err := ask("Again: ")
		if err != nil {
			return nil, err
		}
		if string(p) != string(again) {
			return nil, errors.New("the two passwords differ: run it again")
		}
		password = p
	} else {
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading the password from stdin: %w", err)
		}
		password = []byte(strings.TrimRight(line, "\r\n"))
	}
	switch n := len(password); {
	case n == 0:
		return nil, errors.New("no password on stdin: type it on a terminal, or give it as the first line of stdin")
	case n < minPasswordLen:
		return nil, fmt.Errorf("the password is %d bytes: give at least %d", n, minPasswordLen)
	case n > maxPasswordLen:
		return nil, fmt.Errorf("the password is %d bytes: bcrypt takes at most %d, give a shorter one", n, maxPasswordLen)
	}
	return password, nil
}
