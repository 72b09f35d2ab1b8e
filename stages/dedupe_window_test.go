package stages

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// redisClock moves a miniredis's clock (its TIME, which picks dedupe's
// bucket) and its keys' TTLs together. It starts 10 s before an hour
// begins (the unit spec's TTL is 1 h), so a test crosses a bucket
// boundary soon.
type redisClock struct {
	r   *redistest.Redis
	now time.Time
}

func newRedisClock(r *redistest.Redis) *redisClock {
	c := &redisClock{r: r, now: time.Unix(1_764_000_000, 0).Truncate(time.Hour).Add(-10 * time.Second)}
	r.Mini.SetTime(c.now)
	return c
}

func (c *redisClock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	c.r.Mini.SetTime(c.now)
	c.r.Mini.FastForward(d)
}

// sinceBucket is how long ago the current bucket of a TTL began.
func (c *redisClock) sinceBucket(ttl time.Duration) time.Duration {
	return time.Duration(c.now.UnixMilli()%ttl.Milliseconds()) * time.Millisecond
}

// bucketKey is the name of the bucket delta buckets after the current one
// (delta -1: the previous one).
func (c *redisClock) bucketKey(spec *pipeline.Spec, delta int64) string {
	n := c.now.UnixMilli()/spec.Stages.Dedupe.TTL.D().Milliseconds() + delta
	return spec.Redis.Prefix() + "dedupe-bucket:" + strconv.FormatInt(n, 10)
}

// countDedupeIDs counts the ids that rdb's successful setIfNew calls asked
// Redis about.
func countDedupeIDs(rdb redis.UniversalClient) *int64 {
	h := &dedupeIDCounter{}
	rdb.AddHook(h)
	return &h.ids
}

type dedupeIDCounter struct{ ids int64 }

func (*dedupeIDCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (*dedupeIDCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *dedupeIDCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		args := cmd.Args()
		// evalsha|eval, sha|source, 1, buckets, ttl, pos, offsets, ids...
		if err == nil && len(args) > 7 && (args[1] == setIfNew.Hash() || cmd.Name() == "eval" && args[2] == 1) {
			atomic.AddInt64(&h.ids, int64(len(args)-7))
		}
		return err
	}
}

// TestDedupeWindow: an id is remembered for at least the TTL and at most
// twice it. An id seen 10 s before a bucket ends is a duplicate 20 s later
// (the next bucket reads the previous one) and until the TTL has passed,
// and forgotten once the next bucket ends; an id seen 10 s after a bucket
// begins is a duplicate 1 s before the next bucket ends (1 h 59 m 49 s
// later) and forgotten 2 s later. Each step runs through a fresh Dedupe, so that Redis, not the
// in-process filter, answers.
func TestDedupeWindow(t *testing.T) {
	spec := testSpec(t, false)
	ttl := spec.Stages.Dedupe.TTL.D()
	r, rdb := startRedis(t)
	clock := newRedisClock(r)
	dec, val := NewDecode(spec), NewValidate(spec)
	offset := int64(0)
	seen := func(id string) bool {
		t.Helper()
		b := batchOf(0, offset, id)
		offset++
		mustProcess(t, b, dec, val, NewDedupe(spec, rdb))
		return !b.OK(0)
	}
	step := func(d time.Duration, id string, want bool, why string) {
		t.Helper()
		clock.advance(d)
		if got := seen(id); got != want {
			t.Fatalf("%s (at %v, %v into its bucket): duplicate %v, want %v", why, clock.now.UTC(), clock.sinceBucket(ttl), got, want)
		}
	}
	if seen("late") { // 10 s before the bucket ends
		t.Fatal("a new id was a duplicate")
	}
	step(20*time.Second, "late", true, "10 s into the next bucket")
	if got := r.Mini.HGet(clock.bucketKey(spec, 0), "late"); got != "" {
		t.Errorf("a duplicate was written to the current bucket: %q", got)
	}
	step(0, "early", false, "a new id")
	step(ttl-20*time.Second-time.Second, "late", true, "1 s short of the TTL")
	step(20*time.Second, "late", false, "the next bucket, its previous one past") // 1h19s later
	step(0, "early", true, "the id of the previous bucket's start")
	step(ttl-10*time.Second, "early", true, "just under twice the TTL") // 1 s before its bucket's next ends
	step(2*time.Second, "early", false, "once the next bucket ended")
	if keys := r.Mini.Keys(); len(keys) > 2 {
		t.Errorf("buckets left: %v, want at most the current one and the previous", keys)
	}
}

// TestDedupeRedeliveredAcrossABucketBoundary: a batch of three chunks
// (repeats within and across chunks) seen just before a bucket ends and
// redelivered at the same offsets just after, through a fresh Dedupe,
// keeps the same rows; at later offsets every row is a duplicate.
func TestDedupeRedeliveredAcrossABucketBoundary(t *testing.T) {
	for _, recent := range []int{0, 64} {
		t.Run("recent_ids="+strconv.Itoa(recent), func(t *testing.T) {
			spec := withRecentIDs(t, recent)
			r, rdb := startRedis(t)
			clock := newRedisClock(r)
			dec, val := NewDecode(spec), NewValidate(spec)
			const n = 2*scriptChunkRows + 100
			repeats := map[int]int{3: 1, 700: 5, n - 1: scriptChunkRows + 2, 900: 899}
			first := idsBatch("ev", n, 0, repeats)
			mustProcess(t, first, dec, val, NewDedupe(spec, rdb))
			if got := countDuplicates(first); got != len(repeats) {
				t.Fatalf("first run: %d duplicates, want %d", got, len(repeats))
			}
			clock.advance(20 * time.Second)
			again := idsBatch("ev", n, 0, repeats)
			mustProcess(t, again, dec, val, NewDedupe(spec, rdb))
			if !slices.Equal(again.State, first.State) {
				t.Fatalf("redelivered in the next bucket: states differ from the first run's")
			}
			later := idsBatch("ev", n, n, repeats)
			mustProcess(t, later, dec, val, NewDedupe(spec, rdb))
			if got := countDuplicates(later); got != n {
				t.Fatalf("the same ids at later offsets in the next bucket: %d duplicates, want %d", got, n)
			}
		})
	}
}
