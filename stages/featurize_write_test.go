package stages

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The batched write (writeAggregates) stores the same strings as one
// go-redis HSET per entity did (floats formatted 'f', -1), sets the TTL
// only where asked, and writes every entity of a write larger than one
// script call (scriptChunkRows). On miniredis here; on redis-server in
// TestIntegrationAggregatesWriteFormatAndChunks.
func TestAggregatesWriteFormatAndChunks(t *testing.T) {
	_, rdb := startRedis(t)
	checkAggregatesWrite(t, rdb)
}

func checkAggregatesWrite(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	w := &aggWrite{ttl: 90 * time.Minute}
	const n = 2*scriptChunkRows + 7
	want := make([]entityAgg, n)
	for i := range n {
		want[i] = entityAgg{n: float64(i + 1), mean: 0.1 + 0.2*float64(i) + 1e-17*float64(i), last: 1733380000.125 + float64(i)/3}
		if i%5 == 4 {
			want[i].mean = -want[i].mean * 1e-9
		}
		w.add("t:entity:"+strconv.Itoa(i), &want[i], i%2 == 0)
	}
	if err := w.flush(ctx, rdb, &scriptCall{script: writeAggregates}); err != nil {
		t.Fatal(err)
	}
	if !w.done.Load() {
		t.Fatal("flush did not mark the write done")
	}
	// go-redis's own formatting of a float64 argument.
	goRedis := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	for i := range n {
		key := "t:entity:" + strconv.Itoa(i)
		got, err := rdb.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("%s holds %v, want the fields n, mean and last", key, got)
		}
		for field, x := range map[string]float64{"n": want[i].n, "mean": want[i].mean, "last": want[i].last} {
			if got[field] != goRedis(x) {
				t.Fatalf("%s %s = %q, want %q", key, field, got[field], goRedis(x))
			}
		}
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 && (ttl <= 89*time.Minute || ttl > 90*time.Minute) {
			t.Fatalf("%s TTL %v, want 90m (refreshed)", key, ttl)
		}
		if i%2 == 1 && ttl >= 0 {
			t.Fatalf("%s TTL %v, want none (not refreshed)", key, ttl)
		}
	}
	// A retry writes the same absolute values.
	if err := w.flush(ctx, rdb, &scriptCall{script: writeAggregates}); err != nil {
		t.Fatal(err)
	}
	if got := rdb.HGet(ctx, "t:entity:0", "n").Val(); got != "1" {
		t.Fatalf("n after a retried write %q, want 1", got)
	}
}

// appendCount and appendSeconds write what strconv.AppendFloat(x, 'f',
// -1, 64) writes: on their fast paths (whole counts, unix microseconds
// over 1e6 below 2^32 seconds), at their edges, and on every other value.
func TestAggFloatFormatsMatchStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 3))
	var xs []float64
	for range 200_000 {
		xs = append(xs,
			float64(rng.Int64N(1<<53)),                           // counts, beyond the fast path too
			float64(rng.Int64N(1e6)),                             // small counts
			float64(rng.Int64N(1<<32*1e6))/1e6,                   // event times
			float64(1.7e15+rng.Int64N(1e14))/1e6,                 // this century's
			float64(rng.Int64N(1<<34*1e6))/1e6,                   // past 2^32 s: strconv's
			rng.Float64()*math.Pow(10, float64(rng.IntN(40)-20)), // means
			math.Float64frombits(rng.Uint64()),                   // anything
		)
	}
	for p := 1e0; p < 1<<32; p *= 10 { // around powers of ten, in microseconds
		for d := int64(-3); d <= 3; d++ {
			xs = append(xs, float64(int64(p*1e6)+d)/1e6, p+float64(d))
		}
	}
	xs = append(xs, 0, math.Copysign(0, -1), 1, 1e15-1, 1e15, 1<<32, 1<<32-1e-6, 0.5, 1e-6, 0.999999,
		-1, -1733380000.125, math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64)
	for _, x := range xs {
		want := strconv.AppendFloat(nil, x, 'f', -1, 64)
		if got := appendCount(nil, x); string(got) != string(want) {
			t.Fatalf("appendCount(%v) = %s, strconv %s", x, got, want)
		}
		if got := appendSeconds(nil, x); string(got) != string(want) {
			t.Fatalf("appendSeconds(%v) = %s, strconv %s", x, got, want)
		}
	}
}
