// Package models loads Azure Custom Vision exports (ZIP, folder, or .onnx with labels.txt),
// runs them with onnxruntime and decodes their outputs into predictions in the shape of the
// Custom Vision Prediction API.
//
// It owns everything onnxruntime: only this package imports onnxruntime_go. It knows nothing
// of cameras, pixels in frames, or MQTT: callers fill the input tensor through a Slot (the
// preprocess package does that from a frame) and get Predictions back.
package models

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/cvedge/cvedge/configs"
	"github.com/x448/float16"
	ort "github.com/yalue/onnxruntime_go"
)

// Info is what cvedge knows of a loaded model; `cvedge inspect` prints it.
type Info struct {
	Name   string
	Source string
	Format Format
	// Domain is the manifest's DomainType (Classification, ObjectDetection), or derived
	// from the format when there is no manifest.
	Domain    string
	Flavor    string
	Iteration string // the manifest's IterationId; "" when unknown
	Exported  string
	SHA256    string
	Labels    []string
	Input     Input
	Outputs   []string
	Producer  string
	Opset     int64
	// Properties is metadata_properties.json, for information only.
	Properties map[string]string
	// Metadata is the model's own metadata_props.
	Metadata map[string]string
}

// Slot is the input tensor area of one image in a batch, NCHW, 3*Height*Width values:
// exactly one of F32 and F16 (IEEE half-precision bits) is set, as the model wants.
type Slot struct {
	F32 []float32
	F16 []uint16
}

// Model is a loaded export with its onnxruntime session and tensors, allocated once and
// reused. It is safe for concurrent use: calls to Predict are serialized.
type Model struct {
	Info Info

	mu       sync.Mutex
	sess     *ort.DynamicAdvancedSession
	chunk    int // images per call
	in32     []float32
	in16     []uint16 // aliases in16b
	in16b    []byte
	batches  map[int]*binding
	labelIdx map[string]int
	yolo     YOLO
	cfg      configs.Model
	scratch  []float32
	outs     []ort.Value // the outputs of the current call
	outTypes map[string]ElemType
	// bindIO: the session runs on the CPU, so tensors bound once (ort.IoBinding) are read
	// and written in place on every run. Another provider copies a bound input to its
	// device when it is bound, so there each run passes the tensors afresh.
	bindIO bool
	// provider is the execution provider the session runs on: "cpu", or the configured one
	// when this onnxruntime build has it.
	provider string
	closed   bool
	// env: the model holds the onnxruntime environment (Runtime.acquire), so that the library
	// stays loaded until Close has freed the session and tensors.
	env bool
}

// binding holds the tensors for one batch size; they share the model's buffers.
type binding struct {
	inputs  []ort.Value
	outputs []ort.Value // nil entries are allocated by onnxruntime on each run
	shapes  []ort.Shape
	// io binds inputs and outputs to the session once, when every output is preallocated:
	// a run through it allocates nothing on the Go side.
	io *ort.IoBinding
}

// Load reads the export at c.Path, checks it and opens an onnxruntime session for it.
// A warm-up inference runs before it returns, so a model that loads also runs.
func Load(rt *Runtime, name string, c configs.Model) (*Model, error) {
	m, err := load(rt, name, c)
	if err != nil {
		return nil, fmt.Errorf("model %q (%s): %w", name, c.Path, err)
	}
	return m, nil
}

func load(rt *Runtime, name string, c configs.Model) (*Model, error) {
	exp, err := readExportAt(c.Path)
	if err != nil {
		return nil, err
	}
	info, g, err := describe(exp, c)
	if err != nil {
		return nil, err
	}
	info.Name = name
	m := &Model{Info: *info, cfg: c, batches: map[int]*binding{}, outTypes: map[string]ElemType{}}
	for _, o := range g.Outputs {
		m.outTypes[o.Name] = o.Type.Elem
	}
	m.yolo = YOLO{Threshold: float32(c.Threshold), IoU: float32(c.NMSIoU), MaxDetections: c.MaxDetections}
	m.labelIdx = make(map[string]int, len(info.Labels))
	for i, l := range info.Labels {
		m.labelIdx[l] = i
	}
	if err := rt.acquire(); err != nil {
		return nil, err
	}
	m.env = true
	opts, provider, err := rt.sessionOptions(name)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("onnxruntime session options: %w", err)
	}
	m.provider = provider
	m.bindIO = provider == "cpu"
	m.sess, err = ort.NewDynamicAdvancedSessionWithONNXData(exp.Model, []string{info.Input.Name}, info.Outputs, opts)
	opts.Destroy()
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("onnxruntime cannot load %s: %v (re-export the iteration from the Custom Vision portal as ONNX)", exp.ModelFile, err)
	}
	m.chunk = 1
	if info.Input.DynamicBatch {
		m.chunk = c.MaxBatch
	}
	per := 3 * info.Input.Width * info.Input.Height
	if info.Input.Float16 {
		m.in16b = make([]byte, 2*per*m.chunk)
		m.in16 = unsafe.Slice((*uint16)(unsafe.Pointer(&m.in16b[0])), per*m.chunk)
	} else {
		m.in32 = make([]float32, per*m.chunk)
	}
	if _, err := m.Predict(1, func(int, Slot) error { return nil }); err != nil {
		m.Close()
		return nil, fmt.Errorf("warm-up inference failed: %w", err)
	}
	return m, nil
}

// Describe checks an export's graph and derives the Info that Load and `cvedge inspect` use,
// without onnxruntime.
func Describe(exp *Export, c configs.Model) (*Info, error) {
	info, _, err := describe(exp, c)
	return info, err
}

func describe(exp *Export, c configs.Model) (*Info, *Graph, error) {
	g, err := ParseGraph(exp.Model)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w (download or export it again)", exp.ModelFile, err)
	}
	if err := checkSupported(g); err != nil {
		return nil, nil, fmt.Errorf("%s is %w", exp.ModelFile, err)
	}
	if exp.labelsErr != nil {
		return nil, nil, exp.labelsErr
	}
	info, err := describeGraph(exp, g, c)
	return info, g, err
}

func describeGraph(exp *Export, g *Graph, c configs.Model) (*Info, error) {
	var err error
	info := &Info{Source: exp.Source, SHA256: exp.SHA256, Labels: exp.Labels, Producer: g.Producer,
		Opset: g.Opsets[""], Properties: exp.Properties, Metadata: g.Metadata}
	if exp.Manifest != nil {
		info.Domain, info.Iteration, info.Exported = exp.Manifest.DomainType, exp.Manifest.IterationID, exp.Manifest.ExportedDate
		if exp.Manifest.Flavor != nil {
			info.Flavor = *exp.Manifest.Flavor
		}
	}
	if c.Format == "" || c.Format == "auto" {
		if info.Format, err = detectFormat(g); err != nil {
			return nil, err
		}
	} else {
		info.Format = Format(c.Format)
	}
	if info.Domain == "" {
		info.Domain = "Classification"
		if info.Format.IsDetector() {
			info.Domain = "ObjectDetection"
		}
	} else if (info.Domain == "ObjectDetection") != info.Format.IsDetector() {
		return nil, fmt.Errorf("cvexport.manifest says %s but the outputs are those of a %s: check the format setting or the export", info.Domain, info.Format)
	}
	if info.Input, err = describeInput(g, info.Format, c.InputSize); err != nil {
		return nil, err
	}
	if in := g.Inputs[0].Type.Dims[0].Value; in > 1 {
		return nil, fmt.Errorf("input %q has a fixed batch of %d; expected 1 or a symbolic batch", info.Input.Name, in)
	}
	if info.Input.Pixels, err = pixelsFrom(g.Metadata); err != nil {
		return nil, err
	}
	if info.Format == FormatDetectorSSD && g.Metadata[metaPixelFormat] == "" {
		info.Input.Pixels.Order = RGB // the S1 sample feeds RGB
	}
	if info.Outputs, err = checkOutputs(g, info.Format, exp.Labels); err != nil {
		return nil, err
	}
	return info, nil
}

// Chunk is the most images one onnxruntime call takes (1 without a dynamic batch).
func (m *Model) Chunk() int { return m.chunk }

// Predict runs the model on n images. fill(i, slot) writes image i into the input tensor;
// it runs with the model locked, so it may use state that belongs to this model. The
// result has one prediction list per image: classifier tags sorted by probability, or
// detector boxes (normalized to the image that was filled in).
func (m *Model) Predict(n int, fill func(i int, s Slot) error) ([][]Prediction, error) {
	var r Results
	if err := m.PredictInto(&r, n, fill); err != nil {
		return nil, err
	}
	return r.Lists(), nil
}

// PredictInto is Predict with the predictions put in r, which the caller reuses from call to
// call: in steady state it allocates nothing.
func (m *Model) PredictInto(r *Results, n int, fill func(i int, s Slot) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("model %q is closed", m.Info.Name)
	}
	r.reset()
	per := 3 * m.Info.Input.Width * m.Info.Input.Height
	for start := 0; start < n; start += m.chunk {
		b := min(m.chunk, n-start)
		for i := 0; i < b; i++ {
			var s Slot
			if m.in16 != nil {
				s.F16 = m.in16[i*per : (i+1)*per]
			} else {
				s.F32 = m.in32[i*per : (i+1)*per]
			}
			if err := fill(start+i, s); err != nil {
				return err
			}
		}
		bind, err := m.binding(b)
		if err != nil {
			return err
		}
		if err := m.run(bind, b, r); err != nil {
			return err
		}
	}
	r.finish()
	return nil
}

// binding returns the tensors for a batch of b images, creating them on first use.
func (m *Model) binding(b int) (*binding, error) {
	if bd, ok := m.batches[b]; ok {
		return bd, nil
	}
	bd, err := m.newBinding(b, m.in32, m.in16b)
	if err != nil {
		return nil, err
	}
	m.batches[b] = bd
	return bd, nil
}

// newBinding makes the tensors of one call on b images: the input over in32 or in16b (as
// the model's input type says), and the fixed-shape outputs.
func (m *Model) newBinding(b int, in32 []float32, in16b []byte) (*binding, error) {
	in := m.Info.Input
	shape := ort.NewShape(int64(b), 3, int64(in.Height), int64(in.Width))
	bd := &binding{}
	var err error
	var t ort.Value
	if in.Float16 {
		t, err = ort.NewCustomDataTensor(shape, in16b[:2*shape.FlattenedSize()], ort.TensorElementDataTypeFloat16)
	} else {
		t, err = ort.NewTensor(shape, in32[:shape.FlattenedSize()])
	}
	if err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	bd.inputs = []ort.Value{t}
	for _, name := range m.Info.Outputs {
		out, shape, err := m.preallocate(name, b)
		if err != nil {
			bd.destroy()
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		bd.outputs = append(bd.outputs, out)
		bd.shapes = append(bd.shapes, shape)
	}
	if m.bindIO && !slices.Contains(bd.outputs, nil) {
		if err := m.bind(bd); err != nil {
			bd.destroy()
			return nil, fmt.Errorf("onnxruntime binding: %w", err)
		}
	}
	return bd, nil
}

// bind binds bd's input and outputs to the session.
func (m *Model) bind(bd *binding) error {
	io, err := m.sess.CreateIoBinding()
	if err != nil {
		return err
	}
	bd.io = io
	if err := io.BindInput(m.Info.Input.Name, bd.inputs[0]); err != nil {
		return err
	}
	for i, name := range m.Info.Outputs {
		if err := io.BindOutput(name, bd.outputs[i]); err != nil {
			return err
		}
	}
	return nil
}

// run makes one onnxruntime call on bd, for b images, and appends their predictions to r.
// The caller holds m.mu.
func (m *Model) run(bd *binding, b int, r *Results) error {
	outs, err := m.call(bd)
	if err == nil {
		err = m.decode(r, b, outs)
	}
	bd.release(outs)
	if err != nil {
		return fmt.Errorf("model %q: %w", m.Info.Name, err)
	}
	return nil
}

// call makes one onnxruntime call on bd and returns its outputs: bd's own tensors, with the
// ones bd leaves to onnxruntime filled in (release frees those). The caller holds m.mu.
func (m *Model) call(bd *binding) ([]ort.Value, error) {
	if bd.io != nil {
		return bd.outputs, m.sess.RunWithBinding(bd.io)
	}
	m.outs = append(m.outs[:0], bd.outputs...) // onnxruntime fills the nil ones
	return m.outs, m.sess.Run(bd.inputs, m.outs)
}

// preallocate makes the output tensor for fixed-shape float outputs; others (strings,
// maps, SSD's variable counts) are left to onnxruntime.
func (m *Model) preallocate(name string, b int) (ort.Value, ort.Shape, error) {
	in := m.Info.Input
	var shape ort.Shape
	switch m.Info.Format {
	case FormatClassifier:
		shape = ort.NewShape(int64(b), int64(len(m.Info.Labels)))
	case FormatDetectorYOLO:
		shape = ort.NewShape(int64(b), int64(len(yoloAnchors)*(5+len(m.Info.Labels))), int64(in.Height/32), int64(in.Width/32))
	default:
		return nil, nil, nil
	}
	if m.outputFloat16(name) {
		t, err := ort.NewCustomDataTensor(shape, make([]byte, 2*shape.FlattenedSize()), ort.TensorElementDataTypeFloat16)
		return t, shape, err
	}
	t, err := ort.NewEmptyTensor[float32](shape)
	return t, shape, err
}

func (m *Model) outputFloat16(name string) bool { return m.outTypes[name] == ElemFloat16 }

// floats returns the values of a float32 or float16 tensor as float32.
func (m *Model) floats(v ort.Value) ([]float32, error) {
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		return t.GetData(), nil
	case *ort.CustomDataTensor:
		raw := t.GetData()
		m.scratch = grow(m.scratch, len(raw)/2)
		for i := range m.scratch {
			m.scratch[i] = float16.Frombits(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8).Float32()
		}
		return m.scratch, nil
	}
	return nil, fmt.Errorf("unexpected output value %T", v)
}

// decode turns the outputs of one call on images images into predictions, appending one
// list per image to r.
func (m *Model) decode(r *Results, images int, outs []ort.Value) error {
	labels := m.Info.Labels
	switch m.Info.Format {
	case FormatClassifier:
		data, err := m.floats(outs[0])
		if err != nil {
			return err
		}
		c := len(labels)
		for i := range images {
			r.preds = Classes(r.preds, data[i*c:(i+1)*c], 0, labels)
			r.endImage()
		}
	case FormatDetectorYOLO:
		data, err := m.floats(outs[0])
		if err != nil {
			return err
		}
		in := m.Info.Input
		gh, gw := in.Height/32, in.Width/32
		per := len(yoloAnchors) * (5 + len(labels)) * gh * gw
		for i := range images {
			r.preds = m.yolo.Decode(r.preds, &r.boxes, data[i*per:(i+1)*per], len(labels), gh, gw, labels)
			r.endImage()
		}
	case FormatDetectorSSD:
		return m.decodeSSD(r, images, outs)
	case FormatClassifierONNX12:
		return m.decodeZipMap(r, images, outs[0])
	}
	return nil
}

func (m *Model) decodeSSD(r *Results, images int, outs []ort.Value) error {
	if images != 1 {
		return errors.New("SSD exports take one image per call")
	}
	boxes, err := m.floats(outs[0])
	if err != nil {
		return err
	}
	boxes = slices.Clone(boxes) // scratch is reused for scores
	scores, err := m.floats(outs[1])
	if err != nil {
		return err
	}
	var classes []int64
	switch t := outs[2].(type) {
	case *ort.Tensor[int64]:
		classes = t.GetData()
	case *ort.Tensor[int32]:
		for _, c := range t.GetData() {
			classes = append(classes, int64(c))
		}
	case *ort.Tensor[float32]:
		for _, c := range t.GetData() {
			classes = append(classes, int64(c))
		}
	default:
		return fmt.Errorf("detected_classes is %T; expected int64", outs[2])
	}
	r.preds = DecodeSSD(r.preds, &r.boxes, boxes, scores, classes, float32(m.cfg.Threshold), m.cfg.MaxDetections, m.Info.Labels)
	r.endImage()
	return nil
}

// decodeZipMap reads loss: a sequence with one map(tag -> probability) per image, or one
// map for one image (older exports).
func (m *Model) decodeZipMap(r *Results, images int, v ort.Value) error {
	var maps []ort.Value
	switch t := v.(type) {
	case *ort.Sequence:
		vals, err := t.GetValues()
		if err != nil {
			return err
		}
		maps = vals
	case *ort.Map:
		maps = []ort.Value{t}
	default:
		return fmt.Errorf("loss is %T; expected a sequence of maps", v)
	}
	if len(maps) != images {
		return fmt.Errorf("loss holds %d maps for %d images", len(maps), images)
	}
	probs := make([]float32, len(m.Info.Labels))
	for _, mv := range maps {
		mp, ok := mv.(*ort.Map)
		if !ok {
			return fmt.Errorf("loss item is %T; expected a map", mv)
		}
		kv, vv, err := mp.GetKeysAndValues()
		if err != nil {
			return err
		}
		ks, ok := kv.(*ort.StringTensor)
		if !ok {
			return fmt.Errorf("loss keys are %T; expected strings", kv)
		}
		keys, err := ks.GetContents()
		if err != nil {
			return err
		}
		vals, err := m.floats(vv)
		if err != nil {
			return err
		}
		if len(keys) != len(m.Info.Labels) || len(vals) != len(keys) {
			return fmt.Errorf("model has %d classes but labels.txt has %d tags: use the labels.txt exported with this model", len(keys), len(m.Info.Labels))
		}
		clear(probs)
		for j, k := range keys {
			idx, ok := m.labelIdx[k]
			if !ok {
				return fmt.Errorf("model tag %q is not in labels.txt: use the labels.txt exported with this model", k)
			}
			probs[idx] = vals[j]
		}
		r.preds = Classes(r.preds, probs, 0, m.Info.Labels)
		r.endImage()
	}
	return nil
}

// Provider is the execution provider the model's session runs on: "cpu", or the
// configured onnxruntime.execution_provider (cuda, tensorrt, openvino) when the onnxruntime
// library has it. A provider the library lacks falls back to "cpu" (and is logged).
func (m *Model) Provider() string { return m.provider }

// Close frees the session and every tensor, then releases the onnxruntime environment
// (which unloads the library when the Runtime and every other model are closed). Predict
// fails afterwards.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for _, bd := range m.batches {
		bd.destroy()
	}
	m.batches = nil
	var err error
	if m.sess != nil {
		err = m.sess.Destroy()
		m.sess = nil
	}
	if m.env {
		m.env = false
		err = errors.Join(err, releaseModel())
	}
	return err
}

// release frees the outputs of a call on bd that onnxruntime allocated.
func (bd *binding) release(outs []ort.Value) {
	for i, o := range outs {
		if bd.outputs[i] == nil && o != nil {
			o.Destroy()
		}
	}
}

func (bd *binding) destroy() {
	if bd.io != nil {
		bd.io.Destroy()
		bd.io = nil
	}
	for _, v := range append(bd.inputs, bd.outputs...) {
		if v != nil {
			v.Destroy()
		}
	}
}

// Time runs the session calls times on a batch of batch images already in the input tensor
// (whatever the last Predict filled), and returns each call's duration: onnxruntime's own
// time, with no filling or decoding. It is what `cvedge bench` compares the pipeline with.
func (m *Model) Time(batch, calls int) ([]time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("model %q is closed", m.Info.Name)
	}
	batch = min(max(batch, 1), m.chunk)
	bind, err := m.binding(batch)
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, calls)
	for i := 0; i < calls; i++ {
		t := time.Now()
		outs, err := m.call(bind)
		out = append(out, time.Since(t))
		bind.release(outs)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
