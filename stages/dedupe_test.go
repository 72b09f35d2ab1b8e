package stages

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

func TestDedupe(t *testing.T) {
	spec := testSpec(t, false)
	r, rdb := startRedis(t)
	d, v, dd := NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)
	clock := fakeClock(dd)
	redisClock := newRedisClock(r)
	id := func(s string) []byte { return row(map[string]string{"event_id": `"` + s + `"`}) }

	// Batch 1 at offsets 0..4: b repeats within the batch; row 3 is invalid
	// and must not reserve its id.
	b1 := newBatch(0, id("a"), id("b"), id("b"), row(map[string]string{"event_id": `"c"`, "n": "-5"}), id("d"))
	mustProcess(t, b1, d, v, dd)
	want1 := []pipeline.RowState{pipeline.RowOK, pipeline.RowOK, pipeline.RowDuplicate, pipeline.RowRejected, pipeline.RowOK}
	for i, w := range want1 {
		if b1.State[i] != w {
			t.Errorf("batch 1 row %d: state %v, want %v", i, b1.State[i], w)
		}
	}
	key := redisClock.bucketKey(spec, 0)
	if got := r.Mini.HGet(key, "a"); got != "events/3/0" {
		t.Fatalf("%s field a = %q, want events/3/0; keys %v", key, got, r.Mini.Keys())
	}
	// The bucket is read until the next one ends, 2h from its start, and
	// unlinked then by the next call; it expires an hour later, should no
	// call come.
	if ttl, want := r.Mini.TTL(key), 3*time.Hour-redisClock.sinceBucket(time.Hour); ttl != want {
		t.Errorf("TTL %v, want %v", ttl, want)
	}
	if r.Mini.HGet(key, "c") != "" {
		t.Error("a rejected row reserved its id")
	}

	// Batch 2 at offsets 5..8: a and d were seen in batch 1; c is new now.
	b2 := newBatch(5, id("a"), id("c"), id("e"), id("d"))
	mustProcess(t, b2, d, v, dd)
	want2 := []pipeline.RowState{pipeline.RowDuplicate, pipeline.RowOK, pipeline.RowOK, pipeline.RowDuplicate}
	for i, w := range want2 {
		if b2.State[i] != w {
			t.Errorf("batch 2 row %d: state %v, want %v", i, b2.State[i], w)
		}
	}

	// Redelivery of batch 1 after a crash (same offsets): the rows that were
	// first are not their own duplicates; the in-batch repeat still is.
	b1again := newBatch(0, id("a"), id("b"), id("b"), row(map[string]string{"event_id": `"c"`, "n": "-5"}), id("d"))
	mustProcess(t, b1again, d, v, dd)
	for i, w := range want1 {
		if b1again.State[i] != w {
			t.Errorf("redelivered row %d: state %v, want %v", i, b1again.State[i], w)
		}
	}
	// The same id from another partition is a duplicate.
	other := newBatch(0, id("a"))
	other.Messages[0].Partition = 4
	mustProcess(t, other, d, v, dd)
	if other.State[0] != pipeline.RowDuplicate {
		t.Errorf("same id, other partition: state %v, want duplicate", other.State[0])
	}

	// After twice the TTL the id may be used again.
	redisClock.advance(2*time.Hour + time.Second)
	*clock += 2*time.Hour + time.Second
	late := newBatch(100, id("a"))
	mustProcess(t, late, d, v, dd)
	if !late.OK(0) {
		t.Errorf("id after twice the TTL: state %v, want OK", late.State[0])
	}
}

func TestDedupeRedisDown(t *testing.T) {
	spec := testSpec(t, false)
	r, rdb := startRedis(t)
	d, dd := NewDecode(spec), NewDedupe(spec, rdb)
	b := newBatch(0, row(nil))
	mustProcess(t, b, d)
	r.Mini.Close()
	if err := dd.Process(context.Background(), b); err == nil {
		t.Fatal("dedupe with Redis down: no error")
	}
	// Nothing to check: a batch with no live rows needs no round trip.
	empty := newBatch(0, []byte("x"))
	mustProcess(t, empty, d)
	if err := dd.Process(context.Background(), empty); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

// A TTL under 1 ms (no whole-ms bucket) fails the batch instead of
// remembering nothing.
func TestDedupeTTLUnderAMillisecond(t *testing.T) {
	spec := testSpec(t, false)
	spec.Stages.Dedupe.TTL = pipeline.Duration(time.Microsecond)
	_, rdb := startRedis(t)
	b := newBatch(0, row(nil))
	mustProcess(t, b, NewDecode(spec))
	err := NewDedupe(spec, rdb).Process(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "stages.dedupe.ttl") {
		t.Fatalf("TTL 1µs: error %v, want one naming stages.dedupe.ttl", err)
	}
}
