package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
)

// ReplaySource reads a lake's rows back as pipeline batches, for a replay
// (it is a replay.BatchSource).
//
// A lake file holds the columns of the batch record the live sink wrote
// after the score stage (decoded, validated, de-duplicated, anonymized:
// one column per schema field, in schema order) followed by the Col*
// columns. A batch rebuilt from them has Record = the schema-field
// columns (found by name), State RowOK for every row, and one Message per
// row with its source topic, partition and offset (ColSource*) and, as
// Timestamp, its ColEventTime; Key and Value are empty (the JSON is gone).
// A batch never mixes source partitions. Only the stages after anonymize
// may run on it: running anonymize again would hash the pseudonyms twice.
//
// Rows come in manifest order, each file's rows in the order they were
// written. A ReplaySource is used by one goroutine.
type ReplaySource struct {
	root     string
	from, to time.Time
	fields   []string
	// labels and labelOK are the current batch's joined labels.
	labels  []float32
	labelOK []bool
	// msgs backs the current batch's Messages.
	msgs []pipeline.Message
	// topic is the last source topic, a copy: a record is valid until
	// it is released (ReadFiles), and a topic outlives it (a Writer keeps
	// it in its files' source ranges).
	topic string
}

// NewReplaySource reads the lake at root, restricted to event times in
// [from, to) (a zero bound: unbounded), as batches whose Record holds the
// columns named fields (the schema's fields, in order).
func NewReplaySource(root string, from, to time.Time, fields []string) (*ReplaySource, error) {
	if _, err := os.Stat(filepath.Join(root, ManifestName)); err != nil {
		return nil, fmt.Errorf("not a lake: %w", err)
	}
	return &ReplaySource{root: root, from: from, to: to, fields: fields}, nil
}

// Rows is the number of rows of the manifest's files that overlap the
// time range: the progress total (exact when the range is unbounded or
// covers whole files).
func (s *ReplaySource) Rows() (int64, error) {
	entries, err := ReadManifest(s.root)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		if !s.from.IsZero() && e.MaxEventTime.Before(s.from) || !s.to.IsZero() && !e.MinEventTime.Before(s.to) {
			continue
		}
		n += e.Rows
	}
	return n, nil
}

// Labels returns the joined labels (ColLabel) of the rows of the batch
// being visited: labels[i] is row i's, valid when ok[i]. Both are empty
// when the lake has no label column. They are valid until the visit
// returns.
func (s *ReplaySource) Labels() (labels []float32, ok []bool) { return s.labels, s.labelOK }

// Batches calls fn with each batch of at most maxRows rows of one source
// partition, in order (see ReplaySource). The batch is reused after fn
// returns.
func (s *ReplaySource) Batches(ctx context.Context, maxRows int, fn func(*pipeline.Batch) error) error {
	maxRows = max(maxRows, 1)
	var (
		b    pipeline.Batch
		cols replayColumns
		have bool
	)
	defer b.Reset(nil)
	for rec, err := range ReadFiles(ctx, s.root, s.from, s.to) {
		if err != nil {
			return err
		}
		if !have {
			if cols, err = replayColumnsOf(s.fields, rec.Schema()); err != nil {
				return err
			}
			have = true
		}
		topics := rec.Column(cols.topic).(*array.String)
		parts := rec.Column(cols.part).(*array.Int32)
		n := int(rec.NumRows())
		for i := 0; i < n; {
			j := i + 1
			for j < n && j-i < maxRows && parts.Value(j) == parts.Value(i) && topics.Value(j) == topics.Value(i) {
				j++
			}
			if t := topics.Value(i); t != s.topic {
				s.topic = strings.Clone(t)
			}
			s.msgs = replayBatch(&b, s.msgs, s.topic, rec, cols, i, j)
			s.labels, s.labelOK = appendLabels(s.labels[:0], s.labelOK[:0], rec, cols, i, j)
			if err := fn(&b); err != nil {
				return err
			}
			i = j
		}
	}
	return nil
}

// replayColumns locates the columns of a lake record.
type replayColumns struct {
	fields                    []int // schema fields, in schema order
	topic, part, off, evtTime int
	label                     int // -1 when absent
}

func replayColumnsOf(fields []string, s *arrow.Schema) (replayColumns, error) {
	one := func(name string) (int, error) {
		idx := s.FieldIndices(name)
		if len(idx) != 1 {
			return 0, fmt.Errorf("files have no column %s", name)
		}
		return idx[0], nil
	}
	var c replayColumns
	var err error
	for _, f := range fields {
		i, e := one(f)
		if e != nil {
			return c, fmt.Errorf("%w (a field of the schema; is this the lake of this spec?)", e)
		}
		c.fields = append(c.fields, i)
	}
	if c.topic, err = one(ColSourceTopic); err != nil {
		return c, err
	}
	if c.part, err = one(ColSourcePartition); err != nil {
		return c, err
	}
	if c.off, err = one(ColSourceOffset); err != nil {
		return c, err
	}
	if c.evtTime, err = one(ColEventTime); err != nil {
		return c, err
	}
	c.label = -1
	if idx := s.FieldIndices(ColLabel); len(idx) == 1 {
		c.label = idx[0]
	}
	return c, nil
}

// replayBatch resets b to rows [i, j) of rec (one source partition of
// topic), its
// Messages in msgs' memory (returned, for the next batch: b's messages
// are valid until then).
func replayBatch(b *pipeline.Batch, msgs []pipeline.Message, topic string, rec arrow.RecordBatch, c replayColumns, i, j int) []pipeline.Message {
	offs := rec.Column(c.off).(*array.Int64).Int64Values()
	ts := rec.Column(c.evtTime).(*array.Timestamp).TimestampValues()
	// Every row of [i, j) has the topic and row i's partition (Batches).
	part := rec.Column(c.part).(*array.Int32).Value(i)
	if cap(msgs) < j-i {
		msgs = make([]pipeline.Message, j-i)
	}
	msgs = msgs[:j-i]
	for k := range msgs {
		r := i + k
		msgs[k] = pipeline.Message{Topic: topic, Partition: part, Offset: offs[r], Timestamp: ts[r].ToTime(arrow.Microsecond).UTC()}
	}
	b.Reset(msgs)
	fields := make([]arrow.Field, len(c.fields))
	arrs := make([]arrow.Array, len(c.fields))
	for k, ci := range c.fields {
		fields[k] = rec.Schema().Field(ci)
		arrs[k] = array.NewSlice(rec.Column(ci), int64(i), int64(j))
	}
	b.Record = array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(j-i))
	for _, a := range arrs {
		a.Release()
	}
	return msgs
}

// appendLabels appends the joined labels of rows [i, j) of rec and
// whether each is known (a lake without a float label column knows none).
func appendLabels(labels []float32, ok []bool, rec arrow.RecordBatch, c replayColumns, i, j int) ([]float32, []bool) {
	var col *array.Float32
	if c.label >= 0 {
		col, _ = rec.Column(c.label).(*array.Float32)
	}
	for r := i; r < j; r++ {
		if col == nil || col.IsNull(r) {
			labels, ok = append(labels, 0), append(ok, false)
			continue
		}
		labels, ok = append(labels, col.Value(r)), append(ok, true)
	}
	return labels, ok
}
