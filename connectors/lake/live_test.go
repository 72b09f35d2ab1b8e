package lake

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// liveEvents are n events of partition 0 from offset first, their event
// times alternating between two hours (so two files are open at once).
func liveEvents(first int64, n int) []ev {
	evs := make([]ev, n)
	for i := range evs {
		o := first + int64(i)
		evs[i] = ev{id: "e" + itoa(o), ts: at(time.Duration(o%2)*time.Hour + time.Duration(o)*time.Millisecond), offset: o, score: float32(o)}
	}
	return evs
}

func itoa(v int64) string { return string(appendInt(nil, v)) }

func appendInt(dst []byte, v int64) []byte {
	if v >= 10 {
		dst = appendInt(dst, v/10)
	}
	return append(dst, byte('0'+v%10))
}

// startLive opens a live lake at root and runs it until the test ends (or
// the returned stop is called, which waits for Run).
func startLive(t *testing.T, cfg LiveConfig) (*Live, func() error) {
	t.Helper()
	l, err := OpenLive(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			if err := l.Close(); runErr == nil {
				runErr = err
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return l, stop
}

// offsetsIn reads the events table's source offsets, in order.
func offsetsIn(t *testing.T, root string) []int64 {
	t.Helper()
	var out []int64
	for rec, err := range ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		col := rec.Column(rec.Schema().FieldIndices(ColSourceOffset)[0]).(*array.Int64)
		for i := range col.Len() {
			out = append(out, col.Value(i))
		}
	}
	return out
}

func TestLiveHoldsMarksUntilCommit(t *testing.T) {
	root := t.TempDir()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts", MaxAge: time.Hour}})
	ctx := context.Background()
	if err := l.Append(ctx, batch("in", 0, liveEvents(0, 10)), "v1", nil); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	l.Hold(func() { close(released) })
	select {
	case <-released:
		t.Fatal("the mark was released before the lake committed its rows")
	case <-time.After(200 * time.Millisecond):
	}
	if es := mustManifest(t, root); len(es) != 0 {
		t.Fatalf("manifest has %d entries before any roll, want none", len(es))
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	default:
		t.Fatal("Flush returned with the mark still held")
	}
	es := mustManifest(t, root)
	if len(es) != 2 || es[0].Group != 1 || es[1].Group != 1 || es[0].GroupFiles != 2 {
		t.Fatalf("manifest %+v, want the two hours' files as one group of 2", es)
	}
	// Nothing appended since: a new hold is released at once.
	now := false
	l.Hold(func() { now = true })
	if !now {
		t.Error("a hold with nothing pending was not released at once")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := offsetsIn(t, root); len(got) != 10 {
		t.Errorf("lake holds %d rows, want 10", len(got))
	}
}

// TestLiveCrashAndRestart: the lake commits rows whose offsets the
// (simulated) consumer never committed, then crashes with more rows in
// open files. The restarted consumer re-delivers from its committed
// offset: every offset ends up in the lake exactly once.
func TestLiveCrashAndRestart(t *testing.T) {
	root := t.TempDir()
	cfg := LiveConfig{Events: Config{Root: root, TimeColumn: "ts", MaxAge: time.Hour}}
	ctx := context.Background()
	l, stop := startLive(t, cfg)
	var marked atomic.Int64
	marked.Store(-1)
	deliver := func(l *Live, from, to int64) {
		t.Helper()
		for o := from; o < to; o += 50 {
			if err := l.Append(ctx, batch("in", 0, liveEvents(o, 50)), "v1", nil); err != nil {
				t.Fatal(err)
			}
			last := o + 49
			l.Hold(func() { marked.Store(last) })
		}
	}
	deliver(l, 0, 500)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if marked.Load() != 499 {
		t.Fatalf("after a flush the marks reach %d, want 499", marked.Load())
	}
	kafkaCommitted := marked.Load() // the consumer's last commit
	deliver(l, 500, 750)
	if err := l.Flush(ctx); err != nil { // the lake commits; the consumer crashes before its next commit
		t.Fatal(err)
	}
	deliver(l, 750, 900) // in open files at the crash
	time.Sleep(50 * time.Millisecond)
	l.events.mu.Lock()
	l.events.fail(errors.New("simulated crash"))
	l.events.mu.Unlock()
	if err := stop(); err == nil {
		t.Fatal("the crashed lake's Run reported no error")
	}
	if got := offsetsIn(t, root); len(got) != 750 {
		t.Fatalf("after the crash the lake holds %d rows, want the 750 committed", len(got))
	}

	l2, stop2 := startLive(t, cfg)
	if o, ok := l2.events.LastOffset("in", 0); !ok || o != 749 {
		t.Fatalf("restarted lake's last offset %d (%v), want 749", o, ok)
	}
	deliver(l2, kafkaCommitted+1, 1000)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if l2.Skipped() != 250 {
		t.Errorf("skipped %d re-delivered rows, want 250 (offsets 500-749)", l2.Skipped())
	}
	got := offsetsIn(t, root)
	slices.Sort(got)
	if len(got) != 1000 {
		t.Fatalf("lake holds %d rows, want 1000", len(got))
	}
	for i, o := range got {
		if o != int64(i) {
			t.Fatalf("offset %d at sorted position %d: a duplicate or a gap", o, i)
		}
	}
}

func TestTornGroupDropped(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", CommitTogether: true})
	write(t, w, 0, liveEvents(0, 10))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	write(t, w, 0, liveEvents(10, 10))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	es := mustManifest(t, root)
	if len(es) != 4 || es[2].Group != 2 {
		t.Fatalf("manifest %+v, want two groups of two files", es)
	}
	// A crash between the lines of the second group.
	data := manifestBytes(t, root)
	cut := len(data) - 1
	for data[cut-1] != '\n' {
		cut--
	}
	writeManifestBytes(t, root, data[:cut])
	w2 := newWriter(t, Config{Root: root, TimeColumn: "ts", CommitTogether: true})
	if es := mustManifest(t, root); len(es) != 2 || es[1].Group != 1 {
		t.Fatalf("after repair the manifest is %+v, want the first group only", es)
	}
	if o, _ := w2.LastOffset("events", 0); o != 9 {
		t.Errorf("last offset %d after repair, want 9", o)
	}
	// The torn group's listed file is deleted; its unlisted one is an
	// orphan (as after a crash before a manifest line), removed too.
	parquet, _ := walkFiles(t, root)
	for _, e := range es[2:] {
		if slices.Contains(parquet, e.Path) {
			t.Errorf("the torn group's file %s is still there", e.Path)
		}
	}
	if ids := readIDs(t, root, time.Time{}, time.Time{}); len(ids) != 10 {
		t.Errorf("readers see %d rows after repair, want the first group's 10", len(ids))
	}
}

func manifestBytes(t *testing.T, root string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeManifestBytes(t *testing.T, root string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, ManifestName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Rows served by another version (a canary) carry their own version.
func TestLiveVersionsPerRow(t *testing.T) {
	root := t.TempDir()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}})
	evs := liveEvents(0, 4)
	if err := l.Append(context.Background(), batch("in", 0, evs), "7", []string{"7", "8", "7", "8"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), batch("in", 0, liveEvents(4, 1)), "7", []string{"7", "8"}); err == nil {
		t.Error("Append took 2 versions for 1 row")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for rec, err := range ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		offs := rec.Column(rec.Schema().FieldIndices(ColSourceOffset)[0]).(*array.Int64)
		vs := rec.Column(rec.Schema().FieldIndices(ColModelVersion)[0]).(*array.String)
		for i := range offs.Len() {
			got[offs.Value(i)] = vs.Value(i)
		}
	}
	if want := map[int64]string{0: "7", 1: "8", 2: "7", 3: "8"}; !maps.Equal(got, want) {
		t.Errorf("versions by offset %v, want %v", got, want)
	}
}

// Run applies retention every RetentionEvery, to both tables: events of
// 2024 are past a 1h max age, so every commit but the newest goes.
func TestLiveRetention(t *testing.T) {
	root := t.TempDir()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}, RetentionMaxAge: time.Hour, RetentionEvery: 10 * time.Millisecond})
	ctx := context.Background()
	for o := int64(0); o < 30; o += 10 {
		if err := l.Append(ctx, batch("in", 0, liveEvents(o, 10)), "v1", nil); err != nil {
			t.Fatal(err)
		}
		l.AppendLabel(LabelRow{EventID: "e" + itoa(o), Label: 1, At: at(time.Duration(o) * time.Second)})
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(mustManifest(t, root)) != 2 || len(mustManifest(t, filepath.Join(root, LabelsDir))) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("manifests hold %d event and %d label files, want the newest commit's 2 and 1",
				len(mustManifest(t, root)), len(mustManifest(t, filepath.Join(root, LabelsDir))))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := offsetsIn(t, root)
	slices.Sort(got)
	if len(got) != 10 || got[0] != 20 {
		t.Errorf("after retention the lake holds offsets %v, want the newest commit's 20-29", got)
	}
	if o, ok := l.events.LastOffset("in", 0); !ok || o != 29 {
		t.Errorf("last offset %d after retention, want 29 (kept for restarts)", o)
	}
}

// pyarrow reads a live lake's root as a hive-partitioned dataset of its
// events alone: the labels table under LabelsDir is not taken for events.
func TestPyarrowReadsLiveLake(t *testing.T) {
	root := t.TempDir()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}})
	if err := l.Append(context.Background(), batch("in", 0, liveEvents(0, 10)), "v1", nil); err != nil {
		t.Fatal(err)
	}
	for o := range int64(10) {
		l.AppendLabel(LabelRow{EventID: "e" + itoa(o), Label: float32(o % 2), ModelVersion: "v1", At: at(3 * time.Hour)})
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	v := readWithPyarrow(t, root)
	if want := map[string]int64{"date=2024-05-01/hour=13": 5, "date=2024-05-01/hour=14": 5}; !maps.Equal(v.Partitions, want) {
		t.Errorf("pyarrow's dataset of the root: %v, want the events' hours %v", v.Partitions, want)
	}
	labels, err := ReadLabels(context.Background(), root)
	if err != nil || len(labels) != 10 || labels["e3"] != 1 || labels["e4"] != 0 {
		t.Errorf("ReadLabels = %v (err %v), want the 10 labels", labels, err)
	}
}
