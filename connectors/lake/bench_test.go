package lake

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/driftline/driftline/pipeline"
)

const benchRows = 4096

// benchBatch returns a scored batch of benchRows rows of a 20-column event
// schema (id, ts, 10 float64, 4 int64, 2 bool, 2 low-cardinality strings),
// all in one hour, every rejectEvery-th row rejected (0: none).
func benchBatch(rejectEvery int) *pipeline.Batch {
	fields := []arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	}
	for i := range 10 {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%d", i), Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	for i := range 4 {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("i%d", i), Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	}
	fields = append(fields,
		arrow.Field{Name: "b0", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		arrow.Field{Name: "b1", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		arrow.Field{Name: "country", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "device", Type: arrow.BinaryTypes.String, Nullable: true},
	)
	schema := arrow.NewSchema(fields, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	rng := rand.New(rand.NewPCG(7, 7))
	countries := []string{"DE", "FR", "US", "BR", "JP", "IN"}
	devices := []string{"ios", "android", "web"}
	b := &pipeline.Batch{Topic: "events", Partition: 3, Rejections: make([]pipeline.Rejection, benchRows)}
	for r := range benchRows {
		ts := t0.Add(time.Duration(r) * 500 * time.Millisecond)
		rb.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()))
		rb.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		for i := range 10 {
			rb.Field(2 + i).(*array.Float64Builder).Append(rng.NormFloat64())
		}
		for i := range 4 {
			rb.Field(12 + i).(*array.Int64Builder).Append(rng.Int64N(1000))
		}
		rb.Field(16).(*array.BooleanBuilder).Append(rng.IntN(2) == 0)
		rb.Field(17).(*array.BooleanBuilder).Append(rng.IntN(2) == 0)
		rb.Field(18).(*array.StringBuilder).Append(countries[rng.IntN(len(countries))])
		rb.Field(19).(*array.StringBuilder).Append(devices[rng.IntN(len(devices))])
		b.Messages = append(b.Messages, pipeline.Message{Topic: "events", Partition: 3, Offset: int64(r), Timestamp: ts})
		b.State = append(b.State, pipeline.RowOK)
		if rejectEvery > 0 && r%rejectEvery == 0 {
			b.State[r] = pipeline.RowRejected
			continue
		}
		b.Features.Row = append(b.Features.Row, r)
		b.Scores = append(b.Scores, rng.Float32())
	}
	b.Record = rb.NewRecordBatch()
	return b
}

// BenchmarkWriteBatch measures lake write throughput: one op writes a
// 4096-row batch of the 20-column schema with WriteBatch; files roll at
// the default 1M rows, and the final Close (commit) is timed too.
func BenchmarkWriteBatch(b *testing.B) {
	for _, c := range []struct {
		name        string
		codec       compress.Compression
		rejectEvery int
	}{
		{"snappy", compress.Codecs.Snappy, 0},
		{"zstd", compress.Codecs.Zstd, 0},
		{"snappy/10pct-rejected", compress.Codecs.Snappy, 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			batch := benchBatch(c.rejectEvery)
			defer batch.Record.Release()
			w, err := New(Config{Root: b.TempDir(), TimeColumn: "ts", Compression: c.codec})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteBatch(batch, "v1"); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*len(batch.Scores))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkReadFiles measures ReadFiles throughput over 100 batches
// (409,600 rows) of the 20-column schema in one file.
func BenchmarkReadFiles(b *testing.B) {
	batch := benchBatch(0)
	defer batch.Record.Release()
	root := b.TempDir()
	w, err := New(Config{Root: root, TimeColumn: "ts"})
	if err != nil {
		b.Fatal(err)
	}
	for range 100 {
		if err := w.WriteBatch(batch, "v1"); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var rows int64
	for b.Loop() {
		for rec, err := range ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
			if err != nil {
				b.Fatal(err)
			}
			rows += rec.NumRows()
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
