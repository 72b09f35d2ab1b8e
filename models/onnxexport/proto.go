// Package onnxexport writes ONNX models without cgo or generated protobuf
// code: a small graph builder (Model, Graph, Node, Tensor) encoded by hand
// with protowire, and Export, which turns a models.LinearParams into a
// scoring graph with its scaler and feature hashing embedded.
//
// Every model written here uses the default ONNX operator set at Opset, and
// IRVersion, the IR version that goes with it.
package onnxexport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// Opset is the pinned version of the default ("ai.onnx") operator set.
	Opset = 17
	// IRVersion is the ONNX IR version that goes with Opset (ONNX 1.12).
	IRVersion = 8
	// Producer is written as the model's producer_name.
	Producer = "driftline"
)

// ElemType is an ONNX tensor element type (TensorProto.DataType).
type ElemType int32

// The element types driftline's graphs use.
const (
	Float32 ElemType = 1
	Int32   ElemType = 6
	Int64   ElemType = 7
	Float64 ElemType = 11
)

// String names the type as Go does.
func (t ElemType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("elemtype(%d)", int32(t))
}

// Dim is one dimension of a declared tensor shape: a fixed size, or, when
// Param is not empty, a symbolic size that varies per call (such as the batch
// dimension "N").
type Dim struct {
	Value int64
	Param string
}

// TensorSpec declares a graph input or output: its name, element type and
// shape.
type TensorSpec struct {
	Name  string
	Type  ElemType
	Shape []Dim
}

// Tensor is a constant graph initializer.
// Exactly one of Float32s, Float64s, Int32s and Int64s holds its values,
// row-major, and the product of Dims equals their count (a scalar has no
// Dims).
type Tensor struct {
	Name     string
	Dims     []int64
	Float32s []float32
	Float64s []float64
	Int32s   []int32
	Int64s   []int64
}

// Attr is a node attribute. Set Name and exactly one value field.
type Attr struct {
	Name    string
	Int     *int64
	Float   *float32
	Ints    []int64
	Floats  []float32
	String  *string
	Strings []string
}

// IntAttr returns an integer attribute.
func IntAttr(name string, v int64) Attr { return Attr{Name: name, Int: &v} }

// FloatAttr returns a float attribute.
func FloatAttr(name string, v float32) Attr { return Attr{Name: name, Float: &v} }

// IntsAttr returns an integer-list attribute.
func IntsAttr(name string, v ...int64) Attr { return Attr{Name: name, Ints: v} }

// FloatsAttr returns a float-list attribute.
func FloatsAttr(name string, v ...float32) Attr { return Attr{Name: name, Floats: v} }

// StringAttr returns a string attribute.
func StringAttr(name, v string) Attr { return Attr{Name: name, String: &v} }

// StringsAttr returns a string-list attribute.
func StringsAttr(name string, v ...string) Attr { return Attr{Name: name, Strings: v} }

// Node is one operator application, in the default operator set unless
// Domain names another (such as MLDomain).
type Node struct {
	Op      string
	Domain  string
	Name    string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// MLDomain is the domain of ONNX's traditional machine-learning operators
// (TreeEnsembleClassifier, TreeEnsembleRegressor, …), imported at MLOpset
// by every model whose graph uses it.
const (
	MLDomain = "ai.onnx.ml"
	MLOpset  = 3
)

// Graph is a computation graph. Nodes must be listed in topological order.
type Graph struct {
	Name         string
	Inputs       []TensorSpec
	Outputs      []TensorSpec
	Initializers []Tensor
	Nodes        []Node
}

// Prop is one metadata entry (ModelProto.metadata_props).
type Prop struct {
	Key, Value string
}

// Model is an ONNX model: a graph plus descriptive fields.
type Model struct {
	Graph Graph
	// DocString describes the model for humans.
	DocString string
	// Props are written to metadata_props in order.
	Props []Prop
}

// ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
// ValueInfoProto, TypeProto and friends: field numbers from onnx.proto3.
const (
	modelIRVersion     = 1
	modelProducerName  = 2
	modelGraph         = 7
	modelDocString     = 6
	modelOpsetImport   = 8
	modelMetadataProps = 14

	opsetDomain  = 1
	opsetVersion = 2

	entryKey   = 1
	entryValue = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDomain    = 7

	attrName    = 1
	attrF       = 2
	attrI       = 3
	attrS       = 4
	attrFloats  = 7
	attrInts    = 8
	attrStrings = 9
	attrType    = 20
	attrTypeF   = 1
	attrTypeI   = 2
	attrTypeS   = 3
	attrTypeFs  = 6
	attrTypeIs  = 7
	attrTypeSs  = 8

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueInfoName = 1
	valueInfoType = 2

	typeTensorType  = 1
	tensorTypeElem  = 1
	tensorTypeShape = 2
	shapeDim        = 1
	dimValue        = 1
	dimParam        = 2
)

// Marshal validates the model's structure and encodes it as an ONNX
// ModelProto. It checks names and tensor sizes, not operator semantics;
// ONNX Runtime checks those when it loads the model.
func (m *Model) Marshal() ([]byte, error) {
	if err := m.Graph.validate(); err != nil {
		return nil, err
	}
	var b []byte
	b = protowire.AppendTag(b, modelIRVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, IRVersion)
	b = appendString(b, modelProducerName, Producer)
	if m.DocString != "" {
		b = appendString(b, modelDocString, m.DocString)
	}
	var g []byte
	g, err := appendGraph(g, &m.Graph)
	if err != nil {
		return nil, err
	}
	b = protowire.AppendTag(b, modelGraph, protowire.BytesType)
	b = protowire.AppendBytes(b, g)

	var opset []byte
	opset = protowire.AppendTag(opset, opsetVersion, protowire.VarintType)
	opset = protowire.AppendVarint(opset, Opset)
	b = protowire.AppendTag(b, modelOpsetImport, protowire.BytesType)
	b = protowire.AppendBytes(b, opset)
	if m.Graph.usesDomain(MLDomain) {
		var ml []byte
		ml = appendString(ml, opsetDomain, MLDomain)
		ml = protowire.AppendTag(ml, opsetVersion, protowire.VarintType)
		ml = protowire.AppendVarint(ml, MLOpset)
		b = protowire.AppendTag(b, modelOpsetImport, protowire.BytesType)
		b = protowire.AppendBytes(b, ml)
	}

	for _, p := range m.Props {
		var e []byte
		e = appendString(e, entryKey, p.Key)
		e = appendString(e, entryValue, p.Value)
		b = protowire.AppendTag(b, modelMetadataProps, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b, nil
}

// usesDomain reports whether a node of g is in the operator domain d.
func (g *Graph) usesDomain(d string) bool {
	for _, n := range g.Nodes {
		if n.Domain == d {
			return true
		}
	}
	return false
}

func (g *Graph) validate() error {
	if len(g.Inputs) == 0 || len(g.Outputs) == 0 {
		return errors.New("onnxexport: graph needs at least one input and one output")
	}
	defined := make(map[string]bool)
	define := func(kind, name string) error {
		if name == "" {
			return fmt.Errorf("onnxexport: %s with an empty name", kind)
		}
		if defined[name] {
			return fmt.Errorf("onnxexport: %s %q defined twice", kind, name)
		}
		defined[name] = true
		return nil
	}
	for _, in := range g.Inputs {
		if err := define("input", in.Name); err != nil {
			return err
		}
	}
	for i := range g.Initializers {
		t := &g.Initializers[i]
		if err := define("initializer", t.Name); err != nil {
			return err
		}
		if err := t.validate(); err != nil {
			return err
		}
	}
	for _, n := range g.Nodes {
		if n.Op == "" {
			return fmt.Errorf("onnxexport: node %q has no op type", n.Name)
		}
		for _, in := range n.Inputs {
			if in != "" && !defined[in] {
				return fmt.Errorf("onnxexport: node %s %q reads %q before it is defined", n.Op, n.Name, in)
			}
		}
		for _, out := range n.Outputs {
			if err := define("node output", out); err != nil {
				return err
			}
		}
	}
	for _, out := range g.Outputs {
		if !defined[out.Name] {
			return fmt.Errorf("onnxexport: graph output %q is never computed", out.Name)
		}
	}
	return nil
}

func (t *Tensor) validate() error {
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("onnxexport: tensor %q has negative dimension %d", t.Name, d)
		}
		n *= d
	}
	set, count := 0, 0
	if t.Float32s != nil {
		set, count = set+1, len(t.Float32s)
	}
	if t.Float64s != nil {
		set, count = set+1, len(t.Float64s)
	}
	if t.Int32s != nil {
		set, count = set+1, len(t.Int32s)
	}
	if t.Int64s != nil {
		set, count = set+1, len(t.Int64s)
	}
	if set != 1 {
		return fmt.Errorf("onnxexport: tensor %q must set exactly one of Float32s, Float64s, Int32s, Int64s", t.Name)
	}
	if int64(count) != n {
		return fmt.Errorf("onnxexport: tensor %q has %d values for dims %v", t.Name, count, t.Dims)
	}
	return nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendGraph(b []byte, g *Graph) ([]byte, error) {
	for _, n := range g.Nodes {
		nb, err := appendNode(nil, &n)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, graphNode, protowire.BytesType)
		b = protowire.AppendBytes(b, nb)
	}
	b = appendString(b, graphName, g.Name)
	for i := range g.Initializers {
		b = protowire.AppendTag(b, graphInitializer, protowire.BytesType)
		b = protowire.AppendBytes(b, appendTensor(nil, &g.Initializers[i]))
	}
	for _, in := range g.Inputs {
		b = protowire.AppendTag(b, graphInput, protowire.BytesType)
		b = protowire.AppendBytes(b, appendValueInfo(nil, in))
	}
	for _, out := range g.Outputs {
		b = protowire.AppendTag(b, graphOutput, protowire.BytesType)
		b = protowire.AppendBytes(b, appendValueInfo(nil, out))
	}
	return b, nil
}

func appendNode(b []byte, n *Node) ([]byte, error) {
	for _, in := range n.Inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range n.Outputs {
		b = appendString(b, nodeOutput, out)
	}
	if n.Name != "" {
		b = appendString(b, nodeName, n.Name)
	}
	b = appendString(b, nodeOpType, n.Op)
	if n.Domain != "" {
		b = appendString(b, nodeDomain, n.Domain)
	}
	for _, a := range n.Attrs {
		ab, err := appendAttr(nil, a)
		if err != nil {
			return nil, fmt.Errorf("onnxexport: node %s %q: %w", n.Op, n.Name, err)
		}
		b = protowire.AppendTag(b, nodeAttribute, protowire.BytesType)
		b = protowire.AppendBytes(b, ab)
	}
	return b, nil
}

func appendAttr(b []byte, a Attr) ([]byte, error) {
	b = appendString(b, attrName, a.Name)
	set := 0
	if a.Int != nil {
		set++
		b = protowire.AppendTag(b, attrI, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(*a.Int))
		b = protowire.AppendTag(b, attrType, protowire.VarintType)
		b = protowire.AppendVarint(b, attrTypeI)
	}
	if a.Float != nil {
		set++
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(*a.Float))
		b = protowire.AppendTag(b, attrType, protowire.VarintType)
		b = protowire.AppendVarint(b, attrTypeF)
	}
	if a.Ints != nil {
		set++
		var packed []byte
		for _, v := range a.Ints {
			packed = protowire.AppendVarint(packed, uint64(v))
		}
		b = protowire.AppendTag(b, attrInts, protowire.BytesType)
		b = protowire.AppendBytes(b, packed)
		b = protowire.AppendTag(b, attrType, protowire.VarintType)
		b = protowire.AppendVarint(b, attrTypeIs)
	}
	if a.Floats != nil {
		set++
		var packed []byte
		for _, v := range a.Floats {
			packed = protowire.AppendFixed32(packed, math.Float32bits(v))
		}
		b = protowire.AppendTag(b, attrFloats, protowire.BytesType)
		b = protowire.AppendBytes(b, packed)
		b = protowire.AppendTag(b, attrType, protowire.VarintType)
		b = protowire.AppendVarint(b, attrTypeFs)
	}
	if a.String != nil {
		set++
		b = appendString(b, attrS, *a.String)
		b = protowire.AppendTag(b, attrType, protowire.VarintType)
		b = protowire.AppendVarint(b, attrTypeS)
	}
	if a.Strings != nil {
		set++
		for _, v := range a.Strings {
			b = appendString(b, attrStrings, v)
		}
		b = protowire.AppendTag(b, attrType, protowire.VarintType)
		b = protowire.AppendVarint(b, attrTypeSs)
	}
	if set != 1 {
		return nil, fmt.Errorf("attribute %q must set exactly one value", a.Name)
	}
	return b, nil
}

// appendTensor writes a TensorProto with its values as little-endian raw_data.
func appendTensor(b []byte, t *Tensor) []byte {
	if len(t.Dims) > 0 {
		var dims []byte
		for _, d := range t.Dims {
			dims = protowire.AppendVarint(dims, uint64(d))
		}
		b = protowire.AppendTag(b, tensorDims, protowire.BytesType)
		b = protowire.AppendBytes(b, dims)
	}
	var raw []byte
	var typ ElemType
	switch {
	case t.Float32s != nil:
		typ = Float32
		raw = make([]byte, 0, 4*len(t.Float32s))
		for _, v := range t.Float32s {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	case t.Float64s != nil:
		typ = Float64
		raw = make([]byte, 0, 8*len(t.Float64s))
		for _, v := range t.Float64s {
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(v))
		}
	case t.Int32s != nil:
		typ = Int32
		raw = make([]byte, 0, 4*len(t.Int32s))
		for _, v := range t.Int32s {
			raw = binary.LittleEndian.AppendUint32(raw, uint32(v))
		}
	default:
		typ = Int64
		raw = make([]byte, 0, 8*len(t.Int64s))
		for _, v := range t.Int64s {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
	}
	b = protowire.AppendTag(b, tensorDataType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(typ))
	if t.Name != "" {
		b = appendString(b, tensorName, t.Name)
	}
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func appendValueInfo(b []byte, s TensorSpec) []byte {
	var shape []byte
	for _, d := range s.Shape {
		var db []byte
		if d.Param != "" {
			db = appendString(db, dimParam, d.Param)
		} else {
			db = protowire.AppendTag(db, dimValue, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.Value))
		}
		shape = protowire.AppendTag(shape, shapeDim, protowire.BytesType)
		shape = protowire.AppendBytes(shape, db)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, tensorTypeElem, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(s.Type))
	tt = protowire.AppendTag(tt, tensorTypeShape, protowire.BytesType)
	tt = protowire.AppendBytes(tt, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, typeTensorType, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tt)

	b = appendString(b, valueInfoName, s.Name)
	b = protowire.AppendTag(b, valueInfoType, protowire.BytesType)
	return protowire.AppendBytes(b, typ)
}
