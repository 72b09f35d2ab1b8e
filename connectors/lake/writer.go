package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/driftline/driftline/pipeline"
)

// Extras are the per-row values Write appends to a record's event columns.
// Slices indexed by row have one entry per record row. The Writer reads
// them during the call only and keeps no reference.
type Extras struct {
	// Scores holds each row's prediction. Required.
	Scores []float32
	// ModelVersion is the version of the model behind every Score.
	ModelVersion string
	// Labels holds joined labels; nil writes every label as null.
	Labels []float32
	// LabelValid marks which Labels are known; nil (with Labels set)
	// means all are.
	LabelValid []bool
	// Topic and Partition are the input partition every row came from.
	Topic     string
	Partition int32
	// Offsets holds each row's input offset. Required.
	Offsets []int64
	// RecordTimes holds each row's record (Kafka) time, the event time of
	// rows whose Config.TimeColumn value is null; nil, or a zero Time,
	// means none.
	RecordTimes []time.Time
}

// Writer writes records into the lake. Its methods are safe for
// concurrent use; writes are serialized. Rows are durable, and visible to
// readers, once their file is committed: when it rolls (MaxRows, MaxBytes,
// MaxAge, MaxOpenFiles), on Flush, or on Close. So a caller that commits
// input offsets must Flush first.
//
// After an I/O error the Writer is failed: every later call returns that
// error, and Close discards the open (uncommitted) files.
type Writer struct {
	cfg       Config
	forbidden map[string]bool
	props     *parquet.WriterProperties
	arrProps  pqarrow.ArrowWriterProperties
	mem       memory.Allocator

	mu        sync.Mutex
	schema    *arrow.Schema // event schema, fixed by the first record
	outSchema *arrow.Schema
	timeCol   int // index of TimeColumn in schema, or -1
	manifest  *os.File
	files     map[int64]*partFile // by hour since the epoch (UTC)
	seq       int64
	group     int64 // the newest manifest group
	tick      int64 // write counter, for least recently written
	// writes counts the write calls that wrote rows; durable is the
	// greatest such count whose rows are all committed.
	writes int64
	// last is each input partition's greatest offset in a committed file.
	last   map[SourceKey]int64
	failed error
	closed bool

	// Scratch, reused across writes.
	sel      []int
	scores   []float32
	offsets  []int64
	recTimes []int64 // unix µs; noTime when absent
	times    []int64 // resolved event time, unix µs
	bld      extraBuilders
	// Grouping by hour, and gathering a group's rows.
	hourGroup           map[int64]int
	gid, order          []int
	groupEnd, groupNext []int
	gTimes, gOffsets    []int64
	srcIdx, extIdx      *array.Int32Builder
}

const noTime = int64(-1 << 63)

const microsPerHour = int64(time.Hour / time.Microsecond)

// New validates cfg, creates Root, removes *.tmp files a crashed writer
// left under it, cuts a torn last line (a crash mid-append) off the
// manifest, and removes the orphans: part files under Root's partition
// directories, named as a Writer names them, that no manifest entry names
// (a crash after a file was renamed into place and before its manifest
// line was appended, or after Expire rewrote the manifest and before it
// removed the files). Nothing else under Root is touched.
func New(cfg Config) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("lake: create root: %w", err)
	}
	if err := removeTemp(cfg.Root); err != nil {
		return nil, err
	}
	entries, err := repairManifest(cfg.Root)
	if err != nil {
		return nil, err
	}
	if err := removeOrphans(cfg.Root, entries); err != nil {
		return nil, err
	}
	n := len(entries)
	mf, err := os.OpenFile(filepath.Join(cfg.Root, ManifestName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lake: open manifest: %w", err)
	}
	mem := memory.DefaultAllocator
	w := &Writer{
		cfg:       cfg,
		forbidden: make(map[string]bool, len(cfg.ForbiddenColumns)),
		props:     parquetProps(cfg, mem),
		arrProps:  pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)),
		mem:       mem,
		manifest:  mf,
		files:     map[int64]*partFile{},
		seq:       int64(n),
		group:     newestGroup(entries),
		last:      LastOffsets(entries),
		timeCol:   -1,
	}
	for _, c := range cfg.ForbiddenColumns {
		w.forbidden[c] = true
	}
	w.bld = newExtraBuilders(mem)
	w.hourGroup = map[int64]int{}
	w.srcIdx, w.extIdx = array.NewInt32Builder(mem), array.NewInt32Builder(mem)
	return w, nil
}

// Write appends every row of rec, with extras, to the files of the rows'
// (date, hour) partitions. rec is not retained past the call. A record
// refused for its schema, a forbidden column, mismatched Extras or a row
// without event time writes nothing and leaves the Writer usable.
func (w *Writer) Write(rec arrow.RecordBatch, ex Extras) error {
	n := int(rec.NumRows())
	if len(ex.Scores) != n || len(ex.Offsets) != n {
		return fmt.Errorf("lake: %d rows but %d scores and %d offsets", n, len(ex.Scores), len(ex.Offsets))
	}
	if ex.Labels != nil && len(ex.Labels) != n || ex.LabelValid != nil && len(ex.LabelValid) != len(ex.Labels) {
		return fmt.Errorf("lake: %d rows but %d labels and %d label flags", n, len(ex.Labels), len(ex.LabelValid))
	}
	if ex.RecordTimes != nil && len(ex.RecordTimes) != n {
		return fmt.Errorf("lake: %d rows but %d record times", n, len(ex.RecordTimes))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sel = w.sel[:0]
	w.offsets = append(w.offsets[:0], ex.Offsets...)
	w.recTimes = w.recTimes[:0]
	for i := range n {
		w.sel = append(w.sel, i)
		t := noTime
		if ex.RecordTimes != nil && !ex.RecordTimes[i].IsZero() {
			t = ex.RecordTimes[i].UnixMicro()
		}
		w.recTimes = append(w.recTimes, t)
	}
	return w.writeLocked(rec, rowExtras{
		scores: ex.Scores, version: ex.ModelVersion, labels: ex.Labels, labelValid: ex.LabelValid,
		topic: ex.Topic, partition: ex.Partition,
	})
}

// WriteBatch writes the rows of b that are still RowOK and were scored
// (b.Features.Row), with their b.Scores, modelVersion, the batch's topic
// and partition, each message's offset, and the message timestamp as
// record time. Labels are written as null. It is the sink's entry point
// after the score stage; b is not retained past the call.
func (w *Writer) WriteBatch(b *pipeline.Batch, modelVersion string) error {
	if b.Record == nil {
		return errors.New("lake: batch has no record")
	}
	rows := b.Features.Row
	if len(b.Scores) != len(rows) {
		return fmt.Errorf("lake: batch has %d feature rows but %d scores", len(rows), len(b.Scores))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sel, w.offsets, w.recTimes = w.sel[:0], w.offsets[:0], w.recTimes[:0]
	scores := b.Scores
	allOK := true
	for j, i := range rows {
		if j > 0 && i <= rows[j-1] {
			return errors.New("lake: batch feature rows are not ascending")
		}
		if b.State[i] != pipeline.RowOK {
			allOK = false
			continue
		}
		w.sel = append(w.sel, i)
		m := &b.Messages[i]
		w.offsets = append(w.offsets, m.Offset)
		t := noTime
		if !m.Timestamp.IsZero() {
			t = m.Timestamp.UnixMicro()
		}
		w.recTimes = append(w.recTimes, t)
	}
	if len(w.sel) == 0 {
		return nil
	}
	if !allOK {
		w.scores = w.scores[:0]
		for j, i := range rows {
			if b.State[i] == pipeline.RowOK {
				w.scores = append(w.scores, b.Scores[j])
			}
		}
		scores = w.scores
	}
	return w.writeLocked(b.Record, rowExtras{scores: scores, version: modelVersion, topic: b.Topic, partition: b.Partition})
}

// Rows are the selected rows of a record and their extras, for WriteRows.
// Every slice but Labels and LabelValid has one entry per selected row;
// Labels (with LabelValid: nil means all valid) too, or is nil.
type Rows struct {
	// Sel are the rows of the record to write, ascending.
	Sel          []int
	Scores       []float32
	Labels       []float32
	LabelValid   []bool
	ModelVersion string
	// Versions, when set, is each row's model version instead.
	Versions  []string
	Topic     string
	Partition int32
	Offsets   []int64
	// RecordTimes are unix microseconds; NoTime where absent.
	RecordTimes []int64
}

// NoTime marks an absent record time in Rows.RecordTimes.
const NoTime = noTime

// WriteRows writes the rows r.Sel of rec with r's extras (see Write); rec
// is not retained past the call.
func (w *Writer) WriteRows(rec arrow.RecordBatch, r Rows) error {
	n := len(r.Sel)
	if len(r.Scores) != n || len(r.Offsets) != n || len(r.RecordTimes) != n ||
		r.Labels != nil && len(r.Labels) != n || r.LabelValid != nil && len(r.LabelValid) != len(r.Labels) ||
		r.Versions != nil && len(r.Versions) != n {
		return fmt.Errorf("lake: %d rows but %d scores, %d offsets, %d record times, %d labels", n, len(r.Scores), len(r.Offsets), len(r.RecordTimes), len(r.Labels))
	}
	if n == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sel = append(w.sel[:0], r.Sel...)
	w.offsets = append(w.offsets[:0], r.Offsets...)
	w.recTimes = append(w.recTimes[:0], r.RecordTimes...)
	return w.writeLocked(rec, rowExtras{scores: r.Scores, version: r.ModelVersion, versions: r.Versions, labels: r.Labels, labelValid: r.LabelValid,
		topic: r.Topic, partition: r.Partition})
}

// rowExtras are the extras of the selected rows, indexed like w.sel.
type rowExtras struct {
	scores     []float32
	version    string
	versions   []string // per row, replacing version when set
	labels     []float32
	labelValid []bool
	topic      string
	partition  int32
}

// writeLocked writes the rows w.sel of rec; w.offsets and w.recTimes are
// indexed like w.sel.
func (w *Writer) writeLocked(rec arrow.RecordBatch, ex rowExtras) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.checkSchema(rec.Schema()); err != nil {
		return err
	}
	if err := w.resolveTimes(rec); err != nil {
		return err
	}
	w.writes++
	extra := w.bld.build(ex, w.offsets, w.times)
	defer releaseAll(extra)
	w.groupByHour()
	for g := range len(w.groupEnd) {
		a := 0
		if g > 0 {
			a = w.groupEnd[g-1]
		}
		if err := w.writeGroup(rec, extra, w.order[a:w.groupEnd[g]], ex); err != nil {
			return err
		}
	}
	return nil
}

// groupByHour orders the selected rows (indices into w.sel) by the hour of
// their event time, hours in order of first appearance and rows in order
// within each: w.order, with group g ending at w.groupEnd[g].
func (w *Writer) groupByHour() {
	clear(w.hourGroup)
	w.gid = w.gid[:0]
	w.groupEnd = w.groupEnd[:0]
	last, lastG := int64(0), -1
	for _, t := range w.times {
		h := floorDiv(t, microsPerHour)
		if lastG < 0 || h != last {
			g, ok := w.hourGroup[h]
			if !ok {
				g = len(w.groupEnd)
				w.hourGroup[h] = g
				w.groupEnd = append(w.groupEnd, 0)
			}
			last, lastG = h, g
		}
		w.gid = append(w.gid, lastG)
		w.groupEnd[lastG]++
	}
	for g := 1; g < len(w.groupEnd); g++ {
		w.groupEnd[g] += w.groupEnd[g-1]
	}
	w.order = resize(w.order, len(w.gid))
	next := w.groupNext[:0]
	next = append(next, 0)
	next = append(next, w.groupEnd[:len(w.groupEnd)-1]...)
	for k, g := range w.gid {
		w.order[next[g]] = k
		next[g]++
	}
	w.groupNext = next
}

// writeGroup writes the selected rows ks (ascending indices into w.sel,
// all in one hour) to that hour's files.
func (w *Writer) writeGroup(rec arrow.RecordBatch, extra []arrow.Array, ks []int, ex rowExtras) error {
	n, k0, kn := len(ks), ks[0], ks[len(ks)-1]
	contiguous := kn-k0 == n-1 && w.sel[kn]-w.sel[k0] == n-1
	nsrc := len(rec.Columns())
	cols := make([]arrow.Array, nsrc+len(extra))
	times, offsets := w.times[k0:kn+1], w.offsets[k0:kn+1]
	switch {
	case contiguous && w.sel[k0] == 0 && int64(n) == rec.NumRows() && n == len(w.sel):
		copy(cols, rec.Columns())
		copy(cols[nsrc:], extra)
		for _, c := range cols {
			c.Retain()
		}
	case contiguous:
		for c, a := range rec.Columns() {
			cols[c] = array.NewSlice(a, int64(w.sel[k0]), int64(w.sel[kn]+1))
		}
		for c, a := range extra {
			cols[nsrc+c] = array.NewSlice(a, int64(k0), int64(kn+1))
		}
	default:
		w.gTimes, w.gOffsets = w.gTimes[:0], w.gOffsets[:0]
		w.srcIdx.Reserve(n)
		w.extIdx.Reserve(n)
		for _, k := range ks {
			w.srcIdx.UnsafeAppend(int32(w.sel[k]))
			w.extIdx.UnsafeAppend(int32(k))
			w.gTimes = append(w.gTimes, w.times[k])
			w.gOffsets = append(w.gOffsets, w.offsets[k])
		}
		times, offsets = w.gTimes, w.gOffsets
		srcIdx, extIdx := w.srcIdx.NewArray(), w.extIdx.NewArray()
		err := w.take(cols[:nsrc], rec.Columns(), srcIdx)
		if err == nil {
			err = w.take(cols[nsrc:], extra, extIdx)
		}
		srcIdx.Release()
		extIdx.Release()
		if err != nil {
			for _, c := range cols {
				if c != nil {
					c.Release()
				}
			}
			return err
		}
	}
	out := array.NewRecordBatch(w.outSchema, cols, int64(n))
	releaseAll(cols)
	defer out.Release()

	hour := floorDiv(times[0], microsPerHour)
	now := w.cfg.Now()
	for off := 0; off < n; {
		pf, err := w.fileFor(hour, now)
		if err != nil {
			return w.fail(err)
		}
		m := min(n-off, int(w.cfg.MaxRows-pf.rows))
		part := out
		if m < n {
			part = out.NewSlice(int64(off), int64(off+m))
		}
		err = pf.write(part, times[off:off+m], offsets[off:off+m], ex.topic, ex.partition, w.cfg.RowGroupRows)
		if m < n {
			part.Release()
		}
		if err != nil {
			return w.fail(err)
		}
		w.tick++
		pf.lastWrite = w.tick
		if pf.rows >= w.cfg.MaxRows || pf.groupClosed && pf.pq.totalCompressedBytes() >= w.cfg.MaxBytes {
			if err := w.rollLocked(hour); err != nil {
				return err
			}
		}
		off += m
	}
	return nil
}

// take sets dst[c] to src[c] gathered at idx.
func (w *Writer) take(dst, src []arrow.Array, idx arrow.Array) error {
	ctx := compute.WithAllocator(context.Background(), w.mem)
	for c, a := range src {
		t, err := compute.TakeArrayOpts(ctx, a, idx, compute.TakeOptions{BoundsCheck: false})
		if err != nil {
			return fmt.Errorf("lake: gather rows: %w", err)
		}
		dst[c] = t
	}
	return nil
}

func resize(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.failed
}

// fail makes err sticky and returns it.
func (w *Writer) fail(err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return w.failed
}

// checkSchema accepts s if it equals the first schema written, and fixes
// it when none was.
func (w *Writer) checkSchema(s *arrow.Schema) error {
	if w.schema != nil {
		if s == w.schema || s.Equal(w.schema) {
			return nil
		}
		return fmt.Errorf("%w: got %s, want %s", ErrSchema, s, w.schema)
	}
	timeCol := -1
	for i, f := range s.Fields() {
		if w.forbidden[f.Name] {
			return fmt.Errorf("%w: %q", ErrForbiddenColumn, f.Name)
		}
		if _, nested := f.Type.(arrow.NestedType); nested {
			return fmt.Errorf("%w: column %q is nested; the lake holds flat columns", ErrSchema, f.Name)
		}
		if isReserved(f.Name) {
			return fmt.Errorf("%w: column %q is reserved", ErrSchema, f.Name)
		}
		if f.Name == w.cfg.TimeColumn {
			if f.Type.ID() != arrow.TIMESTAMP {
				return fmt.Errorf("%w: time column %q is %s, not a timestamp", ErrSchema, f.Name, f.Type)
			}
			timeCol = i
		}
	}
	if w.cfg.TimeColumn != "" && timeCol < 0 {
		return fmt.Errorf("%w: no time column %q", ErrSchema, w.cfg.TimeColumn)
	}
	w.schema, w.timeCol = s, timeCol
	md := s.Metadata()
	w.outSchema = arrow.NewSchema(append(slices.Clone(s.Fields()), extraFields...), &md)
	return nil
}

// resolveTimes fills w.times for w.sel from the time column, falling back
// to w.recTimes.
func (w *Writer) resolveTimes(rec arrow.RecordBatch) error {
	w.times = w.times[:0]
	var ts *array.Timestamp
	var toMicros func(arrow.Timestamp) int64
	if w.timeCol >= 0 {
		ts = rec.Column(w.timeCol).(*array.Timestamp)
		unit := ts.DataType().(*arrow.TimestampType).Unit
		toMicros = microsFn(unit)
	}
	for k, i := range w.sel {
		t := noTime
		if ts != nil && ts.IsValid(i) {
			t = toMicros(ts.Value(i))
		} else {
			t = w.recTimes[k]
		}
		if t == noTime {
			return fmt.Errorf("%w: row %d (offset %d)", ErrNoEventTime, i, w.offsets[k])
		}
		w.times = append(w.times, t)
	}
	return nil
}

func microsFn(u arrow.TimeUnit) func(arrow.Timestamp) int64 {
	switch u {
	case arrow.Second:
		return func(v arrow.Timestamp) int64 { return int64(v) * 1e6 }
	case arrow.Millisecond:
		return func(v arrow.Timestamp) int64 { return int64(v) * 1e3 }
	case arrow.Nanosecond:
		return func(v arrow.Timestamp) int64 { return floorDiv(int64(v), 1e3) }
	default:
		return func(v arrow.Timestamp) int64 { return int64(v) }
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// fileFor returns the open file of hour, rolling it first when it is past
// MaxAge, and opening one (after committing the least recently written
// when MaxOpenFiles are open) when there is none.
func (w *Writer) fileFor(hour int64, now time.Time) (*partFile, error) {
	if pf := w.files[hour]; pf != nil {
		if now.Sub(pf.opened) < w.cfg.MaxAge {
			return pf, nil
		}
		if err := w.rollLocked(hour); err != nil {
			return nil, err
		}
	}
	if len(w.files) >= w.cfg.MaxOpenFiles {
		oldest, first := int64(0), true
		for h, pf := range w.files {
			if first || pf.lastWrite < w.files[oldest].lastWrite {
				oldest, first = h, false
			}
		}
		if err := w.rollLocked(oldest); err != nil {
			return nil, err
		}
	}
	w.seq++
	pf, err := openPartFile(w.cfg.Root, hour, w.seq, w.outSchema, w.props, w.arrProps, now)
	if err != nil {
		return nil, err
	}
	pf.firstWrite = w.writes
	w.files[hour] = pf
	return pf, nil
}

// rollLocked commits the open file of hour, or, with CommitTogether,
// every open file.
func (w *Writer) rollLocked(hour int64) error {
	if w.cfg.CommitTogether {
		return w.commitAllLocked(func(*partFile) bool { return true })
	}
	return w.commitLocked(hour)
}

// commitLocked commits the open file of hour and records it in the
// manifest. An error makes the Writer failed.
func (w *Writer) commitLocked(hour int64) error {
	pf := w.files[hour]
	delete(w.files, hour)
	entry, err := pf.commit(w.cfg.Now())
	if err != nil {
		return w.fail(err)
	}
	return w.appendLocked(entry)
}

// appendLocked appends es to the manifest as one write and notes their
// offsets.
func (w *Writer) appendLocked(es ...ManifestEntry) error {
	if err := appendManifest(w.manifest, es...); err != nil {
		return w.fail(err)
	}
	for k, o := range LastOffsets(es) {
		w.last[k] = max(w.last[k], o)
	}
	return nil
}

// commitGroupLocked commits the open files of hours as one manifest
// group, appended in one write.
func (w *Writer) commitGroupLocked(hours []int64) error {
	if len(hours) == 0 {
		return nil
	}
	now := w.cfg.Now()
	entries := make([]ManifestEntry, 0, len(hours))
	for _, h := range hours {
		pf := w.files[h]
		delete(w.files, h)
		e, err := pf.commit(now)
		if err != nil {
			return w.fail(err)
		}
		e.Group, e.GroupFiles = w.group+1, len(hours)
		entries = append(entries, e)
	}
	if err := w.appendLocked(entries...); err != nil {
		return err
	}
	w.group++
	return nil
}

// Durable is the number of write calls (Write, WriteBatch and the like
// that wrote rows) whose rows are all in committed files: every call when
// no file is open, else the calls before the oldest open file's first.
func (w *Writer) Durable() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.durableLocked()
}

func (w *Writer) durableLocked() int64 {
	d := w.writes
	for _, pf := range w.files {
		d = min(d, pf.firstWrite-1)
	}
	return d
}

// Writes is the number of write calls that wrote rows so far.
func (w *Writer) Writes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// LastOffset is the greatest offset of input partition (topic, partition)
// in a committed file: read from the manifest at New, then kept up to
// date. ok is false when there is none.
func (w *Writer) LastOffset(topic string, partition int32) (offset int64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	offset, ok = w.last[SourceKey{topic, partition}]
	return offset, ok
}

// Flush commits every open file, making all rows written so far durable.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	return w.commitAllLocked(func(*partFile) bool { return true })
}

func (w *Writer) commitAllLocked(pick func(*partFile) bool) error {
	hours := make([]int64, 0, len(w.files))
	for h, pf := range w.files {
		if pick(pf) {
			hours = append(hours, h)
		}
	}
	slices.Sort(hours)
	if w.cfg.CommitTogether {
		return w.commitGroupLocked(hours)
	}
	for _, h := range hours {
		if err := w.commitLocked(h); err != nil {
			return err
		}
	}
	return nil
}

// Run commits files that reach MaxAge without further writes, checking
// every MaxAge/4 (at least every 10ms, at most every minute). It returns
// nil when ctx ends, or the error of a failed commit; it does not close
// the Writer.
func (w *Writer) Run(ctx context.Context) error {
	every := min(max(w.cfg.MaxAge/4, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := w.rollAged(); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
	}
}

func (w *Writer) rollAged() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	now := w.cfg.Now()
	aged := func(pf *partFile) bool { return now.Sub(pf.opened) >= w.cfg.MaxAge }
	if w.cfg.CommitTogether {
		for _, pf := range w.files {
			if aged(pf) {
				return w.commitAllLocked(func(*partFile) bool { return true })
			}
		}
		return nil
	}
	return w.commitAllLocked(aged)
}

// Close commits every open file and closes the manifest. On a failed
// Writer it discards the open files instead and returns the failure.
// Close is idempotent: later calls return nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.failed
	if err == nil {
		err = w.commitAllLocked(func(*partFile) bool { return true })
	}
	for h, pf := range w.files {
		pf.abort()
		delete(w.files, h)
	}
	w.closed = true
	w.bld.release()
	w.srcIdx.Release()
	w.extIdx.Release()
	if cerr := w.manifest.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("lake: close manifest: %w", cerr)
	}
	return err
}

// parquetProps are the lake's Parquet writer properties.
//
// No column is dictionary encoded: arrow-go's dictionary encoder
// allocates on every string it hashes (five allocations per demo event,
// 89% of a lake replay's), and a dictionary of mostly distinct values
// (ids, encrypted fields, features, scores, offsets, times) saves nothing
// and costs a hash per value until it gives up. Snappy still shrinks the
// low-cardinality columns (categories, the source topic, the model
// version): a demo lake's file is 2.5% larger than with dictionaries.
//
// Data pages of dataPageSize keep arrow-go's pooled page buffers small:
// it zeroes a whole pooled buffer each time one is released, and hands
// the same pool's buffers out for each write's definition levels.
func parquetProps(cfg Config, mem memory.Allocator) *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithAllocator(mem),
		parquet.WithCompression(cfg.Compression),
		parquet.WithMaxRowGroupLength(cfg.RowGroupRows),
		parquet.WithDictionaryDefault(false),
		parquet.WithDataPageSize(dataPageSize),
		parquet.WithStats(true),
	)
}

// dataPageSize is the lake's Parquet data page size (arrow-go's default
// is 1 MiB).
const dataPageSize = 64 << 10

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		a.Release()
	}
}
