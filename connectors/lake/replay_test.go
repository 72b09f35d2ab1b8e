package lake

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
)

// replayLake writes 5 rows of partition 0 and 3 of partition 1, an hour
// apart from the first ones, with labels on the even offsets.
func replayLake(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	w := newWriter(t, Config{Root: root, TimeColumn: "ts"})
	write := func(p int32, evs []ev) {
		x := extras("in", p, evs)
		for _, e := range evs {
			x.Labels = append(x.Labels, float32(e.offset%3))
			x.LabelValid = append(x.LabelValid, e.offset%2 == 0)
		}
		if err := w.Write(record(evs), x); err != nil {
			t.Fatal(err)
		}
	}
	write(0, []ev{{id: "a0", ts: at(0), offset: 10}, {id: "a1", ts: at(time.Minute), offset: 11}, {id: "a2", ts: at(2 * time.Minute), offset: 12},
		{id: "a3", ts: at(3 * time.Minute), offset: 13}, {id: "a4", ts: at(4 * time.Minute), offset: 14}})
	write(1, []ev{{id: "b0", ts: at(time.Hour), offset: 0}, {id: "b1", ts: at(time.Hour + time.Minute), offset: 1}, {id: "b2", ts: at(time.Hour + 2*time.Minute), offset: 2}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

// replayed is what a ReplaySource gives, batch by batch.
type replayed struct {
	ids, topics []string
	parts       []int32
	offsets     []int64
	times       []time.Time
	labels      []float32
	labelOK     []bool
	sizes       []int
}

func replayAll(t *testing.T, src *ReplaySource, maxRows int) replayed {
	t.Helper()
	var r replayed
	err := src.Batches(context.Background(), maxRows, func(b *pipeline.Batch) error {
		r.sizes = append(r.sizes, b.Len())
		got := b.Record.Schema()
		for i, f := range testSchema.Fields() {
			if got.NumFields() != testSchema.NumFields() || got.Field(i).Name != f.Name || !arrow.TypeEqual(got.Field(i).Type, f.Type) {
				t.Fatalf("batch schema %s, want the schema fields %s", got, testSchema)
			}
		}
		ids := b.Record.Column(0).(*array.String)
		ts := b.Record.Column(1).(*array.Timestamp)
		y, ok := src.Labels()
		if len(y) != b.Len() || len(ok) != b.Len() {
			t.Fatalf("%d labels for %d rows", len(y), b.Len())
		}
		for i, m := range b.Messages {
			if !b.OK(i) || m.Partition != b.Partition || m.Key != nil || m.Value != nil {
				t.Fatalf("row %d: state %d, message %+v in a batch of partition %d", i, b.State[i], m, b.Partition)
			}
			if !m.Timestamp.Equal(ts.Value(i).ToTime(arrow.Microsecond)) {
				t.Fatalf("row %d: timestamp %v, event time %v", i, m.Timestamp, ts.Value(i).ToTime(arrow.Microsecond))
			}
			r.ids, r.topics, r.parts, r.offsets = append(r.ids, ids.Value(i)), append(r.topics, m.Topic), append(r.parts, m.Partition), append(r.offsets, m.Offset)
			r.times, r.labels, r.labelOK = append(r.times, m.Timestamp), append(r.labels, y[i]), append(r.labelOK, ok[i])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReplaySourceRebuildsBatches(t *testing.T) {
	root := replayLake(t)
	src, err := NewReplaySource(root, time.Time{}, time.Time{}, []string{"id", "ts", "amount"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := src.Rows(); err != nil || n != 8 {
		t.Errorf("Rows = %d, %v; want 8", n, err)
	}
	r := replayAll(t, src, 2)
	if got := strings.Join(r.ids, " "); got != "a0 a1 a2 a3 a4 b0 b1 b2" {
		t.Errorf("rows %s, want the lake's order", got)
	}
	// Batches of at most 2 rows that never mix partitions.
	if got, want := r.sizes, []int{2, 2, 1, 2, 1}; !equalInts(got, want) {
		t.Errorf("batch sizes %v, want %v", got, want)
	}
	for i, id := range r.ids {
		wantP, wantOff := int32(0), int64(10+i)
		if id[0] == 'b' {
			wantP, wantOff = 1, int64(i-5)
		}
		if r.topics[i] != "in" || r.parts[i] != wantP || r.offsets[i] != wantOff {
			t.Errorf("%s: source %s/%d/%d, want in/%d/%d", id, r.topics[i], r.parts[i], r.offsets[i], wantP, wantOff)
		}
		if r.labelOK[i] != (wantOff%2 == 0) || r.labelOK[i] && r.labels[i] != float32(wantOff%3) {
			t.Errorf("%s: label %v (%v), want %v (%v)", id, r.labels[i], r.labelOK[i], wantOff%3, wantOff%2 == 0)
		}
	}

	// A time range keeps the rows of its event times.
	src, err = NewReplaySource(root, at(time.Minute), at(time.Hour+time.Minute), []string{"id", "ts", "amount"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(replayAll(t, src, 100).ids, " "); got != "a1 a2 a3 a4 b0" {
		t.Errorf("rows in [1m, 1h1m): %s", got)
	}
	if n, _ := src.Rows(); n != 8 {
		t.Errorf("Rows in a range = %d, want the 8 rows of the files that overlap it", n)
	}
}

func TestReplaySourceErrors(t *testing.T) {
	if _, err := NewReplaySource(t.TempDir(), time.Time{}, time.Time{}, []string{"id"}); err == nil || !strings.Contains(err.Error(), "not a lake") {
		t.Errorf("an empty directory: %v", err)
	}
	src, err := NewReplaySource(replayLake(t), time.Time{}, time.Time{}, []string{"id", "country"})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Batches(context.Background(), 10, func(*pipeline.Batch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "files have no column country") {
		t.Errorf("a schema field the lake lacks: %v", err)
	}
	stop := errors.New("stop")
	src, _ = NewReplaySource(replayLake(t), time.Time{}, time.Time{}, []string{"id"})
	if err := src.Batches(context.Background(), 10, func(*pipeline.Batch) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplayTargetPublishesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	evs := []ev{{id: "x0", ts: at(0), offset: 1, score: 0.25}, {id: "x1", ts: at(time.Second), offset: 2, score: 0.75}}

	// A killed run leaves dir.partial; the next run discards it.
	killed, err := OpenReplayTarget(dir, "run1", "ts")
	if err != nil {
		t.Fatal(err)
	}
	if err := killed.WriteBatch(batch("in", 0, evs[:1]), "v9"); err != nil {
		t.Fatal(err)
	}
	if err := killed.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".partial"); err != nil {
		t.Fatalf("no partial directory after a killed run: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the target exists after a killed run: %v", err)
	}

	tg, err := OpenReplayTarget(dir, "run1", "ts")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.WriteBatch(batch("in", 0, evs), "v9"); err != nil {
		t.Fatal(err)
	}
	m := ReplayMarker{Run: "run1", Model: "m", Version: "v9", Inputs: 2, Rows: 2, Finished: "2026-01-01T00:00:00Z"}
	if err := tg.Publish(m); err != nil {
		t.Fatal(err)
	}
	if err := tg.Close(); err != nil {
		t.Errorf("Close after Publish: %v", err)
	}
	if _, err := os.Stat(dir + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial directory left behind: %v", err)
	}
	if got := strings.Join(readIDs(t, dir, time.Time{}, time.Time{}), " "); got != "x0 x1" {
		t.Errorf("published rows %q, want x0 x1 (not the killed run's)", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, ReplayMarkerName))
	if err != nil {
		t.Fatal(err)
	}
	var got ReplayMarker
	if err := json.Unmarshal(data, &got); err != nil || got != m {
		t.Errorf("marker %+v, %v; want %+v", got, err, m)
	}

	// The same run finds it done; another run is refused.
	if _, err := OpenReplayTarget(dir, "run1", "ts"); !errors.Is(err, ErrReplayDone) {
		t.Errorf("the same run again: %v, want ErrReplayDone", err)
	}
	if _, err := OpenReplayTarget(dir, "run2", "ts"); err == nil || !strings.Contains(err.Error(), "holds the output of another run (run1)") {
		t.Errorf("another run: %v", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReplayTarget(other, "run1", "ts"); err == nil || !strings.Contains(err.Error(), "exists and is not empty") {
		t.Errorf("a directory with other files: %v", err)
	}
}
