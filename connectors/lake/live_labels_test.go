package lake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// labelRow is a joined label of event e<offset> from source (topic,
// partition 0, offset).
func labelRow(topic string, offset int64) LabelRow {
	return LabelRow{EventID: "e" + itoa(offset), Label: float32(offset % 2), Score: 0.5, ModelVersion: "v1",
		At: at(time.Duration(offset) * time.Millisecond), Source: SourceOffset{Topic: topic, Offset: offset}}
}

// labelSources counts the labels table's rows by source (topic, offset),
// and checks each row's event id is the one its source was given.
func labelSources(t *testing.T, root string) map[SourceOffset]int {
	t.Helper()
	out := map[SourceOffset]int{}
	for rec, err := range ReadFiles(context.Background(), filepath.Join(root, LabelsDir), time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		s := rec.Schema()
		ids := rec.Column(s.FieldIndices(ColEventID)[0]).(*array.String)
		topics := rec.Column(s.FieldIndices(ColSourceTopic)[0]).(*array.String)
		offs := rec.Column(s.FieldIndices(ColSourceOffset)[0]).(*array.Int64)
		for i := range offs.Len() {
			out[SourceOffset{Topic: topics.Value(i), Offset: offs.Value(i)}]++
			if want := "e" + itoa(offs.Value(i)); ids.Value(i) != want {
				t.Errorf("label row of offset %d has event id %q, want %q", offs.Value(i), ids.Value(i), want)
			}
		}
	}
	return out
}

// A hold waits for the labels appended before it, as for the events: the
// label plane's offset marks are held until the labels table commits.
func TestLiveHoldsMarksUntilLabelsCommit(t *testing.T) {
	root := t.TempDir()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts", MaxAge: time.Hour}})
	for o := range int64(10) {
		l.AppendLabel(labelRow("labels", o))
	}
	released := make(chan struct{})
	l.Hold(func() { close(released) })
	// A chunk's worth of labels wakes Run to write them: still not
	// committed, so still held.
	for o := int64(10); o < labelChunk+10; o++ {
		l.AppendLabel(labelRow("labels", o))
	}
	select {
	case <-released:
		t.Fatal("the mark was released before the labels table committed the labels")
	case <-time.After(200 * time.Millisecond):
	}
	if es := mustManifest(t, filepath.Join(root, LabelsDir)); len(es) != 0 {
		t.Fatalf("the labels table has %d files before any roll, want none", len(es))
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	default:
		t.Fatal("Flush returned with the label mark still held")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := labelSources(t, root); len(got) != labelChunk+10 {
		t.Errorf("the labels table holds %d sources, want %d", len(got), labelChunk+10)
	}
}

// TestLiveLabelsCrashAndRestart: the labels table commits labels whose
// label-plane offsets were never committed, then the lake crashes with
// more labels unwritten. The label plane re-delivers from its committed
// offset, and the data plane joins early labels again: every label is in
// the labels table exactly once, and no mark was released for a label the
// table lost.
func TestLiveLabelsCrashAndRestart(t *testing.T) {
	root := t.TempDir()
	cfg := LiveConfig{Events: Config{Root: root, TimeColumn: "ts", MaxAge: time.Hour}}
	ctx := context.Background()
	l, stop := startLive(t, cfg)
	var marked atomic.Int64
	marked.Store(-1)
	// deliver is the label plane handling labels [from, to) in batches of
	// 50, each batch also joining one early label (source "in", the
	// batch's index), then holding the batch's mark.
	deliver := func(l *Live, from, to int64) {
		for o := from; o < to; o += 50 {
			for k := o; k < o+50; k++ {
				l.AppendLabel(labelRow("labels", k))
			}
			l.AppendLabel(labelRow("in", o/50))
			last := o + 49
			l.Hold(func() { marked.Store(last) })
		}
	}
	deliver(l, 0, 500)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if marked.Load() != 499 {
		t.Fatalf("after a flush the label marks reach %d, want 499", marked.Load())
	}
	kafkaCommitted := marked.Load()
	deliver(l, 500, 750)
	if err := l.Flush(ctx); err != nil { // the lake commits; the label plane crashes before its next commit
		t.Fatal(err)
	}
	deliver(l, 750, 900) // buffered at the crash
	time.Sleep(50 * time.Millisecond)
	l.labels.mu.Lock()
	l.labels.fail(errors.New("simulated crash"))
	l.labels.mu.Unlock()
	if err := stop(); err == nil {
		t.Fatal("the crashed lake's Run reported no error")
	}
	if m := marked.Load(); m != 749 {
		t.Fatalf("at the crash the label marks reach %d, want 749 (the labels table's last commit)", m)
	}
	if got := labelSources(t, root); len(got) != 750+15 {
		t.Fatalf("after the crash the labels table holds %d labels, want the 765 committed", len(got))
	}

	l2, stop2 := startLive(t, cfg)
	deliver(l2, kafkaCommitted+1, 1000)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if want := int64(250 + 5); l2.Skipped() != want {
		t.Errorf("skipped %d re-delivered labels, want %d (labels 500-749, early labels 10-14)", l2.Skipped(), want)
	}
	got := labelSources(t, root)
	for o := range int64(1000) {
		if n := got[SourceOffset{Topic: "labels", Offset: o}]; n != 1 {
			t.Errorf("label of offset %d is in the table %d times", o, n)
		}
	}
	for o := range int64(20) {
		if n := got[SourceOffset{Topic: "in", Offset: o}]; n != 1 {
			t.Errorf("early label of event offset %d is in the table %d times", o, n)
		}
	}
	if len(got) != 1020 {
		t.Errorf("the labels table holds %d sources, want 1020", len(got))
	}
}

// Labels without a source are never taken for ones written already.
func TestLiveLabelsWithoutSourceKept(t *testing.T) {
	root := t.TempDir()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}})
	for range 3 {
		l.AppendLabel(LabelRow{EventID: "e1", Label: 1, At: at(0)})
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if rows := mustManifest(t, filepath.Join(root, LabelsDir)); len(rows) != 1 || rows[0].Rows != 3 {
		t.Errorf("labels table manifest %+v, want one file of the 3 rows", rows)
	}
	if l.Skipped() != 0 {
		t.Errorf("skipped %d labels without a source", l.Skipped())
	}
}

// A part file renamed into place whose manifest line was never appended
// (a crash between the two) is removed when a writer opens the lake; files
// the writer did not name, and the labels table's files, stay.
func TestOrphanFileRemovedOnOpen(t *testing.T) {
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts", CommitTogether: true})
	write(t, w, 0, liveEvents(0, 10))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	committed := manifestBytes(t, root)
	write(t, w, 0, liveEvents(10, 10))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	es := mustManifest(t, root)
	// The crash state: the second group's files renamed into place, its
	// manifest lines not appended.
	writeManifestBytes(t, root, committed)
	orphans := es[2:]
	// Files the writer did not name, in and out of its partition
	// directories, and a labels table's committed file under the root.
	foreign := []string{"date=2024-05-01/hour=13/notes.parquet", "date=2024-05-01/hour=13/part-1.parquet",
		"date=2024-05-01/part-000001-" + "00000000-0000-0000-0000-000000000000.parquet", "other/data.parquet"}
	for _, rel := range foreign {
		writeFile(t, filepath.Join(root, filepath.FromSlash(rel)))
	}
	lw := newWriter(t, Config{Root: filepath.Join(root, LabelsDir), TimeColumn: "ts", CommitTogether: true})
	write(t, lw, 0, liveEvents(0, 4))
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	labelFiles := mustManifest(t, filepath.Join(root, LabelsDir))

	parquet, _ := walkFiles(t, root)
	for _, e := range orphans {
		if !slices.Contains(parquet, e.Path) {
			t.Fatalf("the crash state lacks %s", e.Path)
		}
	}
	w2 := newWriter(t, Config{Root: root, TimeColumn: "ts", CommitTogether: true})
	parquet, _ = walkFiles(t, root)
	for _, e := range orphans {
		if slices.Contains(parquet, e.Path) {
			t.Errorf("the orphan %s is still there", e.Path)
		}
	}
	for _, e := range es[:2] {
		if !slices.Contains(parquet, e.Path) {
			t.Errorf("the committed file %s was removed", e.Path)
		}
	}
	for _, rel := range foreign {
		if !slices.Contains(parquet, rel) {
			t.Errorf("%s, not the writer's, was removed", rel)
		}
	}
	for _, e := range labelFiles {
		if rel := LabelsDir + "/" + e.Path; !slices.Contains(parquet, rel) {
			t.Errorf("the labels table's file %s was removed", rel)
		}
	}
	// The events of the lost group are written again after the restart.
	if o, ok := w2.LastOffset("events", 0); !ok || o != 9 {
		t.Errorf("last offset %d (%v) after the orphans' removal, want 9", o, ok)
	}
	write(t, w2, 0, liveEvents(10, 10))
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if ids := readIDs(t, root, time.Time{}, time.Time{}); len(ids) != 20 {
		t.Errorf("readers see %d rows, want 20", len(ids))
	}
}

// writeFile creates a small file at path, and its directories.
func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not the lake's"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// AppendLabel waits while maxBufferedLabels labels wait for Run, and goes
// on once Run takes them; once Run returned it never waits.
func TestLiveAppendLabelBackpressure(t *testing.T) {
	root := t.TempDir()
	l, err := OpenLive(LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}})
	if err != nil {
		t.Fatal(err)
	}
	for o := range int64(maxBufferedLabels) {
		l.AppendLabel(labelRow("labels", o))
	}
	appended := make(chan struct{})
	go func() {
		l.AppendLabel(labelRow("labels", maxBufferedLabels))
		close(appended)
	}()
	select {
	case <-appended:
		t.Fatal("AppendLabel did not wait with a full buffer and no Run")
	case <-time.After(100 * time.Millisecond):
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	select {
	case <-appended:
	case <-time.After(10 * time.Second):
		t.Fatal("AppendLabel still waits after Run took the buffer")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for o := range int64(maxBufferedLabels + 1) { // Run returned: never waits
		l.AppendLabel(labelRow("late", o))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := labelSources(t, root); len(got) != maxBufferedLabels+1 {
		t.Errorf("the labels table holds %d labels, want the %d appended while Run ran", len(got), maxBufferedLabels+1)
	}
}

// TestLabelBuffersNeverShared: the label buffer AppendLabel fills and the
// spare the next write hands it never share an array, whatever the order
// of writes with and without labels: a write with nothing buffered once
// left them one array, so that AppendLabel wrote into the rows Run was
// writing (label rows with empty ids in the labels table).
func TestLabelBuffersNeverShared(t *testing.T) {
	l, err := OpenLive(LiveConfig{Events: Config{Root: t.TempDir(), TimeColumn: "ts", MaxAge: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	var offset int64
	appendSome := func(n int) {
		for range n {
			l.AppendLabel(LabelRow{EventID: "e", Label: 1, ModelVersion: "7", At: at, Source: SourceOffset{Topic: "labels", Offset: offset}})
			offset++
		}
	}
	shared := func() bool {
		a, b := l.labelBuf[:cap(l.labelBuf)], l.labelSpare[:cap(l.labelSpare)]
		return len(a) > 0 && len(b) > 0 && &a[0] == &b[0]
	}
	for step, n := range []int{3, 4, 0, 5, 0, 0, 6, 2, 0, 1} {
		appendSome(n)
		if err := l.writeBufferedLabels(); err != nil {
			t.Fatal(err)
		}
		if shared() {
			t.Fatalf("after write %d (%d labels) the buffer and the spare share an array", step, n)
		}
	}
}
