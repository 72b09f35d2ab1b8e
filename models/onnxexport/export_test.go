package onnxexport

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/driftline/driftline/models"
)

// field is one decoded protobuf field: a varint, or length-delimited bytes.
type field struct {
	num    protowire.Number
	varint uint64
	bytes  []byte
}

// decode splits a protobuf message into its fields, failing on anything
// this package does not write.
func decode(t *testing.T, b []byte) []field {
	t.Helper()
	var fs []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num}
		switch typ {
		case protowire.VarintType:
			f.varint, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.varint = uint64(v)
		default:
			t.Fatalf("unexpected wire type %v", typ)
		}
		if n < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs
}

func all(fs []field, num protowire.Number) []field {
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

func one(t *testing.T, fs []field, num protowire.Number) field {
	t.Helper()
	got := all(fs, num)
	if len(got) != 1 {
		t.Fatalf("field %d occurs %d times, want once", num, len(got))
	}
	return got[0]
}

func testParams() *models.LinearParams {
	p := &models.LinearParams{NumDense: 2, NumHashed: 3, HashBits: 2, Classes: 3, Link: models.LinkSoftmax}
	p.W = make([]float32, p.Classes*p.Dim())
	for i := range p.W {
		p.W[i] = float32(i) + 0.5
	}
	p.B = []float32{-1, 0, 1}
	p.Mean = []float32{10, 20}
	p.Std = []float32{2, 4}
	return p
}

// spec describes a decoded ValueInfoProto as "name:elem[dims]".
func spec(t *testing.T, b []byte) string {
	fs := decode(t, b)
	name := string(one(t, fs, valueInfoName).bytes)
	tt := decode(t, one(t, decode(t, one(t, fs, valueInfoType).bytes), typeTensorType).bytes)
	elem := ElemType(one(t, tt, tensorTypeElem).varint)
	var dims []string
	for _, d := range all(decode(t, one(t, tt, tensorTypeShape).bytes), shapeDim) {
		df := decode(t, d.bytes)
		if p := all(df, dimParam); len(p) == 1 {
			dims = append(dims, string(p[0].bytes))
		} else {
			dims = append(dims, string(rune('0'+one(t, df, dimValue).varint)))
		}
	}
	return name + ":" + elem.String() + "[" + strings.Join(dims, ",") + "]"
}

func TestExportWritesModelHeaderSignatureAndMetadata(t *testing.T) {
	b, err := Export(testParams(), Metadata{ModelName: "m", ModelVersion: "v3", DenseFeatures: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	model := decode(t, b)
	if v := one(t, model, modelIRVersion).varint; v != IRVersion {
		t.Errorf("ir_version %d, want %d", v, IRVersion)
	}
	opset := decode(t, one(t, model, modelOpsetImport).bytes)
	if v := one(t, opset, opsetVersion).varint; v != Opset || len(all(opset, 1)) != 0 {
		t.Errorf("opset import %+v, want the default domain at %d", opset, Opset)
	}
	if p := string(one(t, model, modelProducerName).bytes); p != Producer {
		t.Errorf("producer %q", p)
	}
	props := map[string]string{}
	for _, f := range all(model, modelMetadataProps) {
		e := decode(t, f.bytes)
		props[string(one(t, e, entryKey).bytes)] = string(one(t, e, entryValue).bytes)
	}
	want := map[string]string{
		PropModelName: "m", PropModelVersion: "v3", PropLink: "softmax", PropClasses: "3",
		PropHashBits: "2", PropDenseFeatures: `["a","b"]`, PropHashedFeatures: `[]`,
	}
	for k, v := range want {
		if props[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, props[k], v)
		}
	}

	graph := decode(t, one(t, model, modelGraph).bytes)
	var inputs, outputs []string
	for _, f := range all(graph, graphInput) {
		inputs = append(inputs, spec(t, f.bytes))
	}
	for _, f := range all(graph, graphOutput) {
		outputs = append(outputs, spec(t, f.bytes))
	}
	if got := strings.Join(inputs, " "); got != "dense:float32[N,2] hashed:int32[N,3]" {
		t.Errorf("inputs %s", got)
	}
	if got := strings.Join(outputs, " "); got != "score:float32[N,3]" {
		t.Errorf("outputs %s", got)
	}
	var ops []string
	for _, f := range all(graph, graphNode) {
		ops = append(ops, string(one(t, decode(t, f.bytes), nodeOpType).bytes))
	}
	if got := strings.Join(ops, " "); got != "Sub Div IsNaN IsInf Or Where MatMul Max Min Gather ReduceSum Add Add Softmax" {
		t.Errorf("ops %s", got)
	}
}

func initializer(t *testing.T, b []byte, name string) []float32 {
	t.Helper()
	graph := decode(t, one(t, decode(t, b), modelGraph).bytes)
	for _, f := range all(graph, graphInitializer) {
		tf := decode(t, f.bytes)
		if string(one(t, tf, tensorName).bytes) != name {
			continue
		}
		if ElemType(one(t, tf, tensorDataType).varint) != Float32 {
			t.Fatalf("initializer %s is not float32", name)
		}
		raw := one(t, tf, tensorRawData).bytes
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out
	}
	t.Fatalf("no initializer %s", name)
	return nil
}

func TestExportTransposesWeightsAndAddsAnAbsentRow(t *testing.T) {
	p := testParams()
	b, err := Export(p, Metadata{ModelName: "m", ModelVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	dim, k := p.Dim(), p.Classes
	dense := initializer(t, b, "w_dense_t")
	for j := range p.NumDense {
		for c := range k {
			if dense[j*k+c] != p.W[c*dim+j] {
				t.Fatalf("w_dense_t[%d,%d] = %v, want W[%d]", j, c, dense[j*k+c], c*dim+j)
			}
		}
	}
	hashed := initializer(t, b, "w_hashed_t")
	buckets := 1 << p.HashBits
	if len(hashed) != (buckets+1)*k {
		t.Fatalf("w_hashed_t has %d values, want %d", len(hashed), (buckets+1)*k)
	}
	for h := range buckets {
		for c := range k {
			if hashed[h*k+c] != p.W[c*dim+p.NumDense+h] {
				t.Fatalf("w_hashed_t[%d,%d] = %v, want W[%d]", h, c, hashed[h*k+c], c*dim+p.NumDense+h)
			}
		}
	}
	for c := range k {
		if hashed[buckets*k+c] != 0 {
			t.Fatalf("absent row is not zero: %v", hashed[buckets*k:])
		}
	}
}

func TestExportOmitsAnInputOfWidthZero(t *testing.T) {
	p := &models.LinearParams{NumDense: 1, Classes: 1, Link: models.LinkSigmoid, W: []float32{1, 0}, B: []float32{0}, Mean: []float32{0}, Std: []float32{1}}
	sig := LinearSignature(p)
	if len(sig.Inputs) != 1 || sig.Inputs[0].Name != DenseInput || sig.Opset != Opset {
		t.Fatalf("signature %+v, want only the dense input", sig)
	}
	b, err := Export(p, Metadata{ModelName: "m", ModelVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(all(decode(t, one(t, decode(t, b), modelGraph).bytes), graphInput)); n != 1 {
		t.Fatalf("%d graph inputs, want 1", n)
	}
}

func TestExportIsDeterministic(t *testing.T) {
	meta := Metadata{ModelName: "m", ModelVersion: "1"}
	a, errA := Export(testParams(), meta)
	b, errB := Export(testParams(), meta)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("two exports differ (%v, %v)", errA, errB)
	}
}

func TestExportRejectsInvalidModels(t *testing.T) {
	meta := Metadata{ModelName: "m", ModelVersion: "1"}
	cases := map[string]func(p *models.LinearParams, m *Metadata){
		"no features":        func(p *models.LinearParams, m *Metadata) { p.NumDense, p.NumHashed = 0, 0 },
		"short weights":      func(p *models.LinearParams, m *Metadata) { p.W = p.W[1:] },
		"short intercepts":   func(p *models.LinearParams, m *Metadata) { p.B = p.B[1:] },
		"zero std":           func(p *models.LinearParams, m *Metadata) { p.Std[1] = 0 },
		"softmax of one":     func(p *models.LinearParams, m *Metadata) { p.Classes = 1 },
		"sigmoid of three":   func(p *models.LinearParams, m *Metadata) { p.Link = models.LinkSigmoid },
		"unknown link":       func(p *models.LinearParams, m *Metadata) { p.Link = 9 },
		"hash bits":          func(p *models.LinearParams, m *Metadata) { p.HashBits = 40 },
		"no version":         func(p *models.LinearParams, m *Metadata) { m.ModelVersion = "" },
		"dense names count":  func(p *models.LinearParams, m *Metadata) { m.DenseFeatures = []string{"a"} },
		"hashed names count": func(p *models.LinearParams, m *Metadata) { m.HashedFeatures = []string{"a"} },
	}
	for name, breakIt := range cases {
		p, m := testParams(), meta
		breakIt(p, &m)
		if _, err := Export(p, m); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "onnxexport: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestMarshalRejectsMalformedGraphs(t *testing.T) {
	in := TensorSpec{Name: "x", Type: Float32, Shape: []Dim{{Param: BatchDim}, {Value: 1}}}
	out := TensorSpec{Name: "y", Type: Float32, Shape: []Dim{{Param: BatchDim}, {Value: 1}}}
	relu := Node{Op: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}
	cases := map[string]Graph{
		"no outputs":       {Inputs: []TensorSpec{in}, Nodes: []Node{relu}},
		"undefined input":  {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{{Op: "Relu", Inputs: []string{"z"}, Outputs: []string{"y"}}}},
		"defined twice":    {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{relu, relu}},
		"never computed":   {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}},
		"no op type":       {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{{Inputs: []string{"x"}, Outputs: []string{"y"}}}},
		"tensor size":      {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{relu}, Initializers: []Tensor{{Name: "c", Dims: []int64{2}, Float32s: []float32{1}}}},
		"tensor two types": {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{relu}, Initializers: []Tensor{{Name: "c", Float32s: []float32{1}, Int64s: []int64{1}}}},
		"attribute empty":  {Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{{Op: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: []Attr{{Name: "a"}}}}},
	}
	for name, g := range cases {
		m := Model{Graph: g}
		if _, err := m.Marshal(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	ok := Model{Graph: Graph{Inputs: []TensorSpec{in}, Outputs: []TensorSpec{out}, Nodes: []Node{relu}}}
	if _, err := ok.Marshal(); err != nil {
		t.Errorf("valid graph: %v", err)
	}
}

func TestAttributesEncodeTheirType(t *testing.T) {
	for _, tc := range []struct {
		attr     Attr
		wantType uint64
		field    protowire.Number
	}{
		{IntAttr("axis", -1), attrTypeI, attrI},
		{FloatAttr("alpha", 0.25), attrTypeF, attrF},
		{IntsAttr("perm", 1, 0), attrTypeIs, attrInts},
	} {
		b, err := appendAttr(nil, tc.attr)
		if err != nil {
			t.Fatal(err)
		}
		fs := decode(t, b)
		if got := one(t, fs, attrType).varint; got != tc.wantType {
			t.Errorf("%s: type %d, want %d", tc.attr.Name, got, tc.wantType)
		}
		v := one(t, fs, tc.field)
		switch tc.field {
		case attrI:
			if int64(v.varint) != -1 {
				t.Errorf("int attribute %d", int64(v.varint))
			}
		case attrF:
			if math.Float32frombits(uint32(v.varint)) != 0.25 {
				t.Errorf("float attribute %v", math.Float32frombits(uint32(v.varint)))
			}
		case attrInts:
			if !bytes.Equal(v.bytes, []byte{1, 0}) {
				t.Errorf("packed ints % x", v.bytes)
			}
		}
	}
}

func TestMLPRejectsMismatchedLayers(t *testing.T) {
	layer := func(in, out int, act Activation) DenseLayer {
		return DenseLayer{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out), Activation: act}
	}
	cases := map[string]MLP{
		"no layers":          {Input: "x", Output: "y"},
		"no names":           {Layers: []DenseLayer{layer(2, 2, ActivationNone)}},
		"chain mismatch":     {Input: "x", Output: "y", Layers: []DenseLayer{layer(2, 3, ActivationReLU), layer(2, 1, ActivationNone)}},
		"weights count":      {Input: "x", Output: "y", Layers: []DenseLayer{{In: 2, Out: 2, W: make([]float32, 3), B: make([]float32, 2)}}},
		"unknown activation": {Input: "x", Output: "y", Layers: []DenseLayer{layer(2, 2, "gelu")}},
	}
	for name, m := range cases {
		if _, err := m.Model(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	m := MLP{Input: "x", Output: "y", Layers: []DenseLayer{layer(4, 3, ActivationReLU), layer(3, 3, ActivationTanh), layer(3, 2, ActivationSoftmax)}}
	model, err := m.Model()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, n := range model.Graph.Nodes {
		ops = append(ops, n.Op)
	}
	if got := strings.Join(ops, " "); got != "Gemm Relu Gemm Tanh Gemm Softmax" {
		t.Fatalf("mlp ops %q", got)
	}
	if _, err := model.Marshal(); err != nil {
		t.Fatalf("marshal: %v", err)
	}
}
