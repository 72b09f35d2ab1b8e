package stages

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// eventMsgs builds the data plane's records of events with the given ids,
// at offsets from base, each with features of its own (f0 its offset).
func eventMsgs(base int64, ids ...string) []pipeline.Message {
	rows := make([][]byte, len(ids))
	for i, id := range ids {
		rows[i] = row(map[string]string{"event_id": `"` + id + `"`, "f0": strconv.Itoa(int(base) + i)})
	}
	return newBatch(base, rows...).Messages
}

// processAt runs the rig's stages on events at offsets from base, as the
// partition loop hands a batch in (again), and returns the first error.
func (rig *joinRig) processAt(base int64, ids ...string) error {
	b := &pipeline.Batch{}
	b.Reset(eventMsgs(base, ids...))
	for _, s := range rig.stages() {
		if err := s.Process(context.Background(), b); err != nil {
			return err
		}
	}
	return nil
}

// putMarks is the put marks in Redis.
func (rig *joinRig) putMarks() []string {
	var out []string
	for _, k := range rig.r.Mini.Keys() {
		if strings.HasPrefix(k, rig.cache.putTaken) {
			out = append(out, k)
		}
	}
	return out
}

// settled checks LabelCounts's invariant: every label processed is in one
// terminal counter or parked, and Parked is what the early index holds.
func (rig *joinRig) settled(t *testing.T, step string) LabelCounts {
	t.Helper()
	c := rig.join.Counts()
	if c.Settled()+c.Parked() != c.Processed {
		t.Fatalf("%s: counts %+v do not add up", step, c)
	}
	if n := len(parkedIndex(t, rig.cache)); int64(n) != c.Parked() {
		t.Fatalf("%s: the early index holds %d, Parked() %d", step, n, c.Parked())
	}
	return c
}

// parkedIndex is the parked labels' keys that the cache's index holds:
// the members of the label batches early-batches lists, sorted, and the
// previous version's index's. It fails the test where the parked count
// is not their number, or a batch is listed empty or not at all.
func parkedIndex(t testing.TB, c *PredictionCache) []string {
	t.Helper()
	ctx := context.Background()
	refs, err := c.rdb.ZRange(ctx, c.earlyBatches, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, ref := range refs {
		ks, err := c.rdb.SMembers(ctx, c.earlyBatch+ref).Result()
		if err != nil || len(ks) == 0 {
			t.Fatalf("label batch %s listed with %d labels (%v)", ref, len(ks), err)
		}
		keys = append(keys, ks...)
	}
	sets, err := c.rdb.Keys(ctx, c.earlyBatch+"*").Result()
	if err != nil || len(sets) != len(refs) {
		t.Fatalf("%d label batches, %d listed (%v)", len(sets), len(refs), err)
	}
	count, err := c.rdb.Get(ctx, c.parked).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	if count != len(keys) {
		t.Fatalf("parked count %d, the label batches hold %d", count, len(keys))
	}
	old, err := c.rdb.ZRange(ctx, c.oldEarlyIndex, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, old...)
	slices.Sort(keys)
	return keys
}

// TestPutRetriedAfterALostReply: a prediction-cache write whose script ran
// (joining two parked labels) but whose reply was lost fails and counts
// nothing; handed in again at the same offsets, as the partition loop
// does, it counts and learns exactly as one run on a second rig: the
// early labels are joined once (not lost, as a second run found them
// before), no prediction is pending twice. Handed in again after it
// succeeded, it changes nothing. The partition's next put deletes its
// marks.
func TestPutRetriedAfterALostReply(t *testing.T) {
	spec := testSpec(t, false)
	lost, once := newJoinRig(t, spec), newJoinRig(t, spec)
	hook := &lostReplies{script: putBatch}
	lost.cache.rdb.AddHook(hook)
	for _, rig := range []*joinRig{lost, once} {
		rig.label(t, "a", "c")
	}
	hook.n.Store(1)
	if err := lost.processAt(10, "a", "b", "c", "d"); !errors.Is(err, errReplyLost) {
		t.Fatalf("a put whose reply was lost: %v, want the lost reply's error", err)
	}
	if c := lost.join.Counts(); c.Joined != 0 || c.EarlyJoined != 0 || c.Parked() != 2 {
		t.Fatalf("a put whose reply was lost counted %+v", c)
	}
	for _, rig := range []*joinRig{lost, once} {
		if err := rig.processAt(10, "a", "b", "c", "d"); err != nil {
			t.Fatal(err)
		}
	}
	if lost.join.Counts() != once.join.Counts() {
		t.Fatalf("counts %+v after the retry, %+v after one run", lost.join.Counts(), once.join.Counts())
	}
	if c := lost.settled(t, "retried put"); c.Joined != 2 || c.EarlyJoined != 2 || c.Parked() != 0 {
		t.Fatalf("after the retried put: %+v, want a and c joined", c)
	}
	if !slices.Equal(lost.weights(), once.weights()) {
		t.Fatal("the retried put learned otherwise than one run of it")
	}
	// Handed in again after it succeeded: nothing joined or cached again.
	w := lost.weights()
	before := lost.join.Counts()
	if err := lost.processAt(10, "a", "b", "c", "d"); err != nil {
		t.Fatal(err)
	}
	if c := lost.join.Counts(); c != before || !slices.Equal(w, lost.weights()) {
		t.Fatalf("the batch handed in again counted %+v (before %+v) or learned", c, before)
	}
	for _, rig := range []*joinRig{lost, once} {
		rig.label(t, "b", "d")
	}
	for _, rig := range []*joinRig{lost, once} {
		if c := rig.settled(t, "b and d labelled"); c.Joined != 4 || c.Parked() != 0 {
			t.Fatalf("b and d labelled: %+v, want 4 joined", c)
		}
		if n, _ := rig.cache.rdb.Get(context.Background(), rig.cache.pending).Int(); n != 0 {
			t.Fatalf("%d predictions pending after every label came, want 0", n)
		}
	}
	if lost.join.Counts() != once.join.Counts() || !slices.Equal(lost.weights(), once.weights()) {
		t.Fatalf("counts %+v against one run's %+v, or weights differ", lost.join.Counts(), once.join.Counts())
	}
	// Past the TTL nothing is counted missing: no prediction was pending twice.
	for _, rig := range []*joinRig{lost, once} {
		rig.now = rig.now.Add(3 * rig.cache.ttl)
		if err := rig.processAt(20, "z"); err != nil {
			t.Fatal(err)
		}
		if c := rig.settled(t, "past the TTL"); c.Missing != 0 {
			t.Fatalf("%d predictions counted missing, want 0", c.Missing)
		}
	}
	if got := lost.putMarks(); !slices.Equal(got, []string{lost.cache.putMarks(3, 20)}) {
		t.Fatalf("put marks %v, want the last put's alone", got)
	}
}

// TestPutTwiceRepliesTheSame: the put script run twice for one chunk (the
// same job retried) replies the same and leaves Redis as one run did.
func TestPutTwiceRepliesTheSame(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.label(t, "a", "c")
	b := &pipeline.Batch{}
	b.Reset(eventMsgs(5, "a", "b", "c", "a"))
	mustProcess(t, b, rig.decode, rig.validate, rig.anon, rig.fz)
	b.Scores = make([]float32, b.Features.Len())
	p := rig.cache.newPutJob(b, Served{})
	ctx := context.Background()
	first, err := rig.cache.putChunk(ctx, p, 0, 0, p.len(), true)
	if err != nil {
		t.Fatal(err)
	}
	found := slices.Clone(p.found)
	state := rig.r.Mini.Dump()
	p.found = p.found[:0]
	second, err := rig.cache.putChunk(ctx, p, 0, 0, p.len(), true)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || !slices.Equal(found, p.found) {
		t.Fatalf("first run %v %v, second %v %v", first, found, second, p.found)
	}
	if want := []earlyLabel{{0, 1}, {2, 1}}; !slices.Equal(found, want) {
		t.Fatalf("early labels %v, want a's and c's (rows 0 and 2)", found)
	}
	if got := rig.r.Mini.Dump(); got != state {
		t.Errorf("the second run changed Redis:\nbefore %s\nafter  %s", state, got)
	}
}

// TestDeferredPutUnderARunner: under a pipeline.Runner the cache write is
// the batch's deferred work: a lost reply is retried under
// RunnerConfig.Retry (the batch unacknowledged meanwhile), and the early
// labels it joined are taught once, as one synchronous run does; the
// batch's own buffers are reused by the next batch meanwhile.
func TestDeferredPutUnderARunner(t *testing.T) {
	spec := testSpec(t, false)
	lost, once := newJoinRig(t, spec), newJoinRig(t, spec)
	hook := &lostReplies{script: putBatch}
	lost.cache.rdb.AddHook(hook)
	health, err := pipeline.NewHealth(prometheus.NewRegistry(), nil, "redis")
	if err != nil {
		t.Fatal(err)
	}
	policy := &pipeline.RetryPolicy{
		Classify: func(err error) (string, string, bool) { return "redis", "timeout", errors.Is(err, errReplyLost) },
		Health:   health, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: lost.stages(), Sink: asyncNopSink{}, DLQTopic: "dlq",
		Metrics: m, MaxPendingBatches: 4, Retry: policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	for _, rig := range []*joinRig{lost, once} {
		rig.label(t, "a", "c", "e")
	}
	hook.n.Store(2)
	a := newAcks()
	batches := [][]string{{"a", "b", "c"}, {"d", "e", "f"}}
	for k, ids := range batches {
		if err := r.HandleAsync(context.Background(), eventMsgs(int64(10*k), ids...), a.ack); err != nil {
			t.Fatal(err)
		}
	}
	for range batches {
		select {
		case <-a.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("no ack")
		}
	}
	for _, err := range a.got {
		if err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if hook.n.Load() >= 0 {
		t.Fatal("no reply was lost: the test did not test a retry")
	}
	for k, ids := range batches {
		if err := once.processAt(int64(10*k), ids...); err != nil {
			t.Fatal(err)
		}
	}
	if lost.join.Counts() != once.join.Counts() || !slices.Equal(lost.weights(), once.weights()) {
		t.Fatalf("counts %+v under a runner with lost replies, %+v in one run, or weights differ", lost.join.Counts(), once.join.Counts())
	}
	if c := lost.settled(t, "runner"); c.Joined != 3 || c.Parked() != 0 {
		t.Fatalf("counts %+v, want a, c, e joined", c)
	}
}

// TestPutMarksTakenForTheSameRowsOnly: other rows handed in at the offsets
// of a batch whose put succeeded (a source that numbers every batch from
// 0) are cached and join their early labels as fresh rows.
func TestPutMarksTakenForTheSameRowsOnly(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	rig.label(t, "q")
	for _, ids := range [][]string{{"x", "y"}, {"p", "q"}} {
		if err := rig.processAt(0, ids...); err != nil {
			t.Fatal(err)
		}
	}
	if !rig.r.Mini.Exists(spec.Redis.KeyPrefix + "pred:p") {
		t.Fatal("the second batch at offset 0 was not cached")
	}
	if c := rig.settled(t, "second batch"); c.Joined != 1 || c.Parked() != 0 {
		t.Fatalf("counts %+v, want q's early label joined", c)
	}
}
