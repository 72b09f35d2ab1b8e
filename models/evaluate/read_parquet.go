package evaluate

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// readParquet reads a Parquet file's flat columns: integers, floats and
// booleans are numeric; strings (plain or dictionary-encoded) are text.
func readParquet(path string, opts ReadOptions) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mem := memory.NewGoAllocator()
	table, err := pqarrow.ReadTable(context.Background(), f, parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		return nil, err
	}
	defer table.Release()
	schema := table.Schema()
	ncol := int(table.NumCols())
	names := make([]string, ncol)
	numeric := make([]bool, ncol)
	for i, fld := range schema.Fields() {
		names[i] = fld.Name
		switch kind := columnKind(fld.Type); kind {
		case kindNumeric:
			numeric[i] = true
		case kindText:
		default:
			return nil, fmt.Errorf("column %q has type %s; features are numbers, booleans or strings", fld.Name, fld.Type)
		}
	}
	b, d, err := newTableBuilder(names, numeric, opts.Label, opts.HashBits)
	if err != nil {
		return nil, err
	}
	var labelText map[string]int
	var labelNames []string
	if !numeric[b.label] {
		labelText = map[string]int{}
	}
	// Read each column into cells, then the rows across them.
	n := int(table.NumRows())
	cols := make([][]cell, ncol)
	for i := range cols {
		cols[i] = make([]cell, 0, n)
		for _, chunk := range table.Column(i).Data().Chunks() {
			cols[i] = appendCells(cols[i], chunk)
		}
	}
	cells := make([]cell, ncol)
	for r := range n {
		for i := range cols {
			cells[i] = cols[i][r]
		}
		b.addRow(d, cells, labelText, &labelNames)
	}
	finishLabels(d, labelNames)
	return d, nil
}

const (
	kindOther = iota
	kindNumeric
	kindText
)

func columnKind(t arrow.DataType) int {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL:
		return kindNumeric
	case arrow.STRING, arrow.LARGE_STRING:
		return kindText
	case arrow.DICTIONARY:
		if columnKind(t.(*arrow.DictionaryType).ValueType) == kindText {
			return kindText
		}
	}
	return kindOther
}

// appendCells converts one chunk of a column.
func appendCells(dst []cell, a arrow.Array) []cell {
	for i := range a.Len() {
		if a.IsNull(i) {
			dst = append(dst, cell{empty: true})
			continue
		}
		var c cell
		switch v := a.(type) {
		case *array.Int8:
			c = numCell(float64(v.Value(i)))
		case *array.Int16:
			c = numCell(float64(v.Value(i)))
		case *array.Int32:
			c = numCell(float64(v.Value(i)))
		case *array.Int64:
			c = numCell(float64(v.Value(i)))
		case *array.Uint8:
			c = numCell(float64(v.Value(i)))
		case *array.Uint16:
			c = numCell(float64(v.Value(i)))
		case *array.Uint32:
			c = numCell(float64(v.Value(i)))
		case *array.Uint64:
			c = numCell(float64(v.Value(i)))
		case *array.Float32:
			c = numCell(float64(v.Value(i)))
		case *array.Float64:
			c = numCell(v.Value(i))
		case *array.Boolean:
			c = numCell(0)
			if v.Value(i) {
				c.num = 1
			}
		case *array.String:
			c = cell{text: v.Value(i), empty: v.Value(i) == ""}
		case *array.LargeString:
			c = cell{text: v.Value(i), empty: v.Value(i) == ""}
		case *array.Dictionary:
			s := v.Dictionary().ValueStr(v.GetValueIndex(i))
			c = cell{text: s, empty: s == ""}
		default:
			c = cell{empty: true}
		}
		dst = append(dst, c)
	}
	return dst
}

func numCell(v float64) cell {
	return cell{num: v, isNum: true, empty: math.IsNaN(v)}
}
