package detectors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrState reports ADWIN state bytes that AppendBinary did not write.
var ErrState = errors.New("adwin: bad state")

// adwinStateVersion is the first byte of AppendBinary's output.
const adwinStateVersion = 1

// Clone returns an independent copy of d: the same configuration, window
// and counters.
func (d *ADWIN) Clone() *ADWIN {
	c := *d
	c.rows = make([]adwinRow, d.nRows)
	for i := range c.rows {
		src := &d.rows[i]
		c.rows[i] = adwinRow{
			total:    append(make([]float64, 0, len(src.total)), src.total...),
			variance: append(make([]float64, 0, len(src.variance)), src.variance...),
			n:        src.n,
		}
	}
	return &c
}

// AppendBinary appends d's configuration and state to b, little-endian; the
// same state always gives the same bytes. UnmarshalBinary reads them back.
func (d *ADWIN) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, adwinStateVersion)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.cfg.Delta))
	for _, v := range []int{d.cfg.Clock, d.cfg.MaxBuckets, d.cfg.MinWindowLength, d.cfg.GracePeriod, d.nRows, d.tick} {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	for _, v := range []float64{d.total, d.variance, d.width} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	b = binary.LittleEndian.AppendUint64(b, d.rejected)
	drift := byte(0)
	if d.drift {
		drift = 1
	}
	b = append(b, drift)
	for i := range d.rows[:d.nRows] {
		row := &d.rows[i]
		b = append(b, byte(row.n))
		for k := range row.n {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(row.total[k]))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(row.variance[k]))
		}
	}
	return b, nil
}

// UnmarshalBinary replaces d with the state AppendBinary wrote. On an error
// (wrapping ErrState) d is unchanged. Its whole input must be one state.
func (d *ADWIN) UnmarshalBinary(data []byte) error {
	r, rest, err := ReadADWIN(data)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes: %w", len(rest), ErrState)
	}
	*d = *r
	return nil
}

// ReadADWIN restores a detector from the state AppendBinary wrote at the
// front of data, and returns it with the bytes that follow. Errors wrap
// ErrState.
func ReadADWIN(data []byte) (*ADWIN, []byte, error) {
	const fixed = 1 + 8 + 6*8 + 3*8 + 8 + 1
	if len(data) < fixed || data[0] != adwinStateVersion {
		return nil, nil, fmt.Errorf("%d bytes, not an ADWIN state of version %d: %w", len(data), adwinStateVersion, ErrState)
	}
	u64 := func(i int) uint64 { return binary.LittleEndian.Uint64(data[1+8*i:]) }
	cfg := ADWINConfig{Delta: math.Float64frombits(u64(0))}
	ints := make([]uint64, 6)
	for i := range ints {
		ints[i] = u64(1 + i)
	}
	for _, v := range ints {
		if v > math.MaxInt32 {
			return nil, nil, fmt.Errorf("field %d out of range: %w", v, ErrState)
		}
	}
	cfg.Clock, cfg.MaxBuckets, cfg.MinWindowLength, cfg.GracePeriod = int(ints[0]), int(ints[1]), int(ints[2]), int(ints[3])
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, ErrState)
	}
	nRows, tick := int(ints[4]), int(ints[5])
	d := &ADWIN{cfg: cfg, tick: tick,
		total: math.Float64frombits(u64(7)), variance: math.Float64frombits(u64(8)), width: math.Float64frombits(u64(9)),
		rejected: u64(10)}
	switch data[fixed-1] {
	case 0:
	case 1:
		d.drift = true
	default:
		return nil, nil, fmt.Errorf("drift flag %d: %w", data[fixed-1], ErrState)
	}
	if nRows < 1 || nRows > 64 {
		return nil, nil, fmt.Errorf("%d bucket rows: %w", nRows, ErrState)
	}
	rest := data[fixed:]
	for i := range nRows {
		d.ensureRow(i)
		if len(rest) < 1 {
			return nil, nil, fmt.Errorf("row %d missing: %w", i, ErrState)
		}
		k := int(rest[0])
		rest = rest[1:]
		if k > cfg.MaxBuckets || len(rest) < 16*k {
			return nil, nil, fmt.Errorf("row %d: %d buckets: %w", i, k, ErrState)
		}
		for j := range k {
			d.rows[i].push(math.Float64frombits(binary.LittleEndian.Uint64(rest[16*j:])),
				math.Float64frombits(binary.LittleEndian.Uint64(rest[16*j+8:])))
		}
		rest = rest[16*k:]
	}
	if nRows > 1 && d.rows[nRows-1].n == 0 {
		return nil, nil, fmt.Errorf("oldest row %d is empty: %w", nRows-1, ErrState)
	}
	return d, rest, nil
}
