package models

import (
	"fmt"
	"slices"
)

// MLP is a small feed-forward network learned online: one or two hidden
// layers (ReLU or tanh) and a sigmoid (binary, log loss), softmax (K
// classes, cross-entropy) or identity (regression, squared loss) head,
// trained by mini-batch Adam or SGD (Rumelhart, Hinton & Williams 1986,
// "Learning representations by back-propagating errors"; Kingma & Ba 2015
// for Adam). It takes the same rows as Linear: raw dense values, scaled by
// the learner's online standard scaler, and hashed categorical indices,
// each of which selects one row of the first layer's weights (an
// embedding-sum over 2^HashBits rows). Create one with NewMLP.
//
// Parameters: see MLPConfig — Hidden (the widths), Activation, Optimizer
// (kind, learning rate, Adam's β1, β2, ε), BatchSize, L2, Seed.
//
// Batching. Learn does not step on the rows of each call. It prepares each
// row in order — the scaler learns the row's dense values, then the row is
// scaled with the updated statistics, as Learner states — and adds it to a
// pending batch; every BatchSize rows, it takes one optimizer step on the
// mean loss of that batch, then starts the next. The pending rows are part
// of the learner's state (Clone and snapshots keep them), so Learn on n
// rows is exactly n single-row Learn calls, bit for bit, whatever the
// split, as Learner requires (an MLP is not a MiniBatchLearner). Predict uses the weights as of the last step: up to BatchSize−1
// learned rows have not moved the weights yet. BatchSize 1 is plain online
// learning.
//
// Sparsity. A step updates the intercepts, every weight of the layers
// after the first, and only the rows of the first layer whose input is
// non-zero in some row of the batch: the dense values present (and not
// exactly at the mean) and the hash buckets that occur. The other rows —
// their weights, L2 and Adam moments — are left as they are (as in "lazy"
// Adam for embeddings), so a step costs what the batch touches, not
// 2^HashBits rows. A missing dense value (NaN or ±Inf) and an out-of-range
// index (such as −1) are zero inputs: they contribute nothing and their
// rows do not move.
//
// Numbers. The state is float32; the Go step and Predict compute in
// float64 and clamp what they store to the finite float32 range, so
// extreme inputs never give NaN or Inf. The same step runs as an ONNX graph
// (onnxexport.TrainStep) on ONNX Runtime through an MLPStepper
// (ortengine.NewMLP); the two stay within 1e-5 of each other over 1,000
// steps (tested; about 1e-6 typically).
//
// Initialization is seeded and deterministic (see MLPConfig.Seed): He
// uniform for ReLU layers, Glorot uniform for tanh and the output layer.
//
// An MLP implements the Learner contract for Predict, Learn, Clone and the
// snapshots, with the batching above. It is not safe for concurrent use.
type MLP struct {
	cfg   MLPConfig // resolved
	state *MLPState
	// next is the spare state an MLPStepper writes into; nil in Go.
	next       *MLPState
	stepper    MLPStepper
	newStepper func(MLPConfig) (MLPStepper, error)
	goStep     *goStep
	scaler     scaler
	pending    MLPBatch // N rows wait for the next step
	lastLoss   float64

	// Predict's scratch.
	fw   forward
	xs   []float32
	runs []int32
}

// MLPStepper runs an MLP's training step somewhere other than in Go, such
// as on ONNX Runtime (ortengine.NewMLP builds one). The MLP gives it a
// full batch, the state before the step (cur) and a spare state of the same
// shapes (next), and swaps the two when Step returns without error.
//
// Step must write the whole updated state into next — every weight,
// intercept and moment, and Steps = cur.Steps+1 — compute exactly the Go
// step's arithmetic (see MLP) up to float32 rounding, and return the
// batch's mean loss before the step. It must not change cur or b. The two
// states are the same two values for the life of the MLP (restores copy
// into them), so a stepper may keep per-state resources such as tensors
// wrapped around their slices.
//
// Clone returns a stepper for a clone of the MLP, which calls Step with its
// own two states; it must not share mutable state with the original.
// Close releases the stepper's resources.
type MLPStepper interface {
	Step(next, cur *MLPState, b *MLPBatch) (loss float64, err error)
	Clone() MLPStepper
	Close() error
}

// NewMLP returns an MLP learner for cfg, after applying its defaults and
// validating it, with weights drawn from cfg.Seed. Its training step runs
// in Go.
func NewMLP(cfg MLPConfig) (*MLP, error) {
	return NewMLPWithStepper(cfg, nil)
}

// NewMLPWithStepper returns an MLP learner for cfg whose training steps run
// on the stepper that newStepper returns for the resolved configuration
// (it is called again when a snapshot of another configuration is
// restored). A nil newStepper gives the Go step, as NewMLP.
func NewMLPWithStepper(cfg MLPConfig, newStepper func(MLPConfig) (MLPStepper, error)) (*MLP, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	m := newMLPLearner(&rc)
	m.state.initWeights(&rc)
	if err := m.attach(newStepper); err != nil {
		return nil, err
	}
	return m, nil
}

// newMLPLearner allocates an untrained learner (zero weights) with the Go
// step for a resolved configuration.
func newMLPLearner(cfg *MLPConfig) *MLP {
	st := newMLPState(cfg)
	n := cfg.BatchSize
	m := &MLP{
		cfg:    *cfg,
		state:  st,
		scaler: newScaler(cfg.NumDense),
		pending: MLPBatch{NumDense: cfg.NumDense, NumHashed: cfg.NumHashed, HashBits: cfg.HashBits,
			Dense: make([]float32, n*cfg.NumDense), Hashed: make([]int32, n*cfg.NumHashed), Labels: make([]float32, n)},
		fw:   newForward(st, 1),
		xs:   make([]float32, cfg.NumDense),
		runs: make([]int32, cfg.NumHashed),
	}
	return m
}

// attach sets up the training step: newStepper's, or the Go one when nil.
func (m *MLP) attach(newStepper func(MLPConfig) (MLPStepper, error)) error {
	m.newStepper = newStepper
	if newStepper == nil {
		m.goStep = newGoStep(&m.cfg, m.state)
		return nil
	}
	cfg := m.cfg
	cfg.Hidden = slices.Clone(cfg.Hidden)
	s, err := newStepper(cfg)
	if err != nil {
		return err
	}
	m.stepper = s
	m.next = newMLPState(&m.cfg)
	return nil
}

var _ ShapedLearner = (*MLP)(nil)

// Shape is the layout of the rows Predict and Learn accept.
func (m *MLP) Shape() Shape {
	return Shape{NumDense: m.cfg.NumDense, NumHashed: m.cfg.NumHashed, HashBits: m.cfg.HashBits}
}

// Config returns the learner's configuration with its defaults applied.
func (m *MLP) Config() MLPConfig {
	c := m.cfg
	c.Hidden = slices.Clone(c.Hidden)
	return c
}

// Classes is K, the number of outputs per row.
func (m *MLP) Classes() int { return m.cfg.Classes }

// Link is the output function.
func (m *MLP) Link() Link { return m.cfg.Link }

// Steps is the number of optimizer steps taken.
func (m *MLP) Steps() int64 { return m.state.Steps }

// Pending is the number of learned rows waiting for the next step.
func (m *MLP) Pending() int { return m.pending.N }

// LastLoss is the mean loss of the last step's batch, before that step; 0
// before the first step.
func (m *MLP) LastLoss() float64 { return m.lastLoss }

// State returns a deep copy of the weights and optimizer state.
func (m *MLP) State() MLPState { return m.state.Clone() }

// Close releases the stepper's resources (ONNX Runtime sessions); it is a
// no-op for the Go step. The learner must not learn afterwards.
func (m *MLP) Close() error {
	if m.stepper == nil {
		return nil
	}
	return m.stepper.Close()
}

// Clone returns an independent deep copy, with a clone of the stepper.
func (m *MLP) Clone() Learner { return m.clone() }

func (m *MLP) clone() *MLP {
	c := newMLPLearner(&m.cfg)
	c.state.copyFrom(m.state)
	c.scaler = m.scaler.clone()
	c.copyPending(&m.pending)
	c.lastLoss = m.lastLoss
	c.newStepper = m.newStepper
	if m.stepper == nil {
		c.goStep = newGoStep(&c.cfg, c.state)
	} else {
		c.stepper = m.stepper.Clone()
		c.next = newMLPState(&c.cfg)
	}
	return c
}

func (m *MLP) copyPending(p *MLPBatch) {
	m.pending.N = p.N
	copy(m.pending.Dense, p.Dense)
	copy(m.pending.Hashed, p.Hashed)
	copy(m.pending.Labels, p.Labels)
}

// checkRows reports whether rows fit the learner.
func (m *MLP) checkRows(rows *Rows) error {
	if rows.N < 0 || rows.NumDense != m.cfg.NumDense || rows.NumHashed != m.cfg.NumHashed {
		return fmt.Errorf("rows have n %d, %d dense, %d hashed; learner wants %d dense, %d hashed: %w",
			rows.N, rows.NumDense, rows.NumHashed, m.cfg.NumDense, m.cfg.NumHashed, ErrShape)
	}
	if len(rows.Dense) < rows.N*rows.NumDense || len(rows.Hashed) < rows.N*rows.NumHashed {
		return fmt.Errorf("rows hold %d dense and %d hashed values, fewer than %d rows need: %w",
			len(rows.Dense), len(rows.Hashed), rows.N, ErrShape)
	}
	return nil
}

// Predict writes rows.N×Classes() outputs into dst; see Learner. It uses
// the weights as of the last step and does not allocate.
func (m *MLP) Predict(dst []float32, rows *Rows) error {
	if err := m.checkRows(rows); err != nil {
		return err
	}
	k := m.cfg.Classes
	if len(dst) != rows.N*k {
		return fmt.Errorf("predict destination holds %d values, want %d: %w", len(dst), rows.N*k, ErrShape)
	}
	for i := range rows.N {
		scaleRow(m.xs, m.runs, &m.scaler, rows.DenseRow(i), rows.HashedRow(i), m.cfg.HashBits)
		m.fw.run(m.state, m.cfg.Activation, 0, m.xs, m.runs)
		writeOutputs(dst[i*k:(i+1)*k], m.fw.margins(0), m.cfg.Link)
	}
	return nil
}

// writeOutputs applies link to margins (which softmax overwrites) and
// stores the outputs.
func writeOutputs(out []float32, margins []float64, link Link) {
	switch link {
	case LinkIdentity:
		out[0] = clampFloat32(margins[0])
	case LinkSigmoid:
		out[0] = float32(sigmoid(margins[0]))
	case LinkSoftmax:
		softmax(margins)
		for c, p := range margins {
			out[c] = float32(p)
		}
	}
}

// Learn adds rows and their labels y to the pending batch, stepping each
// time it fills; see MLP for the batching and Learner for the contract.
// When a step fails (only an MLPStepper's can), Learn returns its error:
// the rows before it were learned, the full batch stays pending and is
// stepped first by the next Learn, and the rows after it are not learned.
func (m *MLP) Learn(rows *Rows, y []float32) error {
	if err := m.checkRows(rows); err != nil {
		return err
	}
	if len(y) != rows.N {
		return fmt.Errorf("learn got %d labels for %d rows: %w", len(y), rows.N, ErrShape)
	}
	if err := m.stepIfFull(); err != nil {
		return err
	}
	skipped, firstSkipped := 0, -1
	for i := range rows.N {
		if !ValidLabel(m.cfg.Link, m.cfg.Classes, y[i]) {
			if skipped == 0 {
				firstSkipped = i
			}
			skipped++
			continue
		}
		m.addPending(rows.DenseRow(i), rows.HashedRow(i), y[i])
		if err := m.stepIfFull(); err != nil {
			return fmt.Errorf("rows after row %d not learned: %w", i, err)
		}
	}
	if skipped > 0 {
		return fmt.Errorf("skipped %d of %d rows, first row %d with label %v for link %s: %w",
			skipped, rows.N, firstSkipped, y[firstSkipped], m.cfg.Link, ErrInvalidLabel)
	}
	return nil
}

// addPending updates the scaler with a row and appends it, scaled, to the
// pending batch.
func (m *MLP) addPending(dense []float32, hashed []int32, y float32) {
	p := &m.pending
	i := p.N
	m.scaler.update(dense)
	scaleRow(p.Dense[i*p.NumDense:(i+1)*p.NumDense], p.Hashed[i*p.NumHashed:(i+1)*p.NumHashed],
		&m.scaler, dense, hashed, m.cfg.HashBits)
	p.Labels[i] = y
	p.N++
}

// stepIfFull takes a step when the pending batch is full.
func (m *MLP) stepIfFull() error {
	if m.pending.N < m.cfg.BatchSize {
		return nil
	}
	if m.stepper == nil {
		m.lastLoss = m.goStep.step(m.state, &m.pending)
	} else {
		loss, err := m.stepper.Step(m.next, m.state, &m.pending)
		if err != nil {
			return fmt.Errorf("models: mlp step %d: %w", m.state.Steps+1, err)
		}
		m.state, m.next = m.next, m.state
		m.lastLoss = loss
	}
	m.pending.N = 0
	return nil
}
