//go:build cgo && !noonnx

package ortengine

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/models/onnxexport"
)

// denseForward is the Go reference of an MLP layer on one row.
func denseForward(l onnxexport.DenseLayer, x []float64) []float64 {
	y := make([]float64, l.Out)
	for o := range l.Out {
		s := float64(l.B[o])
		for i := range l.In {
			s += x[i] * float64(l.W[i*l.Out+o])
		}
		y[o] = s
	}
	switch l.Activation {
	case onnxexport.ActivationReLU:
		for o := range y {
			y[o] = max(y[o], 0)
		}
	case onnxexport.ActivationSigmoid:
		for o := range y {
			y[o] = 1 / (1 + math.Exp(-y[o]))
		}
	case onnxexport.ActivationSoftmax:
		var sum float64
		for o := range y {
			y[o] = math.Exp(y[o])
			sum += y[o]
		}
		for o := range y {
			y[o] /= sum
		}
	}
	return y
}

func randomLayer(rng *rand.Rand, in, out int, act onnxexport.Activation) onnxexport.DenseLayer {
	l := onnxexport.DenseLayer{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out), Activation: act}
	scale := 1 / math.Sqrt(float64(in))
	for i := range l.W {
		l.W[i] = float32(rng.NormFloat64() * scale)
	}
	for i := range l.B {
		l.B[i] = float32(rng.NormFloat64() * 0.1)
	}
	return l
}

func randomColumns(rng *rand.Rand, names []string, n int) map[string][]float32 {
	cols := make(map[string][]float32, len(names))
	for _, name := range names {
		col := make([]float32, n)
		for i := range col {
			col[i] = float32(rng.NormFloat64())
		}
		cols[name] = col
	}
	return cols
}

// twoInputModel is a user's model with inputs "numeric" [N, 3] and
// "flags" [N, 2], concatenated into a 5-8-1 MLP; it has two outputs,
// "hidden" [N, 8] and "prob" [N, 1].
func twoInputModel(t *testing.T, hidden, head onnxexport.DenseLayer) []byte {
	t.Helper()
	batch := onnxexport.Dim{Param: onnxexport.BatchDim}
	g := onnxexport.Graph{
		Name: "user model",
		Inputs: []onnxexport.TensorSpec{
			{Name: "numeric", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 3}}},
			{Name: "flags", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 2}}},
		},
		Outputs: []onnxexport.TensorSpec{
			{Name: "hidden", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 8}}},
			{Name: "prob", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 1}}},
		},
		Initializers: []onnxexport.Tensor{
			{Name: "w1", Dims: []int64{5, 8}, Float32s: hidden.W}, {Name: "b1", Dims: []int64{8}, Float32s: hidden.B},
			{Name: "w2", Dims: []int64{8, 1}, Float32s: head.W}, {Name: "b2", Dims: []int64{1}, Float32s: head.B},
		},
		Nodes: []onnxexport.Node{
			{Op: "Concat", Inputs: []string{"numeric", "flags"}, Outputs: []string{"x"}, Attrs: []onnxexport.Attr{onnxexport.IntAttr("axis", 1)}},
			{Op: "Gemm", Inputs: []string{"x", "w1", "b1"}, Outputs: []string{"pre_hidden"}},
			{Op: "Relu", Inputs: []string{"pre_hidden"}, Outputs: []string{"hidden"}},
			{Op: "Gemm", Inputs: []string{"hidden", "w2", "b2"}, Outputs: []string{"logit"}},
			{Op: "Sigmoid", Inputs: []string{"logit"}, Outputs: []string{"prob"}},
		},
	}
	m := onnxexport.Model{Graph: g}
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func TestCustomModelScoresMappedFeatureColumns(t *testing.T) {
	const n = 1000
	rng := rand.New(rand.NewPCG(3, 3))
	hidden := randomLayer(rng, 5, 8, onnxexport.ActivationReLU)
	head := randomLayer(rng, 8, 1, onnxexport.ActivationSigmoid)
	model := twoInputModel(t, hidden, head)
	// The mapping puts features in another order than the columns map.
	mapping := []InputMapping{
		{Input: "flags", Features: []string{"is_new", "is_mobile"}},
		{Input: "numeric", Features: []string{"amount", "age", "latency"}},
	}
	c, err := NewCustom(Config{PoolSize: 2}, model, mapping, "prob")
	if err != nil {
		t.Fatalf("new custom model: %v", err)
	}
	defer c.Close()
	if c.Width() != 1 {
		t.Fatalf("width %d, want 1", c.Width())
	}
	cols := randomColumns(rng, []string{"age", "amount", "is_mobile", "is_new", "latency"}, n)
	got := make([]float32, n)
	if err := c.Score(got, n, cols); err != nil {
		t.Fatalf("score: %v", err)
	}
	want := make([]float32, n)
	for r := range n {
		x := []float64{
			float64(cols["amount"][r]), float64(cols["age"][r]), float64(cols["latency"][r]),
			float64(cols["is_new"][r]), float64(cols["is_mobile"][r]),
		}
		want[r] = float32(denseForward(head, denseForward(hidden, x))[0])
	}
	assertClose(t, got, want, 1e-5)
}

func TestCustomModelFromFile(t *testing.T) {
	const n, inputs, classes = 257, 6, 4
	rng := rand.New(rand.NewPCG(4, 4))
	mlp := onnxexport.MLP{Name: "mlp", Input: "x", Output: "probs", Layers: []onnxexport.DenseLayer{
		randomLayer(rng, inputs, 16, onnxexport.ActivationReLU),
		randomLayer(rng, 16, classes, onnxexport.ActivationSoftmax),
	}}
	m, err := mlp.Model()
	if err != nil {
		t.Fatalf("mlp model: %v", err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	path := filepath.Join(t.TempDir(), "mlp.onnx")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	features := []string{"f0", "f1", "f2", "f3", "f4", "f5"}
	c, err := OpenCustom(Config{}, CustomSpec{Path: path, Inputs: []InputMapping{{Input: "x", Features: features}}})
	if err != nil {
		t.Fatalf("open custom model: %v", err)
	}
	defer c.Close()
	if c.Width() != classes {
		t.Fatalf("width %d, want %d", c.Width(), classes)
	}
	cols := randomColumns(rng, features, n)
	got := make([]float32, n*classes)
	// Two calls of different sizes: the buffers are reused and resized.
	for _, rows := range []int{n, 3} {
		if err := c.Score(got[:rows*classes], rows, cols); err != nil {
			t.Fatalf("score %d rows: %v", rows, err)
		}
	}
	if err := c.Score(got, n, cols); err != nil {
		t.Fatalf("score: %v", err)
	}
	want := make([]float32, n*classes)
	for r := range n {
		x := make([]float64, inputs)
		for j, f := range features {
			x[j] = float64(cols[f][r])
		}
		y := denseForward(mlp.Layers[1], denseForward(mlp.Layers[0], x))
		for k := range classes {
			want[r*classes+k] = float32(y[k])
		}
	}
	assertClose(t, got, want, 1e-5)
}

func TestCustomModelRejectsBadMappings(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	model := twoInputModel(t, randomLayer(rng, 5, 8, onnxexport.ActivationReLU), randomLayer(rng, 8, 1, onnxexport.ActivationSigmoid))
	full := []InputMapping{
		{Input: "numeric", Features: []string{"a", "b", "c"}},
		{Input: "flags", Features: []string{"d", "e"}},
	}
	cases := []struct {
		name    string
		inputs  []InputMapping
		output  string
		wantErr string
	}{
		{"unmapped input", full[:1], "prob", `"flags"`},
		{"wrong width", []InputMapping{full[0], {Input: "flags", Features: []string{"d"}}}, "prob", "[N, 1]"},
		{"unknown input", append([]InputMapping{{Input: "extra", Features: []string{"z"}}}, full...), "prob", `no input "extra"`},
		{"unknown output", full, "logits", `no output "logits"`},
		{"ambiguous output", full, "", "2 outputs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCustom(Config{}, model, tc.inputs, tc.output)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %s", err, tc.wantErr)
			}
		})
	}

	c, err := NewCustom(Config{}, model, full, "prob")
	if err != nil {
		t.Fatalf("new custom model: %v", err)
	}
	defer c.Close()
	cols := randomColumns(rng, []string{"a", "b", "c", "d"}, 10)
	err = c.Score(make([]float32, 10), 10, cols)
	if err == nil || !strings.Contains(err.Error(), `"e"`) {
		t.Fatalf("score with a missing column: error %v, want one naming column \"e\"", err)
	}
}
