package lake

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/driftline/driftline/pipeline"
)

// testSchema is a small event schema: ts is the event time column.
var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}, nil)

// ev is one test event; a zero ts is a null event time.
type ev struct {
	id      string
	ts      time.Time
	amount  float64
	offset  int64
	recTime time.Time
	score   float32
	state   pipeline.RowState
}

var t0 = time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// record builds a testSchema record; rows not RowOK are all null, as the
// decode stage leaves rejected rows.
func record(evs []ev) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
	defer b.Release()
	id := b.Field(0).(*array.StringBuilder)
	ts := b.Field(1).(*array.TimestampBuilder)
	amt := b.Field(2).(*array.Float64Builder)
	for _, e := range evs {
		if e.state == pipeline.RowRejected {
			id.AppendNull()
			ts.AppendNull()
			amt.AppendNull()
			continue
		}
		id.Append(e.id)
		if e.ts.IsZero() {
			ts.AppendNull()
		} else {
			ts.Append(arrow.Timestamp(e.ts.UnixMicro()))
		}
		amt.Append(e.amount)
	}
	return b.NewRecordBatch()
}

// batch builds a scored pipeline.Batch of evs: every RowOK row has a
// feature row and a score.
func batch(topic string, partition int32, evs []ev) *pipeline.Batch {
	b := &pipeline.Batch{Topic: topic, Partition: partition, Record: record(evs), Rejections: make([]pipeline.Rejection, len(evs))}
	for i, e := range evs {
		b.Messages = append(b.Messages, pipeline.Message{Topic: topic, Partition: partition, Offset: e.offset, Timestamp: e.recTime})
		b.State = append(b.State, e.state)
		if e.state == pipeline.RowOK {
			b.Features.Row = append(b.Features.Row, i)
			b.Scores = append(b.Scores, e.score)
		}
	}
	return b
}

// extras builds Extras for evs written with Write.
func extras(topic string, partition int32, evs []ev) Extras {
	x := Extras{ModelVersion: "v1", Topic: topic, Partition: partition}
	for _, e := range evs {
		x.Scores = append(x.Scores, e.score)
		x.Offsets = append(x.Offsets, e.offset)
		x.RecordTimes = append(x.RecordTimes, e.recTime)
	}
	return x
}

func newWriter(t *testing.T, cfg Config) *Writer {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// readIDs returns the ids ReadFiles yields, in order.
func readIDs(t *testing.T, root string, from, to time.Time) []string {
	t.Helper()
	var ids []string
	for rec, err := range ReadFiles(context.Background(), root, from, to) {
		if err != nil {
			t.Fatal(err)
		}
		col := rec.Column(rec.Schema().FieldIndices("id")[0]).(*array.String)
		for i := range col.Len() {
			ids = append(ids, col.Value(i))
		}
	}
	return ids
}

// walkFiles returns root's files relative to it, split into committed
// parquet files and temporary files.
func walkFiles(t *testing.T, root string) (parquet, tmp []string) {
	t.Helper()
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case strings.HasSuffix(p, ".parquet"):
			parquet = append(parquet, filepath.ToSlash(rel))
		case strings.HasSuffix(p, tmpSuffix):
			tmp = append(tmp, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return parquet, tmp
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
