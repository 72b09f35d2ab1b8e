package stages

import (
	"math"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// TestReplayFeaturizeMatchesFeaturize featurizes the same batches with
// the live stage (entity aggregates in Redis under a fresh prefix) and
// with ReplayFeaturize (in process): the blocks are equal bit for bit,
// NaNs included, over int and bool categoricals, nulls, text tokens and
// entities seen again across batches.
func TestReplayFeaturizeMatchesFeaturize(t *testing.T) {
	spec := parseTestSpec(t, true, map[string]string{
		"    categorical: [country, device, channel]": "    categorical: [country, device, channel, n, flag]",
		"  featurize:": "  text:\n    tokens: [{field: email, max_tokens: 3}]\n  featurize:",
	})
	_, rdb := startRedis(t)
	live, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	replay, err := NewReplayFeaturize(spec)
	if err != nil {
		t.Fatal(err)
	}
	if replay.NumDense() != live.NumDense() || replay.NumHashed() != live.NumHashed() {
		t.Fatalf("layout %d dense, %d hashed; the live stage's %d, %d", replay.NumDense(), replay.NumHashed(), live.NumDense(), live.NumHashed())
	}
	_, rows := genEvents(t, 5, 1200, 40)
	// Rows with nulls and a rejected one, mid-stream.
	extra := [][]byte{
		row(map[string]string{"n": "null", "flag": "null", "email": "null"}),
		[]byte("not json"),
		row(map[string]string{"n": "7", "flag": "true", "email": `"Ann Lee <ann@example.com>"`}),
	}
	rows = append(rows[:600], append(extra, rows[600:]...)...)
	prep := []pipeline.Stage{NewDecode(spec), NewValidate(spec)}
	var compared int
	for start := 0; start < len(rows); start += 250 {
		part := rows[start:min(start+250, len(rows))]
		a, b := newBatch(int64(start), part...), newBatch(int64(start), part...)
		for i := range a.Messages { // time moves on between rows and batches
			ts := time.Date(2025, 1, 1, 0, 0, start+i, 0, time.UTC)
			a.Messages[i].Timestamp, b.Messages[i].Timestamp = ts, ts
		}
		mustProcess(t, a, append(prep, live)...)
		mustProcess(t, b, append(prep, replay)...)
		fa, fb := &a.Features, &b.Features
		if !equalInts(fa.Row, fb.Row) || fa.NumDense != fb.NumDense || fa.NumHashed != fb.NumHashed {
			t.Fatalf("batch at %d: rows %v (%d, %d), live %v (%d, %d)", start, fb.Row, fb.NumDense, fb.NumHashed, fa.Row, fa.NumDense, fa.NumHashed)
		}
		if len(fa.Dense) != len(fb.Dense) || len(fa.Hashed) != len(fb.Hashed) {
			t.Fatalf("batch at %d: %d dense and %d hashed values, live %d and %d", start, len(fb.Dense), len(fb.Hashed), len(fa.Dense), len(fa.Hashed))
		}
		for k := range fa.Dense {
			if math.Float32bits(fa.Dense[k]) != math.Float32bits(fb.Dense[k]) {
				t.Fatalf("batch at %d: dense value %d (row %d, column %d) = %v, live %v", start, k, k/fa.NumDense, k%fa.NumDense, fb.Dense[k], fa.Dense[k])
			}
		}
		if !equalInt32s(fa.Hashed, fb.Hashed) {
			t.Fatalf("batch at %d: hashed %v…, live %v…", start, fb.Hashed[:fb.NumHashed], fa.Hashed[:fa.NumHashed])
		}
		compared += fa.Len()
	}
	if compared < 1200 {
		t.Fatalf("compared %d rows, want every valid one of 1,202", compared)
	}
	if n := len(replay.aggs); n < 40 || n > 41 {
		t.Errorf("%d entities in process, want the 40 generated users and the hand-written rows' one", n)
	}
}

// TestScoreBatchMatchesScore scores the same features with Score.Process
// and ScoreBatch: the same scores, and no prediction records.
func TestScoreBatchMatchesScore(t *testing.T) {
	spec := testSpec(t, false)
	fz, err := NewFeaturize(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rows := genEvents(t, 9, 300, 10)
	a, b := newBatch(0, rows...), newBatch(0, rows...)
	mustProcess(t, a, NewDecode(spec), NewValidate(spec), fz)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz)
	l, err := NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	rowsA := FeatureRows(&a.Features)
	y := make([]float32, rowsA.N)
	for j := range y {
		if a.Features.Dense[j*a.Features.NumDense] > 5 {
			y[j] = 1
		}
	}
	if err := l.Learn(&rowsA, y); err != nil {
		t.Fatal(err)
	}
	m := NewServedModel("m", "1", ArmChampion, l)
	mustProcess(t, a, NewScore(spec, m, "k"))
	if err := ScoreBatch(b, m); err != nil {
		t.Fatal(err)
	}
	if len(b.Outputs) != 0 || len(b.Scores) != len(a.Scores) || len(a.Scores) != b.Features.Len() {
		t.Fatalf("%d scores and %d outputs, Score's %d scores", len(b.Scores), len(b.Outputs), len(a.Scores))
	}
	for j := range a.Scores {
		if math.Float32bits(a.Scores[j]) != math.Float32bits(b.Scores[j]) {
			t.Fatalf("score %d = %v, Score's %v", j, b.Scores[j], a.Scores[j])
		}
	}
	if a.Scores[0] == a.Scores[1] && a.Scores[1] == a.Scores[2] {
		t.Errorf("scores %v: the trained model scores rows alike", a.Scores[:3])
	}
}
