package models

import "math"

// goStep is the reference training step in Go, with its scratch space. It
// computes in float64 and stores float32, and touches only the first-layer
// rows that the batch sets (see MLP).
type goStep struct {
	cfg MLPConfig
	fw  forward
	// dz holds each layer's loss gradient with respect to z, N×Out.
	dz [][]float64
	// gw and gb hold the gradients of layers ≥ 1 (In×Out and Out) and gb
	// also layer 0's intercepts.
	gw, gb [][]float64
	// First layer: slot maps an input row to its index in active (−1 when
	// the batch does not set it), and g0 holds the gradient of each active
	// row.
	slot   []int32
	active []int32
	g0     []float64
}

func newGoStep(cfg *MLPConfig, st *MLPState) *goStep {
	n := cfg.BatchSize
	s := &goStep{cfg: *cfg, fw: newForward(st, n)}
	for l, layer := range st.Layers {
		s.dz = append(s.dz, make([]float64, n*layer.Out))
		s.gb = append(s.gb, make([]float64, layer.Out))
		var gw []float64
		if l > 0 {
			gw = make([]float64, layer.In*layer.Out)
		}
		s.gw = append(s.gw, gw)
	}
	first := st.Layers[0]
	s.slot = make([]int32, first.In)
	for j := range s.slot {
		s.slot[j] = -1
	}
	maxActive := min(first.In, n*(cfg.NumDense+cfg.NumHashed))
	s.active = make([]int32, 0, maxActive)
	s.g0 = make([]float64, maxActive*first.Out)
	return s
}

// step takes one optimizer step on a full batch, updating st in place, and
// returns the batch's mean loss before the step.
func (s *goStep) step(st *MLPState, b *MLPBatch) float64 {
	loss := s.gradients(st, b)
	s.apply(st)
	return loss
}

// gradients runs the batch forward and backward: it fills gw, gb and, for
// the first layer's active rows, g0, and returns the mean loss.
func (s *goStep) gradients(st *MLPState, b *MLPBatch) float64 {
	n := b.N
	for i := range n {
		s.fw.run(st, s.cfg.Activation, i, b.Dense[i*b.NumDense:(i+1)*b.NumDense], b.Hashed[i*b.NumHashed:(i+1)*b.NumHashed])
	}
	loss := s.outputGradient(b)
	for l := len(st.Layers) - 1; l >= 1; l-- {
		layer := &st.Layers[l]
		in, out := layer.In, layer.Out
		gw, gb, dz := s.gw[l], s.gb[l], s.dz[l]
		clear(gw)
		clear(gb)
		a := s.fw.a[l-1]
		prevDz := s.dz[l-1]
		for i := range n {
			dzi := dz[i*out : (i+1)*out]
			for o, g := range dzi {
				gb[o] += g
			}
			ai := a[i*in : (i+1)*in]
			for k, x := range ai {
				if x == 0 {
					continue
				}
				row := gw[k*out : (k+1)*out]
				for o, g := range dzi {
					row[o] += x * g
				}
			}
			da := prevDz[i*in : (i+1)*in]
			for k := range da {
				w := layer.W[k*out : (k+1)*out]
				sum := 0.0
				for o, g := range dzi {
					sum += g * float64(w[o])
				}
				da[k] = sum
			}
			activationSlope(da, s.fw.z[l-1][i*in:(i+1)*in], ai, s.cfg.Activation)
		}
	}
	s.firstLayerGradient(st, b)
	return loss
}

// apply takes the optimizer step with the gradients, and forgets the
// first layer's active rows.
func (s *goStep) apply(st *MLPState) {
	st.Steps++
	u := newUpdater(&s.cfg, st.Steps)
	last := len(st.Layers) - 1
	for l := 1; l <= last; l++ {
		u.apply(st, l, 0, len(st.Layers[l].W), s.gw[l])
	}
	for l := 0; l <= last; l++ {
		u.applyIntercepts(st, l, s.gb[l])
	}
	out := st.Layers[0].Out
	for a, r := range s.active {
		u.apply(st, 0, int(r)*out, out, s.g0[a*out:(a+1)*out])
		s.slot[r] = -1
	}
	s.active = s.active[:0]
}

// outputGradient fills the output layer's dz with the gradient of the
// batch's mean loss, and returns that loss.
func (s *goStep) outputGradient(b *MLPBatch) float64 {
	n := b.N
	inv := 1 / float64(n)
	dz := s.dz[len(s.dz)-1]
	k := len(dz) / n
	loss := 0.0
	for i := range n {
		z := s.fw.margins(i)
		g := dz[i*k : (i+1)*k]
		y := float64(b.Labels[i])
		switch s.cfg.Link {
		case LinkSigmoid:
			loss += max(z[0], 0) - y*z[0] + math.Log1p(math.Exp(-math.Abs(z[0])))
			g[0] = (sigmoid(z[0]) - y) * inv
		case LinkSoftmax:
			top := math.Inf(-1)
			for _, v := range z {
				top = max(top, v)
			}
			sum := 0.0
			for _, v := range z {
				sum += math.Exp(v - top)
			}
			lse := top + math.Log(sum)
			label := int(y)
			loss += lse - z[label]
			for c, v := range z {
				g[c] = math.Exp(v-lse) * inv
			}
			g[label] -= inv
		case LinkIdentity:
			d := z[0] - y
			loss += 0.5 * d * d
			clip := s.cfg.ClipGradient
			g[0] = max(-clip, min(clip, d)) * inv
		}
	}
	return loss * inv
}

// firstLayerGradient collects the rows of the first layer's weights that
// the batch sets, in order of first appearance, and their gradients, and
// the first layer's intercept gradient.
func (s *goStep) firstLayerGradient(st *MLPState, b *MLPBatch) {
	out := st.Layers[0].Out
	dz, gb := s.dz[0], s.gb[0]
	clear(gb)
	add := func(r int, x float64, dzi []float64) {
		a := s.slot[r]
		if a < 0 {
			a = int32(len(s.active))
			s.slot[r] = a
			s.active = append(s.active, int32(r))
			clear(s.g0[int(a)*out : int(a+1)*out])
		}
		g := s.g0[int(a)*out : int(a+1)*out]
		for o, d := range dzi {
			g[o] += x * d
		}
	}
	for i := range b.N {
		dzi := dz[i*out : (i+1)*out]
		for o, g := range dzi {
			gb[o] += g
		}
		for j, x := range b.Dense[i*b.NumDense : (i+1)*b.NumDense] {
			if x != 0 {
				add(j, float64(x), dzi)
			}
		}
		for _, idx := range b.Hashed[i*b.NumHashed : (i+1)*b.NumHashed] {
			if idx < 0 {
				break
			}
			add(b.NumDense+int(idx), 1, dzi)
		}
	}
}

// updater applies the optimizer's rule at step t.
type updater struct {
	kind         MLPOptimizerKind
	lr, l2       float64
	beta1, beta2 float64
	eps          float64
	// bc1 and bc2 are Adam's bias corrections 1−β1^t and 1−β2^t, rounded
	// to float32 as the ONNX step computes them.
	bc1, bc2 float64
}

func newUpdater(cfg *MLPConfig, t int64) updater {
	o := &cfg.Optimizer
	u := updater{kind: o.Kind, lr: o.LearningRate, l2: cfg.L2, beta1: o.Beta1, beta2: o.Beta2, eps: o.Epsilon}
	if o.Kind == MLPOptimizerAdam {
		u.bc1 = float64(float32(1 - math.Pow(o.Beta1, float64(t))))
		u.bc2 = float64(float32(1 - math.Pow(o.Beta2, float64(t))))
	}
	return u
}

// apply steps layer l's weights W[off:off+n] with gradients g, with L2.
func (u *updater) apply(st *MLPState, l, off, n int, g []float64) {
	var m, v []float32
	if u.kind == MLPOptimizerAdam {
		m, v = st.M[l].W[off:off+n], st.V[l].W[off:off+n]
	}
	u.step(st.Layers[l].W[off:off+n], m, v, g[:n], true)
}

// applyIntercepts steps layer l's intercepts with gradients g.
func (u *updater) applyIntercepts(st *MLPState, l int, g []float64) {
	var m, v []float32
	if u.kind == MLPOptimizerAdam {
		m, v = st.M[l].B, st.V[l].B
	}
	u.step(st.Layers[l].B, m, v, g, false)
}

// step updates the parameters w (and Adam's moments m, v) with gradients g.
// Stored values are clamped to the finite float32 range.
func (u *updater) step(w, m, v []float32, g []float64, regularized bool) {
	l2 := 0.0
	if regularized {
		l2 = u.l2
	}
	g = g[:len(w)]
	switch u.kind {
	case MLPOptimizerSGD:
		for i, gi := range g {
			wi := float64(w[i])
			w[i] = clampFloat32(wi - u.lr*(gi+l2*wi))
		}
	case MLPOptimizerAdam:
		m, v = m[:len(w)], v[:len(w)]
		for i, gi := range g {
			wi := float64(w[i])
			gi += l2 * wi
			mi := clampFloat32(u.beta1*float64(m[i]) + (1-u.beta1)*gi)
			vi := clampFloat32(u.beta2*float64(v[i]) + (1-u.beta2)*gi*gi)
			m[i], v[i] = mi, vi
			w[i] = clampFloat32(wi - u.lr*(float64(mi)/u.bc1)/(math.Sqrt(float64(vi)/u.bc2)+u.eps))
		}
	}
}
