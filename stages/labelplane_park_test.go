package stages

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// parkedCount is the parked count in Redis (0 when the key is gone).
func parkedCount(t testing.TB, c *PredictionCache) int {
	t.Helper()
	n, err := c.rdb.Get(context.Background(), c.parked).Int()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	return n
}

// TestParkedLabelsIndexedPerBatch: the labels one call parks are one
// label batch, one member of early-batches however many labels it holds,
// counted in early-parked. A batch whose labels all joined leaves the
// index; one that expires counts the labels it still holds as orphans and
// deletes their keys, and the count drops with each. The previous layout,
// a member per label in early-label-index, fails it.
func TestParkedLabelsIndexedPerBatch(t *testing.T) {
	rig := newJoinRig(t, testSpec(t, false))
	ctx := context.Background()
	rig.handleCounted(t, labelsAt(0, "a1", "a2", "a3"))
	rig.now = rig.now.Add(time.Minute)
	rig.handleCounted(t, labelsAt(3, "b1", "b2"))
	rig.now = rig.now.Add(time.Minute)
	rig.handleCounted(t, labelsAt(5, "c1", "c2", "c3", "c4"))
	batches := func() int64 {
		n, err := rig.cache.rdb.ZCard(ctx, rig.cache.earlyBatches).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n, p := batches(), parkedCount(t, rig.cache); n != 3 || p != 9 || len(parkedIndex(t, rig.cache)) != 9 {
		t.Fatalf("%d label batches, %d parked; want 3 and 9", n, p)
	}
	// a1 and all of b's predictions come: b's batch leaves the index.
	rig.predict(t, "a1", "b1", "b2")
	if n, p := batches(), parkedCount(t, rig.cache); n != 2 || p != 6 {
		t.Fatalf("after 3 joins: %d label batches, %d parked; want 2 and 6", n, p)
	}
	// a's batch expires (c's not yet): a2 and a3 are orphans, their keys
	// deleted, so that their predictions coming later are cached.
	rig.now = rig.now.Add(2*rig.cache.ttl - 2*time.Minute + time.Second)
	rig.predict(t, "x")
	if c := rig.settled(t, "a expired"); c.Orphan != 2 || c.EarlyJoined != 3 || c.Parked() != 4 {
		t.Fatalf("a expired: %+v, want 2 orphans, 3 joined early, 4 parked", c)
	}
	if n, p := batches(), parkedCount(t, rig.cache); n != 1 || p != 4 {
		t.Fatalf("a expired: %d label batches, %d parked; want 1 and 4", n, p)
	}
	for _, id := range []string{"a2", "a3"} {
		if rig.r.Mini.Exists(rig.cache.early + id) {
			t.Errorf("orphan %s's key kept", id)
		}
	}
	rig.predict(t, "a2")
	if c := rig.join.Counts(); c.Joined != 3 {
		t.Fatalf("an orphan's prediction joined it: %+v", c)
	}
	// The rest expire: nothing is parked, the count is gone.
	rig.now = rig.now.Add(2 * rig.cache.ttl)
	rig.predict(t, "y")
	if c := rig.settled(t, "all expired"); c.Orphan != 6 || c.Parked() != 0 {
		t.Fatalf("all expired: %+v", c)
	}
	if n := rig.r.Mini.Exists(rig.cache.parked); n || batches() != 0 {
		t.Fatalf("the parked count (kept: %v) or %d label batches left", n, batches())
	}
	if got := testutil.ToFloat64(rig.metrics.orphan); got != 6 {
		t.Fatalf("orphan metric %v, want 6", got)
	}
}

// TestParkedLabelParkedAgainAfterItsBatchExpired: a label whose batch
// expired before it was swept, delivered again, is parked in a new batch
// (the expired value is not its own parking, nor another label's); the
// old batch's sweep counts its first parking as an orphan but keeps the
// key, which the new batch holds, and the label joins its prediction.
// Every label record is counted once: the first delivery an orphan, the
// second joined.
func TestParkedLabelParkedAgainAfterItsBatchExpired(t *testing.T) {
	rig := newJoinRig(t, testSpec(t, false))
	rig.handleCounted(t, labelsAt(0, "a"))
	rig.now = rig.now.Add(2*rig.cache.ttl + time.Second) // the batch expires, unswept
	if !rig.r.Mini.Exists(rig.cache.early + "a") {
		t.Fatal("a's key went before its batch was swept")
	}
	rig.handleCounted(t, labelsAt(1, "a")) // delivered again: parked anew
	if n := len(parkedIndex(t, rig.cache)); n != 2 {
		t.Fatalf("%d parkings indexed, want 2 (the expired one unswept)", n)
	}
	rig.predict(t, "x") // the sweep
	if c := rig.settled(t, "swept"); c.Orphan != 1 || !rig.r.Mini.Exists(rig.cache.early+"a") {
		t.Fatalf("after the sweep: %+v, a's key kept: %v; want 1 orphan, the key kept", c, rig.r.Mini.Exists(rig.cache.early+"a"))
	}
	rig.predict(t, "a")
	c := rig.settled(t, "joined")
	if c.Orphan != 1 || c.Joined != 1 || c.EarlyJoined != 1 || c.Early != 2 {
		t.Fatalf("counts %+v, want the first parking an orphan, the second joined", c)
	}
}

// TestParkedLabelsOfThePreviousVersion: labels parked by the previous
// version (a member per label in early-label-index, values without a
// batch reference), as it left them before an upgrade, count against
// labels.max_parked, are joined by their predictions, refuse a duplicate,
// and expire as orphans, in step with labels this version parks.
func TestParkedLabelsOfThePreviousVersion(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"max_pending: 1000": "max_pending: 1000, max_parked: 4"})
	rig := newJoinRig(t, spec)
	sink := rig.withDLQ(t)
	ctx := context.Background()
	rig.clock()
	// What the previous version's joinBatch wrote for labels at 0:90..92:
	// the label's 4 bytes and its position, and the index member.
	expiry := rig.now.Add(2 * rig.cache.ttl).UnixMilli()
	for i, id := range []string{"o1", "o2", "o3"} {
		v := binary.LittleEndian.AppendUint32(nil, math.Float32bits(1))
		v = append(v, "0:9"+strconv.Itoa(i)...)
		if err := rig.cache.rdb.Set(ctx, rig.cache.early+id, v, 2*rig.cache.ttl).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rig.cache.rdb.ZAdd(ctx, rig.cache.oldEarlyIndex, redis.Z{Score: float64(expiry), Member: rig.cache.early + id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rig.now = rig.now.Add(time.Minute)
	// n1 is parked (3 + 1 = max_parked), n2 refused; o2's label again,
	// from another record, is a duplicate.
	rig.handleCounted(t, labelsAt(0, "n1", "n2", "o2"))
	if c := rig.join.Counts(); c.Early != 1 || c.ParkedOverflow != 1 || c.Invalid != 1 {
		t.Fatalf("counts %+v, want 1 parked, 1 over max_parked, 1 duplicate", c)
	}
	if got := sink.reasons(); got[ReasonLabelParkedFull] != 1 || got[ReasonLabelDuplicate] != 1 {
		t.Fatalf("DLQ %v", got)
	}
	if got := testutil.ToFloat64(rig.metrics.parked); got != 4 {
		t.Fatalf("parked gauge %v, want 4", got)
	}
	// o1's and n1's predictions come: both join, each leaves its index.
	rig.predict(t, "o1", "n1")
	if c := rig.join.Counts(); c.Joined != 2 || c.EarlyJoined != 2 {
		t.Fatalf("counts %+v, want o1 and n1 joined", c)
	}
	want := []string{rig.cache.early + "o2", rig.cache.early + "o3"}
	if got := parkedIndex(t, rig.cache); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parked %v, want %v", got, want)
	}
	// The previous version's labels expire: orphans, their keys deleted,
	// its index gone.
	rig.now = rig.now.Add(2 * rig.cache.ttl)
	rig.predict(t, "x")
	if c := rig.join.Counts(); c.Orphan != 2 {
		t.Fatalf("counts %+v, want o2 and o3 orphans", c)
	}
	if rig.r.Mini.Exists(rig.cache.early+"o2") || rig.r.Mini.Exists(rig.cache.oldEarlyIndex) {
		t.Fatal("an orphan's key, or the previous version's index, kept")
	}
	rig.predict(t, "o3")
	if c := rig.join.Counts(); c.Joined != 2 {
		t.Fatalf("an orphan joined: %+v", c)
	}
}

// TestLoggedParkedLabelLeavesItsBatchWhenJoined: in log mode a parked
// label that the writer joins from the early-label stream leaves its label
// batch then (it is no orphan when its batch expires), while its key
// stays for a re-join until the release.
func TestLoggedParkedLabelLeavesItsBatchWhenJoined(t *testing.T) {
	rig := newLoggedJoinRig(t, testSpec(t, false))
	ctx := context.Background()
	rig.labelAt(t, "d", 12)
	rig.predict(t, "d")
	if n := len(parkedIndex(t, rig.cache)); n != 1 {
		t.Fatalf("%d parked before the stream's join, want 1", n)
	}
	entries, err := rig.cache.ReadEarlyReady(ctx, "", 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("early-label stream %v, %v", entries, err)
	}
	joined, err := rig.join.JoinEarlyReady(ctx, entries)
	if err != nil || len(joined) != 1 {
		t.Fatalf("JoinEarlyReady = %v, %v", joined, err)
	}
	if n := len(parkedIndex(t, rig.cache)); n != 0 || !rig.r.Mini.Exists(rig.cache.early+"d") {
		t.Fatalf("after the join: %d parked, d's key kept %v; want 0, kept", n, rig.r.Mini.Exists(rig.cache.early+"d"))
	}
	// A re-join (a restored writer) finds the label, and unparks nothing more.
	if again, err := rig.join.JoinEarlyReady(ctx, entries); err != nil || len(again) != 1 || parkedCount(t, rig.cache) != 0 {
		t.Fatalf("re-join = %v, %v; parked count %d", again, err, parkedCount(t, rig.cache))
	}
	if err := rig.cache.ReleaseJoined(ctx, joined, []string{entries[0].ID}); err != nil {
		t.Fatal(err)
	}
	rig.now = rig.now.Add(2*rig.cache.ttl + time.Second)
	rig.predict(t, "x")
	if c := rig.join.Counts(); c.Orphan != 0 || c.Early != 1 {
		t.Fatalf("counts %+v, want the joined label no orphan", c)
	}
}

// TestExpiredUnsweptIsGone: outside log mode a cached prediction's and a
// parked label's keys have no TTL; their batch's index entry expires them.
// Past that expiry, before any sweep, a label does not join the expired
// prediction (it is parked), and a put does not join the expired parked
// label (the prediction is cached); the put's sweep then counts the one
// missing and the other an orphan and deletes their keys, as it does the
// next ones at their expiry, so that nothing outlives its batch.
func TestExpiredUnsweptIsGone(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	key := func(k string) string { return spec.Redis.KeyPrefix + k }
	rig.predict(t, "p")
	rig.label(t, "q")
	rig.expect(t, "cached and parked", joinCounts{early: 1})
	for _, k := range []string{"pred:p", "early-label:q"} {
		if ttl := rig.r.Mini.TTL(key(k)); ttl != 0 {
			t.Fatalf("%s has a TTL (%v), want none: its batch's index expires it", k, ttl)
		}
	}
	rig.now = rig.now.Add(2*rig.cache.ttl + time.Second) // both batches expire, unswept
	rig.label(t, "p")
	rig.expect(t, "a label after its prediction expired", joinCounts{early: 2})
	rig.predict(t, "q")
	rig.expect(t, "a put after its label expired", joinCounts{early: 2, missing: 1, orphan: 1})
	for k, want := range map[string]bool{"pred:p": false, "early-label:q": false, "pred:q": true, "early-label:p": true} {
		if got := rig.r.Mini.Exists(key(k)); got != want {
			t.Errorf("after the sweep: %s exists %v, want %v", k, got, want)
		}
	}
	rig.now = rig.now.Add(2*rig.cache.ttl + time.Second)
	rig.predict(t, "z")
	rig.expect(t, "the next expiry", joinCounts{early: 2, missing: 2, orphan: 2})
	for _, k := range rig.r.Mini.Keys() {
		if strings.HasPrefix(k, key("pred:")) && k != key("pred:z") || strings.HasPrefix(k, key("early-label:")) {
			t.Errorf("key %s outlived its batch", k)
		}
	}
}
