package governance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
	"time"
)

// Positions is how far a learner state has learned: for each partition of
// the labels topic, the next offset to read (every label record before it
// is learned, parked for its prediction, or was invalid), and the last
// entry of the early-label stream it covers ("" for none).
type Positions struct {
	Labels map[int32]int64
	Early  string
}

// Clone returns a deep copy.
func (p Positions) Clone() Positions {
	return Positions{Labels: maps.Clone(p.Labels), Early: p.Early}
}

// Mark says which published state a served version holds: the lease epoch
// and publish sequence of its record (0, 0 for a state that never came
// from the log), and Learned, the labels the version has learned in all.
type Mark struct {
	Epoch, Seq, Learned int64
}

// Newer reports whether m comes from a later publish than o.
func (m Mark) Newer(o Mark) bool {
	if m.Epoch != o.Epoch {
		return m.Epoch > o.Epoch
	}
	return m.Seq > o.Seq
}

// StateRecord is one record of the learner-state log (topics.model_state):
// the state of one model version, keyed StateKey(Model, Version). All
// records of one publish share Writer, Epoch, Seq, PublishedAt and
// Positions.
type StateRecord struct {
	Model, Version string
	// Writer is the lease holder that published it, Epoch its lease
	// epoch (registry.TryLeaseEpoch) and Seq the publish's number within
	// the epoch, from 1.
	Writer     string
	Epoch, Seq int64
	// Learned is the labels the version has learned in all.
	Learned int64
	// PublishedAt is the writer's clock at the publish.
	PublishedAt time.Time
	// Positions are the label positions the state covers.
	Positions Positions
	// State is the learner's snapshot (models.Learner.MarshalBinary).
	State []byte
}

// Mark returns the record's mark.
func (r *StateRecord) Mark() Mark { return Mark{Epoch: r.Epoch, Seq: r.Seq, Learned: r.Learned} }

// StateKey is the record key of a model version: "model@version".
func StateKey(model, version string) string { return model + "@" + version }

// Record layout, integers little-endian:
//
//	magic "DLST" | format uint16
//	epoch, seq, learned int64 | published unix ms int64
//	model, version, writer, early cursor: uint16 length + bytes each
//	partitions uint32 | (partition int32, offset int64) × partitions, by partition
//	state uint32 length + bytes
//	crc uint32: CRC-32C (Castagnoli) of every byte before it
const (
	stateMagic  = "DLST"
	stateFormat = 1
)

var stateCRC = crc32.MakeTable(crc32.Castagnoli)

// ErrBadStateRecord wraps every decoding failure of a state record.
var ErrBadStateRecord = errors.New("governance: bad learner-state record")

// Encode returns the record's value bytes. It fails for strings longer
// than 65535 bytes.
func (r *StateRecord) Encode() ([]byte, error) {
	for _, s := range []string{r.Model, r.Version, r.Writer, r.Positions.Early} {
		if len(s) > 0xffff {
			return nil, fmt.Errorf("governance: state record field of %d bytes", len(s))
		}
	}
	parts := slices.Sorted(maps.Keys(r.Positions.Labels))
	buf := make([]byte, 0, 64+len(r.Model)+len(r.Version)+len(r.Writer)+len(r.Positions.Early)+12*len(parts)+len(r.State))
	buf = append(buf, stateMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, stateFormat)
	for _, v := range []int64{r.Epoch, r.Seq, r.Learned, r.PublishedAt.UnixMilli()} {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
	}
	for _, s := range []string{r.Model, r.Version, r.Writer, r.Positions.Early} {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(s)))
		buf = append(buf, s...)
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(parts)))
	for _, p := range parts {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(p))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(r.Positions.Labels[p]))
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r.State)))
	buf = append(buf, r.State...)
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, stateCRC)), nil
}

// DecodeStateRecord parses a record's value, checking its checksum. The
// record's State aliases data.
func DecodeStateRecord(data []byte) (*StateRecord, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadStateRecord, fmt.Sprintf(format, args...))
	}
	if len(data) < 4+2+32+4 || string(data[:4]) != stateMagic {
		return nil, bad("not a state record")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, stateCRC) != sum {
		return nil, bad("checksum mismatch")
	}
	if f := binary.LittleEndian.Uint16(body[4:]); f != stateFormat {
		return nil, bad("unknown format %d", f)
	}
	d := body[6:]
	i64 := func() int64 { v := int64(binary.LittleEndian.Uint64(d)); d = d[8:]; return v }
	r := &StateRecord{}
	r.Epoch, r.Seq, r.Learned = i64(), i64(), i64()
	r.PublishedAt = time.UnixMilli(i64())
	str := func() (string, bool) {
		if len(d) < 2 {
			return "", false
		}
		n := int(binary.LittleEndian.Uint16(d))
		if len(d) < 2+n {
			return "", false
		}
		s := string(d[2 : 2+n])
		d = d[2+n:]
		return s, true
	}
	var ok [4]bool
	r.Model, ok[0] = str()
	r.Version, ok[1] = str()
	r.Writer, ok[2] = str()
	r.Positions.Early, ok[3] = str()
	if ok != [4]bool{true, true, true, true} || len(d) < 4 {
		return nil, bad("truncated")
	}
	n := int(binary.LittleEndian.Uint32(d))
	d = d[4:]
	if n > len(d)/12 {
		return nil, bad("truncated positions")
	}
	r.Positions.Labels = make(map[int32]int64, n)
	for range n {
		r.Positions.Labels[int32(binary.LittleEndian.Uint32(d))] = int64(binary.LittleEndian.Uint64(d[4:]))
		d = d[12:]
	}
	if len(d) < 4 || int(binary.LittleEndian.Uint32(d)) != len(d)-4 {
		return nil, bad("state length")
	}
	r.State = d[4:]
	if r.Model == "" || r.Version == "" || r.Epoch < 1 || r.Seq < 1 {
		return nil, bad("missing model, version, epoch or sequence")
	}
	return r, nil
}

// modelOfKey returns the model of a record key "model@version".
func modelOfKey(key string) string {
	m, _, _ := strings.Cut(key, "@")
	return m
}
