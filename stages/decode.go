// Package stages holds the data plane's stages: decode, validate, dedupe,
// anonymize, featurize, score and the label join. Each is a pipeline.Stage.
package stages

import (
	"context"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/driftline/driftline/pipeline"
)

// MaxJSONDepth is the deepest nesting Decode accepts inside an ignored value.
const MaxJSONDepth = 32

// Decode reasons (bounded metric labels).
const (
	ReasonSyntax    = "decode.syntax"
	ReasonType      = "decode.type"
	ReasonUTF8      = "decode.utf8"
	ReasonTooLong   = "decode.too_long"
	ReasonDepth     = "decode.depth"
	ReasonDuplicate = "decode.duplicate_field"
)

// Decode parses JSON objects into the batch's Arrow record, one column per
// schema field. It is a scanner compiled for the schema: known fields are
// parsed straight into their column's buffers (values, validity bitmap,
// string offsets and bytes), with no per-field allocation and no second
// pass; unknown fields are skipped (nesting up to MaxJSONDepth). A row that
// is not a JSON object, has a known field of the wrong type, invalid UTF-8,
// a string over the schema's max_string_bytes or a repeated field is
// rejected with a reason naming the field, never its value, and every
// column is null in that row; a field that is not in the schema is named by
// its position in the object, since its name is the producer's and may
// itself be personal data. Absent and null fields are null in the record;
// the validate stage enforces "required". A column with no null row has no
// validity bitmap.
//
// The columns' buffers come from the batch's Pool when it has one (see
// pipeline.Batch: they return to it once the record's last reference is
// released, after the batch is acknowledged), else they are fresh. Null
// slots of numeric columns hold 0 either way. A Decode is used by one
// partition loop at a time.
type Decode struct {
	fields   []pipeline.FieldSpec
	index    map[string]int
	quoted   []string // each field's name as a JSON string without escapes
	keyWords []keyWords
	maxStr   int
	schema   *arrow.Schema
	cols     []decodeColumn
	strCols  []int         // indexes of the string columns
	arrs     []arrow.Array // the batch's columns while the record is made
	unescape []byte
	// seen[f] == rowSeq when field f was read in the current row; rowSeq
	// counts the rows this Decode has read.
	seen   []uint64
	rowSeq uint64
	row    int
	// valueStart is where the field value being read starts.
	valueStart int
	// next is the schema index lookup tries first.
	next int
	ts   timestampReader
}

// decodeColumn is one column's buffers for the batch being decoded.
type decodeColumn struct {
	typ   pipeline.FieldType
	dtype arrow.DataType
	valid []byte    // validity bitmap
	f64   []float64 // TypeFloat
	i64   []int64   // TypeInt, TypeTimestamp (µs)
	bits  []byte    // TypeBool values
	offs  []int32   // TypeString: n+1 offsets into data
	// data holds TypeString bytes in data[:dataLen]; it is kept at full
	// length so that appending stores no pointer (no GC write barrier).
	data    []byte
	dataLen int
	// lastData is the previous batch's string bytes, to size data.
	lastData int
}

// keyWords is a quoted name and the ':' after it, `"name":`, of at most 16
// bytes as two little-endian words, and the masks that keep its bytes of
// two loaded words.
type keyWords struct {
	word, mask [2]uint64
}

func newKeyWords(q string) keyWords {
	var k keyWords
	for i := 0; i < len(q) && i < 16; i++ {
		k.word[i/8] |= uint64(q[i]) << (8 * (i % 8))
		k.mask[i/8] |= 0xff << (8 * (i % 8))
	}
	return k
}

// NewDecode builds the decoder for a spec's schema.
func NewDecode(spec *pipeline.Spec) *Decode {
	d := &Decode{
		fields: spec.Schema.Fields,
		index:  make(map[string]int, len(spec.Schema.Fields)),
		maxStr: spec.Schema.MaxStringBytes,
		schema: spec.ArrowSchema(),
		cols:   make([]decodeColumn, len(spec.Schema.Fields)),
		seen:   make([]uint64, len(spec.Schema.Fields)),
	}
	for i, f := range spec.Schema.Fields {
		d.index[f.Name] = i
		d.quoted = append(d.quoted, string(pipeline.AppendJSONString(nil, f.Name)))
		d.keyWords = append(d.keyWords, newKeyWords(d.quoted[i]+":"))
		d.cols[i] = decodeColumn{typ: f.Type, dtype: pipeline.ArrowType(f.Type)}
		if f.Type != pipeline.TypeFloat && f.Type != pipeline.TypeInt && f.Type != pipeline.TypeBool && f.Type != pipeline.TypeTimestamp {
			d.cols[i].typ = pipeline.TypeString
			d.strCols = append(d.strCols, i)
		}
	}
	return d
}

// Name implements pipeline.Stage.
func (d *Decode) Name() string { return "decode" }

// Process implements pipeline.Stage: it sets b.Record.
func (d *Decode) Process(_ context.Context, b *pipeline.Batch) error {
	n := b.Len()
	for c := range d.cols {
		d.cols[c].start(n, b.Pool)
	}
	for i := range b.Messages {
		if b.OK(i) {
			if reason, detail := d.decodeRow(b.Messages[i].Value, i); reason != "" {
				b.Reject(i, d.Name(), reason, detail)
				d.clearRow(i)
			}
		}
		for _, c := range d.strCols {
			col := &d.cols[c]
			col.offs[i+1] = int32(col.dataLen)
		}
	}
	slots := make(bufferSlots, 0, 3*len(d.cols))
	for c := range d.cols {
		d.arrs = append(d.arrs, d.cols[c].finish(n, b.Pool, &slots))
	}
	b.Record = array.NewRecordBatch(d.schema, d.arrs, int64(n)) // copies d.arrs
	for _, a := range d.arrs {
		a.Release()
	}
	clear(d.arrs)
	d.arrs = d.arrs[:0]
	return nil
}

// start gives the column buffers for n rows, all null: from pool (their
// contents undefined, so what must start zeroed is cleared), or fresh
// when pool is nil.
func (c *decodeColumn) start(n int, pool *pipeline.BufferPool) {
	c.valid = pool.Get(int(bitutil.BytesForBits(int64(n))))
	clear(c.valid)
	switch c.typ {
	case pipeline.TypeFloat:
		c.f64 = arrow.Float64Traits.CastFromBytes(pool.Get(arrow.Float64Traits.BytesRequired(n)))
	case pipeline.TypeInt, pipeline.TypeTimestamp:
		c.i64 = arrow.Int64Traits.CastFromBytes(pool.Get(arrow.Int64Traits.BytesRequired(n)))
	case pipeline.TypeBool:
		c.bits = pool.Get(len(c.valid))
		clear(c.bits)
	default:
		c.offs = arrow.Int32Traits.CastFromBytes(pool.Get(arrow.Int32Traits.BytesRequired(n + 1)))
		c.offs[0] = 0
		data := pool.Get(max(c.lastData+c.lastData/8, 64))
		c.data = data[:cap(data)]
		c.dataLen = 0
	}
}

// finish wraps the column's buffers in an Arrow array, which owns them:
// buffers from pool go back to it when the array's data is released.
// Numeric null slots are set to 0 (a pooled buffer holds old values).
func (c *decodeColumn) finish(n int, pool *pipeline.BufferPool, slots *bufferSlots) arrow.Array {
	nulls := n - bitutil.CountSetBits(c.valid, 0, n)
	var validity *memory.Buffer
	if nulls > 0 {
		validity = poolBuffer(c.valid, pool)
	} else {
		pool.Put(c.valid)
	}
	var bufs []*memory.Buffer
	switch c.typ {
	case pipeline.TypeFloat:
		if nulls > 0 {
			zeroNulls(c.f64, c.valid)
		}
		bufs = slots.take(validity, poolBuffer(arrow.Float64Traits.CastToBytes(c.f64), pool), nil)
	case pipeline.TypeInt, pipeline.TypeTimestamp:
		if nulls > 0 {
			zeroNulls(c.i64, c.valid)
		}
		bufs = slots.take(validity, poolBuffer(arrow.Int64Traits.CastToBytes(c.i64), pool), nil)
	case pipeline.TypeBool:
		bufs = slots.take(validity, poolBuffer(c.bits, pool), nil)
	default:
		c.lastData = c.dataLen
		bufs = slots.take(validity, poolBuffer(arrow.Int32Traits.CastToBytes(c.offs), pool), poolBuffer(c.data[:c.dataLen], pool))
	}
	c.valid, c.f64, c.i64, c.bits, c.offs, c.data = nil, nil, nil, nil, nil, nil
	return newPoolArray(c.dtype, n, bufs, nulls)
}

// bufferSlots gives the buffer lists of a batch's arrays out of one
// allocation. An array's data keeps the list it was made with
// (array.NewData) for as long as the array lives, possibly past the
// batch, so the slots are fresh for each batch and never handed out twice.
type bufferSlots []*memory.Buffer

// take returns a list of validity, b1 and, when not nil, b2, capped at its
// length so that nothing appended to it reaches the next list.
func (s *bufferSlots) take(validity, b1, b2 *memory.Buffer) []*memory.Buffer {
	k := len(*s)
	*s = append(*s, validity, b1)
	if b2 != nil {
		*s = append(*s, b2)
	}
	return (*s)[k:len(*s):len(*s)]
}

// poolBuffer wraps buf, from pool, in an Arrow buffer that gives it back to
// pool once its last reference is released; with a nil pool, a plain
// buffer over fresh memory.
func poolBuffer(buf []byte, pool *pipeline.BufferPool) *memory.Buffer {
	if pool == nil {
		return memory.NewBufferBytes(buf)
	}
	return memory.NewBufferWithAllocator(buf, pool)
}

// newPoolArray builds an array of n rows over bufs (made by poolBuffer),
// which then holds the only references to them.
func newPoolArray(dtype arrow.DataType, n int, bufs []*memory.Buffer, nulls int) arrow.Array {
	data := array.NewData(dtype, n, bufs, nil, nulls, 0)
	for _, buf := range bufs {
		if buf != nil {
			buf.Release() // NewData took its own reference
		}
	}
	arr := array.MakeFromData(data)
	data.Release()
	return arr
}

// zeroNulls sets the value of each null row (a clear bit of valid) to 0.
func zeroNulls[T float64 | int64](vals []T, valid []byte) {
	for i := range vals {
		if !bitutil.BitIsSet(valid, i) {
			vals[i] = 0
		}
	}
}

// appendString appends str to the column's bytes.
func (c *decodeColumn) appendString(str []byte) {
	if c.dataLen+len(str) > len(c.data) {
		c.data = slices.Grow(c.data[:c.dataLen], len(str))
		c.data = c.data[:cap(c.data)]
	}
	c.dataLen += copy(c.data[c.dataLen:], str)
}

// clearRow makes row i null in every column, dropping the string bytes a
// rejected row had appended.
func (d *Decode) clearRow(i int) {
	for c := range d.cols {
		col := &d.cols[c]
		bitutil.ClearBit(col.valid, i)
		switch col.typ {
		case pipeline.TypeFloat:
			col.f64[i] = 0
		case pipeline.TypeInt, pipeline.TypeTimestamp:
			col.i64[i] = 0
		case pipeline.TypeBool:
			bitutil.ClearBit(col.bits, i)
		default:
			col.dataLen = int(col.offs[i])
		}
	}
}

// decodeRow decodes one JSON object into row i of the columns; it returns a
// reason and a detail when the row is rejected (the caller then clears the
// row).
//
// Invalid UTF-8 anywhere in the input is the reason before any other. The
// input is not checked in a pass of its own: the scanner checks the
// multi-byte sequences inside strings as it reads them (readString) and
// accepts nothing but ASCII outside strings, so an accepted row is valid
// UTF-8; a rejected one is then checked whole, to report the right reason.
func (d *Decode) decodeRow(data []byte, i int) (reason, detail string) {
	if reason, detail = d.decodeObject(data, i); reason != "" && !utf8.Valid(data) {
		return ReasonUTF8, "input is not valid UTF-8"
	}
	return reason, detail
}

// decodeObject is decodeRow but for the UTF-8 check of a rejected row.
func (d *Decode) decodeObject(data []byte, i int) (reason, detail string) {
	d.row = i
	d.rowSeq++
	d.unescape = d.unescape[:0]
	d.next = 0
	p := scanner{data: data}
	p.skipSpace()
	if !p.consume('{') {
		return ReasonSyntax, "input is not a JSON object"
	}
	p.skipSpace()
	if p.consume('}') {
		return d.trailing(&p)
	}
	for k := 1; ; k++ {
		p.skipSpace()
		keyAt := p.pos
		fi, colon := d.nextKey(&p)
		known := fi >= 0
		if !known {
			key, ok := p.readString(&d.unescape)
			if !ok {
				return ReasonSyntax, "malformed object key at byte " + strconv.Itoa(p.pos)
			}
			fi, known = d.lookup(key)
		}
		if !colon {
			p.skipSpace()
			if !p.consume(':') {
				return ReasonSyntax, "missing ':' at byte " + strconv.Itoa(p.pos)
			}
		}
		p.skipSpace()
		if known {
			if d.seen[fi] == d.rowSeq {
				return ReasonDuplicate, "field " + d.fields[fi].Name + " appears twice"
			}
			d.seen[fi] = d.rowSeq
			switch d.readCommon(&p, fi) {
			case commonRead:
			case commonTooLong:
				return ReasonTooLong, d.tooLongDetail(&d.fields[fi])
			default:
				if reason, detail := d.readField(&p, fi); reason != "" {
					return reason, detail
				}
			}
		} else if err := p.skipValue(0); err != "" {
			// The key is not in the schema, so its name is the producer's
			// (it may be an e-mail address): name it by its position only.
			return err, "in the value of key " + strconv.Itoa(k) + " of the object (at byte " + strconv.Itoa(keyAt) + "), which is not in the schema"
		}
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return d.trailing(&p)
		}
		return ReasonSyntax, "expected ',' or '}' at byte " + strconv.Itoa(p.pos)
	}
}

// nextKey reads the key at p when it is, byte for byte, the quoted name of
// the field after the previous match (producers usually write fields in
// schema order): one comparison, no scan. For a name of at most 15 bytes
// quoted it reads the ':' after it in the same comparison (colon is then
// true), so a key followed by space before its ':' is not matched here.
// Otherwise it returns -1 and leaves p where it was.
func (d *Decode) nextKey(p *scanner) (fi int, colon bool) {
	n := d.next
	if n >= len(d.quoted) {
		return -1, false
	}
	q := d.quoted[n]
	if k := &d.keyWords[n]; len(q) < 16 && len(p.data)-p.pos >= 16 {
		// Two 8-byte loads, masked to the length of `"name":`.
		w0 := binary.LittleEndian.Uint64(p.data[p.pos:])
		w1 := binary.LittleEndian.Uint64(p.data[p.pos+8:])
		if w0&k.mask[0] != k.word[0] || w1&k.mask[1] != k.word[1] {
			return -1, false
		}
		p.pos += len(q) + 1
		d.next = n + 1
		return n, true
	}
	if len(p.data)-p.pos < len(q) || string(p.data[p.pos:p.pos+len(q)]) != q {
		return -1, false
	}
	p.pos += len(q)
	d.next = n + 1
	return n, false
}

// lookup returns the schema index of key. Producers usually write fields in
// schema order, so it first tries the field after the previous match, which
// is one short comparison instead of a map lookup.
func (d *Decode) lookup(key []byte) (int, bool) {
	if n := d.next; n < len(d.fields) && d.fields[n].Name == string(key) {
		d.next = n + 1
		return n, true
	}
	fi, ok := d.index[string(key)]
	if ok {
		d.next = fi + 1
	}
	return fi, ok
}

func (d *Decode) trailing(p *scanner) (string, string) {
	p.skipSpace()
	if p.pos != len(p.data) {
		return ReasonSyntax, "trailing data after the object"
	}
	return "", ""
}

// What readCommon did with a value.
const (
	commonFallback = iota // nothing: p unmoved, readField reads the value
	commonRead            // read into its column
	commonTooLong         // a string column's plain string over max_string_bytes
)

// readCommon reads the common cases inline: a plain number into a float
// column, an ASCII string without escapes of at most max_string_bytes
// into a string column, one that is a timestamp into a timestamp column.
// A plain string over max_string_bytes is commonTooLong, the rejection
// readField would make after scanning it again (a 256 KiB value twice).
// Anything else is commonFallback, with p unmoved, which readField then
// reads (and rejects when it must).
func (d *Decode) readCommon(p *scanner, fi int) int {
	col := &d.cols[fi]
	d.valueStart = p.pos
	switch col.typ {
	case pipeline.TypeFloat:
		v, ok := p.readPlainNumber()
		if !ok {
			return commonFallback
		}
		col.f64[d.row] = v
	case pipeline.TypeString:
		str, ok := p.plainString()
		if !ok {
			p.pos = d.valueStart
			return commonFallback
		}
		if len(str) > d.maxStr {
			return commonTooLong
		}
		col.appendString(str)
	case pipeline.TypeTimestamp:
		str, ok := p.plainString()
		if !ok {
			return commonFallback
		}
		us, ok := d.ts.micros(str)
		if !ok {
			p.pos = d.valueStart
			return commonFallback
		}
		col.i64[d.row] = us
	default:
		return commonFallback
	}
	bitutil.SetBit(col.valid, d.row)
	return commonRead
}

// tooLongDetail is the detail of a ReasonTooLong rejection of field f.
func (d *Decode) tooLongDetail(f *pipeline.FieldSpec) string {
	return "field " + f.Name + ": longer than " + strconv.Itoa(d.maxStr) + " bytes"
}

func (d *Decode) readField(p *scanner, fi int) (string, string) {
	f := &d.fields[fi]
	if p.literal("null") {
		return "", "" // the row stays null in this column
	}
	reason, detail := d.readTyped(p, f, &d.cols[fi])
	if reason == ReasonType {
		// A value that is not JSON at all (NaN, Infinity, .5, tru, 'x') is a
		// syntax error, not a wrong type; a deep value stays a type error.
		if p.pos = d.valueStart; p.skipValue(0) == ReasonSyntax {
			return ReasonSyntax, "field " + f.Name + ": malformed value"
		}
	}
	return reason, detail
}

// readTyped reads a non-null value of field f into row d.row of col.
func (d *Decode) readTyped(p *scanner, f *pipeline.FieldSpec, col *decodeColumn) (string, string) {
	d.valueStart = p.pos
	i := d.row
	switch col.typ {
	case pipeline.TypeString:
		if p.peek() != '"' {
			return ReasonType, "field " + f.Name + ": want string, got " + p.kind()
		}
		str, ok := p.readString(&d.unescape)
		if !ok {
			return ReasonSyntax, "field " + f.Name + ": malformed string"
		}
		if len(str) > d.maxStr {
			return ReasonTooLong, d.tooLongDetail(f)
		}
		col.appendString(str)
	case pipeline.TypeFloat, pipeline.TypeInt:
		if c := p.peek(); c != '-' && (c < '0' || c > '9') {
			return ReasonType, "field " + f.Name + ": want number, got " + p.kind()
		}
		v, done := p.readPlainNumber()
		if !done {
			num, ok := p.readNumber()
			if !ok {
				return ReasonSyntax, "field " + f.Name + ": malformed number"
			}
			var bad bool
			if v, bad = parseFloat(num); bad || math.IsInf(v, 0) || math.IsNaN(v) {
				return ReasonType, "field " + f.Name + ": number out of range"
			}
		}
		if col.typ == pipeline.TypeInt {
			if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
				return ReasonType, "field " + f.Name + ": want integer"
			}
			col.i64[i] = int64(v)
		} else {
			col.f64[i] = v
		}
	case pipeline.TypeBool:
		switch {
		case p.literal("true"):
			bitutil.SetBit(col.bits, i)
		case p.literal("false"):
		default:
			return ReasonType, "field " + f.Name + ": want bool, got " + p.kind()
		}
	case pipeline.TypeTimestamp:
		if p.peek() != '"' {
			return ReasonType, "field " + f.Name + ": want RFC 3339 timestamp string, got " + p.kind()
		}
		str, ok := p.readString(&d.unescape)
		if !ok {
			return ReasonSyntax, "field " + f.Name + ": malformed string"
		}
		us, ok := d.ts.micros(str)
		if !ok {
			return ReasonType, "field " + f.Name + ": not an RFC 3339 timestamp"
		}
		col.i64[i] = us
	}
	bitutil.SetBit(col.valid, i)
	return "", ""
}

// scanner is a minimal JSON tokenizer over one input.
type scanner struct {
	data []byte
	pos  int
}

// skipSpace skips JSON whitespace; the usual case, none, is one inlined
// comparison.
func (p *scanner) skipSpace() {
	if p.pos < len(p.data) && p.data[p.pos] > ' ' {
		return
	}
	p.skipSpaceSlow()
}

func (p *scanner) skipSpaceSlow() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *scanner) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *scanner) consume(c byte) bool {
	if p.pos < len(p.data) && p.data[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *scanner) literal(lit string) bool {
	if len(p.data)-p.pos >= len(lit) && string(p.data[p.pos:p.pos+len(lit)]) == lit {
		p.pos += len(lit)
		return true
	}
	return false
}

// kind names the JSON type of the next value, for error details.
func (p *scanner) kind() string {
	switch c := p.peek(); {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	case c == 0:
		return "end of input"
	}
	return "invalid token"
}

// readString reads a JSON string. Without escapes it returns a view of the
// input; with escapes it decodes into *buf and returns a view of that.
func (p *scanner) readString(buf *[]byte) ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.pos
	// 8 bytes at a time to the first '"', '\\', control byte or byte that
	// is not ASCII (escapeMask8).
	for p.pos+8 <= len(p.data) {
		if m := escapeMask8(binary.LittleEndian.Uint64(p.data[p.pos:])); m != 0 {
			p.pos += bits.TrailingZeros64(m) / 8
			break
		}
		p.pos += 8
	}
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.data[start:p.pos]
			p.pos++
			return s, true
		}
		if c == '\\' {
			return p.readEscaped(start, buf)
		}
		if c < 0x20 {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			if !p.validRune() {
				return nil, false
			}
			continue
		}
		p.pos++
	}
	return nil, false
}

// validRune moves p past the UTF-8 sequence at p, reporting false (p
// unmoved) when it is not a valid encoding, as utf8.Valid judges.
func (p *scanner) validRune() bool {
	r, size := utf8.DecodeRune(p.data[p.pos:])
	if r == utf8.RuneError && size == 1 {
		return false
	}
	p.pos += size
	return true
}

// plainString reads a JSON string of ASCII bytes without escapes and
// returns a view of its content. For any other value it returns false and
// leaves p where it was (readString then decides).
func (p *scanner) plainString() ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	start := p.pos + 1
	end := start
	for end+8 <= len(p.data) {
		if m := escapeMask8(binary.LittleEndian.Uint64(p.data[end:])); m != 0 {
			end += bits.TrailingZeros64(m) / 8
			break
		}
		end += 8
	}
	if end+8 > len(p.data) {
		for end < len(p.data) && p.data[end] != '"' && p.data[end] != '\\' && p.data[end]-0x20 < 0x80-0x20 {
			end++
		}
	}
	if end >= len(p.data) || p.data[end] != '"' {
		return nil, false
	}
	p.pos = end + 1
	return p.data[start:end], true
}

func (p *scanner) readEscaped(start int, buf *[]byte) ([]byte, bool) {
	from := len(*buf)
	out := append(*buf, p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			*buf = out
			return out[from:], true
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			at := p.pos
			if !p.validRune() {
				return nil, false
			}
			out = append(out, p.data[at:p.pos]...)
			continue
		case c != '\\':
			out = append(out, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.data) {
			return nil, false
		}
		e := p.data[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.readHex4()
			if !ok {
				return nil, false
			}
			if r >= 0xD800 && r < 0xDC00 && p.literal("\\u") {
				lo, ok := p.readHex4()
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return nil, false
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			} else if r >= 0xD800 && r < 0xE000 {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (p *scanner) readHex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// readNumber returns the bytes of a JSON number, checked against the grammar.
func (p *scanner) readNumber() ([]byte, bool) {
	start := p.pos
	p.consume('-')
	if p.consume('0') {
		// a leading zero stands alone
	} else if !p.digits() {
		return nil, false
	}
	if p.consume('.') && !p.digits() {
		return nil, false
	}
	if p.consume('e') || p.consume('E') {
		if !p.consume('+') {
			p.consume('-')
		}
		if !p.digits() {
			return nil, false
		}
	}
	return p.data[start:p.pos], true
}

// readPlainNumber reads, in one pass, a number that parseFloat's fast
// paths take and round: -?(0|[1-9][0-9]*)(.[0-9]+)? without an exponent,
// at most 19 digits, at most 22 of them after the point. For any other
// input it leaves p where it was and returns false: readNumber and
// parseFloat then decide.
func (p *scanner) readPlainNumber() (float64, bool) {
	const maxExact = 1 << 53
	data, i := p.data, p.pos
	neg := i < len(data) && data[i] == '-'
	if neg {
		i++
	}
	var mant uint64
	ds := i
	if i < len(data) && data[i] == '0' {
		i++
	} else {
		for i < len(data) && data[i]-'0' <= 9 {
			mant = mant*10 + uint64(data[i]-'0')
			i++
		}
	}
	nInt := i - ds
	frac := 0
	if i < len(data) && data[i] == '.' {
		i++
		fs := i
		for i < len(data) && data[i]-'0' <= 9 {
			mant = mant*10 + uint64(data[i]-'0')
			i++
		}
		if frac = i - fs; frac == 0 {
			return 0, false
		}
	}
	if nInt == 0 || nInt+frac > 19 || frac > 22 || (i < len(data) && (data[i] == 'e' || data[i] == 'E')) {
		return 0, false
	}
	if mant > maxExact {
		v, ok := longDecimalToFloat(mant, frac, neg)
		if ok {
			p.pos = i
		}
		return v, ok
	}
	v := float64(mant)
	if frac > 0 {
		v /= pow10[frac]
	}
	if neg {
		v = -v
	}
	p.pos = i
	return v, true
}

func (p *scanner) digits() bool {
	start := p.pos
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	return p.pos > start
}

// skipValue skips any JSON value, failing past MaxJSONDepth.
func (p *scanner) skipValue(depth int) string {
	if depth > MaxJSONDepth {
		return ReasonDepth
	}
	var scratch []byte
	switch c := p.peek(); {
	case c == '"':
		if _, ok := p.readString(&scratch); !ok {
			return ReasonSyntax
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if _, ok := p.readNumber(); !ok {
			return ReasonSyntax
		}
	case p.literal("true"), p.literal("false"), p.literal("null"):
	case c == '{' || c == '[':
		return p.skipContainer(depth)
	default:
		return ReasonSyntax
	}
	return ""
}

func (p *scanner) skipContainer(depth int) string {
	closer := byte('}')
	isObject := p.peek() == '{'
	if !isObject {
		closer = ']'
	}
	p.pos++
	p.skipSpace()
	if p.consume(closer) {
		return ""
	}
	var scratch []byte
	for {
		p.skipSpace()
		if isObject {
			if _, ok := p.readString(&scratch); !ok {
				return ReasonSyntax
			}
			p.skipSpace()
			if !p.consume(':') {
				return ReasonSyntax
			}
			p.skipSpace()
		}
		if r := p.skipValue(depth + 1); r != "" {
			return r
		}
		p.skipSpace()
		if p.consume(',') {
			continue
		}
		if p.consume(closer) {
			return ""
		}
		return ReasonSyntax
	}
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat parses a grammar-checked JSON number. Decimals without an
// exponent of at most 19 digits, at most 22 of them after the point, take
// a fast path: those whose digits, read as an integer, are at most 2^53
// one exact division (the mantissa and the power of ten are both exact
// float64 values, so it rounds correctly: Clinger 1990), the others
// longDecimalToFloat. Everything else, and the rare input that cannot
// round, goes to strconv.
func parseFloat(num []byte) (float64, bool) {
	const maxExact = 1 << 53
	var mant uint64
	digits, frac := 0, -1
	neg := false
	i := 0
	if num[0] == '-' {
		neg = true
		i = 1
	}
	for ; i < len(num); i++ {
		c := num[i]
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0') // wraps only past 19 digits, refused below
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.':
			frac = 0
		default:
			return slowParseFloat(num)
		}
	}
	if digits > 19 || frac > 22 {
		return slowParseFloat(num)
	}
	frac = max(frac, 0)
	if mant > maxExact {
		if v, ok := longDecimalToFloat(mant, frac, neg); ok {
			return v, false
		}
		return slowParseFloat(num)
	}
	v := float64(mant)
	if frac > 0 {
		v /= pow10[frac]
	}
	if neg {
		v = -v
	}
	return v, false
}

func slowParseFloat(num []byte) (float64, bool) {
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64)
	return v, err != nil
}
