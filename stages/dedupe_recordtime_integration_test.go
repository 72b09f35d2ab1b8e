//go:build integration

package stages

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationDedupeRecordTimeOnRedisServer runs the record-time script
// (a replay's dedupe) on a real redis-server with a 200 ms TTL: a repeat
// stamped 10 ms after its original is dropped after 500 ms of real time
// (Redis's clock past twice the window); two rows of an id stamped two
// buckets apart are both kept though processed together; a batch of three
// calls across a bucket boundary keeps each id's first row; a bucket
// named after last year lives its expiry (an hour) after the write; and
// once a bucket it wrote is deleted, the stage fails.
func TestIntegrationDedupeRecordTimeOnRedisServer(t *testing.T) {
	rdb := redistest.StartRedis(t).Client(t)
	spec := parseTestSpec(t, false, map[string]string{"dedupe: {ttl: 1h}": "dedupe: {ttl: 200ms, recent_ids: 0}"})
	dec, val, dd := NewDecode(spec), NewValidate(spec), recordTimeDedupe(spec, rdb)
	mustProcess(t, stamped(0, at(recordTimeT0.Add(10*time.Millisecond)), "a", "b"), dec, val, dd)
	key := recordBucketKey(spec, recordTimeT0)
	if ttl := rdb.PTTL(t.Context(), key).Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("bucket %s of last year: PTTL %v, want about %v", key, ttl, recordTimeExpiry(200*time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	again := stamped(2, at(recordTimeT0.Add(20*time.Millisecond)), "a", "c")
	mustProcess(t, again, dec, val, dd)
	if want := []pipeline.RowState{pipeline.RowDuplicate, pipeline.RowOK}; !slices.Equal(again.State, want) {
		t.Fatalf("after 500 ms of Redis time: states %v, want %v", again.State, want)
	}
	far := stamped(4, func(i int) time.Time { return recordTimeT0.Add(time.Second + time.Duration(i)*400*time.Millisecond) }, "x", "x")
	mustProcess(t, far, dec, val, dd)
	if !far.OK(0) || !far.OK(1) {
		t.Fatalf("an id stamped 400 ms apart (two buckets): states %v, want both kept", far.State)
	}

	const n = 2*scriptChunkRows + 100
	repeats := map[int]int{3: 1, 700: 5, n - 1: scriptChunkRows + 2, 900: 899, 650: 550}
	b := idsBatch("ev", n, 100, repeats)
	for i := range b.Messages {
		b.Messages[i].Partition = 0
		b.Messages[i].Timestamp = recordTimeT0.Add(2*time.Second + time.Duration(i)*time.Millisecond/2)
	}
	mustProcess(t, b, dec, val, dd)
	if got := countDuplicates(b); got != len(repeats) {
		t.Fatalf("a batch of three calls across a bucket boundary: %d duplicates, want %d", got, len(repeats))
	}

	// A bucket the stage wrote, gone: the next call fails.
	last := recordBucketKey(spec, b.Messages[n-1].Timestamp)
	if rdb.Del(t.Context(), last).Val() != 1 {
		t.Fatalf("bucket %s was not there to delete", last)
	}
	lost := stamped(5000, at(b.Messages[n-1].Timestamp), "y")
	mustProcess(t, lost, dec, val)
	if err := dd.Process(t.Context(), lost); !errors.Is(err, ErrDedupeStateLost) {
		t.Fatalf("after its bucket was deleted: %v, want ErrDedupeStateLost", err)
	}
}
