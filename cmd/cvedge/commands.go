package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/agent/payload"
)

// commandsCmd makes keys for signed commands and signs commands (docs/mqtt.md, "Trust model").
func commandsCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "commands",
		Short: "Sign MQTT commands for agents with commands.public_key",
		Long: "Make the key pair for signed MQTT commands (keygen) and sign commands with its private key (sign). An agent\n" +
			"whose config has commands.public_key runs only commands signed by its private key (docs/mqtt.md).",
		Example: "  cvedge commands keygen --out ops.pem\n  cvedge commands sign --key ops.pem '{\"id\":\"r1\",\"command\":\"reload\"}'",
	}
	cmd.AddCommand(keygenCmd(stdout), signCmd(stdin, stdout))
	return cmd
}

func keygenCmd(stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out KEY.pem",
		Short: "Make an ed25519 key pair: the private key into --out, the public key for commands.public_key on stdout",
		Long: "Make an ed25519 key pair. The private key is written to --out (PEM, mode 0600; an existing file is never\n" +
			"overwritten): keep it on the machine that signs commands, off the agents. The public key is printed on stdout\n" +
			"as the commands.public_key entry for the agents' config, and as PEM for commands.public_key_file.",
		Example: "  cvedge commands keygen --out ops.pem",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out: give the file for the private key (keep it off the agents)")
			}
			pub, priv, err := ed25519.GenerateKey(nil)
			if err != nil {
				return err
			}
			if err := writePrivateKey(out, priv); err != nil {
				return err
			}
			pubDER, _ := x509.MarshalPKIXPublicKey(pub)
			fmt.Fprintf(stdout, "# private key written to %s; put this in the agents' config:\ncommands:\n  public_key: %s\n", out, base64.StdEncoding.EncodeToString(pub))
			fmt.Fprintf(stdout, "# or, as a public_key_file:\n%s", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file for the private key (PEM, mode 0600)")
	return cmd
}

// writePrivateKey writes priv as PEM into a new file at path, mode 0600; it never
// overwrites a file.
func writePrivateKey(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--out: %w (an existing key is never overwritten)", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func signCmd(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "sign --key KEY.pem [COMMAND-JSON | -]",
		Short: "Sign a command: adds \"timestamp\" (now) if it has none, prints the signed message to publish",
		Long: `Sign a command for <prefix>/commands. The command is the JSON of an unsigned one,
given as the argument or on stdin. Without a "timestamp" it gets the current time. The output
is one line to publish as it is, e.g.:

  cvedge commands sign --key ops.pem '{"id":"r1","command":"reload"}' | mosquitto_pub -t cvedge/line1/commands -s

It reads the key file and the command; it writes the signed message to stdout only.`,
		Example: `  cvedge commands sign --key ops.pem '{"id":"r1","command":"reload"}'
  echo '{"id":"r2","command":"rollback","model":"colour"}' | cvedge commands sign --key ops.pem -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if keyFile == "" {
				return usageErrorf("--key: give the private key file (cvedge commands keygen)")
			}
			raw, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			key, err := payload.ParsePrivateKey(raw)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			var text []byte
			if len(args) == 1 && args[0] != "-" {
				text = []byte(args[0])
			} else if text, err = io.ReadAll(io.LimitReader(stdin, 1<<20)); err != nil {
				return err
			}
			body, err := stamp(text, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", payload.Sign(body, key))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the ed25519 private key (PEM)")
	return cmd
}

// stamp gives the command JSON text a timestamp when it has none, and checks it as the
// agent will.
func stamp(text []byte, now time.Time) ([]byte, error) {
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, fmt.Errorf("the command is not a JSON object: %v", err)
	}
	if _, ok := fields["timestamp"]; !ok {
		fields["timestamp"] = now.UTC().Format(time.RFC3339)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	if _, err := payload.ParseCommand(body); err != nil {
		return nil, fmt.Errorf("the agent would refuse this command: %w", err)
	}
	return body, nil
}
