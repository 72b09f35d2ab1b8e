package stages

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// The label counters across processes: every label delivered is counted
// once in a terminal counter (Joined, Late, Orphan, Invalid,
// ParkedOverflow) by the process that settles it, or is still parked, when
// the same label record is handled again (a retried batch, a record
// delivered again after a restart) after a put took its parked label.

// TestLabelBatchRetriedAfterAPutTookItsLabel: a label batch parks a and b
// (a's prediction not cached yet), its reply is lost, and a put takes a's
// parked label (joined early) before the batch is handled again. The
// retry replies as the first run did (a and b parked, counted early) and
// parks neither again: a, joined, is not counted an orphan when the
// parked labels expire; b, parked once, is. Before, the retry found
// neither a's prediction nor a mark of it and parked a again.
func TestLabelBatchRetriedAfterAPutTookItsLabel(t *testing.T) {
	spec := testSpec(t, false)
	checkRetriedAfterAPutTookItsLabel(t, newJoinRig(t, spec), newJoinRig(t, spec))
}

// checkRetriedAfterAPutTookItsLabel is
// TestLabelBatchRetriedAfterAPutTookItsLabel with lost's Redis for the
// retried batch and once's for one run of it; the expiry is checked on
// miniredis alone (whose clock the test sets).
func checkRetriedAfterAPutTookItsLabel(t *testing.T, lost, once *joinRig) {
	hook := &lostReplies{script: joinBatch}
	lost.cache.rdb.AddHook(hook)
	hook.n.Store(1)
	if err := lost.handler.Handle(context.Background(), labelsAt(10, "a", "b")); !errors.Is(err, errReplyLost) {
		t.Fatalf("Handle with the reply lost: %v, want the lost reply's error", err)
	}
	lost.predict(t, "a") // the put takes a's parked label
	lost.handleCounted(t, labelsAt(10, "a", "b"))
	once.handleCounted(t, labelsAt(10, "a", "b"))
	once.predict(t, "a")
	if got, want := parkedIndex(t, lost.cache), []string{lost.cache.early + "b"}; !slices.Equal(got, want) {
		t.Fatalf("parked after the retry: %v, want %v", got, want)
	}
	want := LabelCounts{Processed: 2, Joined: 1, Early: 2, EarlyJoined: 1}
	for name, rig := range map[string]*joinRig{"retried": lost, "one run": once} {
		if c := rig.settled(t, name); c != want {
			t.Fatalf("%s: counts %+v, want %+v", name, c, want)
		}
	}
	if !slices.Equal(lost.weights(), once.weights()) {
		t.Fatal("the retried batch learned otherwise than one run of it")
	}
	if lost.r.Mini == nil {
		return
	}
	lost.now = lost.now.Add(2*lost.cache.ttl + time.Second)
	lost.predict(t, "z")
	if c := lost.settled(t, "expired"); c.Orphan != 1 || c.Joined != 1 || c.Settled() != c.Processed {
		t.Fatalf("after the parked labels expired: %+v, want a joined and b an orphan", c)
	}
}

// TestLabelDeliveredAgainAfterAPutTookItsLabel: a first process parks a
// and b and stops before their offsets are committed; meanwhile a put (in
// the data plane's process) takes a's parked label. A second process is
// delivered a and b again: it counts them parked as the first did, and
// parks neither again, so that across the three processes a is counted
// once (joined, by the put's) and b once (an orphan, once it expired).
// Before, a was parked again and counted an orphan too.
func TestLabelDeliveredAgainAfterAPutTookItsLabel(t *testing.T) {
	checkDeliveredAgainAfterAPutTookItsLabel(t, newJoinRig(t, testSpec(t, false)))
}

// checkDeliveredAgainAfterAPutTookItsLabel is
// TestLabelDeliveredAgainAfterAPutTookItsLabel on first's Redis; the
// expiry is checked on miniredis alone.
func checkDeliveredAgainAfterAPutTookItsLabel(t *testing.T, first *joinRig) {
	spec := first.spec
	first.join.KeepMarksUntilCommitted(&CommittedOffsets{}, nil)
	first.handleCounted(t, labelsAt(10, "a", "b"))
	data := first.restarted(t, spec)
	data.predict(t, "a")
	second := first.restarted(t, spec)
	second.join.KeepMarksUntilCommitted(&CommittedOffsets{}, nil)
	second.offset = 100
	second.handleCounted(t, labelsAt(10, "a", "b"))
	if got, want := parkedIndex(t, second.cache), []string{second.cache.early + "b"}; !slices.Equal(got, want) {
		t.Fatalf("parked after the labels came again: %v, want %v", got, want)
	}
	if c := data.join.Counts(); c.Joined != 1 || c.EarlyJoined != 1 {
		t.Fatalf("the put's process: %+v, want a joined early", c)
	}
	if c := second.join.Counts(); c.Early != 2 || c.Settled() != 0 {
		t.Fatalf("the second process: %+v, want a and b counted parked", c)
	}
	if second.r.Mini == nil {
		return
	}
	second.now = second.now.Add(2*second.cache.ttl + time.Second)
	second.predict(t, "z")
	var settled, orphan int64
	for _, rig := range []*joinRig{first, data, second} {
		c := rig.join.Counts()
		settled, orphan = settled+c.Settled(), orphan+c.Orphan
	}
	if settled != 2 || orphan != 1 {
		t.Fatalf("2 labels settled %d times across the processes (%d orphans), want a joined and b an orphan", settled, orphan)
	}
}

// TestLoggedLabelDeliveredAgainAfterItsStreamJoin: in log mode, a label
// parked (d's prediction not cached yet), announced on the early-label
// stream when d was put and joined from it, is delivered again to a
// writer restored from a publish before it. The label is its own parked
// one, not a duplicate: counted parked (not refused to the DLQ), and
// joined once more when the restored writer reads the stream again, as
// the first writer counted it. Before, it was refused as a duplicate:
// invalid, and joined too.
func TestLoggedLabelDeliveredAgainAfterItsStreamJoin(t *testing.T) {
	checkLoggedDeliveredAgainAfterItsStreamJoin(t, newJoinRig(t, testSpec(t, false)))
}

// checkLoggedDeliveredAgainAfterItsStreamJoin is
// TestLoggedLabelDeliveredAgainAfterItsStreamJoin on base's Redis.
func checkLoggedDeliveredAgainAfterItsStreamJoin(t *testing.T, base *joinRig) {
	spec := base.spec
	ctx := context.Background()
	first := loggedRig(t, spec, base)
	before := first.champion.Snapshot()
	first.labelAt(t, "d", 12)
	first.predict(t, "d")
	entries, err := first.cache.ReadEarlyReady(ctx, "", 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("early-label stream %v, %v; want d's entry", entries, err)
	}
	if _, err := first.join.JoinEarlyReady(ctx, entries); err != nil {
		t.Fatal(err)
	}
	restored := loggedRig(t, spec, first.restarted(t, spec))
	restored.restore(before)
	sink := restored.withDLQ(t)
	restored.handleCounted(t, labelsAt(12, "d"))
	if len(sink.recs) != 0 {
		t.Fatalf("the label delivered again went to the DLQ: %v", sink.reasons())
	}
	if _, err := restored.join.JoinEarlyReady(ctx, entries); err != nil {
		t.Fatal(err)
	}
	want := LabelCounts{Processed: 1, Joined: 1, Early: 1, EarlyJoined: 1}
	for name, rig := range map[string]*joinRig{"first writer": first, "restored writer": restored} {
		if c := rig.join.Counts(); c != want {
			t.Fatalf("%s: counts %+v, want %+v", name, c, want)
		}
	}
	if !slices.Equal(first.weights(), restored.weights()) {
		t.Fatal("the restored writer learned the label otherwise")
	}
}

// TestLoggedLabelDeliveredAgainBeforeItsStreamJoin: in log mode, a label
// parked by a writer that stopped before it read the early-label stream
// (d's prediction was put, and announced, meanwhile) is delivered again
// to the restored writer. It takes the prediction at once (joined) and
// its parked label leaves its label batch: the stream's entry then joins
// nothing, and the label is not counted an orphan too when the parked
// labels expire. Before, it stayed parked, and expired an orphan.
func TestLoggedLabelDeliveredAgainBeforeItsStreamJoin(t *testing.T) {
	checkLoggedDeliveredAgainBeforeItsStreamJoin(t, newJoinRig(t, testSpec(t, false)))
}

// checkLoggedDeliveredAgainBeforeItsStreamJoin is
// TestLoggedLabelDeliveredAgainBeforeItsStreamJoin on base's Redis; the
// expiry is checked on miniredis alone.
func checkLoggedDeliveredAgainBeforeItsStreamJoin(t *testing.T, base *joinRig) {
	spec := base.spec
	ctx := context.Background()
	first := loggedRig(t, spec, base)
	first.labelAt(t, "d", 12)
	first.predict(t, "d")
	restored := loggedRig(t, spec, first.restarted(t, spec))
	restored.offset = 100
	restored.handleCounted(t, labelsAt(12, "d"))
	if got := parkedIndex(t, restored.cache); len(got) != 0 {
		t.Fatalf("parked after the label joined: %v, want none", got)
	}
	entries, err := restored.cache.ReadEarlyReady(ctx, "", 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("early-label stream %v, %v; want d's entry", entries, err)
	}
	if joined, err := restored.join.JoinEarlyReady(ctx, entries); err != nil || len(joined) != 0 {
		t.Fatalf("the stream's entry joined %v (%v), want nothing: its label joined already", joined, err)
	}
	if c := restored.join.Counts(); c != (LabelCounts{Processed: 1, Joined: 1}) {
		t.Fatalf("restored writer: %+v, want d joined", c)
	}
	if restored.r.Mini == nil {
		return
	}
	restored.now = restored.now.Add(2*restored.cache.ttl + time.Second)
	restored.predict(t, "z")
	if c := restored.join.Counts(); c.Orphan != 0 || c.Settled() != c.Processed {
		t.Fatalf("after the parked labels' expiry: %+v, want d joined alone", c)
	}
}
