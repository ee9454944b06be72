package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cvedge/cvedge/models"
)

func inspectCmd(stdout io.Writer) *cobra.Command {
	var mf modelFlags
	cmd := &cobra.Command{
		Use:   "inspect MODEL",
		Short: "Load a Custom Vision export and print what the agent will do with it",
		Long: "Load a Custom Vision export (ZIP, folder, or .onnx with labels.txt) with onnxruntime, run a warm-up\n" +
			"inference and print its format, domain, input, outputs, pixel format and range, labels, iteration and SHA-256.\n" +
			"Exits non-zero with the reason when the agent would refuse the model.",
		Args: cobra.ExactArgs(1),
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
			printInfo(stdout, m.Info, m.Chunk())
			return nil
		},
	}
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
