package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/models"
)

// inspectJSON is what `inspect --json` prints (docs/cli.md).
type inspectJSON struct {
	Model      string            `json:"model"`
	Name       string            `json:"name"`
	Format     string            `json:"format"`
	Domain     string            `json:"domain"`
	Flavor     string            `json:"flavor"`
	Iteration  string            `json:"iteration"`
	Exported   string            `json:"exported"`
	SHA256     string            `json:"sha256"`
	Producer   string            `json:"producer"`
	Opset      int64             `json:"opset"`
	Input      inputJSON         `json:"input"`
	Outputs    []string          `json:"outputs"`
	Labels     []string          `json:"labels"`
	Properties map[string]string `json:"properties,omitempty"`
}

// inputJSON is the model's image input; RegionsPerCall is how many images go in one call.
type inputJSON struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	Width          int    `json:"width"`
	Height         int    `json:"height"`
	SymbolicSize   bool   `json:"symbolicSize"`
	DynamicBatch   bool   `json:"dynamicBatch"`
	RegionsPerCall int    `json:"regionsPerCall"`
	PixelOrder     string `json:"pixelOrder"`
	PixelRange     string `json:"pixelRange"`
	PixelFormatKey string `json:"pixelFormatKey"`
}

func newInspectJSON(in models.Info, chunk int) inspectJSON {
	i := in.Input
	typ := "float32"
	if i.Float16 {
		typ = "float16"
	}
	return inspectJSON{
		Model: in.Source, Name: in.Name, Format: string(in.Format), Domain: in.Domain, Flavor: in.Flavor,
		Iteration: in.Iteration, Exported: in.Exported, SHA256: in.SHA256, Producer: in.Producer, Opset: in.Opset,
		Input: inputJSON{Name: i.Name, Type: typ, Width: i.Width, Height: i.Height, SymbolicSize: i.SymbolicSize,
			DynamicBatch: i.DynamicBatch, RegionsPerCall: chunk, PixelOrder: string(i.Pixels.Order), PixelRange: i.Pixels.Range,
			PixelFormatKey: i.Pixels.FormatKey},
		Outputs: in.Outputs, Labels: in.Labels, Properties: in.Properties,
	}
}

func inspectCmd(stdout io.Writer) *cobra.Command {
	var (
		mf     modelFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Load a Custom Vision export and print what the agent will do with it",
		Long: "Load a Custom Vision export (ZIP, folder, or .onnx with labels.txt) with onnxruntime, run a warm-up\n" +
			"inference and print its format, domain, input, outputs, pixel format and range, labels, iteration and SHA-256.\n" +
			"Exits non-zero with the reason when the agent would refuse the model.\n\n" +
			"Reads the export only (and onnxruntime, see --onnxruntime-library); writes nothing. --json prints the same as\n" +
			"one JSON object (docs/cli.md).",
		Example: "  cvedge inspect ~/Downloads/parts-detector.ONNX.zip\n  cvedge inspect --json parts.zip",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			mc, err := mf.model(args[0])
			if err != nil {
				return err
			}
			rt, err := mf.runtime()
			if err != nil {
				return err
			}
			defer rt.Close()
			m, err := models.Load(rt, filepath.Base(args[0]), mc)
			if err != nil {
				return err
			}
			defer m.Close()
			if asJSON {
				return writeJSON(stdout, newInspectJSON(m.Info, m.Chunk()))
			}
			printInfo(stdout, m.Info, m.Chunk())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what the model is as one JSON object (docs/cli.md)")
	mf.register(cmd)
	return cmd
}

func printInfo(w io.Writer, in models.Info, chunk int) {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	i := in.Input
	dtype := "float32"
	if i.Float16 {
		dtype = "float16"
	}
	batch := "1"
	if i.DynamicBatch {
		batch = fmt.Sprintf("dynamic (up to %d regions a call)", chunk)
	}
	size := fmt.Sprintf("%dx%d", i.Width, i.Height)
	if i.SymbolicSize {
		size += " (symbolic in the model; --input-size)"
	}
	pixelKey := "none, so BGR"
	if i.Pixels.FormatKey != "" {
		pixelKey = i.Pixels.FormatKey
	}
	fmt.Fprintf(w, "model:       %s\n", in.Source)
	fmt.Fprintf(w, "format:      %s (%s)\n", in.Format, in.Domain)
	fmt.Fprintf(w, "flavor:      %s\n", dash(in.Flavor))
	fmt.Fprintf(w, "iteration:   %s\n", dash(in.Iteration))
	fmt.Fprintf(w, "exported:    %s\n", dash(in.Exported))
	fmt.Fprintf(w, "sha256:      %s\n", in.SHA256)
	fmt.Fprintf(w, "producer:    %s (opset %d)\n", dash(in.Producer), in.Opset)
	fmt.Fprintf(w, "input:       %s %s, %s, batch %s\n", i.Name, dtype, size, batch)
	fmt.Fprintf(w, "pixels:      %s, %s (from metadata_props: %s)\n", i.Pixels.Order, i.Pixels.Range, pixelKey)
	fmt.Fprintf(w, "outputs:     %s\n", strings.Join(in.Outputs, ", "))
	fmt.Fprintf(w, "labels (%d): %s\n", len(in.Labels), strings.Join(in.Labels, ", "))
	if p := in.Properties; p != nil && (p["Image.BitmapPixelFormat"] != "" || p["Image.NominalPixelRange"] != "") {
		fmt.Fprintf(w, "note:        metadata_properties.json says %s %s; ignored for pixels (the model's own metadata decides)\n",
			dash(p["Image.BitmapPixelFormat"]), dash(p["Image.NominalPixelRange"]))
	}
}
