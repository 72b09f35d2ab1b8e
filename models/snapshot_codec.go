package models

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Snapshots of the trees and forests share the linear learner's frame:
//
//	magic   [4]byte  the learner's kind
//	version uint16
//	length  uint64   number of body bytes that follow
//	body
//	crc     uint32   CRC-32C (Castagnoli) of every byte before it
//
// with little-endian integers and floats throughout.

// appendFrame wraps body in the snapshot frame.
func appendFrame(magic string, version uint16, body []byte) []byte {
	buf := make([]byte, 0, snapshotHeader+len(body)+snapshotTrailer)
	buf = append(buf, magic...)
	buf = binary.LittleEndian.AppendUint16(buf, version)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(body)))
	buf = append(buf, body...)
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
}

// openFrame checks the frame of a snapshot of the given kind and version
// and returns its body. Errors wrap ErrSnapshot.
func openFrame(data []byte, magic string, version uint16) ([]byte, error) {
	if len(data) < snapshotHeader+snapshotTrailer {
		return nil, fmt.Errorf("snapshot of %d bytes is shorter than its %d-byte frame: %w",
			len(data), snapshotHeader+snapshotTrailer, ErrSnapshot)
	}
	if !bytes.Equal(data[:4], []byte(magic)) {
		return nil, fmt.Errorf("snapshot kind %q, want %q: %w", data[:4], magic, ErrSnapshot)
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != version {
		return nil, fmt.Errorf("snapshot version %d, this build reads version %d: %w", v, version, ErrSnapshot)
	}
	bodyLen := binary.LittleEndian.Uint64(data[6:])
	if have := uint64(len(data) - snapshotHeader - snapshotTrailer); bodyLen != have {
		return nil, fmt.Errorf("snapshot header announces %d body bytes, found %d (truncated or padded): %w",
			bodyLen, have, ErrSnapshot)
	}
	end := len(data) - snapshotTrailer
	if want, got := binary.LittleEndian.Uint32(data[end:]), crc32.Checksum(data[:end], crcTable); want != got {
		return nil, fmt.Errorf("snapshot checksum %08x, computed %08x (corrupt): %w", want, got, ErrSnapshot)
	}
	return data[snapshotHeader:end], nil
}

// encoder appends a snapshot body.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)    { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32)  { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)  { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) int(v int)     { e.u64(uint64(int64(v))) }
func (e *encoder) f64(v float64) { e.u64(math.Float64bits(v)) }
func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) i32s(v []int32) {
	e.u32(uint32(len(v)))
	for _, x := range v {
		e.u32(uint32(x))
	}
}

// blob writes a length-prefixed byte string.
func (e *encoder) blob(v []byte) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}

// decoder reads what encoder wrote; after the first problem it records err
// and returns zeros.
type decoder struct{ snapshotReader }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrSnapshot)...)
	}
	d.buf = nil
}

func (d *decoder) int() int {
	v := int64(d.u64())
	if v < math.MinInt32 || v > math.MaxInt32*1024 {
		d.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) f64() float64 { return math.Float64frombits(d.u64()) }

func (d *decoder) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad boolean")
	return false
}

// count reads a length of items of at least size bytes each, which the
// rest of the body must be able to hold.
func (d *decoder) count(size int) int {
	n := int(d.u32())
	if d.err == nil && n*size > len(d.buf) {
		d.fail("count %d exceeds the %d bytes left", n, len(d.buf))
		return 0
	}
	return n
}

// i32s reads a list whose items must lie in [0, limit).
func (d *decoder) i32s(limit int) []int32 {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		x := int32(d.u32())
		if x < 0 || int(x) >= limit {
			d.fail("index %d outside [0, %d)", x, limit)
			return nil
		}
		v[i] = x
	}
	return v
}

func (d *decoder) blob() []byte {
	n := d.count(1)
	return d.take(n)
}

// done reports the first problem, or bytes left over.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("snapshot has %d unexpected trailing body bytes: %w", len(d.buf), ErrSnapshot)
	}
	return nil
}

// snapshotConfigError reports a snapshot's configuration that is invalid
// (err) or has unset defaults (err nil).
func snapshotConfigError(err error) error {
	if err != nil {
		return fmt.Errorf("snapshot configuration: %w: %w", err, ErrSnapshot)
	}
	return fmt.Errorf("snapshot configuration has unset defaults: %w", ErrSnapshot)
}
