package stages

import (
	"context"
	"slices"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// newLoggedJoinRig is newJoinRig with the learner-state log mode's cache.
func newLoggedJoinRig(t testing.TB, spec *pipeline.Spec) *joinRig {
	t.Helper()
	return loggedRig(t, spec, newJoinRig(t, spec))
}

// loggedRig turns rig into one with the learner-state log mode's cache.
func loggedRig(t testing.TB, spec *pipeline.Spec, rig *joinRig) *joinRig {
	t.Helper()
	rig.cache = NewLoggedPredictionCache(spec, rig.cache.rdb, spec.Model.Version, rig.metrics)
	rig.cache.now = rig.clock
	rig.join = NewLabelJoin(spec, rig.cache, rig.champion)
	rig.score.Observe = rig.join.Observe
	var err error
	if rig.handler, err = rig.join.Open("labels", 0); err != nil {
		t.Fatal(err)
	}
	return rig
}

// labelAt delivers the label {"event_id": id, "label": 1} at offset off of
// labels partition 0.
func (rig *joinRig) labelAt(t testing.TB, id string, off int64) {
	t.Helper()
	msgs := labelMsgs([]string{id}, func(int) int { return 1 })
	msgs[0].Offset = off
	rig.handle(t, msgs)
}

// restore serves a copy of l, as a writer restored from a publish does.
func (rig *joinRig) restore(l models.Learner) { rig.champion.Swap(l.Clone(), StateMark{}) }

// TestLoggedLabelJoin: in learner-state log mode a joined row stays until
// a publish covering it is released, so that a writer restored from a
// publish before the join learns the label again, to the same weights; a
// label for an already joined row at another position (a duplicate) is
// not learned; an early label is not learned by the data plane but
// announced, joined by the writer from the early-label stream, and joined
// again alike after a restore; releasing deletes the rows, marks, parked
// labels and stream entries.
func TestLoggedLabelJoin(t *testing.T) {
	spec := testSpec(t, false)
	rig := newLoggedJoinRig(t, spec)
	ctx := context.Background()
	prefix := spec.Redis.KeyPrefix
	rig.predict(t, "a", "b", "c")
	before := rig.champion.Snapshot()
	w0 := rig.weights()

	rig.labelAt(t, "a", 10)
	rig.expect(t, "joined", joinCounts{joined: 1})
	w1 := rig.weights()
	if slices.Equal(w0, w1) {
		t.Fatal("weights unchanged after a joined label")
	}
	if !rig.r.Mini.Exists(prefix+"pred:a") || rig.r.Mini.Exists(prefix+"pred:a") && mustGet(t, rig, prefix+"pred-joined:a") != "0:10" {
		t.Fatalf("the joined row is not kept with its mark; keys %v", rig.r.Mini.Keys())
	}
	if got := rig.join.TakeJoined(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("joined %v, want [a]", got)
	}

	// A restored writer joins the same label again: the same weights.
	rig.restore(before)
	rig.labelAt(t, "a", 10)
	if !slices.Equal(w1, rig.weights()) {
		t.Fatal("the re-join after a restore did not give the same weights")
	}
	// A duplicate (another position) is refused as one, not learned.
	rig.labelAt(t, "a", 11)
	if !slices.Equal(w1, rig.weights()) {
		t.Fatal("a duplicate label was learned")
	}
	rig.expect(t, "re-joined and duplicate", joinCounts{joined: 2, invalid: 1})

	// An early label: parked; the data plane announces it, learns nothing.
	rig.labelAt(t, "d", 12)
	rig.predict(t, "d")
	if !slices.Equal(w1, rig.weights()) {
		t.Fatal("the data plane learned an early label in log mode")
	}
	entries, err := rig.cache.ReadEarlyReady(ctx, "", 10)
	if err != nil || len(entries) != 1 || entries[0].EventID != "d" {
		t.Fatalf("early-label stream %v, %v; want one entry for d", entries, err)
	}
	joined, err := rig.join.JoinEarlyReady(ctx, entries)
	if err != nil || !slices.Equal(joined, []string{"d"}) {
		t.Fatalf("JoinEarlyReady = %v, %v; want [d]", joined, err)
	}
	w2 := rig.weights()
	if slices.Equal(w1, w2) {
		t.Fatal("weights unchanged after the early label joined")
	}
	if more, _ := rig.cache.ReadEarlyReady(ctx, entries[0].ID, 10); len(more) != 0 {
		t.Errorf("entries after the last one read: %v", more)
	}
	// Restored to before it, the writer joins it again alike.
	rig.restore(before)
	rig.labelAt(t, "a", 10)
	if _, err := rig.join.JoinEarlyReady(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w2, rig.weights()) {
		t.Fatal("re-joining a and the early label after a restore gave other weights")
	}

	// A writer restored from a publish covering the entry trims it, and
	// keeps the entries after it.
	rig.labelAt(t, "e", 13)
	rig.predict(t, "e")
	if err := rig.cache.TrimEarlyReady(ctx, entries[0].ID); err != nil {
		t.Fatal(err)
	}
	if left, _ := rig.cache.ReadEarlyReady(ctx, "", 10); len(left) != 1 || left[0].EventID != "e" {
		t.Fatalf("early-label stream after a trim up to %s: %v, want e's entry only", entries[0].ID, left)
	}

	// Released once a publish covers them: gone, and not joined again.
	if err := rig.cache.ReleaseJoined(ctx, append(rig.join.TakeJoined(), joined...), []string{entries[0].ID}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pred:a", "pred-joined:a", "pred:d", "pred-joined:d", "early-label:d"} {
		if rig.r.Mini.Exists(prefix + k) {
			t.Errorf("%s still in redis after the release", k)
		}
	}
	if left, _ := rig.cache.ReadEarlyReady(ctx, "", 10); len(left) != 1 || left[0].EventID != "e" {
		t.Errorf("early-label stream after the release: %v, want e's entry only", left)
	}
	if _, err := rig.join.JoinEarlyReady(ctx, entries); err != nil || !slices.Equal(w2, rig.weights()) {
		t.Errorf("a released early entry was learned again (err %v)", err)
	}
}

func mustGet(t testing.TB, rig *joinRig, key string) string {
	t.Helper()
	v, err := rig.r.Mini.Get(key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return v
}
