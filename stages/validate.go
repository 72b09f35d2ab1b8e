package stages

import (
	"context"

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
// and the rule, never the value. It holds no mutable state and is safe for
// concurrent use.
type Validate struct {
	fields []pipeline.FieldSpec
	enums  []map[string]struct{}
	idCol  int
}

// NewValidate builds the validator for a spec's schema.
func NewValidate(spec *pipeline.Spec) *Validate {
	v := &Validate{fields: spec.Schema.Fields, idCol: spec.FieldIndex(spec.Schema.IDField)}
	v.enums = make([]map[string]struct{}, len(v.fields))
	for i, f := range v.fields {
		if len(f.Enum) > 0 {
			v.enums[i] = make(map[string]struct{}, len(f.Enum))
			for _, e := range f.Enum {
				v.enums[i][e] = struct{}{}
			}
		}
	}
	return v
}

// Name implements pipeline.Stage.
func (v *Validate) Name() string { return "validate" }

// Process implements pipeline.Stage.
func (v *Validate) Process(_ context.Context, b *pipeline.Batch) error {
	rec := b.Record
	for c := range v.fields {
		f := &v.fields[c]
		col := rec.Column(c)
		for i := 0; i < b.Len(); i++ {
			if !b.OK(i) {
				continue
			}
			if col.IsNull(i) {
				if f.Required {
					b.Reject(i, v.Name(), ReasonRequired, "field "+f.Name+" is required")
				}
				continue
			}
			switch a := col.(type) {
			case *array.Float64:
				if x := a.Value(i); (f.Min != nil && x < *f.Min) || (f.Max != nil && x > *f.Max) {
					b.Reject(i, v.Name(), ReasonRange, "field "+f.Name+" is out of its range")
				}
			case *array.Int64:
				if x := float64(a.Value(i)); (f.Min != nil && x < *f.Min) || (f.Max != nil && x > *f.Max) {
					b.Reject(i, v.Name(), ReasonRange, "field "+f.Name+" is out of its range")
				}
			case *array.String:
				if v.enums[c] != nil {
					if _, ok := v.enums[c][a.Value(i)]; !ok {
						b.Reject(i, v.Name(), ReasonEnum, "field "+f.Name+" is not one of its enum values")
					}
				}
				if c == v.idCol && a.ValueLen(i) == 0 {
					b.Reject(i, v.Name(), ReasonEmptyID, "id field "+f.Name+" is empty")
				}
			}
		}
	}
	return nil
}
