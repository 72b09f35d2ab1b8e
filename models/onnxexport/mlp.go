package onnxexport

import (
	"errors"
	"fmt"
)

// Activation is the function applied to a dense layer's output.
type Activation string

// Activations an MLP layer can use.
const (
	ActivationNone    Activation = ""
	ActivationReLU    Activation = "relu"
	ActivationTanh    Activation = "tanh"
	ActivationSigmoid Activation = "sigmoid"
	ActivationSoftmax Activation = "softmax"
)

// DenseLayer is y = Activation(x·W + B) for x of shape [N, In].
type DenseLayer struct {
	In, Out int
	// W holds In×Out weights, row-major (W[i*Out+o] links input i to
	// output o).
	W []float32
	// B holds Out biases.
	B          []float32
	Activation Activation
}

// MLP is a feed-forward network of dense layers over one float32 input
// [N, Layers[0].In], with one float32 output [N, Layers[last].Out].
type MLP struct {
	// Name is the graph name.
	Name string
	// Input and Output name the graph's input and output.
	Input, Output string
	Layers        []DenseLayer
}

// Model returns the MLP as an ONNX model: one Gemm per layer followed by
// its activation, with a dynamic batch dimension BatchDim.
func (m *MLP) Model() (*Model, error) {
	if len(m.Layers) == 0 {
		return nil, errors.New("onnxexport: mlp has no layers")
	}
	if m.Input == "" || m.Output == "" {
		return nil, errors.New("onnxexport: mlp needs an input and an output name")
	}
	batch := Dim{Param: BatchDim}
	last := m.Layers[len(m.Layers)-1]
	g := Graph{
		Name:    m.Name,
		Inputs:  []TensorSpec{{Name: m.Input, Type: Float32, Shape: []Dim{batch, {Value: int64(m.Layers[0].In)}}}},
		Outputs: []TensorSpec{{Name: m.Output, Type: Float32, Shape: []Dim{batch, {Value: int64(last.Out)}}}},
	}
	x := m.Input
	for i, l := range m.Layers {
		if l.In < 1 || l.Out < 1 || len(l.W) != l.In*l.Out || len(l.B) != l.Out {
			return nil, fmt.Errorf("onnxexport: mlp layer %d: %d×%d with %d weights and %d biases", i, l.In, l.Out, len(l.W), len(l.B))
		}
		if i > 0 && l.In != m.Layers[i-1].Out {
			return nil, fmt.Errorf("onnxexport: mlp layer %d takes %d values, layer %d gives %d", i, l.In, i-1, m.Layers[i-1].Out)
		}
		w, b := fmt.Sprintf("layer%d_w", i), fmt.Sprintf("layer%d_b", i)
		g.Initializers = append(g.Initializers,
			Tensor{Name: w, Dims: []int64{int64(l.In), int64(l.Out)}, Float32s: l.W},
			Tensor{Name: b, Dims: []int64{int64(l.Out)}, Float32s: l.B},
		)
		y := fmt.Sprintf("layer%d_linear", i)
		if l.Activation == ActivationNone && i == len(m.Layers)-1 {
			y = m.Output
		}
		g.Nodes = append(g.Nodes, Node{Op: "Gemm", Name: fmt.Sprintf("layer%d", i), Inputs: []string{x, w, b}, Outputs: []string{y}})
		x = y
		if l.Activation == ActivationNone {
			continue
		}
		y = fmt.Sprintf("layer%d_out", i)
		if i == len(m.Layers)-1 {
			y = m.Output
		}
		node := Node{Name: fmt.Sprintf("layer%d_%s", i, l.Activation), Inputs: []string{x}, Outputs: []string{y}}
		switch l.Activation {
		case ActivationReLU:
			node.Op = "Relu"
		case ActivationTanh:
			node.Op = "Tanh"
		case ActivationSigmoid:
			node.Op = "Sigmoid"
		case ActivationSoftmax:
			node.Op, node.Attrs = "Softmax", []Attr{IntAttr("axis", -1)}
		default:
			return nil, fmt.Errorf("onnxexport: mlp layer %d: unknown activation %q", i, l.Activation)
		}
		g.Nodes = append(g.Nodes, node)
		x = y
	}
	return &Model{Graph: g, DocString: "driftline MLP " + m.Name}, nil
}
