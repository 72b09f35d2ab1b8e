package stages

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
)

// EventID is row i's event id (a string or int column idCol) as text; ""
// for a column of another type.
func EventID(b *pipeline.Batch, idCol, i int) string {
	switch a := b.Record.Column(idCol).(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	}
	return ""
}

// appendEventID appends row i's event id (a string or int column) to dst.
func appendEventID(dst []byte, b *pipeline.Batch, idCol, i int) []byte {
	switch a := b.Record.Column(idCol).(type) {
	case *array.String:
		return append(dst, a.Value(i)...)
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10)
	}
	return dst
}
