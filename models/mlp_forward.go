package models

import (
	"math"
	"slices"
)

// forward holds the pre-activations z and activations a of every layer for
// up to rows rows, row-major per layer, in float64. The output layer's a is
// unused; its z are the margins.
type forward struct {
	rows int
	z, a [][]float64
}

func newForward(st *MLPState, rows int) forward {
	f := forward{rows: rows, z: make([][]float64, len(st.Layers)), a: make([][]float64, len(st.Layers))}
	for l, layer := range st.Layers {
		f.z[l] = make([]float64, rows*layer.Out)
		if l < len(st.Layers)-1 {
			f.a[l] = make([]float64, rows*layer.Out)
		}
	}
	return f
}

// run computes row i of every layer. dense holds the row's scaled values
// (0 for missing ones) and hashed its valid indices in ascending order,
// followed by any number of −1.
func (f *forward) run(st *MLPState, act Activation, i int, dense []float32, hashed []int32) {
	first := &st.Layers[0]
	z := f.z[0][i*first.Out : (i+1)*first.Out]
	for o, b := range first.B {
		z[o] = float64(b)
	}
	nd := len(dense)
	for j, x := range dense {
		if x != 0 {
			axpy(z, float64(x), first.W[j*first.Out:(j+1)*first.Out])
		}
	}
	for _, idx := range hashed {
		if idx < 0 {
			break
		}
		r := nd + int(idx)
		axpy(z, 1, first.W[r*first.Out:(r+1)*first.Out])
	}
	for l := 1; l < len(st.Layers); l++ {
		prev := &st.Layers[l-1]
		a := f.a[l-1][i*prev.Out : (i+1)*prev.Out]
		activate(a, f.z[l-1][i*prev.Out:(i+1)*prev.Out], act)
		layer := &st.Layers[l]
		z := f.z[l][i*layer.Out : (i+1)*layer.Out]
		for o, b := range layer.B {
			z[o] = float64(b)
		}
		for k, x := range a {
			if x != 0 {
				axpy(z, x, layer.W[k*layer.Out:(k+1)*layer.Out])
			}
		}
	}
}

// margins returns row i's output-layer pre-activations.
func (f *forward) margins(i int) []float64 {
	z := f.z[len(f.z)-1]
	k := len(z) / f.rows
	return z[i*k : (i+1)*k]
}

// axpy adds a·x to dst.
func axpy(dst []float64, a float64, x []float32) {
	x = x[:len(dst)]
	for o, w := range x {
		dst[o] += a * float64(w)
	}
}

// activate writes act(z) into dst.
func activate(dst, z []float64, act Activation) {
	dst = dst[:len(z)]
	switch act {
	case ActivationReLU:
		for o, v := range z {
			dst[o] = max(v, 0)
		}
	case ActivationTanh:
		for o, v := range z {
			dst[o] = math.Tanh(v)
		}
	}
}

// activationSlope multiplies grad, the loss gradient with respect to a
// hidden layer's activations a = act(z), by act'(z): the indicator z > 0
// for ReLU, 1 − a² for tanh.
func activationSlope(grad, z, a []float64, act Activation) {
	grad = grad[:len(z)]
	a = a[:len(z)]
	switch act {
	case ActivationReLU:
		for o, v := range z {
			if !(v > 0) {
				grad[o] = 0
			}
		}
	case ActivationTanh:
		for o, v := range a {
			grad[o] *= 1 - v*v
		}
	}
}

// scaleRow writes a row's scaled dense values into xs, as float32 and 0 for
// missing ones, and its valid hashed indices in ascending order, then −1
// for the others, into runs.
func scaleRow(xs []float32, runs []int32, s *scaler, dense []float32, hashed []int32, hashBits int) {
	for j, v := range dense {
		x, ok := s.scale(j, v)
		if !ok {
			x = 0
		}
		xs[j] = clampFloat32(x)
	}
	buckets := int32(1) << hashBits
	n := 0
	for _, idx := range hashed {
		if idx >= 0 && idx < buckets {
			runs[n] = idx
			n++
		}
	}
	slices.Sort(runs[:n])
	for c := n; c < len(runs); c++ {
		runs[c] = -1
	}
}
