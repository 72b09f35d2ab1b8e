package stages

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
)

// labelOutcomes is the sum of the counters that each label record handled
// by the labels topic counts in exactly once: joined, late, early
// (parked), invalid and parked_overflow (refused, max_parked).
func (rig *joinRig) labelOutcomes() float64 {
	c := rig.counts()
	return c.joined + c.late + c.early + c.invalid + testutil.ToFloat64(rig.metrics.parkedOverflow)
}

// handleCounted handles msgs and checks that each counted in exactly one
// label outcome.
func (rig *joinRig) handleCounted(t *testing.T, msgs []pipeline.Message) {
	t.Helper()
	before, processed := rig.labelOutcomes(), rig.join.Processed()
	rig.handle(t, msgs)
	if got := rig.labelOutcomes() - before; got != float64(len(msgs)) {
		t.Fatalf("%d label records counted %v times in joined/late/early/invalid/parked_overflow", len(msgs), got)
	}
	if got := rig.join.Processed() - processed; got != int64(len(msgs)) {
		t.Fatalf("Processed grew by %d for %d records", got, len(msgs))
	}
}

// offsets numbers msgs' offsets from 0.
func offsets(msgs []pipeline.Message) []pipeline.Message {
	for i := range msgs {
		msgs[i].Offset = int64(i)
	}
	return msgs
}

// TestLabelBatchMixedOutcomes: one batch of label records in which some
// join on time, some late, some are parked, some invalid and some refused
// once labels.max_parked are parked — each counted once, the refused ones
// (and only those, with the invalid) in the DLQ at their own offsets.
func TestLabelBatchMixedOutcomes(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"max_pending: 1000": "max_pending: 1000, max_parked: 3"})
	rig := newJoinRig(t, spec)
	sink := rig.withDLQ(t)
	rig.predict(t, "p1", "p2")
	rig.now = rig.now.Add(12 * time.Minute) // past the 10m TTL: p1, p2 are late
	rig.predict(t, "q1")
	w0 := rig.weights()
	msgs := offsets(labelMsgs([]string{"p1", "q1", "x1", "bad", "x2", "x3", "x4", "q1", "p2"}, labelRule))
	msgs[3].Value = []byte(`{"event_id":"bad"}`)
	rig.handleCounted(t, msgs)
	rig.expect(t, "mixed batch", joinCounts{joined: 1, late: 2, early: 3, invalid: 2})
	if got := testutil.ToFloat64(rig.metrics.parkedOverflow); got != 1 {
		t.Errorf("parked_overflow %v, want 1 (x4, once 3 are parked)", got)
	}
	if got := testutil.ToFloat64(rig.metrics.parked); got != 3 {
		t.Errorf("parked gauge %v, want 3", got)
	}
	var dlq []string
	for _, r := range sink.recs {
		for _, h := range r.Headers {
			if h.Key == pipeline.HeaderSourceOffset {
				dlq = append(dlq, string(h.Value))
			}
		}
	}
	if want := []string{"3", "6", "7"}; !slices.Equal(dlq, want) {
		t.Errorf("DLQ offsets %v, want %v (invalid, then the two refused)", dlq, want)
	}
	if got := sink.reasons(); len(sink.recs) != 3 || got[ReasonLabelParkedFull] != 1 || got[ReasonLabelDuplicate] != 1 {
		t.Errorf("DLQ reasons %v", got)
	}
	if slices.Equal(w0, rig.weights()) {
		t.Error("the joined labels were not learned")
	}
	for _, id := range []string{"x1", "x2", "x3"} {
		if !rig.r.Mini.Exists(spec.Redis.KeyPrefix + "early-label:" + id) {
			t.Errorf("label %s not parked", id)
		}
	}
	if rig.r.Mini.Exists(spec.Redis.KeyPrefix + "early-label:x4") {
		t.Error("the refused label x4 was parked")
	}
}

// TestLabelBatchDuplicates: a label repeated within one batch is learned
// once, exactly as a batch without the repeats; the repeats are refused
// as duplicates (invalid, to the DLQ), and nothing is parked.
func TestLabelBatchDuplicates(t *testing.T) {
	spec := testSpec(t, false)
	dup, plain := newJoinRig(t, spec), newJoinRig(t, spec)
	for _, rig := range []*joinRig{dup, plain} {
		rig.predict(t, "a", "b", "c")
	}
	dup.handleCounted(t, labelMsgs([]string{"a", "a", "b", "a", "c"}, func(int) int { return 1 }))
	plain.handleCounted(t, labelMsgs([]string{"a", "b", "c"}, func(int) int { return 1 }))
	if !slices.Equal(dup.weights(), plain.weights()) {
		t.Fatal("a label repeated within a batch was learned more than once")
	}
	dup.expect(t, "duplicates", joinCounts{joined: 3, invalid: 2})
	if got := testutil.ToFloat64(dup.metrics.parked); got != 0 {
		t.Errorf("parked gauge %v, want 0", got)
	}
	if got := pendingCount(t, dup); got != 0 {
		t.Errorf("pending count %d after every prediction joined, want 0", got)
	}
}

// TestPutDuplicatesTakeAParkedLabelOnce: a batch of predictions that
// holds an event twice joins the event's parked label once; the second
// row is cached, pending.
func TestPutDuplicatesTakeAParkedLabelOnce(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.label(t, "a")
	rig.predict(t, "a", "a", "b")
	rig.expect(t, "one parked label, two rows", joinCounts{joined: 1, early: 1})
	if got := pendingCount(t, rig); got != 2 {
		t.Errorf("pending %d, want 2 (a's second row, b)", got)
	}
	if rig.r.Mini.Exists(spec.Redis.KeyPrefix + "early-label:a") {
		t.Error("the joined parked label is still there")
	}
}

// TestLoggedLabelBatchRejoin: in log mode, a batch re-joined with the same
// positions (a writer restored from a publish before it) learns the same
// labels again to the same weights, its in-batch duplicate (another
// position) is refused both times, and the pending count is unchanged.
func TestLoggedLabelBatchRejoin(t *testing.T) {
	spec := testSpec(t, false)
	rig := newLoggedJoinRig(t, spec)
	rig.predict(t, "a", "b", "c")
	before := rig.champion.Snapshot()
	msgs := labelMsgs([]string{"a", "b", "a"}, labelRule)
	for i := range msgs {
		msgs[i].Offset = int64(20 + i)
	}
	rig.handleCounted(t, msgs)
	rig.expect(t, "first join", joinCounts{joined: 2, invalid: 1})
	w1 := rig.weights()
	if got := rig.join.TakeJoined(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("joined %v, want [a b]", got)
	}
	if got := pendingCount(t, rig); got != 1 {
		t.Errorf("pending %d, want 1 (c)", got)
	}
	rig.restore(before)
	rig.handleCounted(t, msgs)
	if !slices.Equal(w1, rig.weights()) {
		t.Fatal("the re-joined batch did not give the same weights")
	}
	rig.expect(t, "re-join", joinCounts{joined: 4, invalid: 2})
	if got := rig.join.TakeJoined(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("re-joined %v, want [a b]", got)
	}
	if got := pendingCount(t, rig); got != 1 {
		t.Errorf("pending %d after the re-join, want still 1", got)
	}
	if got := mustGet(t, rig, spec.Redis.KeyPrefix+"pred-joined:a"); got != "0:20" {
		t.Errorf("a's mark %q, want 0:20 (the first label's position)", got)
	}
}

// TestLabelBatchMaxParked: within one batch of labels for events not
// predicted yet, the first labels.max_parked are parked and the rest
// refused, in order.
func TestLabelBatchMaxParked(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"max_pending: 1000": "max_pending: 1000, max_parked: 5"})
	rig := newJoinRig(t, spec)
	sink := rig.withDLQ(t)
	evs := ids("u", 12)
	rig.handleCounted(t, offsets(labelMsgs(evs, labelRule)))
	rig.expect(t, "parked", joinCounts{early: 5})
	members := parkedIndex(t, rig.cache)
	want := make([]string, 5)
	for i := range want {
		want[i] = spec.Redis.KeyPrefix + "early-label:" + evs[i]
	}
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Errorf("parked %v, want the first 5 %v", members, want)
	}
	if len(sink.recs) != 7 || sink.reasons()[ReasonLabelParkedFull] != 7 {
		t.Errorf("DLQ %d records %v, want 7 %s", len(sink.recs), sink.reasons(), ReasonLabelParkedFull)
	}
	// Their predictions come: the 5 parked labels join on Put.
	rig.predict(t, evs...)
	if c := rig.counts(); c.joined != 5 {
		t.Errorf("joined %v after the predictions, want 5", c.joined)
	}
	if got := pendingCount(t, rig); got != 7 {
		t.Errorf("pending %d, want 7 (the predictions whose labels were refused)", got)
	}
}

// pendingCount is the cache's count of pending predictions, checked
// against its batches: the sum of their sets' sizes, and no batch indexed
// without pending predictions.
func pendingCount(t *testing.T, rig *joinRig) int {
	t.Helper()
	prefix := rig.cache.batch
	n := 0
	if rig.r.Mini.Exists(rig.cache.pending) {
		var err error
		if n, err = strconv.Atoi(mustGet(t, rig, rig.cache.pending)); err != nil {
			t.Fatal(err)
		}
	}
	refs, err := rig.r.Mini.ZMembers(rig.cache.batches)
	if err != nil && rig.r.Mini.Exists(rig.cache.batches) {
		t.Fatal(err)
	}
	sum := 0
	for _, ref := range refs {
		ids, err := rig.r.Mini.Members(prefix + ref)
		if err != nil || len(ids) == 0 {
			t.Fatalf("batch %s indexed with no pending predictions (%v)", ref, err)
		}
		sum += len(ids)
	}
	batches := 0
	for _, k := range rig.r.Mini.Keys() {
		if strings.HasPrefix(k, prefix) {
			batches++
		}
	}
	if sum != n || batches != len(refs) {
		t.Fatalf("pending count %d, but %d ids in %d indexed batches (%d batch sets)", n, sum, len(refs), batches)
	}
	return n
}

// TestPendingIndexedPerBatch: a batch of predictions is one index entry;
// labels joined from it leave it; when it expires, only its predictions
// still pending count as missing; a batch handed in again (a retried
// batch) or an id repeated within a batch is pending once.
func TestPendingIndexedPerBatch(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.predict(t, "a", "b", "c", "a")
	rig.predict(t, "d", "e")
	rig.predict(t, "d", "e") // retried
	if n, _ := rig.r.Mini.ZMembers(rig.cache.batches); len(n) != 2 {
		t.Fatalf("%d batches indexed, want 2 (the retried batch's events moved to it)", len(n))
	}
	if got := pendingCount(t, rig); got != 5 {
		t.Fatalf("pending %d, want 5 (a b c d e)", got)
	}
	rig.label(t, "a", "d")
	if got := pendingCount(t, rig); got != 3 {
		t.Fatalf("pending %d after 2 joins, want 3", got)
	}
	rig.label(t, "e")
	if n, _ := rig.r.Mini.ZMembers(rig.cache.batches); len(n) != 1 {
		t.Errorf("%d batches indexed once d, e joined, want 1", len(n))
	}
	rig.now = rig.now.Add(time.Hour)
	rig.predict(t, "f")
	if c := rig.counts(); c.missing != 2 || c.evicted != 0 {
		t.Errorf("after expiry %+v, want missing 2 (b, c)", c)
	}
	if got := pendingCount(t, rig); got != 1 {
		t.Errorf("pending %d, want 1 (f)", got)
	}
}

// TestPendingEvictionAcrossBatches: beyond labels.max_pending the oldest
// batches' pending predictions are evicted first, exactly as many as the
// bound needs, each counted missing and evicted once.
func TestPendingEvictionAcrossBatches(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"max_pending: 1000": "max_pending: 5"})
	rig := newJoinRig(t, spec)
	rig.predict(t, "a1", "a2", "a3")
	rig.now = rig.now.Add(time.Second)
	rig.label(t, "a2")
	rig.predict(t, "b1", "b2")
	rig.now = rig.now.Add(time.Second)
	rig.predict(t, "c1", "c2", "c3")
	// 7 pending, bound 5: a1, a3 (the oldest batch's) go.
	if c := rig.counts(); c.evicted != 2 || c.missing != 2 {
		t.Fatalf("counts %+v, want evicted 2, missing 2", c)
	}
	for _, id := range []string{"a1", "a3"} {
		if rig.r.Mini.Exists(spec.Redis.KeyPrefix + "pred:" + id) {
			t.Errorf("%s not evicted", id)
		}
	}
	if got := pendingCount(t, rig); got != 5 {
		t.Errorf("pending %d, want 5", got)
	}
	rig.now = rig.now.Add(time.Second)
	rig.predict(t, "d1")
	// One over: one of b's.
	if c := rig.counts(); c.evicted != 3 {
		t.Errorf("evicted %v, want 3", c.evicted)
	}
	if got := pendingCount(t, rig); got != 5 {
		t.Errorf("pending %d, want 5", got)
	}
}

// TestLabelPlaneAccounting drives the label plane with a seeded random mix
// of prediction batches and label batches (labels for predicted events,
// for events predicted later, repeated labels, invalid records), with a
// clock that makes some labels late and some predictions expire, and
// small bounds that evict and refuse. Every label record counts once, and
// every cached prediction is joined, missing or still pending.
func TestLabelPlaneAccounting(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"max_pending: 1000": "max_pending: 60, max_parked: 25"})
	rig := newJoinRig(t, spec)
	rng := rand.New(rand.NewPCG(15, 1))
	predicted := 0
	var labelJoins, putJoins float64
	for step := range 200 {
		rig.now = rig.now.Add(time.Duration(rng.IntN(90)) * time.Second)
		if rng.IntN(2) == 0 {
			n := 1 + rng.IntN(20)
			before := rig.counts().joined
			evs := make([]string, n)
			for i := range evs {
				evs[i] = "e" + strconv.Itoa(predicted+i)
			}
			rig.predict(t, evs...)
			predicted += n
			putJoins += rig.counts().joined - before
			continue
		}
		n := 1 + rng.IntN(30)
		evs := make([]string, n)
		for i := range evs {
			// Mostly predicted events, some of the next to be predicted.
			evs[i] = "e" + strconv.Itoa(rng.IntN(predicted+15))
		}
		msgs := labelMsgs(evs, labelRule)
		if step%7 == 0 {
			msgs[0].Value = []byte(`not json`)
		}
		before := rig.counts()
		rig.handleCounted(t, msgs)
		after := rig.counts()
		labelJoins += after.joined + after.late - before.joined - before.late
	}
	c := rig.counts()
	pending := float64(pendingCount(t, rig))
	cached := float64(predicted) - putJoins // early labels joined on Put are not cached
	if got := labelJoins + c.missing + pending; got != cached {
		t.Errorf("%v predictions cached; %v joined by labels + %v missing + %v pending = %v", cached, labelJoins, c.missing, pending, got)
	}
	if c.late == 0 || c.missing == 0 || c.evicted == 0 || putJoins == 0 || testutil.ToFloat64(rig.metrics.parkedOverflow) == 0 {
		t.Errorf("the mix did not reach every path: %+v, joined on Put %v, overflow %v", c, putJoins, testutil.ToFloat64(rig.metrics.parkedOverflow))
	}
}

// TestPutLooksForEarlyLabelsOnlyWhenParked: a Put while no label is
// parked reads no early-label key; once one is, it finds it.
func TestPutLooksForEarlyLabelsOnlyWhenParked(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	ctx := context.Background()
	// A parked label's key that the early index does not list: a Put that
	// looked would find and join it.
	if err := rig.cache.rdb.Set(ctx, spec.Redis.KeyPrefix+"early-label:a", []byte{0, 0, 128, 63}, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	rig.predict(t, "a")
	if c := rig.counts(); c.joined != 0 {
		t.Fatalf("a Put with no label parked looked for early labels: %+v", c)
	}
	rig.label(t, "b") // parked
	if err := rig.cache.rdb.Set(ctx, spec.Redis.KeyPrefix+"early-label:c", []byte{0, 0, 128, 63}, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	rig.predict(t, "c")
	if c := rig.counts(); c.joined != 1 {
		t.Fatalf("a Put with a label parked did not join c's: %+v", c)
	}
}

// TestLabelPlaneChunks: batches larger than one script call takes
// (labelPlaneChunk) join row for row: 900 early labels join their
// predictions on Put, and 900 labels after their predictions join, each
// to its own row (max_pending is 1,000).
func TestLabelPlaneChunks(t *testing.T) {
	const n = 900
	ar := newArmsRig(t)
	for _, path := range []string{"early", "after prediction"} {
		evs := ids(path[:1], n)
		if path == "early" {
			ar.handle(t, labelMsgs(evs, labelRule))
			ar.predict(t, evs...)
		} else {
			ar.predict(t, evs...)
			ar.handle(t, labelMsgs(evs, labelRule))
		}
		counts, _, learned, _ := ar.take()
		if counts["7/champion"] != n {
			t.Fatalf("%s: outcomes %v, want %d of the champion", path, counts, n)
		}
		checkLearned(t, path, learned, n)
	}
	if c := ar.counts(); c.joined != 2*n || c.early != n {
		t.Errorf("counts %+v, want joined %d, early %d", c, 2*n, n)
	}
	if got := pendingCount(t, ar.joinRig); got != 0 {
		t.Errorf("pending %d, want 0", got)
	}
}
