package stages

import (
	"context"
	"testing"
	"time"
)

// TestLabelBatchCountedOnceWhenRetried: a label batch that fails (Redis
// is away) counts nothing, and counts once when it is handled again, as
// the partition loop does; LabelCounts then add up, with the parked labels
// what the early-label index holds, through an early label joined and an
// orphan. Before, a failed batch counted as processed once per try.
func TestLabelBatchCountedOnceWhenRetried(t *testing.T) {
	rig := newJoinRig(t, testSpec(t, false))
	rig.predict(t, "a", "b")
	msgs := labelMsgs([]string{"a", "b", "c"}, func(int) int { return 1 })
	msgs = append(msgs, labelMsgs([]string{"bad"}, func(int) int { return 1 })...)
	msgs[3].Value = []byte(`{"event_id":`)

	rig.r.Mini.Close()
	for range 2 {
		if err := rig.handler.Handle(context.Background(), msgs); err == nil {
			t.Fatal("handled a label batch while Redis was away")
		}
	}
	if c := rig.join.Counts(); c != (LabelCounts{}) {
		t.Fatalf("a failed label batch counted %+v, want nothing", c)
	}
	if err := rig.r.Mini.Restart(); err != nil {
		t.Fatal(err)
	}
	rig.handle(t, msgs)
	want := LabelCounts{Processed: 4, Joined: 2, Early: 1, Invalid: 1}
	if c := rig.join.Counts(); c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	parked := parkedIndex(t, rig.cache)
	c := rig.join.Counts()
	if c.Parked() != int64(len(parked)) || c.Settled()+c.Parked() != c.Processed {
		t.Fatalf("parked %d (the index holds %d), settled %d, processed %d", c.Parked(), len(parked), c.Settled(), c.Processed)
	}
	// c's prediction comes: the parked label joins.
	rig.predict(t, "c")
	c = rig.join.Counts()
	if c.Joined != 3 || c.EarlyJoined != 1 || c.Parked() != 0 || c.Settled() != c.Processed {
		t.Fatalf("after c's prediction: %+v", c)
	}
	// z's event never comes: parked, then an orphan once it expired.
	rig.label(t, "z")
	if c = rig.join.Counts(); c.Parked() != 1 || c.Settled()+c.Parked() != c.Processed {
		t.Fatalf("z parked: %+v", c)
	}
	rig.now = rig.now.Add(2*rig.cache.ttl + time.Second)
	rig.predict(t, "d")
	if c = rig.join.Counts(); c.Orphan != 1 || c.Parked() != 0 || c.Settled() != c.Processed {
		t.Fatalf("z expired: %+v", c)
	}
}

// TestParkedNeverNegativeAfterARestart: a second process on the same
// Redis joins a label the first one parked, and lets another the first
// one parked expire. It never counted them in Early, so Early -
// EarlyJoined - Orphan is -2 there; Parked reports 0, while the first
// process still reports its two parked labels.
func TestParkedNeverNegativeAfterARestart(t *testing.T) {
	spec := testSpec(t, false)
	first := newJoinRig(t, spec)
	first.label(t, "a")
	first.label(t, "z")
	if c := first.join.Counts(); c.Early != 2 || c.Parked() != 2 {
		t.Fatalf("first process: %+v, parked %d, want 2 parked", c, c.Parked())
	}
	next := first.restarted(t, spec)
	next.predict(t, "a")
	c := next.join.Counts()
	if c.Early != 0 || c.EarlyJoined != 1 || c.Joined != 1 {
		t.Fatalf("second process after a's prediction: %+v, want a joined early", c)
	}
	if c.Parked() != 0 {
		t.Errorf("second process: parked %d with %+v, want 0", c.Parked(), c)
	}
	next.now = next.now.Add(2*next.cache.ttl + time.Second)
	next.predict(t, "b")
	if c = next.join.Counts(); c.Orphan != 1 || c.Parked() != 0 {
		t.Errorf("second process after z expired: parked %d with %+v, want 1 orphan and 0 parked", c.Parked(), c)
	}
}
