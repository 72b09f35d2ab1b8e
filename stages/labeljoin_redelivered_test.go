package stages

import (
	"context"
	"testing"
)

// TestLabelsDeliveredAgainToTheSameProcess: the labels group loses its
// partition (the process paused longer than the group's session) before
// the offsets are committed and gets it back: the same process is
// delivered the labels again, by a new partition handler, in a batch that
// goes on past them. The scripts reply as the first time (a joined again
// from its mark, b parked and since taken by its prediction's put, c still
// parked); the counters count each label once, so that Parked() is the
// labels the park holds (before, b and c were counted in Early twice: a
// bounded demo reported them parked for ever, their predictions gone).
func TestLabelsDeliveredAgainToTheSameProcess(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.join.KeepMarksUntilCommitted(&CommittedOffsets{}, nil)
	rig.predict(t, "a")
	rig.handleCounted(t, labelsAt(0, "a", "b", "c"))
	rig.predict(t, "b") // takes b from the park
	if c := rig.settled(t, "first delivery"); c.Joined != 2 || c.Parked() != 1 {
		t.Fatalf("first delivery: %+v, parked %d; want a and b joined, c parked", c, c.Parked())
	}

	again, err := rig.join.Open("labels", 0) // the partition assigned again
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Handle(context.Background(), labelsAt(0, "a", "b", "c", "d")); err != nil {
		t.Fatal(err)
	}
	c := rig.settled(t, "delivered again")
	if c.Processed != 4 || c.Joined != 2 || c.Early != 3 || c.Parked() != 2 || c.Invalid != 0 {
		t.Fatalf("delivered again: %+v, parked %d; want 4 processed, a and b joined, c and d parked", c, c.Parked())
	}
	rig.predict(t, "c", "d")
	if c := rig.settled(t, "predictions come"); c.Joined != 4 || c.Parked() != 0 || c.Settled() != 4 {
		t.Fatalf("after c's and d's predictions: %+v, parked %d; want all 4 joined", c, c.Parked())
	}
}
