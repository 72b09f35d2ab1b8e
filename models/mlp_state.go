package models

import (
	"math"
	"math/rand/v2"
)

// MLPLayer is one dense layer, z = x·W + B, for x of In values: W holds
// In×Out weights, row-major (W[i*Out+o] links input i to output o, as
// onnxexport.DenseLayer), and B holds Out intercepts.
type MLPLayer struct {
	In, Out int
	W, B    []float32
}

// MLPState is an MLP's parameters and optimizer state.
//
// Layers are the hidden layers, then the output layer. Row j of the first
// layer's W belongs to input j: the dense values first (j < NumDense), then
// hash bucket h at row NumDense+h.
type MLPState struct {
	Layers []MLPLayer
	// M and V are Adam's first and second moments, shaped as Layers; both
	// are empty for SGD.
	M, V []MLPLayer
	// Steps is the number of optimizer steps taken (Adam's t).
	Steps int64
}

// newMLPState allocates a zero state for a resolved configuration.
func newMLPState(cfg *MLPConfig) *MLPState {
	s := &MLPState{}
	widths := cfg.widths()
	alloc := func() []MLPLayer {
		ls := make([]MLPLayer, len(widths)-1)
		for l := range ls {
			in, out := widths[l], widths[l+1]
			ls[l] = MLPLayer{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		}
		return ls
	}
	s.Layers = alloc()
	if cfg.Optimizer.Kind == MLPOptimizerAdam {
		s.M, s.V = alloc(), alloc()
	}
	return s
}

// initWeights draws the weights from a PCG seeded with cfg.Seed, layer by
// layer and row by row: uniform in ±√(6/fanIn) (He) for ReLU hidden layers,
// ±√(6/(fanIn+fanOut)) (Glorot) for tanh hidden layers and for the output
// layer. The first layer's fan-in is NumDense+NumHashed, the most inputs a
// row can set, not its 2^HashBits-row table. Intercepts start at zero.
func (s *MLPState) initWeights(cfg *MLPConfig) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6c70)) // "mlp"
	for l := range s.Layers {
		layer := &s.Layers[l]
		fanIn := layer.In
		if l == 0 {
			fanIn = max(1, cfg.NumDense+cfg.NumHashed)
		}
		limit := math.Sqrt(6 / float64(fanIn+layer.Out))
		if l < len(s.Layers)-1 && cfg.Activation == ActivationReLU {
			limit = math.Sqrt(6 / float64(fanIn))
		}
		for i := range layer.W {
			layer.W[i] = float32(limit * (2*rng.Float64() - 1))
		}
	}
}

// copyFrom copies o's values into s; both have the same shapes.
func (s *MLPState) copyFrom(o *MLPState) {
	for _, pair := range [][2][]MLPLayer{{s.Layers, o.Layers}, {s.M, o.M}, {s.V, o.V}} {
		for l := range pair[0] {
			copy(pair[0][l].W, pair[1][l].W)
			copy(pair[0][l].B, pair[1][l].B)
		}
	}
	s.Steps = o.Steps
}

// Clone returns a deep copy of s.
func (s *MLPState) Clone() MLPState {
	c := MLPState{Steps: s.Steps}
	clone := func(ls []MLPLayer) []MLPLayer {
		if ls == nil {
			return nil
		}
		out := make([]MLPLayer, len(ls))
		for l, x := range ls {
			out[l] = MLPLayer{In: x.In, Out: x.Out, W: append([]float32(nil), x.W...), B: append([]float32(nil), x.B...)}
		}
		return out
	}
	c.Layers, c.M, c.V = clone(s.Layers), clone(s.M), clone(s.V)
	return c
}

// MLPBatch is the input of one optimizer step: N rows, already scaled, with
// their labels. It is what an MLPStepper sees.
type MLPBatch struct {
	N         int
	NumDense  int
	NumHashed int
	HashBits  int
	// Dense holds N×NumDense scaled values, row-major; a missing value is 0.
	Dense []float32
	// Hashed holds N×NumHashed indices, row-major: each row's indices in
	// [0, 2^HashBits) in ascending order, then −1 for each absent one.
	Hashed []int32
	// Labels holds N labels, valid for the learner's link.
	Labels []float32
}

// Inputs is the width of the dense input matrix that FoldInto writes:
// NumDense + 2^HashBits.
func (b *MLPBatch) Inputs() int { return b.NumDense + 1<<b.HashBits }

// FoldInto writes the batch as the dense N×Inputs() input matrix that the
// first layer multiplies, row-major into dst[:N*Inputs()]: the scaled dense
// values, then, at column NumDense+h, how many times bucket h occurs in the
// row. The Go step never builds this matrix (it touches only the rows a
// batch sets); an MLPStepper that multiplies dense matrices does.
func (b *MLPBatch) FoldInto(dst []float32) {
	in := b.Inputs()
	dst = dst[:b.N*in]
	clear(dst)
	for i := range b.N {
		row := dst[i*in : (i+1)*in]
		copy(row, b.Dense[i*b.NumDense:(i+1)*b.NumDense])
		for _, idx := range b.Hashed[i*b.NumHashed : (i+1)*b.NumHashed] {
			if idx >= 0 {
				row[b.NumDense+int(idx)]++
			}
		}
	}
}
