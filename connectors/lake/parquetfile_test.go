package lake

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestParquetFileMatchesPqarrow writes the same records, with nulls and
// writes that straddle row groups, with parquetFile (its own definition
// levels) and with pqarrow.FileWriter's WriteBuffered: the files
// must be byte-identical.
func TestParquetFileMatchesPqarrow(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float32},
		{Name: "label", Type: arrow.PrimitiveTypes.Float32, Nullable: true}, // all null
	}, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []arrow.RecordBatch
	for _, n := range []int{700, 1500, 300, 1000, 1} {
		recs = append(recs, randomRecord(schema, rng, n))
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	props := parquetProps(Config{RowGroupRows: 1000}.withDefaults(), memory.DefaultAllocator)
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())

	var want bytes.Buffer
	fw, err := pqarrow.NewFileWriter(schema, &want, props, arrProps)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	pf, err := newParquetFile(schema, &got, props, arrProps)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := fw.WriteBuffered(r); err != nil {
			t.Fatal(err)
		}
		if err := pf.write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pf.close(); err != nil {
		t.Fatal(err)
	}
	if want.Len() < 10_000 || !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("parquetFile wrote %d bytes, pqarrow.FileWriter %d: the files differ", got.Len(), want.Len())
	}
}

// randomRecord is n rows of schema's columns: about one value in five
// null in nullable columns, every value null in "label".
func randomRecord(schema *arrow.Schema, rng *rand.Rand, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, f := range schema.Fields() {
		for range n {
			if f.Name == "label" || f.Nullable && rng.IntN(5) == 0 {
				b.Field(i).AppendNull()
				continue
			}
			switch fb := b.Field(i).(type) {
			case *array.StringBuilder:
				fb.Append(fmt.Sprintf("id-%d", rng.IntN(1<<20)))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(rng.Int64N(1 << 50)))
			case *array.Float64Builder:
				fb.Append(rng.NormFloat64())
			case *array.Int64Builder:
				fb.Append(rng.Int64())
			case *array.BooleanBuilder:
				fb.Append(rng.IntN(2) == 0)
			case *array.Float32Builder:
				fb.Append(rng.Float32())
			}
		}
	}
	return b.NewRecordBatch()
}

// TestWriterRefusesNestedColumns: the lake holds flat columns only.
func TestWriterRefusesNestedColumns(t *testing.T) {
	w := newWriter(t, Config{Root: t.TempDir(), TimeColumn: "ts"})
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.UnixMicro()))
	b.Field(1).AppendNull()
	rec := b.NewRecordBatch()
	defer rec.Release()
	err := w.Write(rec, Extras{Scores: []float32{0.5}, Offsets: []int64{1}})
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("Write of a list column: %v, want ErrSchema", err)
	}
	// The Writer stays usable.
	good := record([]ev{{id: "a", ts: at(0), offset: 1}})
	defer good.Release()
	if err := w.Write(good, extras("t", 0, []ev{{id: "a", ts: at(0), offset: 1}})); err != nil {
		t.Fatal(err)
	}
}
