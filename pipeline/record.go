package pipeline

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// ArrowSchema is the columnar schema of a spec's events: one nullable
// column per field, in schema order.
func (s *Spec) ArrowSchema() *arrow.Schema {
	fields := make([]arrow.Field, len(s.Schema.Fields))
	for i, f := range s.Schema.Fields {
		fields[i] = arrow.Field{Name: f.Name, Type: ArrowType(f.Type), Nullable: true}
	}
	return arrow.NewSchema(fields, nil)
}

// ArrowType is the Arrow type a field of type t is held in.
func ArrowType(t FieldType) arrow.DataType {
	switch t {
	case TypeFloat:
		return arrow.PrimitiveTypes.Float64
	case TypeInt:
		return arrow.PrimitiveTypes.Int64
	case TypeBool:
		return arrow.FixedWidthTypes.Boolean
	case TypeTimestamp:
		return arrow.FixedWidthTypes.Timestamp_us
	default:
		return arrow.BinaryTypes.String
	}
}

func newRecord(schema *arrow.Schema, cols []arrow.Array, n int64) arrow.RecordBatch {
	return array.NewRecordBatch(schema, cols, n)
}
