package models

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Format is the kind of Custom Vision export, told apart by its output names.
type Format string

// The supported export formats (see docs/models.md).
const (
	// FormatClassifier: one float output model_output [N,C], tags from labels.txt by index.
	FormatClassifier Format = "classifier"
	// FormatClassifierONNX12: outputs classLabel (string) and loss (seq(map(tag,prob))).
	FormatClassifierONNX12 Format = "classifier-onnx12"
	// FormatDetectorYOLO: one output model_outputs0 [N, A*(5+C), H/32, W/32].
	FormatDetectorYOLO Format = "detector-yolo"
	// FormatDetectorSSD: detected_boxes, detected_scores, detected_classes, NMS in the graph.
	FormatDetectorSSD Format = "detector-ssd"
)

// IsDetector reports whether the format finds boxes.
func (f Format) IsDetector() bool { return f == FormatDetectorYOLO || f == FormatDetectorSSD }

// ChannelOrder is the order of colour planes a model expects.
type ChannelOrder string

// Channel orders, from the model's Image.BitmapPixelFormat.
const (
	BGR ChannelOrder = "BGR"
	RGB ChannelOrder = "RGB"
)

// Pixels says how to turn 8-bit pixels into the model's input values:
// value = pixel*Scale + Offset, planes in Order.
type Pixels struct {
	Order  ChannelOrder
	Scale  float32
	Offset float32
	// Range is the Image.NominalPixelRange it came from, for display.
	Range string
	// FormatKey is the Image.BitmapPixelFormat it came from, "" when the model has none.
	FormatKey string
}

// Input describes the one image input of a model.
type Input struct {
	Name          string
	Width, Height int
	Float16       bool
	// DynamicBatch is true when the batch dimension is symbolic: several regions go in one call.
	DynamicBatch bool
	// SymbolicSize is true when height and width are symbolic (some YOLO exports); the
	// configured input size is used.
	SymbolicSize bool
	Pixels       Pixels
}

// Standard ONNX metadata_props keys and values (onnx/docs/MetadataProps.md).
const (
	metaPixelFormat = "Image.BitmapPixelFormat"
	metaPixelRange  = "Image.NominalPixelRange"
)

// pixelsFrom reads the channel order and value range from the model's own metadata_props,
// which decide, as the official samples do. With no keys: BGR, raw 0-255.
func pixelsFrom(meta map[string]string) (Pixels, error) {
	p := Pixels{Order: BGR, Scale: 1, Range: "NominalRange_0_255 (default)", FormatKey: meta[metaPixelFormat]}
	switch meta[metaPixelFormat] {
	case "", "Bgr8", "Bgra8":
	case "Rgb8", "Rgba8":
		p.Order = RGB
	default:
		return p, fmt.Errorf("metadata_props %s=%q: only Bgr8, Rgb8, Bgra8 and Rgba8 are supported for 3-channel input", metaPixelFormat, meta[metaPixelFormat])
	}
	switch r := meta[metaPixelRange]; r {
	case "":
	case "NominalRange_0_255":
		p.Range = r
	case "Normalized_0_1":
		p.Range, p.Scale = r, 1.0/255
	case "Normalized_1_1":
		p.Range, p.Scale, p.Offset = r, 2.0/255, -1
	case "NominalRange_16_235":
		p.Range, p.Scale, p.Offset = r, 219.0/255, 16
	default:
		return p, fmt.Errorf("metadata_props %s=%q is not one of NominalRange_0_255, Normalized_0_1, Normalized_1_1, NominalRange_16_235", metaPixelRange, r)
	}
	return p, nil
}

// detectFormat tells the export format apart by the graph's output names.
func detectFormat(g *Graph) (Format, error) {
	names := map[string]bool{}
	for _, o := range g.Outputs {
		names[o.Name] = true
	}
	switch {
	case names["model_outputs0"]:
		return FormatDetectorYOLO, nil
	case names["detected_boxes"] && names["detected_scores"] && names["detected_classes"]:
		return FormatDetectorSSD, nil
	case names["loss"] && names["classLabel"]:
		return FormatClassifierONNX12, nil
	case names["model_output"]:
		return FormatClassifier, nil
	case len(g.Outputs) == 1 && g.Outputs[0].Type.Kind == KindTensor && g.Outputs[0].Type.Elem == ElemFloat && len(g.Outputs[0].Type.Dims) == 2:
		return FormatClassifier, nil
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	return "", fmt.Errorf("outputs [%s] match no Custom Vision export format (classifier: model_output or classLabel+loss; detector: model_outputs0 or detected_boxes/scores/classes); set the model's format in the config if it is one", strings.Join(list, ", "))
}

// checkSupported refuses graphs current onnxruntime cannot run, with what to do instead.
func checkSupported(g *Graph) error {
	if v, ok := g.Opsets[""]; ok && v < 7 {
		what := "an ONNX 1.0 export"
		if g.Producer != "" {
			what += fmt.Sprintf(" (%s %s, opset %d)", g.Producer, g.ProducerVersion, v)
		}
		return fmt.Errorf("%s: onnxruntime cannot load models older than opset 7; re-export the iteration from the Custom Vision portal as ONNX (not the ONNX 1.0 flavour) and use that file", what)
	}
	if g.Ops["com.microsoft:LegacyPadding"] {
		return errors.New("uses com.microsoft:LegacyPadding from the 2018 ONNX 1.0 exports: re-export the iteration from the Custom Vision portal as ONNX")
	}
	return nil
}

// describeInput derives the image input from the graph: [N,3,H,W] float32 or float16.
func describeInput(g *Graph, format Format, inputSize int) (Input, error) {
	if len(g.Inputs) != 1 {
		names := make([]string, len(g.Inputs))
		for i, in := range g.Inputs {
			names[i] = in.Name
		}
		return Input{}, fmt.Errorf("has %d inputs [%s]; a Custom Vision export has one image input", len(g.Inputs), strings.Join(names, ", "))
	}
	in := g.Inputs[0]
	t := in.Type
	if t.Kind != KindTensor || (t.Elem != ElemFloat && t.Elem != ElemFloat16) {
		return Input{}, fmt.Errorf("input %q is %s; expected a float32 or float16 tensor [N,3,H,W]", in.Name, t)
	}
	if len(t.Dims) != 4 {
		return Input{}, fmt.Errorf("input %q has shape %s; expected rank 4 [N,3,H,W] (NCHW)", in.Name, t)
	}
	if t.Dims[1].Value != 3 {
		return Input{}, fmt.Errorf("input %q has shape %s; expected 3 colour channels in dimension 1 (NCHW)", in.Name, t)
	}
	out := Input{Name: in.Name, Float16: t.Elem == ElemFloat16, DynamicBatch: t.Dims[0].Value < 0}
	h, w := t.Dims[2].Value, t.Dims[3].Value
	switch {
	case h > 0 && w > 0:
		out.Height, out.Width = int(h), int(w)
	case h < 0 && w < 0 && format == FormatDetectorYOLO:
		out.Height, out.Width, out.SymbolicSize = inputSize, inputSize, true
	default:
		return Input{}, fmt.Errorf("input %q has shape %s; height and width must be fixed (symbolic only for YOLO detectors)", in.Name, t)
	}
	if out.Width > 8192 || out.Height > 8192 {
		return Input{}, fmt.Errorf("input %q is %dx%d; larger than any Custom Vision export", in.Name, out.Width, out.Height)
	}
	return out, nil
}

// output returns the graph output called name.
func output(g *Graph, name string) (ValueInfo, bool) {
	for _, o := range g.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return ValueInfo{}, false
}

// checkOutputs verifies the outputs of the format against the labels, so a mismatch is found
// at load time rather than on the line.
func checkOutputs(g *Graph, f Format, labels []string) ([]string, error) {
	need := func(name string, kind ValueKind) (ValueInfo, error) {
		o, ok := output(g, name)
		if !ok {
			return o, fmt.Errorf("format %s needs an output %q, which the model does not have", f, name)
		}
		if o.Type.Kind != kind {
			return o, fmt.Errorf("output %q is %s, not what format %s expects", name, o.Type, f)
		}
		return o, nil
	}
	mismatch := func(classes int64) error {
		return fmt.Errorf("model has %d classes but labels.txt has %d tags: use the labels.txt exported with this model", classes, len(labels))
	}
	switch f {
	case FormatClassifier:
		o, ok := output(g, "model_output")
		if !ok && len(g.Outputs) == 1 {
			o, ok = g.Outputs[0], true
		}
		if !ok {
			return nil, errors.New("format classifier needs an output model_output [N,C]")
		}
		if o.Type.Kind != KindTensor || (o.Type.Elem != ElemFloat && o.Type.Elem != ElemFloat16) || len(o.Type.Dims) != 2 {
			return nil, fmt.Errorf("output %q is %s; expected float [N,C]", o.Name, o.Type)
		}
		if c := o.Type.Dims[1].Value; c > 0 && int(c) != len(labels) {
			return nil, mismatch(c)
		}
		return []string{o.Name}, nil
	case FormatClassifierONNX12:
		if _, err := need("classLabel", KindTensor); err != nil {
			return nil, err
		}
		o, ok := output(g, "loss")
		if !ok || (o.Type.Kind != KindSequence && o.Type.Kind != KindMap) || o.Type.Key != ElemString {
			return nil, fmt.Errorf("output loss must be a map or sequence of maps from tag to probability, got %s", o.Type)
		}
		return []string{"loss"}, nil
	case FormatDetectorYOLO:
		o, err := need("model_outputs0", KindTensor)
		if err != nil {
			return nil, err
		}
		if len(o.Type.Dims) != 4 {
			return nil, fmt.Errorf("output model_outputs0 is %s; expected rank 4 [N, anchors*(5+C), H/32, W/32]", o.Type)
		}
		if ch := o.Type.Dims[1].Value; ch > 0 && ch != int64(len(yoloAnchors)*(5+len(labels))) {
			if ch%int64(len(yoloAnchors)) == 0 && ch/int64(len(yoloAnchors)) > 5 {
				return nil, mismatch(ch/int64(len(yoloAnchors)) - 5)
			}
			return nil, fmt.Errorf("output model_outputs0 has %d channels, not %d anchors x (5 + classes)", ch, len(yoloAnchors))
		}
		return []string{"model_outputs0"}, nil
	case FormatDetectorSSD:
		for _, n := range []string{"detected_boxes", "detected_scores", "detected_classes"} {
			if _, err := need(n, KindTensor); err != nil {
				return nil, err
			}
		}
		return []string{"detected_boxes", "detected_scores", "detected_classes"}, nil
	}
	return nil, fmt.Errorf("unknown format %q", f)
}
