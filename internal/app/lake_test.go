package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// lakeRows reads a lake table: each row's (partition, offset) and event
// id column, in order.
type lakeRow struct {
	partition int32
	offset    int64
	id        string
}

func readLake(t *testing.T, root, idCol string) []lakeRow {
	t.Helper()
	var out []lakeRow
	for rec, err := range lake.ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		s := rec.Schema()
		parts := rec.Column(s.FieldIndices(lake.ColSourcePartition)[0]).(*array.Int32)
		offs := rec.Column(s.FieldIndices(lake.ColSourceOffset)[0]).(*array.Int64)
		ids := rec.Column(s.FieldIndices(idCol)[0]).(*array.String)
		for i := range int(rec.NumRows()) {
			out = append(out, lakeRow{parts.Value(i), offs.Value(i), ids.Value(i)})
		}
	}
	return out
}

// runLakeOnce runs spec until every event fed and every label written is
// processed, then stops it cleanly. It feeds events from the stream seed
// and labels for every valid one.
func runLakeOnce(t *testing.T, spec *pipeline.Spec, broker *kafkatest.Broker, seed uint64, events int) (out int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startFedApp(t, ctx, spec, broker)
	defer a.Close()
	stream := streams.Config{Concept: streams.ConceptSEA, Seed: seed}
	var stats feed.Stats
	load := feed.Config{Topic: spec.Topics.Input, Events: int64(events), Rate: 5000, MalformedRate: 0.01, DuplicateRate: 0.01, Stream: stream}
	if err := feed.Produce(ctx, a.feed, load, &stats); err != nil {
		t.Fatal(err)
	}
	gen, err := streams.NewGenerator(stream)
	if err != nil {
		t.Fatal(err)
	}
	var ev streams.Event
	labels := stats.Valid.Load() + stats.Malformed.Load()
	for range labels {
		gen.Next(&ev)
		a.feed.Produce(ctx, pipeline.OutRecord{Topic: spec.Topics.Labels, Value: streams.AppendLabelJSON(nil, &ev)}, func(_ kafka.Produced, err error) {
			if err != nil {
				t.Errorf("produce a label: %v", err)
			}
		})
	}
	if err := a.feed.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	done := func() int64 { t := a.Totals(); return t.Out + t.DLQ + t.Duplicates }
	waitFor(t, a.runErr, time.Minute, "every event and label processed", func() bool {
		ls, _ := a.Labels()
		return done() >= stats.Rows.Load() && ls.Counts.Processed >= labels
	})
	if err := a.Stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return a.Totals().Out
}

// TestRunWritesTheLake runs the demo's pipeline with a lake block on kfake
// and miniredis, twice (a restart in between): the lake holds every
// predicted event once, each at an offset the group committed, and the
// joined labels, by event id.
func TestRunWritesTheLake(t *testing.T) {
	broker := kafkatest.StartKfake(t, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(t)
	spec := outageSpec(t, broker, mr.Addr)
	dir := t.TempDir()
	spec.Lake = &pipeline.LakeSpec{Dir: dir, Compression: "zstd", Roll: pipeline.LakeRollSpec{MaxBytes: 1 << 20, MaxAge: pipeline.Duration(300 * time.Millisecond)}}

	out := runLakeOnce(t, spec, broker, 31, 3000)
	out += runLakeOnce(t, spec, broker, 32, 2000)

	events := readLake(t, dir, spec.Schema.IDField)
	if int64(len(events)) != out {
		t.Errorf("the lake holds %d events, want the %d predicted", len(events), out)
	}
	adm := kadm.NewClient(broker.Client(t))
	committed, err := adm.FetchOffsets(context.Background(), spec.Kafka.Group)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int64]bool{}
	ids := map[string]bool{}
	for _, r := range events {
		k := [2]int64{int64(r.partition), r.offset}
		if seen[k] {
			t.Fatalf("partition %d offset %d is in the lake twice", r.partition, r.offset)
		}
		seen[k] = true
		ids[r.id] = true
		c, ok := committed.Lookup(spec.Topics.Input, r.partition)
		if !ok || r.offset >= c.At {
			t.Fatalf("partition %d offset %d is in the lake, but the group committed only up to %d", r.partition, r.offset, c.At)
		}
	}
	labels := readLake(t, filepath.Join(dir, lake.LabelsDir), lake.ColEventID)
	if len(labels) < int(out)/2 {
		t.Fatalf("the labels table holds %d labels for %d events, want most of them", len(labels), out)
	}
	for _, l := range labels {
		if !ids[l.id] {
			t.Fatalf("label for %q, an event the lake does not hold", l.id)
		}
	}
	t.Logf("%d events, %d labels in the lake", len(events), len(labels))

	// A backtest of the lake joins the labels table.
	rep, err := Backtest(context.Background(), BacktestOptions{ReplayOptions: ReplayOptions{Spec: spec, LakeDir: dir}, Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scored != int64(len(events)) || rep.Labelled != int64(len(labels)) {
		t.Errorf("backtest scored %d rows, %d labelled; want the lake's %d events, %d labelled", rep.Scored, rep.Labelled, len(events), len(labels))
	}

	// rollout.retrain.source lake trains on the lake's events joined to
	// its labels.
	spec.Rollout.Retrain = &pipeline.RetrainSpec{Source: pipeline.RetrainSourceLake, Lookback: pipeline.Duration(1_000_000 * time.Hour)}
	fz, err := stages.NewFeaturize(spec, mr.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewLakeRetrainRows(spec, mr.Client(t), fz.NumDense(), fz.NumHashed(), nil)
	if err != nil {
		t.Fatal(err)
	}
	src.now = func() time.Time { return time.Now().Add(100 * 365 * 24 * time.Hour) }
	n, err := src.CountSince(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	rows, y, lineage, err := src.RowsSince(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := min(len(labels), pipeline.DefaultRetrainWindow)
	if len(y) != want || rows.N != want || n != want || len(rows.Dense) != want*fz.NumDense() {
		t.Fatalf("retrain from the lake: %d rows (%d labels, count %d, %d dense values), want %d joined rows of %d dense features",
			rows.N, len(y), n, len(rows.Dense), want, fz.NumDense())
	}
	var ones int
	for _, v := range y {
		if v == 1 {
			ones++
		} else if v != 0 {
			t.Fatalf("label %v, want 0 or 1", v)
		}
	}
	if ones == 0 || ones == len(y) {
		t.Errorf("%d of %d labels are 1: want both classes", ones, len(y))
	}
	if lineage.Topic != spec.Topics.Input {
		t.Errorf("lineage %+v, want the input topic", lineage)
	}
	checkLakeRetrainWarmup(t, src)
}

// checkLakeRetrainWarmup: a lake retrain from the middle of the lake,
// warmed up over everything before, gives each row the entity features a
// replay of the whole lake gives it; without the warm-up some rows (their
// entities seen before the middle) start empty and differ.
func checkLakeRetrainWarmup(t *testing.T, src *LakeRetrainRows) {
	t.Helper()
	ctx := context.Background()
	whole, err := src.replay(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := rowFeatures(whole)
	mid := time.UnixMilli(whole.at[whole.Len()/2].ms)
	differing := func(warmup time.Duration) (rows, differ int) {
		src.warmup = warmup
		got, err := src.replay(ctx, mid)
		if err != nil {
			t.Fatal(err)
		}
		for p, f := range rowFeatures(got) {
			w, ok := want[p]
			if !ok {
				t.Fatalf("warmup %s: a row at %+v the whole lake's replay does not have", warmup, p)
			}
			if !sameFeatures(f, w) {
				differ++
			}
		}
		return got.Len(), differ
	}
	if rows, differ := differing(time.Hour); rows < whole.Len()/3 || differ != 0 {
		t.Errorf("warmed up: %d of %d rows differ from the whole lake's replay, want 0 (of about half its %d)", differ, rows, whole.Len())
	}
	if rows, differ := differing(0); differ == 0 {
		t.Errorf("no warm-up: all %d rows have the whole lake's features: the check cannot tell a warm replay from a cold one", rows)
	} else {
		t.Logf("lake retrain without a warm-up: %d of %d rows differ from the whole lake's features", differ, rows)
	}
}
