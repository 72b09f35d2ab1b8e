package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// labelsAt builds label records (label 1) for ids at offsets from base of
// labels partition 0.
func labelsAt(base int64, ids ...string) []pipeline.Message {
	msgs := labelMsgs(ids, func(int) int { return 1 })
	for i := range msgs {
		msgs[i].Offset = base + int64(i)
	}
	return msgs
}

// takenMarkKeys is the taken marks in Redis.
func (rig *joinRig) takenMarkKeys() []string {
	var out []string
	for _, k := range rig.r.Mini.Keys() {
		if strings.HasPrefix(k, rig.cache.taken) {
			out = append(out, k)
		}
	}
	return out
}

// restarted is a second process's rig on rig's Redis: its own cache,
// counters and a fresh model.
func (rig *joinRig) restarted(t *testing.T, spec *pipeline.Spec) *joinRig {
	t.Helper()
	next := newJoinRigOn(t, spec, rig.r, rig.r.Client(t))
	next.now = rig.now
	return next
}

// TestLabelsDeliveredAgainAfterARestart: labels a first process joined
// (their predictions taken), whose offsets were not committed when it
// stopped, are delivered again to a second process in batches cut
// otherwise, after the first process's next batch. With the taken marks
// kept until the offsets are committed, the second process finds them
// and joins the labels (counted once in its counters, taught to its
// model as a process that joined them fresh would), instead of parking
// them until they expire. Once the offsets are committed, the marks'
// generation goes with the next batch.
func TestLabelsDeliveredAgainAfterARestart(t *testing.T) {
	spec := testSpec(t, false)
	first := newJoinRig(t, spec)
	first.join.KeepMarksUntilCommitted(&CommittedOffsets{}, nil)
	ids := []string{"a", "b", "c", "d"}
	first.predict(t, ids...)
	base := int64(takenSpan - 2) // a and b in one generation, c and d in the next
	first.handleCounted(t, labelsAt(base, "a", "b"))
	first.handleCounted(t, labelsAt(base+2, "c"))
	first.handleCounted(t, labelsAt(base+3, "d"))
	if c := first.join.Counts(); c.Joined != 4 {
		t.Fatalf("the first process joined %+v, want 4", c)
	}

	// The second process, on the same Redis; nothing was committed.
	committed := &CommittedOffsets{}
	second := first.restarted(t, spec)
	second.join.KeepMarksUntilCommitted(committed, nil)
	var outcomes []string
	second.join.OnOutcome = func(o Outcome) { outcomes = append(outcomes, o.ID) }
	second.handleCounted(t, labelsAt(base, "a", "b", "c"))
	second.handleCounted(t, labelsAt(base+3, "d"))
	c := second.settled(t, "labels delivered again")
	if c.Processed != 4 || c.Joined != 4 || c.Parked() != 0 || c.Invalid != 0 {
		t.Fatalf("the labels delivered again counted %+v, parked %d; want the 4 joined", c, c.Parked())
	}
	if !slices.Equal(outcomes, ids) {
		t.Fatalf("outcomes %v, want %v", outcomes, ids)
	}
	// It learned them as a process that joined them fresh, in the same
	// batches, would.
	fresh := newJoinRig(t, spec)
	fresh.predict(t, ids...)
	fresh.handleCounted(t, labelsAt(base, "a", "b", "c"))
	fresh.handleCounted(t, labelsAt(base+3, "d"))
	if !slices.Equal(second.weights(), fresh.weights()) {
		t.Fatal("the labels delivered again were learned otherwise than fresh ones")
	}

	// Committed past the first generation: the next batch deletes its
	// marks, and keeps the second's.
	committed.Committed("labels", 0, base+5)
	second.handleCounted(t, labelsAt(base+5, "zz"))
	if got := second.takenMarkKeys(); !slices.Equal(got, []string{second.cache.takenMarksOf(0, 1)}) {
		t.Fatalf("taken marks %v, want the second generation's alone", got)
	}
}

// TestPutRunAgainAfterARestart: a put that joined two early labels, in a
// first process that then ran the partition's next put and stopped before
// the offsets were committed, is run again by a second process at the same
// offsets. With the put marks kept until the rows' offsets are committed,
// it joins the two labels again (counted and taught once by the second
// process, as one run would), and caches none of the rows again; without
// them, the rows were cached as pending, the early labels lost, and the
// predictions later counted missing.
func TestPutRunAgainAfterARestart(t *testing.T) {
	spec := testSpec(t, false)
	first, once := newJoinRig(t, spec), newJoinRig(t, spec)
	first.join.KeepMarksUntilCommitted(nil, &CommittedOffsets{})
	for _, rig := range []*joinRig{first, once} {
		rig.label(t, "a", "c")
		if err := rig.processAt(10, "a", "b", "c", "d"); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.processAt(20, "e"); err != nil {
		t.Fatal(err)
	}

	committed := &CommittedOffsets{}
	second := first.restarted(t, spec)
	second.join.KeepMarksUntilCommitted(nil, committed)
	if err := second.processAt(10, "a", "b", "c", "d"); err != nil {
		t.Fatal(err)
	}
	// (Their labels were processed, and parked, by the first process.)
	if c := second.join.Counts(); c.Joined != 2 || c.EarlyJoined != 2 {
		t.Fatalf("the put run again counted %+v, want a and c joined", c)
	}
	if !slices.Equal(second.weights(), once.weights()) {
		t.Fatal("the put run again learned otherwise than one run of it")
	}
	if n := len(parkedIndex(t, second.cache)); n != 0 {
		t.Fatalf("%d labels parked after the put ran again, want 0", n)
	}
	// b and d's labels: their predictions are pending once.
	second.label(t, "b", "d")
	if c := second.join.Counts(); c.Joined != 4 || c.Early != 0 {
		t.Fatalf("b and d labelled: %+v, want 4 joined", c)
	}
	if n, _ := second.cache.rdb.Get(context.Background(), second.cache.pending).Int(); n != 1 {
		t.Fatalf("%d predictions pending, want 1 (e's)", n)
	}

	// Committed past the put's rows: the partition's next put deletes its
	// marks. The first process's last put's marks (at 20) were never this
	// process's: they wait for their TTL, or for their batch to be run
	// again here.
	committed.Committed("events", 3, 14)
	if err := second.processAt(30, "z"); err != nil {
		t.Fatal(err)
	}
	want := []string{second.cache.putMarks(3, 20), second.cache.putMarks(3, 30)}
	if got := second.putMarks(); !slices.Equal(got, want) {
		t.Fatalf("put marks %v, want %v", got, want)
	}
}

// TestLabelBatchRetriedInItsGeneration: without KeepMarksUntilCommitted a
// batch deletes the last batch's taken marks, but not the generation it
// writes in itself: a batch whose reply was lost, after another batch of
// the same generation, finds its own marks when handled again and joins
// its labels, not parks them.
func TestLabelBatchRetriedInItsGeneration(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	hook := &lostReplies{script: joinBatch}
	rig.cache.rdb.AddHook(hook)
	rig.predict(t, "a", "b", "c")
	rig.handleCounted(t, labelsAt(10, "a"))
	hook.n.Store(1)
	if err := rig.handler.Handle(context.Background(), labelsAt(11, "b", "c")); !errors.Is(err, errReplyLost) {
		t.Fatalf("Handle with the reply lost: %v, want the lost reply's error", err)
	}
	rig.handleCounted(t, labelsAt(11, "b", "c"))
	if c := rig.settled(t, "retried"); c.Joined != 3 || c.Parked() != 0 {
		t.Fatalf("after the retried batch: %+v, want a, b and c joined", c)
	}
}

// TestTakenSplit: a chunk of labels takes the taken marks of at most two
// generations in one call; it is cut where a third would start (offsets
// that skip).
func TestTakenSplit(t *testing.T) {
	const s = takenSpan
	for _, c := range []struct {
		offs      []int64
		split, to int
	}{
		{[]int64{1, 2, 3}, 3, 3},
		{[]int64{s - 2, s - 1, s, s + 1}, 2, 4},
		{[]int64{s - 1, 3 * s, 3*s + 1}, 1, 3},
		{[]int64{s - 1, s, 2 * s, 2*s + 1}, 1, 2},
		{[]int64{5}, 1, 1},
	} {
		lp := &labelPartition{offs: c.offs}
		to := len(c.offs)
		if split := lp.takenSplit(0, &to); split != c.split || to != c.to {
			t.Errorf("offsets %v: split %d, to %d; want %d, %d", c.offs, split, to, c.split, c.to)
		}
	}
}
