package models

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file reads the parts of an ONNX ModelProto that decide how to run a model (IR and
// opset versions, producer, metadata_props, graph inputs and outputs, operator types)
// straight from the protobuf wire format. It runs before onnxruntime sees the file, so a
// file onnxruntime cannot load (not ONNX, truncated, ONNX 1.0) is refused with a clear
// message instead of a native error.

// ElemType is an ONNX TensorProto.DataType.
type ElemType int32

// The element types cvedge meets in Custom Vision exports.
const (
	ElemUndefined ElemType = 0
	ElemFloat     ElemType = 1
	ElemUint8     ElemType = 2
	ElemInt32     ElemType = 6
	ElemInt64     ElemType = 7
	ElemString    ElemType = 8
	ElemFloat16   ElemType = 10
	ElemDouble    ElemType = 11
)

func (e ElemType) String() string {
	switch e {
	case ElemFloat:
		return "float32"
	case ElemUint8:
		return "uint8"
	case ElemInt32:
		return "int32"
	case ElemInt64:
		return "int64"
	case ElemString:
		return "string"
	case ElemFloat16:
		return "float16"
	case ElemDouble:
		return "float64"
	}
	return fmt.Sprintf("type%d", int32(e))
}

// ValueKind says whether a graph value is a tensor, a sequence or a map.
type ValueKind int

// Value kinds.
const (
	KindOther ValueKind = iota
	KindTensor
	KindSequence
	KindMap
)

// Dim is one dimension of a tensor shape: a fixed size, or a symbolic name (Value < 0).
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	if d.Value >= 0 {
		return fmt.Sprint(d.Value)
	}
	if d.Param != "" {
		return d.Param
	}
	return "?"
}

// ValueType is the type of a graph input or output.
type ValueType struct {
	Kind ValueKind
	// Elem is the element type of a tensor, or the value type of a map (or of the map a
	// sequence holds).
	Elem ElemType
	// Key is the key type of a map (or of the map a sequence holds).
	Key ElemType
	// Dims is the tensor shape; nil when the model does not give one.
	Dims []Dim
	// Of is the element type of a sequence.
	Of *ValueType
}

func (t ValueType) String() string {
	switch t.Kind {
	case KindTensor:
		dims := make([]string, len(t.Dims))
		for i, d := range t.Dims {
			dims[i] = d.String()
		}
		return fmt.Sprintf("%s[%s]", t.Elem, strings.Join(dims, ","))
	case KindSequence:
		if t.Of != nil {
			return "seq(" + t.Of.String() + ")"
		}
		return "seq(?)"
	case KindMap:
		return fmt.Sprintf("map(%s,%s)", t.Key, t.Elem)
	}
	return "other"
}

// ValueInfo names a graph input or output and its type.
type ValueInfo struct {
	Name string
	Type ValueType
}

// Graph is what cvedge reads of an ONNX model.
type Graph struct {
	IRVersion       int64
	Opsets          map[string]int64 // domain ("" is ai.onnx) -> version
	Producer        string
	ProducerVersion string
	Metadata        map[string]string
	// Inputs leaves out inputs that are initializers (weights), as ONNX IR 3 files list them.
	Inputs  []ValueInfo
	Outputs []ValueInfo
	// Ops holds every operator type, with its domain when not the default: "Conv",
	// "com.microsoft:LegacyPadding".
	Ops map[string]bool
}

// errNotONNX is wrapped by every parse failure.
var errNotONNX = errors.New("not an ONNX model, or the file is truncated")

// ParseGraph reads the ONNX header of data. It never panics on bad input.
func ParseGraph(data []byte) (*Graph, error) {
	g := &Graph{Opsets: map[string]int64{}, Metadata: map[string]string{}, Ops: map[string]bool{}}
	var inputs []ValueInfo
	initializers := map[string]bool{}
	sawGraph := false
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			g.IRVersion = int64(x)
		case num == 2 && typ == protowire.BytesType:
			g.Producer = string(v)
		case num == 3 && typ == protowire.BytesType:
			g.ProducerVersion = string(v)
		case num == 8 && typ == protowire.BytesType:
			domain, version, err := pairField(v, "opset_import")
			if err != nil {
				return err
			}
			if domain == "ai.onnx" {
				domain = ""
			}
			g.Opsets[domain] = int64(version)
		case num == 14 && typ == protowire.BytesType:
			key, val, err := stringPair(v)
			if err != nil {
				return fmt.Errorf("metadata_props: %w", err)
			}
			g.Metadata[key] = val
		case num == 7 && typ == protowire.BytesType:
			sawGraph = true
			return parseGraphBody(v, g, &inputs, initializers)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotONNX, err)
	}
	if g.IRVersion <= 0 || !sawGraph {
		return nil, fmt.Errorf("%w: no ir_version or graph found", errNotONNX)
	}
	for _, in := range inputs {
		if !initializers[in.Name] {
			g.Inputs = append(g.Inputs, in)
		}
	}
	return g, nil
}

// pairField reads an OperatorSetIdProto: its domain (field 1) and version (field 2).
func pairField(v []byte, what string) (domain string, version uint64, err error) {
	err = eachField(v, func(n protowire.Number, t protowire.Type, b []byte, y uint64) error {
		if n == 1 && t == protowire.BytesType {
			domain = string(b)
		} else if n == 2 && t == protowire.VarintType {
			version = y
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", what, err)
	}
	return domain, version, nil
}

// stringPair reads a StringStringEntryProto: its key (field 1) and value (field 2).
func stringPair(v []byte) (key, val string, err error) {
	err = eachField(v, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
		if n == 1 && t == protowire.BytesType {
			key = string(b)
		} else if n == 2 && t == protowire.BytesType {
			val = string(b)
		}
		return nil
	})
	return key, val, err
}

// parseGraphBody reads a GraphProto: its nodes' operators into g.Ops, its initializers'
// names, its inputs and its outputs.
func parseGraphBody(v []byte, g *Graph, inputs *[]ValueInfo, initializers map[string]bool) error {
	return eachField(v, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
		if t != protowire.BytesType {
			return nil
		}
		switch n {
		case 1:
			return parseNode(b, g.Ops)
		case 5:
			name, err := stringField(b, 8)
			initializers[name] = true
			return err
		case 11, 12:
			vi, err := parseValueInfo(b)
			if err != nil {
				return err
			}
			if n == 11 {
				*inputs = append(*inputs, vi)
			} else {
				g.Outputs = append(g.Outputs, vi)
			}
		}
		return nil
	})
}

// eachField walks the fields of one protobuf message. For varints x holds the value; for
// length-delimited fields v holds the bytes.
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num <= 0 {
			return fmt.Errorf("field number %d", num)
		}
		data = data[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(data)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func stringField(msg []byte, field protowire.Number) (string, error) {
	var out string
	err := eachField(msg, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
		if n == field && t == protowire.BytesType {
			out = string(b)
		}
		return nil
	})
	return out, err
}

func parseNode(msg []byte, ops map[string]bool) error {
	var opType, domain string
	err := eachField(msg, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
		if t == protowire.BytesType {
			switch n {
			case 4:
				opType = string(b)
			case 7:
				domain = string(b)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if domain != "" && domain != "ai.onnx" {
		opType = domain + ":" + opType
	}
	ops[opType] = true
	return nil
}

func parseValueInfo(msg []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := eachField(msg, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
		if t != protowire.BytesType {
			return nil
		}
		switch n {
		case 1:
			vi.Name = string(b)
		case 2:
			vt, err := parseType(b, 0)
			if err != nil {
				return err
			}
			vi.Type = vt
		}
		return nil
	})
	if err != nil {
		return vi, fmt.Errorf("value_info: %w", err)
	}
	return vi, nil
}

func parseType(msg []byte, depth int) (ValueType, error) {
	var vt ValueType
	if depth > 8 {
		return vt, errors.New("type nested too deeply")
	}
	err := eachField(msg, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
		if t != protowire.BytesType {
			return nil
		}
		switch n {
		case 1: // tensor_type
			vt.Kind = KindTensor
			return eachField(b, func(n protowire.Number, t protowire.Type, b []byte, x uint64) error {
				switch {
				case n == 1 && t == protowire.VarintType:
					vt.Elem = ElemType(int32(x))
				case n == 2 && t == protowire.BytesType:
					vt.Dims = []Dim{}
					return eachField(b, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
						if n == 1 && t == protowire.BytesType {
							d, err := parseDim(b)
							vt.Dims = append(vt.Dims, d)
							return err
						}
						return nil
					})
				}
				return nil
			})
		case 4: // sequence_type
			vt.Kind = KindSequence
			return eachField(b, func(n protowire.Number, t protowire.Type, b []byte, _ uint64) error {
				if n == 1 && t == protowire.BytesType {
					of, err := parseType(b, depth+1)
					vt.Of = &of
					vt.Key, vt.Elem = of.Key, of.Elem
					return err
				}
				return nil
			})
		case 5: // map_type
			vt.Kind = KindMap
			return eachField(b, func(n protowire.Number, t protowire.Type, b []byte, x uint64) error {
				switch {
				case n == 1 && t == protowire.VarintType:
					vt.Key = ElemType(int32(x))
				case n == 2 && t == protowire.BytesType:
					val, err := parseType(b, depth+1)
					vt.Elem = val.Elem
					return err
				}
				return nil
			})
		}
		return nil
	})
	return vt, err
}

func parseDim(msg []byte) (Dim, error) {
	d := Dim{Value: -1}
	err := eachField(msg, func(n protowire.Number, t protowire.Type, b []byte, x uint64) error {
		switch {
		case n == 1 && t == protowire.VarintType:
			d.Value = int64(x)
		case n == 2 && t == protowire.BytesType:
			d.Param = string(b)
		}
		return nil
	})
	return d, err
}
