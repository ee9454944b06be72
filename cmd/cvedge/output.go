package main

import (
	"encoding/json"
	"io"
)

// writeJSON prints v as one indented JSON document: what --json prints (docs/cli.md), except
// predict's, which is a line per image.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
