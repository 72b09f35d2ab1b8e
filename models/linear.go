package models

import (
	"fmt"
	"math"
	"slices"
)

// Linear is a linear learner over dense and hashed features with an online
// standard scaler: binary logistic regression (log loss), multinomial
// softmax regression (cross-entropy) or linear regression (squared loss),
// trained by SGD, AdaGrad or FTRL-Proximal. It implements Learner, whose
// doc states the contract; create one with NewLinear or restore one with
// UnmarshalLearner.
//
// Updates are sparse: a row steps the intercepts, the weights of its
// present dense columns and the weights of its present hash buckets, and
// nothing else (L2 included). A missing dense value contributes 0 to the
// margin, and Learn moves neither the scaler nor the weight of its column.
// For each row, Learn first updates the scaler with the row's dense values,
// then scales the row with the updated statistics and takes one optimizer
// step; Learn does not allocate unless it returns an error.
type Linear struct {
	cfg LinearConfig // resolved: defaults applied and validated
	dim int          // weights per class
	w   []float32    // Classes×dim weights, row-major by class
	b   []float32    // Classes intercepts
	// acc is AdaGrad's sum of squared gradients or FTRL's n, and z is
	// FTRL's z; both hold Classes×dim weight entries then Classes
	// intercept entries. SGD keeps no state.
	acc    []float64
	z      []float64
	steps  uint64  // rows learned
	t0     float64 // ScheduleOptimal's offset
	scaler scaler

	// Per-row scratch, reused so the hot path does not allocate.
	xs      []float64 // scaled dense values
	present []bool    // dense value is not missing
	runs    []int32   // the row's valid hashed indices, sorted
	counts  []float64 // multiplicity of each distinct index in runs[:nRuns]
	nRuns   int
	margins []float64
	grads   []float64
}

var _ LinearModel = (*Linear)(nil)

// NewLinear returns a learner for cfg, after applying its defaults and
// validating it. Weights and intercepts start at zero: the losses are
// convex, so there is no symmetry to break and no randomness anywhere, and
// the same configuration and stream always give the same model.
func NewLinear(cfg LinearConfig) (*Linear, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return newLinearState(rc), nil
}

// newLinearState allocates a zero-weight learner for a resolved config.
func newLinearState(cfg LinearConfig) *Linear {
	k := cfg.Classes
	dim := cfg.NumDense + 1<<cfg.HashBits
	l := &Linear{
		cfg:     cfg,
		dim:     dim,
		w:       make([]float32, k*dim),
		b:       make([]float32, k),
		scaler:  newScaler(cfg.NumDense),
		xs:      make([]float64, cfg.NumDense),
		present: make([]bool, cfg.NumDense),
		runs:    make([]int32, cfg.NumHashed),
		counts:  make([]float64, cfg.NumHashed),
		margins: make([]float64, k),
		grads:   make([]float64, k),
	}
	switch cfg.Optimizer.Kind {
	case OptimizerAdaGrad:
		l.acc = make([]float64, k*dim+k)
	case OptimizerFTRL:
		l.acc = make([]float64, k*dim+k)
		l.z = make([]float64, k*dim+k)
	}
	l.t0 = optimalT0(cfg.Link, cfg.Optimizer.ScheduleAlpha)
	return l
}

// Config returns the learner's configuration with its defaults applied.
func (l *Linear) Config() LinearConfig { return l.cfg }

// Classes is K, the number of outputs per row.
func (l *Linear) Classes() int { return l.cfg.Classes }

// Link is the output function.
func (l *Linear) Link() Link { return l.cfg.Link }

// Shape is the layout of the rows the learner takes.
func (l *Linear) Shape() Shape {
	return Shape{NumDense: l.cfg.NumDense, NumHashed: l.cfg.NumHashed, HashBits: l.cfg.HashBits}
}

// Steps is the number of rows learned so far.
func (l *Linear) Steps() uint64 { return l.steps }

// Params returns a copy of the weights and the scaler's statistics.
func (l *Linear) Params() LinearParams {
	return LinearParams{
		NumDense:  l.cfg.NumDense,
		NumHashed: l.cfg.NumHashed,
		HashBits:  l.cfg.HashBits,
		Classes:   l.cfg.Classes,
		Link:      l.cfg.Link,
		W:         slices.Clone(l.w),
		B:         slices.Clone(l.b),
		Mean:      slices.Clone(l.scaler.mean32),
		Std:       slices.Clone(l.scaler.std32),
	}
}

// Clone returns an independent deep copy.
func (l *Linear) Clone() Learner {
	c := newLinearState(l.cfg)
	copy(c.w, l.w)
	copy(c.b, l.b)
	copy(c.acc, l.acc)
	copy(c.z, l.z)
	c.steps = l.steps
	c.scaler = l.scaler.clone()
	return c
}

// checkRows reports whether rows fit the learner.
func (l *Linear) checkRows(rows *Rows) error {
	if rows.N < 0 || rows.NumDense != l.cfg.NumDense || rows.NumHashed != l.cfg.NumHashed {
		return fmt.Errorf("rows have n %d, %d dense, %d hashed; learner wants %d dense, %d hashed: %w",
			rows.N, rows.NumDense, rows.NumHashed, l.cfg.NumDense, l.cfg.NumHashed, ErrShape)
	}
	if len(rows.Dense) < rows.N*rows.NumDense || len(rows.Hashed) < rows.N*rows.NumHashed {
		return fmt.Errorf("rows hold %d dense and %d hashed values, fewer than %d rows need: %w",
			len(rows.Dense), len(rows.Hashed), rows.N, ErrShape)
	}
	return nil
}

// Predict writes rows.N×Classes() outputs into dst; see Learner.
func (l *Linear) Predict(dst []float32, rows *Rows) error {
	if err := l.checkRows(rows); err != nil {
		return err
	}
	k := l.cfg.Classes
	if len(dst) != rows.N*k {
		return fmt.Errorf("predict destination holds %d values, want %d: %w", len(dst), rows.N*k, ErrShape)
	}
	for i := range rows.N {
		l.loadRow(rows.DenseRow(i), rows.HashedRow(i))
		l.computeMargins()
		out := dst[i*k : (i+1)*k]
		switch l.cfg.Link {
		case LinkIdentity:
			out[0] = clampFloat32(l.margins[0])
		case LinkSigmoid:
			out[0] = float32(sigmoid(l.margins[0]))
		case LinkSoftmax:
			softmax(l.margins)
			for c, p := range l.margins {
				out[c] = float32(p)
			}
		}
	}
	return nil
}

// Learn updates the model with rows and labels y; see Learner.
func (l *Linear) Learn(rows *Rows, y []float32) error {
	if err := l.checkRows(rows); err != nil {
		return err
	}
	if len(y) != rows.N {
		return fmt.Errorf("learn got %d labels for %d rows: %w", len(y), rows.N, ErrShape)
	}
	skipped, firstSkipped := 0, -1
	for i := range rows.N {
		if !ValidLabel(l.cfg.Link, l.cfg.Classes, y[i]) {
			if skipped == 0 {
				firstSkipped = i
			}
			skipped++
			continue
		}
		l.learnRow(rows.DenseRow(i), rows.HashedRow(i), float64(y[i]))
	}
	if skipped > 0 {
		return fmt.Errorf("skipped %d of %d rows, first row %d with label %v for link %s: %w",
			skipped, rows.N, firstSkipped, y[firstSkipped], l.cfg.Link, ErrInvalidLabel)
	}
	return nil
}

// learnRow takes one optimizer step on one row with a valid label.
func (l *Linear) learnRow(dense []float32, hashed []int32, y float64) {
	l.scaler.update(dense)
	l.loadRow(dense, hashed)
	l.computeMargins()
	l.computeGrads(y)

	eta := l.learningRate()
	l.steps++
	nd := l.cfg.NumDense
	for k, g := range l.grads {
		l.step(&l.b[k], len(l.w)+k, g, eta, false)
		base := k * l.dim
		for j, x := range l.xs {
			if l.present[j] {
				l.step(&l.w[base+j], base+j, g*x, eta, true)
			}
		}
		for r, idx := range l.runs[:l.nRuns] {
			i := base + nd + int(idx)
			l.step(&l.w[i], i, g*l.counts[r], eta, true)
		}
	}
}

// loadRow scales a row's dense values into xs and present, and collects its
// valid hashed indices, sorted and merged, into runs and counts.
func (l *Linear) loadRow(dense []float32, hashed []int32) {
	for j, v := range dense {
		l.xs[j], l.present[j] = l.scaler.scale(j, v)
	}
	buckets := int32(1) << l.cfg.HashBits
	n := 0
	for _, idx := range hashed {
		if idx >= 0 && idx < buckets {
			l.runs[n] = idx
			n++
		}
	}
	valid := l.runs[:n]
	slices.Sort(valid)
	l.nRuns = 0
	for _, idx := range valid {
		if l.nRuns > 0 && l.runs[l.nRuns-1] == idx {
			l.counts[l.nRuns-1]++
			continue
		}
		l.runs[l.nRuns] = idx
		l.counts[l.nRuns] = 1
		l.nRuns++
	}
}

// computeMargins fills margins from the loaded row: intercept, then dense
// columns in order, then hash buckets in ascending order.
func (l *Linear) computeMargins() {
	nd := l.cfg.NumDense
	for k := range l.margins {
		w := l.w[k*l.dim : (k+1)*l.dim]
		m := float64(l.b[k])
		for j, x := range l.xs {
			if l.present[j] {
				m += float64(w[j]) * x
			}
		}
		for r, idx := range l.runs[:l.nRuns] {
			m += float64(w[nd+int(idx)]) * l.counts[r]
		}
		l.margins[k] = m
	}
}

// computeGrads fills grads with the clipped derivative of the loss with
// respect to each margin, for label y. It overwrites margins for softmax.
func (l *Linear) computeGrads(y float64) {
	switch l.cfg.Link {
	case LinkIdentity:
		l.grads[0] = l.margins[0] - y
	case LinkSigmoid:
		l.grads[0] = sigmoid(l.margins[0]) - y
	case LinkSoftmax:
		softmax(l.margins)
		for k, p := range l.margins {
			l.grads[k] = p
		}
		l.grads[int(y)]--
	}
	clip := l.cfg.ClipGradient
	for k, g := range l.grads {
		l.grads[k] = max(-clip, min(clip, g))
	}
}

// sigmoid is the logistic function, computed without overflow.
func sigmoid(m float64) float64 {
	if m >= 0 {
		return 1 / (1 + math.Exp(-m))
	}
	e := math.Exp(m)
	return e / (1 + e)
}

// softmax replaces margins with their softmax, computed without overflow.
func softmax(margins []float64) {
	top := math.Inf(-1)
	for _, m := range margins {
		top = max(top, m)
	}
	sum := 0.0
	for k, m := range margins {
		e := math.Exp(m - top)
		margins[k] = e
		sum += e
	}
	for k := range margins {
		margins[k] /= sum
	}
}

// clampFloat32 converts x to the nearest finite float32.
func clampFloat32(x float64) float32 {
	return float32(max(-math.MaxFloat32, min(math.MaxFloat32, x)))
}
