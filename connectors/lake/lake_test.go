package lake

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
)

// run returns n events from offset first, one a second from start.
func run(first int64, n int, start time.Time) []ev {
	evs := make([]ev, n)
	for i := range evs {
		o := first + int64(i)
		evs[i] = ev{id: fmt.Sprint(o), ts: start.Add(time.Duration(i) * time.Second), amount: float64(o), offset: o, score: 0.5}
	}
	return evs
}

func write(t *testing.T, w *Writer, partition int32, evs []ev) {
	t.Helper()
	rec := record(evs)
	defer rec.Release()
	if err := w.Write(rec, extras("events", partition, evs)); err != nil {
		t.Fatal(err)
	}
}

func manifestRows(t *testing.T, root string) []int64 {
	t.Helper()
	entries, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	var rows []int64
	for _, e := range entries {
		rows = append(rows, e.Rows)
	}
	return rows
}

func ids(evs []ev) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.id)
	}
	return out
}

func TestRollByRows(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxRows: 10, RowGroupRows: 4})
	evs := run(0, 35, t0)
	write(t, w, 0, evs[:7])
	write(t, w, 0, evs[7:])
	if got, want := manifestRows(t, root), []int64{10, 10, 10}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows per committed file before Close = %v, want %v", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := manifestRows(t, root), []int64{10, 10, 10, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows per file = %v, want %v", got, want)
	}
	entries, _ := ReadManifest(root)
	for i, e := range entries {
		if !strings.HasPrefix(e.Path, fmt.Sprintf("date=2024-05-01/hour=13/part-%06d-", i+1)) {
			t.Errorf("file %d is %s", i, e.Path)
		}
		if want := (SourceRange{"events", 0, int64(10 * i), int64(min(10*i+9, 34))}); !reflect.DeepEqual(e.Sources, []SourceRange{want}) {
			t.Errorf("file %d sources = %+v, want %+v", i, e.Sources, want)
		}
	}
	if got := readIDs(t, root, time.Time{}, time.Time{}); !reflect.DeepEqual(got, ids(evs)) {
		t.Errorf("ReadFiles ids = %v", got)
	}
	v := readWithPyarrow(t, root)
	var pyRows []int64
	for _, f := range v.Files {
		pyRows = append(pyRows, f.Rows)
	}
	if want := []int64{10, 10, 10, 5}; !reflect.DeepEqual(pyRows, want) {
		t.Errorf("pyarrow rows per file = %v, want %v", pyRows, want)
	}
}

func TestRollByBytes(t *testing.T) {
	root := t.TempDir()
	const maxBytes, batches, size = 200 << 10, 20, 2000
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxBytes: maxBytes, RowGroupRows: size, Compression: compress.Codecs.Zstd})
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range batches {
		evs := run(int64(k*size), size, t0)
		for i := range evs {
			evs[i].id = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()) // incompressible
		}
		write(t, w, 0, evs)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	entries := mustManifest(t, root)
	if len(entries) < 2 {
		t.Fatalf("%d files, want several of about %d bytes", len(entries), maxBytes)
	}
	var rows int64
	for i, e := range entries {
		rows += e.Rows
		// A file rolls once its completed row groups reach MaxBytes; the
		// row group in memory is not counted, so it overshoots by less than
		// two row groups (plus the footer).
		rg := largestRowGroup(t, filepath.Join(root, e.Path))
		if last := i == len(entries)-1; !last && e.Bytes < maxBytes || e.Bytes > maxBytes+2*rg+4<<10 {
			t.Errorf("file %d: %d bytes, MaxBytes %d, largest row group %d", i, e.Bytes, maxBytes, rg)
		}
	}
	if rows != batches*size {
		t.Errorf("%d rows in files, wrote %d", rows, batches*size)
	}
}

// largestRowGroup returns the compressed size of the largest row group
// of a Parquet file.
func largestRowGroup(t *testing.T, path string) int64 {
	t.Helper()
	r, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var most int64
	for i := range r.NumRowGroups() {
		most = max(most, r.MetaData().RowGroup(i).TotalCompressedSize())
	}
	return most
}

func TestRollByAge(t *testing.T) {
	root := t.TempDir()
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxAge: time.Minute, Now: clock.Now})
	evs := run(0, 3, t0)
	write(t, w, 0, evs[:1])
	clock.Advance(59 * time.Second)
	write(t, w, 0, evs[1:2])
	if got := manifestRows(t, root); len(got) != 0 {
		t.Fatalf("a file younger than MaxAge was committed: %v", got)
	}
	clock.Advance(time.Second)
	write(t, w, 0, evs[2:])
	if got, want := manifestRows(t, root), []int64{2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after MaxAge, committed rows = %v, want %v", got, want)
	}
}

func TestRunCommitsAgedFiles(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxAge: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	write(t, w, 0, run(0, 3, t0))
	deadline := time.Now().Add(5 * time.Second)
	for len(manifestRows(t, root)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not commit the aged file within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got, want := manifestRows(t, root), []int64{3}; !reflect.DeepEqual(got, want) {
		t.Errorf("committed rows = %v, want %v", got, want)
	}
}

func TestMaxOpenFilesCommitsLeastRecent(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxOpenFiles: 2})
	write(t, w, 0, run(0, 1, t0))                // hour 13
	write(t, w, 0, run(1, 1, t0.Add(time.Hour))) // hour 14
	write(t, w, 0, run(2, 1, t0))                // hour 13 again: 14 is now least recent
	write(t, w, 0, run(3, 1, t0.Add(2*time.Hour)))
	entries, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Path, "date=2024-05-01/hour=14/") {
		t.Fatalf("committed %+v, want the hour 14 file only", entries)
	}
}

func TestRecordAcrossHoursAndDays(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts"})
	midnight := time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC)
	evs := []ev{
		{id: "a", ts: midnight, offset: 1},
		{id: "b", ts: midnight.Add(time.Second), offset: 2},
		{id: "c", ts: midnight, offset: 3},
		{id: "d", ts: time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC), offset: 4},
	}
	write(t, w, 0, evs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, e := range mustManifest(t, root) {
		got[e.Path[:len("date=2024-12-31/hour=23")]] = e.Rows
	}
	want := map[string]int64{"date=2024-12-31/hour=23": 2, "date=2025-01-01/hour=00": 1, "date=1969-12-31/hour=23": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows per partition = %v, want %v", got, want)
	}
}

func mustManifest(t *testing.T, root string) []ManifestEntry {
	t.Helper()
	e, err := ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestReadFilesRange(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxRows: 3})
	evs := []ev{
		{id: "13:10", ts: at(10 * time.Minute)}, {id: "13:50", ts: at(50 * time.Minute)},
		{id: "14:10", ts: at(70 * time.Minute)}, {id: "14:40", ts: at(100 * time.Minute)},
		{id: "13:20", ts: at(20 * time.Minute)}, {id: "13:40", ts: at(40 * time.Minute)},
		{id: "15:00", ts: at(2 * time.Hour)},
	}
	for i := range evs {
		evs[i].offset = int64(i)
	}
	write(t, w, 0, evs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readIDs(t, root, at(20*time.Minute), at(100*time.Minute))
	slices.Sort(got)
	if want := []string{"13:20", "13:40", "13:50", "14:10"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids in [13:20, 14:40) = %v, want %v", got, want)
	}
	// Stopping early is allowed.
	n := 0
	for _, err := range ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("read %d records before break", n)
	}
	// A cancelled context ends the iteration with its error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var last error
	for _, err := range ReadFiles(ctx, root, time.Time{}, time.Time{}) {
		last = err
	}
	if !errors.Is(last, context.Canceled) {
		t.Errorf("ReadFiles on a cancelled context ended with %v", last)
	}
}

func TestForbiddenColumnRefused(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", ForbiddenColumns: []string{"email"}})
	schema := arrow.NewSchema([]arrow.Field{{Name: "email", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.StringBuilder).Append("someone@example.com")
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	err := w.Write(rec, Extras{Scores: []float32{1}, Offsets: []int64{1}, RecordTimes: []time.Time{t0}})
	if !errors.Is(err, ErrForbiddenColumn) {
		t.Fatalf("Write with a forbidden column = %v, want ErrForbiddenColumn", err)
	}
	// The writer stays usable, and nothing reached the disk.
	write(t, w, 0, run(0, 2, t0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range readWithPyarrow(t, root).Files {
		if _, ok := f.Columns["email"]; ok {
			t.Errorf("%s holds the forbidden column", f.Path)
		}
	}
}

func TestWriteRefusals(t *testing.T) {
	w := newWriter(t, Config{Root: t.TempDir(), TimeColumn: "ts"})
	good := run(0, 2, t0)
	rec := record(good)
	defer rec.Release()

	x := extras("events", 0, good)
	x.Scores = x.Scores[:1]
	if err := w.Write(rec, x); err == nil {
		t.Error("Write with too few scores succeeded")
	}
	x = extras("events", 0, good)
	x.Labels = []float32{1}
	if err := w.Write(rec, x); err == nil {
		t.Error("Write with too few labels succeeded")
	}

	noTime := []ev{{id: "x", offset: 1}}
	r := record(noTime)
	defer r.Release()
	if err := w.Write(r, extras("events", 0, noTime)); !errors.Is(err, ErrNoEventTime) {
		t.Errorf("row without any time: %v, want ErrNoEventTime", err)
	}

	reserved := arrow.NewSchema([]arrow.Field{{Name: ColScore, Type: arrow.PrimitiveTypes.Float32}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, reserved)
	rb.Field(0).(*array.Float32Builder).Append(1)
	rr := rb.NewRecordBatch()
	rb.Release()
	defer rr.Release()
	if err := w.Write(rr, Extras{Scores: []float32{1}, Offsets: []int64{1}}); !errors.Is(err, ErrSchema) {
		t.Errorf("reserved column: %v, want ErrSchema", err)
	}

	write(t, w, 0, good)
	other := arrow.NewSchema(append(slices.Clone(testSchema.Fields()), arrow.Field{Name: "extra", Type: arrow.PrimitiveTypes.Int64, Nullable: true}), nil)
	ob := array.NewRecordBuilder(memory.DefaultAllocator, other)
	ob.Field(0).(*array.StringBuilder).Append("y")
	ob.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.UnixMicro()))
	ob.Field(2).(*array.Float64Builder).Append(1)
	ob.Field(3).(*array.Int64Builder).Append(1)
	orec := ob.NewRecordBatch()
	ob.Release()
	defer orec.Release()
	if err := w.Write(orec, Extras{Scores: []float32{1}, Offsets: []int64{9}}); !errors.Is(err, ErrSchema) {
		t.Errorf("second schema: %v, want ErrSchema", err)
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := w.Write(rec, extras("events", 0, good)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

func TestTimeColumnMissing(t *testing.T) {
	w := newWriter(t, Config{Root: t.TempDir(), TimeColumn: "event_time"})
	evs := run(0, 1, t0)
	rec := record(evs)
	defer rec.Release()
	if err := w.Write(rec, extras("events", 0, evs)); !errors.Is(err, ErrSchema) {
		t.Errorf("record without the time column: %v, want ErrSchema", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Root: "x"}, true},
		{"no root", Config{}, false},
		{"negative rows", Config{Root: "x", MaxRows: -1}, false},
		{"negative bytes", Config{Root: "x", MaxBytes: -1}, false},
		{"negative age", Config{Root: "x", MaxAge: -time.Second}, false},
		{"negative open files", Config{Root: "x", MaxOpenFiles: -1}, false},
		{"negative row group", Config{Root: "x", RowGroupRows: -1}, false},
		{"forbidden time column", Config{Root: "x", TimeColumn: "ts", ForbiddenColumns: []string{"ts"}}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v", c.name, err)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without root")
	}
}

// TestCrashBeforeRename kills a writer process mid-file: the rows of its
// uncommitted files must stay invisible, and the next writer cleans up.
func TestCrashBeforeRename(t *testing.T) {
	if root := os.Getenv("LAKE_CRASH_ROOT"); root != "" {
		crashingWriter(root)
		return
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBeforeRename$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LAKE_CRASH_ROOT="+root)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("crashing writer: %v\n%s", err, out)
	}
	parquet, tmp := walkFiles(t, root)
	if len(tmp) != 2 {
		t.Errorf("temporary files after the crash = %v, want 2 (hours 13 and 14)", tmp)
	}
	entries := mustManifest(t, root)
	if len(parquet) != 1 || len(entries) != 1 || entries[0].Path != parquet[0] {
		t.Fatalf("visible files %v, manifest %+v: want the one flushed file", parquet, entries)
	}
	if got, want := readIDs(t, root, time.Time{}, time.Time{}), ids(run(0, 5, t0)); !reflect.DeepEqual(got, want) {
		t.Errorf("ReadFiles after crash = %v, want the flushed rows %v", got, want)
	}

	w := newWriter(t, Config{Root: root, TimeColumn: "ts"})
	if _, tmp := walkFiles(t, root); len(tmp) != 0 {
		t.Errorf("New left temporary files: %v", tmp)
	}
	write(t, w, 0, run(100, 2, t0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	v := readWithPyarrow(t, root)
	if len(v.Stray) != 0 {
		t.Errorf("stray files: %v", v.Stray)
	}
	if want := map[string]int64{"date=2024-05-01/hour=13": 7}; !reflect.DeepEqual(v.Partitions, want) {
		t.Errorf("pyarrow partitions = %v, want %v", v.Partitions, want)
	}
	entries = mustManifest(t, root)
	if len(entries) != 2 || !strings.Contains(entries[1].Path, "/part-000002-") {
		t.Errorf("manifest after restart = %+v, want a second file with seq 2", entries)
	}
}

// crashingWriter commits one file, leaves two open, and exits without
// closing, as a killed process would.
func crashingWriter(root string) {
	w, err := New(Config{Root: root, TimeColumn: "ts"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, step := range []func() error{
		func() error { return writeEvs(w, run(0, 5, t0)) },
		w.Flush,
		func() error { return writeEvs(w, run(5, 5, t0)) },
		func() error { return writeEvs(w, run(10, 5, t0.Add(time.Hour))) },
	} {
		if err := step(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(3)
}

func writeEvs(w *Writer, evs []ev) error {
	rec := record(evs)
	defer rec.Release()
	return w.Write(rec, extras("events", 0, evs))
}

func TestTornManifestLine(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts"})
	write(t, w, 0, run(0, 2, t0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(root, ManifestName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"path":"date=2024-05-01/hour=13/part-000009-x.parq`)
	f.Close()
	if got := len(mustManifest(t, root)); got != 1 {
		t.Errorf("ReadManifest with a torn line: %d entries, want 1", got)
	}
	w2 := newWriter(t, Config{Root: root, TimeColumn: "ts"})
	write(t, w2, 0, run(2, 2, t0))
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := manifestRows(t, root), []int64{2, 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("manifest rows after repair = %v, want %v", got, want)
	}
	if err := os.WriteFile(filepath.Join(root, ManifestName), []byte("not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(root); err == nil {
		t.Error("ReadManifest accepted a malformed line")
	}
}

func TestConcurrentWriteBatch(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", MaxRows: 50})
	const parts, batches, size = 4, 10, 16
	var wg sync.WaitGroup
	errs := make(chan error, parts*batches)
	for p := range int32(parts) {
		wg.Go(func() {
			for k := range batches {
				evs := run(int64(k*size), size, t0.Add(time.Duration(p)*time.Hour))
				b := batch("events", p, evs)
				errs <- w.WriteBatch(b, "v1")
				b.Record.Release()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int64]int{}
	for rec, err := range ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		s := rec.Schema()
		part := rec.Column(s.FieldIndices(ColSourcePartition)[0]).(*array.Int32)
		off := rec.Column(s.FieldIndices(ColSourceOffset)[0]).(*array.Int64)
		for i := range int(rec.NumRows()) {
			seen[[2]int64{int64(part.Value(i)), off.Value(i)}]++
		}
	}
	if len(seen) != parts*batches*size {
		t.Errorf("read %d distinct (partition, offset), want %d", len(seen), parts*batches*size)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%v read %d times", k, n)
		}
	}
}
