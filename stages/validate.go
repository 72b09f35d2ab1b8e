package stages

import (
	"context"
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
)

// Validate reasons (bounded metric labels).
const (
	ReasonRequired = "validate.required"
	ReasonRange    = "validate.range"
	ReasonEnum     = "validate.enum"
	ReasonEmptyID  = "validate.empty_id"
)

// Validate enforces the schema's required fields, ranges and enums on the
// decoded columns, and rejects an empty event id. Details name the field
// and the rule, never the value. It works column by column: a column
// without nulls skips the null checks, and one without rules is not read.
// It holds no mutable state and is safe for concurrent use.
type Validate struct {
	fields []pipeline.FieldSpec
	enums  []enumSet
	idCol  int
}

// enumSet is one field's enum: a list for a few values (compared in
// order), a map for many. When every value of a list is at most 8 bytes,
// words holds each as a little-endian word plus its length, compared
// without a call.
type enumSet struct {
	list  []string
	set   map[string]struct{}
	words []enumWord
}

type enumWord struct {
	word uint64
	n    int
}

// shortWord packs a string of at most 8 bytes into a little-endian word.
func shortWord(s string) uint64 {
	var w uint64
	for i := len(s) - 1; i >= 0; i-- {
		w = w<<8 | uint64(s[i])
	}
	return w
}

// enumMapFrom is the enum size from which a map beats comparing in turn.
const enumMapFrom = 16

func (e *enumSet) has(s string) bool {
	if e.set != nil {
		_, ok := e.set[s]
		return ok
	}
	if e.words != nil {
		if len(s) > 8 {
			return false
		}
		w := shortWord(s)
		for _, v := range e.words {
			if v.word == w && v.n == len(s) {
				return true
			}
		}
		return false
	}
	for _, v := range e.list {
		if v == s {
			return true
		}
	}
	return false
}

// hasValue is has(string(data[start:end])) for a value in data: for the
// word path it loads the value's 8 bytes in one go when data has them,
// instead of packing it byte by byte.
func (e *enumSet) hasValue(data []byte, start, end int) bool {
	n := end - start
	if e.words == nil || n > 8 || start+8 > len(data) {
		return e.has(unsafe.String(unsafe.SliceData(data[start:end]), n))
	}
	w := binary.LittleEndian.Uint64(data[start:])
	if n < 8 {
		w &= 1<<(8*n) - 1
	}
	for _, v := range e.words {
		if v.word == w && v.n == n {
			return true
		}
	}
	return false
}

// NewValidate builds the validator for a spec's schema.
func NewValidate(spec *pipeline.Spec) *Validate {
	v := &Validate{fields: spec.Schema.Fields, idCol: spec.FieldIndex(spec.Schema.IDField)}
	v.enums = make([]enumSet, len(v.fields))
	for i, f := range v.fields {
		if len(f.Enum) >= enumMapFrom {
			v.enums[i].set = make(map[string]struct{}, len(f.Enum))
			for _, e := range f.Enum {
				v.enums[i].set[e] = struct{}{}
			}
		} else {
			v.enums[i].list = f.Enum
			short := len(f.Enum) > 0
			for _, e := range f.Enum {
				short = short && len(e) <= 8
			}
			if short {
				for _, e := range f.Enum {
					v.enums[i].words = append(v.enums[i].words, enumWord{shortWord(e), len(e)})
				}
			}
		}
	}
	return v
}

// Name implements pipeline.Stage.
func (v *Validate) Name() string { return "validate" }

// Process implements pipeline.Stage.
func (v *Validate) Process(_ context.Context, b *pipeline.Batch) error {
	for c := range v.fields {
		f := &v.fields[c]
		col := b.Record.Column(c)
		nulls := col.NullN() > 0
		switch a := col.(type) {
		case *array.Float64:
			if f.Min != nil || f.Max != nil {
				lo, hi := fieldBounds(f)
				checkRangeOf(v, b, f, a, a.Float64Values(), lo, hi, nulls)
				continue
			}
		case *array.Int64:
			if f.Min != nil || f.Max != nil {
				lo, hi := fieldBounds(f)
				checkRangeOf(v, b, f, a, a.Int64Values(), lo, hi, nulls)
				continue
			}
		case *array.String:
			if len(f.Enum) > 0 || c == v.idCol {
				v.checkStrings(b, f, c, a, nulls)
				continue
			}
		}
		if f.Required && nulls {
			v.checkRequired(b, f, col)
		}
	}
	return nil
}

// checkRequired rejects the live rows where col is null.
func (v *Validate) checkRequired(b *pipeline.Batch, f *pipeline.FieldSpec, col arrow.Array) {
	for i := range b.Len() {
		if b.OK(i) && col.IsNull(i) {
			b.Reject(i, v.Name(), ReasonRequired, "field "+f.Name+" is required")
		}
	}
}

// fieldBounds is f's range, ±Inf where a bound is not set.
func fieldBounds(f *pipeline.FieldSpec) (lo, hi float64) {
	lo, hi = math.Inf(-1), math.Inf(1)
	if f.Min != nil {
		lo = *f.Min
	}
	if f.Max != nil {
		hi = *f.Max
	}
	return lo, hi
}

// checkRangeOf rejects the live rows where col is null and f required, or
// its value is outside [lo, hi].
func checkRangeOf[T float64 | int64](v *Validate, b *pipeline.Batch, f *pipeline.FieldSpec, col arrow.Array, vals []T, lo, hi float64, nulls bool) {
	for i := range b.Len() {
		if !b.OK(i) {
			continue
		}
		if nulls && col.IsNull(i) {
			if f.Required {
				b.Reject(i, v.Name(), ReasonRequired, "field "+f.Name+" is required")
			}
			continue
		}
		if x := float64(vals[i]); x < lo || x > hi {
			b.Reject(i, v.Name(), ReasonRange, "field "+f.Name+" is out of its range")
		}
	}
}

// checkStrings applies the required, enum and non-empty-id rules to a
// string column.
func (v *Validate) checkStrings(b *pipeline.Batch, f *pipeline.FieldSpec, c int, a *array.String, nulls bool) {
	enum := &v.enums[c]
	hasEnum := len(f.Enum) > 0
	data, offs := a.ValueBytes(), a.ValueOffsets()
	for i := range b.Len() {
		if !b.OK(i) {
			continue
		}
		if nulls && a.IsNull(i) {
			if f.Required {
				b.Reject(i, v.Name(), ReasonRequired, "field "+f.Name+" is required")
			}
			continue
		}
		if hasEnum && !enum.hasValue(data, int(offs[i]), int(offs[i+1])) {
			b.Reject(i, v.Name(), ReasonEnum, "field "+f.Name+" is not one of its enum values")
		}
		if c == v.idCol && a.ValueLen(i) == 0 {
			b.Reject(i, v.Name(), ReasonEmptyID, "id field "+f.Name+" is empty")
		}
	}
}
