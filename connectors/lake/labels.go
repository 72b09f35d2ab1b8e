package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ReadLabels returns the labels of a live lake's labels table (see Live)
// by event id, the last one written of an id winning; nil, with no error,
// when root has no labels table (a lake a replay wrote, whose event rows
// carry their labels in ColLabel). The map's keys are copied out of the
// files' Arrow buffers (labelColumnsOf): the map owns them.
func ReadLabels(ctx context.Context, root string) (map[string]float32, error) {
	return readLabels(ctx, root, memory.DefaultAllocator)
}

func readLabels(ctx context.Context, root string, mem memory.Allocator) (map[string]float32, error) {
	dir := filepath.Join(root, LabelsDir)
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	out := map[string]float32{}
	for rec, err := range readFiles(ctx, dir, time.Time{}, time.Time{}, mem) {
		if err != nil {
			return nil, err
		}
		c, err := labelColumnsOf(rec, dir)
		if err != nil {
			return nil, err
		}
		for i := range int(rec.NumRows()) {
			if c.ys.IsValid(i) {
				out[c.id(i)] = c.ys.Value(i)
			}
		}
	}
	return out, nil
}

// StoredLabel is one row of a labels table as StoredLabels reads it.
type StoredLabel struct {
	// EventID is the labelled event's id, copied out of the file's Arrow
	// buffers: it stays valid after the read, e.g. as a map key. The ids
	// of one record share one copy, which lives while any of them does.
	EventID string
	// Label is the joined label, unless Null (a row without one, whose
	// EventID is not read either).
	Label float32
	Null  bool
	// At is when the label was joined: the row's ColEventTime.
	At time.Time
}

// StoredLabels iterates the rows of the labels table dir (LabelsDir under
// a live lake's root) joined in [from, to), in file order (see
// ReadFiles); a zero from or to leaves that side unbounded. An error ends
// the iteration after it is yielded. Unlike a record of ReadFiles, which
// is valid only until its loop body returns, a StoredLabel owns its
// EventID.
func StoredLabels(ctx context.Context, dir string, from, to time.Time) iter.Seq2[StoredLabel, error] {
	return storedLabels(ctx, dir, from, to, memory.DefaultAllocator)
}

func storedLabels(ctx context.Context, dir string, from, to time.Time, mem memory.Allocator) iter.Seq2[StoredLabel, error] {
	return func(yield func(StoredLabel, error) bool) {
		for rec, err := range readFiles(ctx, dir, from, to, mem) {
			if err != nil {
				yield(StoredLabel{}, err)
				return
			}
			c, err := labelColumnsOf(rec, dir)
			if err != nil {
				yield(StoredLabel{}, err)
				return
			}
			for i := range int(rec.NumRows()) {
				l := StoredLabel{At: time.UnixMicro(int64(c.ts.Value(i))).UTC(), Null: c.ys.IsNull(i)}
				if !l.Null {
					l.EventID, l.Label = c.id(i), c.ys.Value(i)
				}
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}

// labelColumns are the columns of one record of a labels table, its event
// ids copied out of the record's buffers.
type labelColumns struct {
	// ids holds the record's event ids, offs where each starts in ids
	// (offs[i+1] where it ends), less offs[0].
	ids  string
	offs []int32
	ys   *array.Float32
	ts   *array.Timestamp
}

// labelColumnsOf locates the labels table columns of rec, a record of the
// table dir, and copies its ids. A record's string column views its
// buffers, released (and, with a pooling allocator, lent again) once the
// record is; one copy of the record's id bytes, which every id(i) slices,
// outlives the record, and lives while any id of it does (as a map key).
// It costs one allocation per record (BenchmarkReadLabels: the same CPU
// time per label as the views, within the noise).
func labelColumnsOf(rec arrow.RecordBatch, dir string) (labelColumns, error) {
	s := rec.Schema()
	idc, yc, tc := s.FieldIndices(ColEventID), s.FieldIndices(ColLabel), s.FieldIndices(ColEventTime)
	if len(idc) != 1 || len(yc) != 1 || len(tc) != 1 {
		return labelColumns{}, fmt.Errorf("lake: %s is not a labels table (no %s, %s or %s column)", dir, ColEventID, ColLabel, ColEventTime)
	}
	ids := rec.Column(idc[0]).(*array.String)
	return labelColumns{ids: string(ids.ValueBytes()), offs: ids.ValueOffsets(),
		ys: rec.Column(yc[0]).(*array.Float32), ts: rec.Column(tc[0]).(*array.Timestamp)}, nil
}

// id is row i's event id.
func (c *labelColumns) id(i int) string {
	return c.ids[c.offs[i]-c.offs[0] : c.offs[i+1]-c.offs[0]]
}
