package lake

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/google/uuid"
)

// extraFields are the columns appended to every event row, in order.
var extraFields = []arrow.Field{
	{Name: ColScore, Type: arrow.PrimitiveTypes.Float32},
	{Name: ColModelVersion, Type: arrow.BinaryTypes.String},
	{Name: ColLabel, Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: ColSourceTopic, Type: arrow.BinaryTypes.String},
	{Name: ColSourcePartition, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColSourceOffset, Type: arrow.PrimitiveTypes.Int64},
	{Name: ColEventTime, Type: arrow.FixedWidthTypes.Timestamp_us},
}

func isReserved(name string) bool {
	for _, f := range extraFields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// extraBuilders build the extra columns of one write; reused across writes.
type extraBuilders struct {
	score     *array.Float32Builder
	version   *array.StringBuilder
	label     *array.Float32Builder
	topic     *array.StringBuilder
	partition *array.Int32Builder
	offset    *array.Int64Builder
	eventTime *array.TimestampBuilder
}

func newExtraBuilders(mem memory.Allocator) extraBuilders {
	return extraBuilders{
		score:     array.NewFloat32Builder(mem),
		version:   array.NewStringBuilder(mem),
		label:     array.NewFloat32Builder(mem),
		topic:     array.NewStringBuilder(mem),
		partition: array.NewInt32Builder(mem),
		offset:    array.NewInt64Builder(mem),
		eventTime: array.NewTimestampBuilder(mem, arrow.FixedWidthTypes.Timestamp_us.(*arrow.TimestampType)),
	}
}

// build returns the extra columns, in extraFields order, for rows with the
// given offsets and event times (unix µs); the caller releases them.
func (b *extraBuilders) build(ex rowExtras, offsets, times []int64) []arrow.Array {
	n := len(offsets)
	b.score.AppendValues(ex.scores, nil)
	b.version.Reserve(n)
	b.version.ReserveData(n * len(ex.version))
	b.topic.Reserve(n)
	b.topic.ReserveData(n * len(ex.topic))
	b.partition.Reserve(n)
	b.eventTime.Reserve(n)
	for k := range n {
		if ex.versions != nil {
			b.version.Append(ex.versions[k])
		} else {
			b.version.Append(ex.version)
		}
		b.topic.Append(ex.topic)
		b.partition.UnsafeAppend(ex.partition)
		b.eventTime.UnsafeAppend(arrow.Timestamp(times[k]))
	}
	switch {
	case ex.labels == nil:
		b.label.AppendNulls(n)
	default:
		b.label.AppendValues(ex.labels, ex.labelValid)
	}
	b.offset.AppendValues(offsets, nil)
	return []arrow.Array{
		b.score.NewArray(), b.version.NewArray(), b.label.NewArray(), b.topic.NewArray(),
		b.partition.NewArray(), b.offset.NewArray(), b.eventTime.NewArray(),
	}
}

func (b *extraBuilders) release() {
	b.score.Release()
	b.version.Release()
	b.label.Release()
	b.topic.Release()
	b.partition.Release()
	b.offset.Release()
	b.eventTime.Release()
}

// partFile is the open, uncommitted file of one (date, hour) partition.
type partFile struct {
	tmp, final string // absolute paths
	rel        string // final path relative to the root, with '/'
	f          *os.File
	pq         *parquetFile
	opened     time.Time
	lastWrite  int64
	// firstWrite is the Writer's write count when the file opened.
	firstWrite int64
	rows       int64
	// groupClosed: the last write closed a row group.
	groupClosed bool
	minT, maxT  int64 // event time, unix µs
	sources     map[sourceKey]*SourceRange
	order       []sourceKey
}

type sourceKey struct {
	topic     string
	partition int32
}

// writerOnly hides the file's Close from arrow-go, which closes an
// io.Closer it writes to; the partFile fsyncs and closes it itself.
type writerOnly struct{ io.Writer }

// partitionDir is the directory of hour (hours since the epoch, UTC)
// relative to the root.
func partitionDir(hour int64) string {
	t := time.UnixMicro(hour * microsPerHour).UTC()
	return fmt.Sprintf("date=%s/hour=%02d", t.Format(time.DateOnly), t.Hour())
}

func openPartFile(root string, hour, seq int64, schema *arrow.Schema, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties, now time.Time) (*partFile, error) {
	dir := partitionDir(hour)
	if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(dir)), 0o755); err != nil {
		return nil, fmt.Errorf("lake: create partition: %w", err)
	}
	rel := fmt.Sprintf("%s/part-%06d-%s.parquet", dir, seq, uuid.NewString())
	pf := &partFile{
		final: filepath.Join(root, filepath.FromSlash(rel)), rel: rel, opened: now,
		sources: map[sourceKey]*SourceRange{},
	}
	pf.tmp = pf.final + tmpSuffix
	f, err := os.OpenFile(pf.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lake: create file: %w", err)
	}
	pf.f = f
	pq, err := newParquetFile(schema, writerOnly{f}, props, arrProps)
	if err != nil {
		pf.abort()
		return nil, fmt.Errorf("lake: parquet writer: %w", err)
	}
	pf.pq = pq
	return pf, nil
}

// write appends rec, whose rows have the given event times and offsets,
// all from one input partition. It sets groupClosed when a row group of
// rgRows rows filled and closed during the write.
func (pf *partFile) write(rec arrow.RecordBatch, times, offsets []int64, topic string, partition int32, rgRows int64) error {
	before := pf.rows
	if err := pf.pq.write(rec); err != nil {
		return fmt.Errorf("lake: write %s: %w", pf.rel, err)
	}
	// write closes a full row group when the next row arrives.
	pf.groupClosed = before > 0 && (before-1)/rgRows != (before+rec.NumRows()-1)/rgRows
	for _, t := range times {
		if pf.rows == 0 || t < pf.minT {
			pf.minT = t
		}
		if pf.rows == 0 || t > pf.maxT {
			pf.maxT = t
		}
		pf.rows++
	}
	key := sourceKey{topic, partition}
	sr := pf.sources[key]
	if sr == nil {
		sr = &SourceRange{Topic: topic, Partition: partition, FirstOffset: offsets[0], LastOffset: offsets[0]}
		pf.sources[key] = sr
		pf.order = append(pf.order, key)
	}
	for _, o := range offsets {
		sr.FirstOffset = min(sr.FirstOffset, o)
		sr.LastOffset = max(sr.LastOffset, o)
	}
	return nil
}

// commit finishes the file: footer, fsync, rename, directory fsync. It
// returns the file's manifest entry. On error the temporary file is
// removed.
func (pf *partFile) commit(now time.Time) (ManifestEntry, error) {
	err := pf.pq.close()
	if err == nil {
		err = pf.f.Sync()
	}
	var size int64
	if err == nil {
		var st fs.FileInfo
		if st, err = pf.f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if cerr := pf.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(pf.tmp, pf.final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(pf.final))
	}
	if err != nil {
		os.Remove(pf.tmp)
		return ManifestEntry{}, fmt.Errorf("lake: commit %s: %w", pf.rel, err)
	}
	e := ManifestEntry{
		Path: pf.rel, Rows: pf.rows, Bytes: size,
		MinEventTime: time.UnixMicro(pf.minT).UTC(), MaxEventTime: time.UnixMicro(pf.maxT).UTC(),
		CommittedAt: now.UTC(),
	}
	for _, k := range pf.order {
		e.Sources = append(e.Sources, *pf.sources[k])
	}
	return e, nil
}

// abort drops the file without committing it.
func (pf *partFile) abort() {
	if pf.pq != nil {
		pf.pq.close()
	}
	pf.f.Close()
	os.Remove(pf.tmp)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemp deletes the *.tmp files under root's partition directories.
func removeTemp(root string) error {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet"+tmpSuffix) {
			return os.Remove(path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lake: remove temporary files: %w", err)
	}
	return nil
}

// partFilePath matches the path, relative to a root, of a file
// openPartFile names: date=YYYY-MM-DD/hour=HH/part-<seq>-<uuid>.parquet.
var partFilePath = regexp.MustCompile(`^date=[0-9]{4}-[0-9]{2}-[0-9]{2}/hour=[0-9]{2}/part-[0-9]{6,}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet$`)

// removeOrphans removes the part files in root's partition directories
// (not below them: a live lake's labels table is a lake of its own under
// its root) that match partFilePath and that no entry names, and then the
// partition directories left empty.
func removeOrphans(root string, entries []ManifestEntry) error {
	named := make(map[string]bool, len(entries))
	for _, e := range entries {
		named[e.Path] = true
	}
	paths, err := filepath.Glob(filepath.Join(root, "date=*", "hour=*", "part-*.parquet"))
	if err != nil {
		return fmt.Errorf("lake: find orphan files: %w", err)
	}
	for _, path := range paths {
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return fmt.Errorf("lake: find orphan files: %w", err)
		}
		rel = filepath.ToSlash(rel)
		if !partFilePath.MatchString(rel) || named[rel] {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lake: remove orphan file %s: %w", rel, err)
		}
		// The hour's and the date's directories, when now empty.
		hourDir := filepath.Dir(path)
		if os.Remove(hourDir) == nil {
			_ = os.Remove(filepath.Dir(hourDir))
		}
	}
	return nil
}
