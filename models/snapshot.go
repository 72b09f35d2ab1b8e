package models

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Snapshot format of a Linear learner, all integers and floats
// little-endian:
//
//	magic   [4]byte "DLLN"
//	version uint16  (snapshotVersion)
//	length  uint64  number of body bytes that follow
//	body:
//	  link, optimizer kind, schedule           uint8 ×3
//	  classes, dense, hashed, hash bits         uint32 ×4
//	  learning rate, power t, schedule alpha,
//	  epsilon, beta, l1, l2, clip               float64 ×8
//	  steps                                     uint64
//	  scaler count, mean, m2 per dense column   float64 ×3×dense
//	  weights                                   float32 ×classes×dim
//	  intercepts                                float32 ×classes
//	  acc (adagrad and ftrl only)               float64 ×classes×(dim+1)
//	  z (ftrl only)                             float64 ×classes×(dim+1)
//	crc     uint32  CRC-32C (Castagnoli) of every byte before it
const (
	snapshotMagic   = "DLLN"
	snapshotVersion = 1
	snapshotHeader  = 4 + 2 + 8
	snapshotTrailer = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary snapshots the learner; see Learner.
func (l *Linear) MarshalBinary() ([]byte, error) {
	c := &l.cfg
	o := &c.Optimizer
	bodyLen := 3 + 4*4 + 8*8 + 8 + 3*8*c.NumDense + 4*(len(l.w)+len(l.b)) + 8*(len(l.acc)+len(l.z))
	buf := make([]byte, 0, snapshotHeader+bodyLen+snapshotTrailer)
	buf = append(buf, snapshotMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, snapshotVersion)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(bodyLen))
	buf = append(buf, byte(c.Link), byte(o.Kind), byte(o.Schedule))
	for _, v := range []int{c.Classes, c.NumDense, c.NumHashed, c.HashBits} {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	for _, v := range []float64{o.LearningRate, o.PowerT, o.ScheduleAlpha, o.Epsilon, o.Beta, c.L1, c.L2, c.ClipGradient} {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	buf = binary.LittleEndian.AppendUint64(buf, l.steps)
	for _, s := range [][]float64{l.scaler.count, l.scaler.mean, l.scaler.m2} {
		buf = appendFloat64s(buf, s)
	}
	buf = appendFloat32s(buf, l.w)
	buf = appendFloat32s(buf, l.b)
	buf = appendFloat64s(buf, l.acc)
	buf = appendFloat64s(buf, l.z)
	if len(buf) != snapshotHeader+bodyLen {
		return nil, fmt.Errorf("models: snapshot body is %d bytes, expected %d", len(buf)-snapshotHeader, bodyLen)
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable)), nil
}

// UnmarshalBinary replaces the learner with a snapshot; see Learner.
func (l *Linear) UnmarshalBinary(data []byte) error {
	restored, err := UnmarshalLinear(data)
	if err != nil {
		return err
	}
	*l = *restored
	return nil
}

// UnmarshalLearner restores a learner from a snapshot made by a Learner's
// MarshalBinary, without knowing its kind or configuration in advance: the
// snapshot's first four bytes name its kind. Errors wrap ErrSnapshot.
func UnmarshalLearner(data []byte) (Learner, error) {
	if len(data) < len(snapshotMagic) {
		return nil, fmt.Errorf("snapshot of %d bytes has no kind tag: %w", len(data), ErrSnapshot)
	}
	switch string(data[:len(snapshotMagic)]) {
	case snapshotMagic:
		return UnmarshalLinear(data)
	case mlpSnapshotMagic:
		return UnmarshalMLP(data)
	case htMagic:
		return unmarshalHoeffdingTree(data)
	case hatMagic:
		return unmarshalHAT(data)
	case arfMagic:
		return unmarshalARF(data)
	case htrMagic:
		return unmarshalHTR(data)
	case arfRegMagic:
		return unmarshalARFRegressor(data)
	}
	return nil, fmt.Errorf("snapshot kind %q is not one this build knows: %w", data[:len(snapshotMagic)], ErrSnapshot)
}

// UnmarshalLinear restores a Linear learner from a snapshot. Errors wrap
// ErrSnapshot.
func UnmarshalLinear(data []byte) (*Linear, error) {
	body, err := openFrame(data, snapshotMagic, snapshotVersion)
	if err != nil {
		return nil, err
	}
	r := snapshotReader{buf: body}
	var cfg LinearConfig
	o := &cfg.Optimizer
	cfg.Link, o.Kind, o.Schedule = Link(r.u8()), OptimizerKind(r.u8()), Schedule(r.u8())
	for _, p := range []*int{&cfg.Classes, &cfg.NumDense, &cfg.NumHashed, &cfg.HashBits} {
		*p = int(r.u32())
	}
	for _, p := range []*float64{&o.LearningRate, &o.PowerT, &o.ScheduleAlpha, &o.Epsilon, &o.Beta, &cfg.L1, &cfg.L2, &cfg.ClipGradient} {
		*p = math.Float64frombits(r.u64())
	}
	steps := r.u64()
	if r.err != nil {
		return nil, r.err
	}
	resolved, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("snapshot configuration: %w: %w", err, ErrSnapshot)
	}
	if resolved != cfg {
		return nil, fmt.Errorf("snapshot configuration has unset defaults: %w", ErrSnapshot)
	}
	if need := stateBytes(cfg); uint64(len(r.buf)) != need {
		return nil, fmt.Errorf("snapshot holds %d bytes of state, its configuration needs %d: %w",
			len(r.buf), need, ErrSnapshot)
	}
	l := newLinearState(cfg)
	l.steps = steps
	for _, s := range [][]float64{l.scaler.count, l.scaler.mean, l.scaler.m2} {
		r.float64s(s)
	}
	r.float32s(l.w)
	r.float32s(l.b)
	r.float64s(l.acc)
	r.float64s(l.z)
	if r.err != nil {
		return nil, r.err
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("snapshot has %d unexpected trailing body bytes: %w", len(r.buf), ErrSnapshot)
	}
	for j := range cfg.NumDense {
		l.scaler.publish(j)
	}
	return l, nil
}

// stateBytes is the size of the scaler, weights and optimizer state in a
// snapshot of a learner with the resolved configuration cfg.
func stateBytes(cfg LinearConfig) uint64 {
	k := uint64(cfg.Classes)
	params := k*(uint64(cfg.NumDense)+1<<cfg.HashBits) + k
	size := 3*8*uint64(cfg.NumDense) + 4*params
	switch cfg.Optimizer.Kind {
	case OptimizerAdaGrad:
		size += 8 * params
	case OptimizerFTRL:
		size += 2 * 8 * params
	}
	return size
}

func appendFloat32s(buf []byte, s []float32) []byte {
	for _, v := range s {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	return buf
}

func appendFloat64s(buf []byte, s []float64) []byte {
	for _, v := range s {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	return buf
}

// snapshotReader consumes a snapshot body; after the first short read it
// records err and reads zeros.
type snapshotReader struct {
	buf []byte
	err error
}

func (r *snapshotReader) take(n int) []byte {
	if r.err != nil || len(r.buf) < n {
		if r.err == nil {
			r.err = fmt.Errorf("snapshot body ends %d bytes early: %w", n-len(r.buf), ErrSnapshot)
		}
		r.buf = nil
		return make([]byte, n)
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *snapshotReader) u8() uint8   { return r.take(1)[0] }
func (r *snapshotReader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *snapshotReader) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }

func (r *snapshotReader) float32s(dst []float32) {
	b := r.take(4 * len(dst))
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

func (r *snapshotReader) float64s(dst []float64) {
	b := r.take(8 * len(dst))
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
}
