package stages

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// The batched write (writeAggregates) stores the same strings as one
// go-redis HSET per entity did (floats formatted 'f', -1), sets the TTL
// only where asked, and writes every entity of a write larger than one
// script call (scriptChunkRows).
func TestAggregatesWriteFormatAndChunks(t *testing.T) {
	r, rdb := startRedis(t)
	ctx := context.Background()
	w := &aggWrite{ttl: 90 * time.Minute}
	const n = 2*scriptChunkRows + 7
	want := make([]entityAgg, n)
	for i := range n {
		want[i] = entityAgg{n: float64(i + 1), mean: 0.1 + 0.2*float64(i) + 1e-17*float64(i), last: 1733380000.125 + float64(i)/3}
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
		for field, x := range map[string]float64{"n": want[i].n, "mean": want[i].mean, "last": want[i].last} {
			if got := r.Mini.HGet(key, field); got != goRedis(x) {
				t.Fatalf("%s %s = %q, want %q", key, field, got, goRedis(x))
			}
		}
		ttl := r.Mini.TTL(key)
		if i%2 == 0 && ttl != 90*time.Minute {
			t.Fatalf("%s TTL %v, want 90m (refreshed)", key, ttl)
		}
		if i%2 == 1 && ttl != 0 {
			t.Fatalf("%s TTL %v, want none (not refreshed)", key, ttl)
		}
	}
	// A retry writes the same absolute values.
	if err := w.flush(ctx, rdb, &scriptCall{script: writeAggregates}); err != nil {
		t.Fatal(err)
	}
	if got := r.Mini.HGet("t:entity:0", "n"); got != "1" {
		t.Fatalf("n after a retried write %q, want 1", got)
	}
}
