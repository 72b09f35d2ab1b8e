package stages

import (
	"context"
	"fmt"
	"slices"
	"strings"
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

// heldLabels is how many early labels Redis holds for puts: the entries
// of the held hashes' chunks (see putBatch), the high-water marks aside.
func (rig *joinRig) heldLabels(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	keys, err := rig.cache.rdb.Keys(ctx, rig.cache.held+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		if strings.HasSuffix(k, ":ghw") {
			continue
		}
		chunks, err := rig.cache.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range chunks {
			for p := 0; p < len(b); n++ {
				if p+7 > len(b) {
					t.Fatalf("held chunk %q of %s cut short", b, k)
				}
				l := int(b[p])<<8 | int(b[p+1])
				p += 7 + l + int(b[p+6+l])
			}
		}
	}
	return n
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
	if h := second.heldLabels(t); h != want {
		t.Fatalf("%d labels held before the commit, want %d", h, want)
	}
	// (A generation's labels go together: commit past the first.)
	committed.Committed("events", 3, heldSpan+1)
	if err := second.processAt(2*heldSpan, "z"); err != nil {
		t.Fatal(err)
	}
	if h := second.heldLabels(t); h != 0 {
		t.Fatalf("%d labels held after the commit, want 0", h)
	}
	pending++
	if second.r.Mini == nil {
		return
	}

	// Past the TTL only the rows without a label count missing.
	second.now = second.now.Add(3 * second.cache.ttl)
	if err := second.processAt(3*heldSpan, "zz"); err != nil {
		t.Fatal(err)
	}
	if c := second.join.Counts(); c.Missing != int64(pending) || c.Joined != want {
		t.Fatalf("past the TTL: %+v, want %d missing and %d joined", c, pending, want)
	}
}

// TestHeldLabelsExpire: without a commit, the labels held for a put go
// when their TTL has passed, uncounted (they were counted joined), and
// are never orphans; nor are they deleted by a later put in their own
// generation.
func TestHeldLabelsExpire(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.join.KeepMarksUntilCommitted(nil, &CommittedOffsets{})
	rig.label(t, "a", "b")
	if err := rig.processAt(0, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := rig.processAt(5, "x"); err != nil {
		t.Fatal(err)
	}
	if h := rig.heldLabels(t); h != 2 {
		t.Fatalf("%d labels held after a later put of their generation, want 2", h)
	}
	rig.now = rig.now.Add(3 * rig.cache.ttl)
	rig.r.Mini.FastForward(3 * rig.cache.ttl) // miniredis's TTLs
	if err := rig.processAt(10, "d"); err != nil {
		t.Fatal(err)
	}
	if h := rig.heldLabels(t); h != 0 {
		t.Fatalf("%d labels held past their TTL, want 0", h)
	}
	if c := rig.settled(t, "past the TTL"); c.Joined != 2 || c.Orphan != 0 || c.Missing != 2 {
		t.Fatalf("past the TTL: %+v, want 2 joined, c and x missing, no orphan", c)
	}
}

// TestCommittedHeld: a put deletes the held labels' generations below its
// own whose offsets are all committed (with KeepMarksUntilCommitted), or
// below its own (without), from two below its partition's first put on.
func TestCommittedHeld(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	c := rig.cache
	const s = heldSpan
	gens := func(done []string) []string {
		out := []string{}
		for _, d := range done {
			out = append(out, strings.TrimPrefix(d, c.heldOf(3, "")))
		}
		return out
	}
	done, cleared := c.committedHeld(nil, 3, 5*s+7, -1)
	if got := gens(done); !slices.Equal(got, []string{"3", "4"}) || cleared != 5 {
		t.Fatalf("without commits, first put at generation 5: %v, cleared %d", got, cleared)
	}
	committed := &CommittedOffsets{}
	rig.join.KeepMarksUntilCommitted(nil, committed)
	committed.Committed("events", 3, 4*s+1)
	done, cleared = c.committedHeld(nil, 3, 5*s+7, -1)
	if got := gens(done); !slices.Equal(got, []string{"3"}) || cleared != 4 {
		t.Fatalf("committed into generation 4, first put at 5: %v, cleared %d", got, cleared)
	}
	committed.Committed("events", 3, 7*s)
	done, cleared = c.committedHeld(nil, 3, 6*s, cleared)
	if got := gens(done); !slices.Equal(got, []string{"4", "5"}) || cleared != 6 {
		t.Fatalf("committed past generation 6, a put at 6: %v, cleared %d", got, cleared)
	}
}
