package lake

import (
	"context"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// poisonAllocator is a checked Go allocator that overwrites each buffer
// it frees, as a pool that lends the memory again would: a string still
// viewing a released record's buffer reads the poison.
type poisonAllocator struct{ *memory.CheckedAllocator }

func (a poisonAllocator) Free(b []byte) {
	for i := range b {
		b[i] = '#'
	}
	a.CheckedAllocator.Free(b)
}

// writeLabels writes n labels (ids "event-0"…, labels alternating 0 and
// 1) to a live lake's labels table under root; the file holds more rows
// than one record ReadFiles yields.
func writeLabels(t *testing.T, root string, n int) map[string]float32 {
	t.Helper()
	l, stop := startLive(t, LiveConfig{Events: Config{Root: root, TimeColumn: "ts"}})
	want := make(map[string]float32, n)
	for o := range int64(n) {
		id := "event-" + itoa(o)
		want[id] = float32(o % 2)
		l.AppendLabel(LabelRow{EventID: id, Label: want[id], ModelVersion: "v1", At: at(time.Duration(o) * time.Millisecond)})
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return want
}

// TestReadLabelsOwnsItsKeys reads a labels table of 2.5 records with an
// allocator that poisons what the reader frees: the map ReadLabels
// returns, and the ids StoredLabels yields, must still read the ids
// written (they are copies, not views of the released records' buffers),
// and every buffer must be freed.
func TestReadLabelsOwnsItsKeys(t *testing.T) {
	root := t.TempDir()
	want := writeLabels(t, root, 2*readBatchRows+readBatchRows/2)
	mem := poisonAllocator{memory.NewCheckedAllocator(memory.NewGoAllocator())}
	got, err := readLabels(context.Background(), root, mem)
	if err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
	if !maps.Equal(got, want) {
		bad := 0
		for id := range got {
			if _, ok := want[id]; !ok {
				bad++
			}
		}
		t.Fatalf("ReadLabels gave %d labels, %d of them under ids never written (their keys changed when the records were released); want the %d written",
			len(got), bad, len(want))
	}

	var rows []StoredLabel
	for l, err := range storedLabels(context.Background(), filepath.Join(root, LabelsDir), time.Time{}, time.Time{}, mem) {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, l)
	}
	mem.AssertSize(t, 0)
	if len(rows) != len(want) {
		t.Fatalf("%d stored labels, want %d", len(rows), len(want))
	}
	for i, l := range rows {
		if y, ok := want[l.EventID]; !ok || y != l.Label || l.Null || !l.At.Equal(at(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("stored label %d = %+v, want event-%d's (label %v, joined at %v)", i, l, i, want["event-"+itoa(int64(i))], at(time.Duration(i)*time.Millisecond))
		}
	}

	// From the middle of the first record: ReadFiles yields a slice of it.
	const from = readBatchRows / 3
	rows = rows[:0]
	for l, err := range storedLabels(context.Background(), filepath.Join(root, LabelsDir), at(from*time.Millisecond), time.Time{}, mem) {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, l)
	}
	mem.AssertSize(t, 0)
	if len(rows) != len(want)-from || rows[0].EventID != "event-"+itoa(from) || rows[len(rows)-1].EventID != "event-"+itoa(int64(len(want)-1)) {
		t.Fatalf("%d stored labels joined from %v, %q first and %q last; want %d, event-%d to event-%d",
			len(rows), at(from*time.Millisecond), rows[0].EventID, rows[len(rows)-1].EventID, len(want)-from, from, len(want)-1)
	}
}
