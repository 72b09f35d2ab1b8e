package stages

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// eventIDs is e<from> .. e<to-1>.
func eventIDs(from, to int) []string {
	ids := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("e%d", i))
	}
	return ids
}

// heldLabels is how many early labels Redis holds for puts (and its index).
func (rig *joinRig) heldLabels(t *testing.T) (int64, int64) {
	t.Helper()
	ctx := context.Background()
	h, err := rig.cache.rdb.HLen(ctx, rig.cache.held).Result()
	if err != nil {
		t.Fatal(err)
	}
	x, err := rig.cache.rdb.ZCard(ctx, rig.cache.heldIndex).Result()
	if err != nil {
		t.Fatal(err)
	}
	return h, x
}

// pendingCount is the cache's count of pending predictions.
func (rig *joinRig) pendingCount(t *testing.T) int {
	t.Helper()
	n, err := rig.cache.rdb.Get(context.Background(), rig.cache.pending).Int()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPutCutOtherwiseAfterARestart: a put over [0, 100) joins the early
// labels of every third row, and its process stops before the offsets
// are committed. A second process, on the same Redis, is handed the same
// records cut otherwise ([0, 60) and [60, 120)), as a restart does: it
// joins those labels again (counted and taught once, as a process that
// joined them fresh in those batches would), caches none of their rows,
// and nothing of theirs is counted missing when the rest expire. Before,
// the put marks (named after the first offset, with the chunk's
// fingerprint) did not match, the parked labels were gone, and the rows
// were cached as pending, then counted missing. The same event delivered
// again at another offset (a duplicate) does not join its label twice,
// nor does this process's rows handed in again cut otherwise (a
// rebalance); once the offsets are committed, the partition's next put
// releases the labels held.
func TestPutCutOtherwiseAfterARestart(t *testing.T) {
	spec := testSpec(t, false)
	checkPutCutOtherwise(t, spec, newJoinRig(t, spec), newJoinRig(t, spec))
}

// checkPutCutOtherwise is TestPutCutOtherwiseAfterARestart on first's
// Redis, once's another; the expiry is checked on miniredis alone (whose
// clock the test sets).
func checkPutCutOtherwise(t *testing.T, spec *pipeline.Spec, first, once *joinRig) {
	first.join.KeepMarksUntilCommitted(nil, &CommittedOffsets{})
	all := eventIDs(0, 120)
	var early []string
	for i, id := range all[:100] {
		if i%3 == 0 {
			early = append(early, id)
		}
	}
	for _, rig := range []*joinRig{first, once} {
		rig.label(t, early...)
	}
	if err := first.processAt(0, all[:100]...); err != nil {
		t.Fatal(err)
	}
	if c := first.join.Counts(); c.EarlyJoined != int64(len(early)) {
		t.Fatalf("the first put counted %+v, want %d early labels joined", c, len(early))
	}

	committed := &CommittedOffsets{}
	second := first.restarted(t, spec)
	second.join.KeepMarksUntilCommitted(nil, committed)
	for _, rig := range []*joinRig{second, once} {
		if err := rig.processAt(0, all[:60]...); err != nil {
			t.Fatal(err)
		}
		if err := rig.processAt(60, all[60:]...); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(len(early))
	if c := second.join.Counts(); c.Joined != want || c.EarlyJoined != want {
		t.Fatalf("the rows cut otherwise counted %+v, want the %d early labels joined", c, want)
	}
	if !slices.Equal(second.weights(), once.weights()) {
		t.Fatal("the rows cut otherwise learned otherwise than one process that joined their labels in those batches")
	}
	pending := len(all) - len(early)
	if n := second.pendingCount(t); n != pending {
		t.Fatalf("%d predictions pending, want %d (the rows without a label)", n, pending)
	}

	// The same records again in this process, cut otherwise still (a
	// rebalance): nothing joined, taught or cached again.
	w := second.weights()
	before := second.join.Counts()
	if err := second.processAt(30, all[30:90]...); err != nil {
		t.Fatal(err)
	}
	if c := second.join.Counts(); c != before || !slices.Equal(w, second.weights()) {
		t.Fatalf("the rows handed in again counted %+v (before %+v) or learned", c, before)
	}
	if n := second.pendingCount(t); n != pending {
		t.Fatalf("%d predictions pending after the rows were handed in again, want %d", n, pending)
	}

	// A duplicate of e3 at another offset: its label is not joined twice;
	// its prediction is cached (and will count missing).
	if err := second.processAt(200, "e3"); err != nil {
		t.Fatal(err)
	}
	if c := second.join.Counts(); c != before {
		t.Fatalf("the duplicate counted %+v, want %+v", c, before)
	}
	pending++
	if n := second.pendingCount(t); n != pending {
		t.Fatalf("%d predictions pending after the duplicate, want %d", n, pending)
	}

	// Committed past the rows: the next put releases the held labels.
	if h, x := second.heldLabels(t); h != want || x != want {
		t.Fatalf("%d labels held (%d indexed) before the commit, want %d", h, x, want)
	}
	committed.Committed("events", 3, 201)
	if err := second.processAt(300, "z"); err != nil {
		t.Fatal(err)
	}
	if h, x := second.heldLabels(t); h != 0 || x != 0 {
		t.Fatalf("%d labels held (%d indexed) after the commit, want 0", h, x)
	}
	pending++
	if second.r.Mini == nil {
		return
	}

	// Past the TTL only the rows without a label count missing.
	second.now = second.now.Add(3 * second.cache.ttl)
	if err := second.processAt(400, "zz"); err != nil {
		t.Fatal(err)
	}
	if c := second.join.Counts(); c.Missing != int64(pending) || c.Joined != want {
		t.Fatalf("past the TTL: %+v, want %d missing and %d joined", c, pending, want)
	}
}

// TestHeldLabelsExpire: without a commit, the labels held for a put go
// when their TTL has passed, uncounted (they were counted joined), and
// are never orphans.
func TestHeldLabelsExpire(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.join.KeepMarksUntilCommitted(nil, &CommittedOffsets{})
	rig.label(t, "a", "b")
	if err := rig.processAt(0, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if h, _ := rig.heldLabels(t); h != 2 {
		t.Fatalf("%d labels held, want 2", h)
	}
	rig.now = rig.now.Add(3 * rig.cache.ttl)
	if err := rig.processAt(10, "d"); err != nil {
		t.Fatal(err)
	}
	if h, x := rig.heldLabels(t); h != 0 || x != 0 {
		t.Fatalf("%d labels held (%d indexed) past their TTL, want 0", h, x)
	}
	if c := rig.settled(t, "past the TTL"); c.Joined != 2 || c.Orphan != 0 || c.Missing != 1 {
		t.Fatalf("past the TTL: %+v, want 2 joined, c missing, no orphan", c)
	}
}
