package models

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Snapshot format of an MLP learner, all integers and floats little-endian:
//
//	magic   [4]byte "DLMP"
//	version uint16  (mlpSnapshotVersion)
//	length  uint64  number of body bytes that follow
//	body:
//	  link, activation, optimizer kind               uint8 ×3
//	  classes, dense, hashed, hash bits, batch size,
//	  hidden layer count                             uint32 ×6
//	  hidden widths                                  uint32 ×count
//	  learning rate, beta1, beta2, epsilon, l2, clip float64 ×6
//	  seed, steps                                    uint64 ×2
//	  last loss                                      float64
//	  scaler count, mean, m2 per dense column        float64 ×3×dense
//	  each layer's W then B, in order                float32
//	  Adam only: the same for M, then for V          float32
//	  pending rows n                                 uint32
//	  their scaled dense values                      float32 ×n×dense
//	  their hashed indices                           int32 ×n×hashed
//	  their labels                                   float32 ×n
//	crc     uint32  CRC-32C (Castagnoli) of every byte before it
const (
	mlpSnapshotMagic   = "DLMP"
	mlpSnapshotVersion = 1
)

// MarshalBinary snapshots the learner; see Learner. The stepper is not part
// of the snapshot: it is how the learner runs, not what it learned.
func (m *MLP) MarshalBinary() ([]byte, error) {
	c := &m.cfg
	o := &c.Optimizer
	p := &m.pending
	body := 3 + 4*(6+len(c.Hidden)) + 8*6 + 8*2 + 8 + 3*8*c.NumDense +
		4*stateValues(m.state) + 4 + 4*p.N*(c.NumDense+c.NumHashed+1)
	buf := make([]byte, 0, snapshotHeader+body+snapshotTrailer)
	buf = append(buf, mlpSnapshotMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, mlpSnapshotVersion)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(body))
	buf = append(buf, byte(c.Link), byte(c.Activation), byte(o.Kind))
	for _, v := range append([]int{c.Classes, c.NumDense, c.NumHashed, c.HashBits, c.BatchSize, len(c.Hidden)}, c.Hidden...) {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	for _, v := range []float64{o.LearningRate, o.Beta1, o.Beta2, o.Epsilon, c.L2, c.ClipGradient} {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	buf = binary.LittleEndian.AppendUint64(buf, c.Seed)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(m.state.Steps))
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(m.lastLoss))
	for _, s := range [][]float64{m.scaler.count, m.scaler.mean, m.scaler.m2} {
		buf = appendFloat64s(buf, s)
	}
	for _, ls := range [][]MLPLayer{m.state.Layers, m.state.M, m.state.V} {
		for _, l := range ls {
			buf = appendFloat32s(buf, l.W)
			buf = appendFloat32s(buf, l.B)
		}
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(p.N))
	buf = appendFloat32s(buf, p.Dense[:p.N*p.NumDense])
	for _, v := range p.Hashed[:p.N*p.NumHashed] {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	buf = appendFloat32s(buf, p.Labels[:p.N])
	if len(buf) != snapshotHeader+body {
		return nil, fmt.Errorf("models: mlp snapshot body is %d bytes, expected %d", len(buf)-snapshotHeader, body)
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable)), nil
}

// stateValues counts the float32 values of a state.
func stateValues(s *MLPState) int {
	n := 0
	for _, ls := range [][]MLPLayer{s.Layers, s.M, s.V} {
		for _, l := range ls {
			n += len(l.W) + len(l.B)
		}
	}
	return n
}

// UnmarshalBinary replaces the learner with a snapshot; see Learner. It
// keeps the learner's kind of stepper: for an MLPStepper and a snapshot of
// another configuration, it makes a new stepper (and returns its error,
// leaving the learner unchanged, when that fails).
func (m *MLP) UnmarshalBinary(data []byte) error {
	r, err := UnmarshalMLP(data)
	if err != nil {
		return err
	}
	if m.newStepper == nil {
		*m = *r
		return nil
	}
	if r.cfg.equal(&m.cfg) {
		m.state.copyFrom(r.state)
		m.scaler = r.scaler
		m.copyPending(&r.pending)
		m.lastLoss = r.lastLoss
		return nil
	}
	old := m.stepper
	if err := r.attach(m.newStepper); err != nil {
		return fmt.Errorf("models: restore an mlp of another configuration: %w", err)
	}
	r.goStep = nil
	*m = *r
	return old.Close()
}

// UnmarshalMLP restores an MLP learner, with the Go step, from a snapshot.
// Errors wrap ErrSnapshot.
func UnmarshalMLP(data []byte) (*MLP, error) {
	body, err := openFrame(data, mlpSnapshotMagic, mlpSnapshotVersion)
	if err != nil {
		return nil, err
	}
	r := snapshotReader{buf: body}
	var cfg MLPConfig
	o := &cfg.Optimizer
	cfg.Link, cfg.Activation, o.Kind = Link(r.u8()), Activation(r.u8()), MLPOptimizerKind(r.u8())
	for _, p := range []*int{&cfg.Classes, &cfg.NumDense, &cfg.NumHashed, &cfg.HashBits, &cfg.BatchSize} {
		*p = int(r.u32())
	}
	layers := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if layers < 1 || layers > 2 {
		return nil, fmt.Errorf("snapshot has %d hidden layers: %w", layers, ErrSnapshot)
	}
	cfg.Hidden = make([]int, layers)
	for i := range cfg.Hidden {
		cfg.Hidden[i] = int(r.u32())
	}
	for _, p := range []*float64{&o.LearningRate, &o.Beta1, &o.Beta2, &o.Epsilon, &cfg.L2, &cfg.ClipGradient} {
		*p = math.Float64frombits(r.u64())
	}
	cfg.Seed = r.u64()
	steps := int64(r.u64())
	lastLoss := math.Float64frombits(r.u64())
	if r.err != nil {
		return nil, r.err
	}
	resolved, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("snapshot configuration: %w: %w", err, ErrSnapshot)
	}
	if !resolved.equal(&cfg) {
		return nil, fmt.Errorf("snapshot configuration has unset defaults: %w", ErrSnapshot)
	}
	if need := mlpStateBytes(&cfg); uint64(len(r.buf)) < need {
		return nil, fmt.Errorf("snapshot holds %d bytes of state, its configuration needs at least %d: %w",
			len(r.buf), need, ErrSnapshot)
	}
	m := newMLPLearner(&cfg)
	m.goStep = newGoStep(&m.cfg, m.state)
	m.state.Steps = steps
	m.lastLoss = lastLoss
	for _, s := range [][]float64{m.scaler.count, m.scaler.mean, m.scaler.m2} {
		r.float64s(s)
	}
	for _, ls := range [][]MLPLayer{m.state.Layers, m.state.M, m.state.V} {
		for _, l := range ls {
			r.float32s(l.W)
			r.float32s(l.B)
		}
	}
	p := &m.pending
	n := int(r.u32())
	if r.err == nil && (n < 0 || n > cfg.BatchSize) {
		return nil, fmt.Errorf("snapshot has %d pending rows for batch size %d: %w", n, cfg.BatchSize, ErrSnapshot)
	}
	p.N = n
	r.float32s(p.Dense[:n*cfg.NumDense])
	for i := range p.Hashed[:n*cfg.NumHashed] {
		p.Hashed[i] = int32(r.u32())
	}
	r.float32s(p.Labels[:n])
	if r.err != nil {
		return nil, r.err
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("snapshot has %d unexpected trailing body bytes: %w", len(r.buf), ErrSnapshot)
	}
	if err := p.check(&cfg); err != nil {
		return nil, fmt.Errorf("snapshot pending rows: %w: %w", err, ErrSnapshot)
	}
	for j := range cfg.NumDense {
		m.scaler.publish(j)
	}
	return m, nil
}

// mlpStateBytes is the size of the scaler, weights and optimizer state in a
// snapshot of a learner with the resolved configuration cfg.
func mlpStateBytes(cfg *MLPConfig) uint64 {
	params := uint64(cfg.paramCount())
	if cfg.Optimizer.Kind == MLPOptimizerAdam {
		params *= 3
	}
	return 3*8*uint64(cfg.NumDense) + 4*params
}

// check reports pending rows that the learner could not have written.
func (b *MLPBatch) check(cfg *MLPConfig) error {
	for i := range b.N {
		if !ValidLabel(cfg.Link, cfg.Classes, b.Labels[i]) {
			return fmt.Errorf("row %d has label %v", i, b.Labels[i])
		}
		if !wellFormedRuns(b.Hashed[i*b.NumHashed:(i+1)*b.NumHashed], cfg.HashBits) {
			return fmt.Errorf("row %d has hashed indices out of order or range", i)
		}
	}
	return nil
}

// wellFormedRuns reports whether runs is what scaleRow writes: indices in
// [0, 2^hashBits) in ascending order, then only −1.
func wellFormedRuns(runs []int32, hashBits int) bool {
	prev := int32(-1)
	for c, idx := range runs {
		if idx == -1 {
			for _, rest := range runs[c:] {
				if rest != -1 {
					return false
				}
			}
			return true
		}
		if idx < prev || idx >= 1<<hashBits {
			return false
		}
		prev = idx
	}
	return true
}
