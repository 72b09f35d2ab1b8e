//go:build integration

package stages

import (
	"slices"
	"strconv"
	"testing"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationDedupeOnRedisServer runs the dedupe script on a real
// redis-server (the unit tests use miniredis's Lua): a batch of three
// calls with ids repeated within a call and across calls keeps each id's
// first row; redelivered at the same offsets through a fresh Dedupe (its
// filter empty, so Redis answers every row) it keeps the same rows, its
// own keys answered as redeliveries; at later offsets every row is a
// duplicate; and the keys hold the first rows' source positions with the
// TTL.
func TestIntegrationDedupeOnRedisServer(t *testing.T) {
	rdb := redistest.StartRedis(t).Client(t)
	spec := testSpec(t, false)
	dec, val := NewDecode(spec), NewValidate(spec)
	const n = 2*scriptChunkRows + 100
	repeats := map[int]int{3: 1, 700: 5, n - 1: scriptChunkRows + 2, 900: 899}
	var first []pipeline.RowState
	for _, run := range []struct {
		name string
		base int64
	}{{"first", 0}, {"redelivered", 0}, {"later", 5000}} {
		b := idsBatch("ev", n, run.base, repeats)
		mustProcess(t, b, dec, val, NewDedupe(spec, rdb))
		switch run.name {
		case "first":
			for i := range n {
				_, later := repeats[i]
				if b.OK(i) == later {
					t.Fatalf("row %d: live %v, want %v", i, b.OK(i), !later)
				}
			}
			first = slices.Clone(b.State)
		case "redelivered":
			if !slices.Equal(b.State, first) {
				t.Fatalf("redelivered batch: states %v, want the first run's %v", b.State, first)
			}
		case "later":
			if got := countDuplicates(b); got != n {
				t.Fatalf("the same ids at later offsets: %d duplicates, want %d", got, n)
			}
		}
	}
	// ev5 is in the bucket of now (or of the previous one, had a bucket
	// just begun), with its first row's position, expiring within three times
	// the TTL.
	now, err := rdb.Time(t.Context()).Result()
	must(t, err)
	ttl := spec.Stages.Dedupe.TTL.D()
	bucketNow := now.UnixMilli() / ttl.Milliseconds()
	for _, bucket := range []int64{bucketNow, bucketNow - 1} {
		key := spec.Redis.Prefix() + "dedupe-bucket:" + strconv.FormatInt(bucket, 10)
		got, err := rdb.HGet(t.Context(), key, "ev5").Result()
		if err != nil {
			continue
		}
		if got != "events/3/5" {
			t.Errorf("%s ev5 = %q; want the first row's position events/3/5", key, got)
		}
		if pttl, err := rdb.PTTL(t.Context(), key).Result(); err != nil || pttl <= 0 || pttl > 3*ttl {
			t.Errorf("%s TTL %v, %v; want in (0, %v]", key, pttl, err, 3*ttl)
		}
		return
	}
	t.Errorf("no bucket of %d or %d holds ev5", bucketNow, bucketNow-1)
}
