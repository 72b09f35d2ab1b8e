package stages

import (
	"math"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

func TestFeaturizeLayout(t *testing.T) {
	spec := testSpec(t, false)
	fz, err := NewFeaturize(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fz.NumDense() != 12 || fz.NumHashed() != 3 {
		t.Fatalf("layout %d dense, %d hashed; want 12, 3", fz.NumDense(), fz.NumHashed())
	}
	b := newBatch(0,
		row(map[string]string{"n": "42", "flag": "true"}),
		[]byte("bad"),
		row(map[string]string{"country": `"GB"`, "flag": "false", "n": ""}), // n absent: NaN
		row(map[string]string{"country": `"ZZ"`}),                           // rejected by validate
		row(map[string]string{"f3": "-1e3", "n": "null", "flag": "null"}),
	)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz)
	fb := &b.Features
	if fb.NumDense != 12 || fb.NumHashed != 3 || fb.Len() != 3 {
		t.Fatalf("block %d×(%d, %d)", fb.Len(), fb.NumDense, fb.NumHashed)
	}
	if want := []int{0, 2, 4}; !equalInts(fb.Row, want) {
		t.Fatalf("rows %v, want %v", fb.Row, want)
	}
	if len(fb.Dense) != 36 || len(fb.Hashed) != 9 {
		t.Fatalf("dense %d hashed %d values", len(fb.Dense), len(fb.Hashed))
	}
	dense := func(j int) []float32 { return fb.Dense[j*12 : (j+1)*12] }
	for k := range 10 {
		if got, want := dense(0)[k], float32(k)+0.25; got != want {
			t.Errorf("row 0 f%d = %v, want %v", k, got, want)
		}
	}
	if d := dense(0); d[10] != 42 || d[11] != 1 {
		t.Errorf("row 0 n, flag = %v, %v; want 42, 1", d[10], d[11])
	}
	if d := dense(1); !math.IsNaN(float64(d[10])) || d[11] != 0 {
		t.Errorf("row 1 n, flag = %v, %v; want NaN, 0", d[10], d[11])
	}
	if d := dense(2); d[3] != -1000 || !math.IsNaN(float64(d[10])) || !math.IsNaN(float64(d[11])) {
		t.Errorf("row 2 f3, n, flag = %v, %v, %v; want -1000, NaN, NaN", d[3], d[10], d[11])
	}
	h := func(j int) []int32 { return fb.Hashed[j*3 : (j+1)*3] }
	for j := range 3 {
		for k, x := range h(j) {
			if x < 0 || x >= 1<<16 {
				t.Errorf("row %d hash %d = %d, out of [0, 2^16)", j, k, x)
			}
		}
	}
	if h(0)[0] == h(1)[0] {
		t.Errorf("DE and GB hash alike: %d", h(0)[0])
	}
	if h(0)[1] != h(1)[1] || h(0)[2] != h(1)[2] {
		t.Errorf("equal device/channel hash differently: %v %v", h(0), h(1))
	}
	// Deterministic across stages and batches; the field position is part
	// of the hash, so equal strings in two fields hash apart.
	fz2, _ := NewFeaturize(spec, nil)
	b2 := newBatch(9, row(map[string]string{"n": "1"}))
	mustProcess(t, b2, NewDecode(spec), NewValidate(spec), fz2)
	if !equalInt32s(b2.Features.Hashed, h(0)) {
		t.Errorf("hashes %v in a new stage, want %v", b2.Features.Hashed, h(0))
	}
	if fz.hashValue(b.Record.Column(spec.FieldIndex("channel")), 0, 0) == fz.hashValue(b.Record.Column(spec.FieldIndex("channel")), 0, 2) {
		t.Error("field position does not enter the hash")
	}
}

func TestFeaturizeNullCategorical(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{
		"{name: device, type: string, required: true, enum: [ios, android, web]}": "{name: device, type: string, enum: [ios, android, web]}",
		"hash_bits: 16": "hash_bits: 1",
	})
	fz, _ := NewFeaturize(spec, nil)
	var rows [][]byte
	for _, c := range []string{"US", "GB", "DE", "FR", "IN", "BR", "JP", "CA"} {
		rows = append(rows, row(map[string]string{"country": `"` + c + `"`, "device": "null"}))
	}
	b := newBatch(0, rows...)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz)
	if b.Features.Len() != len(rows) {
		t.Fatalf("%d feature rows", b.Features.Len())
	}
	for j := range rows {
		h := b.Features.Hashed[j*3 : (j+1)*3]
		if h[1] != -1 {
			t.Errorf("row %d: null device hashed to %d, want -1", j, h[1])
		}
		if h[0] < 0 || h[0] > 1 || h[2] < 0 || h[2] > 1 {
			t.Errorf("row %d: hashes %v outside [0, 2)", j, h)
		}
	}
}

func TestFeaturizeEntityAggregates(t *testing.T) {
	spec := testSpec(t, true)
	off := 0
	spec.Stages.Featurize.Entity.LocalCache = &off // Redis is read every batch, so its TTL shows
	r, rdb := startRedis(t)
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFeaturize(spec, nil); err == nil {
		t.Error("entity aggregates without redis: no error")
	}
	if fz.NumDense() != 15 {
		t.Fatalf("NumDense %d, want 12+3", fz.NumDense())
	}
	ev := func(user, ts, f0 string) []byte {
		return row(map[string]string{"user_id": `"` + user + `"`, "ts": `"` + ts + `"`, "f0": f0})
	}
	d, v := NewDecode(spec), NewValidate(spec)
	agg := func(b []float32, j int) (n, mean, since float32) {
		row := b[j*15+12 : (j+1)*15]
		return row[0], row[1], row[2]
	}
	// Batch 1: alice twice, bob once.
	b1 := newBatch(0,
		ev("alice", "2025-01-01T00:00:00Z", "2"),
		ev("bob", "2025-01-01T00:00:05Z", "10"),
		ev("alice", "2025-01-01T00:00:10Z", "4"),
	)
	mustProcess(t, b1, d, v, fz)
	n, mean, since := agg(b1.Features.Dense, 0)
	if n != 0 || !math.IsNaN(float64(mean)) || !math.IsNaN(float64(since)) {
		t.Errorf("alice's first event: %v %v %v, want 0 NaN NaN", n, mean, since)
	}
	if n, mean, since = agg(b1.Features.Dense, 2); n != 1 || mean != 2 || since != 10 {
		t.Errorf("alice's second event: %v %v %v, want 1 2 10", n, mean, since)
	}
	// Batch 2, read back from Redis: alice has 2 events, mean 3, last at :10.
	b2 := newBatch(3, ev("alice", "2025-01-01T00:01:10Z", "9"), ev("bob", "2025-01-01T00:00:06Z", "0"), ev("carol", "2025-01-01T00:00:00Z", "1"))
	mustProcess(t, b2, d, v, fz)
	if n, mean, since = agg(b2.Features.Dense, 0); n != 2 || mean != 3 || since != 60 {
		t.Errorf("alice in batch 2: %v %v %v, want 2 3 60", n, mean, since)
	}
	if n, mean, since = agg(b2.Features.Dense, 1); n != 1 || mean != 10 || since != 1 {
		t.Errorf("bob in batch 2: %v %v %v, want 1 10 1", n, mean, since)
	}
	key := spec.Redis.KeyPrefix + "entity:alice"
	if got := r.Mini.HGet(key, "n"); got != "3" {
		t.Errorf("alice n in redis = %q, want 3", got)
	}
	if got := r.Mini.HGet(key, "mean"); got != "5" {
		t.Errorf("alice mean in redis = %q, want 5", got)
	}
	if ttl := r.Mini.TTL(key); ttl != 2*time.Hour {
		t.Errorf("entity TTL %v, want 2h", ttl)
	}
	// Out-of-order event: time since last is never negative.
	b3 := newBatch(6, ev("alice", "2025-01-01T00:00:00Z", "1"))
	mustProcess(t, b3, d, v, fz)
	if _, _, since = agg(b3.Features.Dense, 0); since != 0 {
		t.Errorf("out-of-order since = %v, want 0", since)
	}
	// After the TTL, an entity starts again.
	r.Mini.FastForward(2*time.Hour + time.Second)
	b4 := newBatch(7, ev("alice", "2025-01-01T05:00:00Z", "1"))
	mustProcess(t, b4, d, v, fz)
	if n, _, _ = agg(b4.Features.Dense, 0); n != 0 {
		t.Errorf("after TTL n = %v, want 0", n)
	}
	// Redis down: the batch fails, not a row.
	r.Mini.Close()
	b5 := newBatch(8, ev("alice", "2025-01-01T05:00:01Z", "1"))
	mustProcess(t, b5, d, v)
	if err := fz.Process(t.Context(), b5); err == nil {
		t.Error("redis down: no error")
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

func equalInt32s(a, b []int32) bool {
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

// TestFeaturizeEntityLocalCache checks that a cached entity is not read back
// from Redis (this partition loop is its one writer), and that the cache
// entry lapses with the TTL it set on the Redis key.
func TestFeaturizeEntityLocalCache(t *testing.T) {
	spec := testSpec(t, true)
	r, rdb := startRedis(t)
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fz.now = func() time.Time { return clock }
	d, v := NewDecode(spec), NewValidate(spec)
	ev := func(ts string) []byte {
		return row(map[string]string{"user_id": `"alice"`, "ts": `"` + ts + `"`, "f0": "1"})
	}
	count := func(b *pipeline.Batch) float32 { return b.Features.Dense[12] }
	mustProcess(t, newBatch(0, ev("2025-01-01T00:00:00Z")), d, v, fz)
	key := spec.Redis.KeyPrefix + "entity:alice"
	// Someone else's write is not read back while the cache entry lives.
	r.Mini.HSet(key, "n", "100")
	b := newBatch(1, ev("2025-01-01T00:00:01Z"))
	mustProcess(t, b, d, v, fz)
	if got := count(b); got != 1 {
		t.Fatalf("cached count %v, want 1 (from the local cache)", got)
	}
	if got := r.Mini.HGet(key, "n"); got != "2" {
		t.Fatalf("redis n = %q, want the cache's 2 written through", got)
	}
	// Past the TTL the entry is read from Redis again.
	r.Mini.HSet(key, "n", "100")
	clock = clock.Add(spec.Stages.Featurize.Entity.TTL.D() + time.Second)
	b = newBatch(2, ev("2025-01-01T00:00:02Z"))
	mustProcess(t, b, d, v, fz)
	if got := count(b); got != 100 {
		t.Fatalf("count after the TTL %v, want 100 read from redis", got)
	}
}
