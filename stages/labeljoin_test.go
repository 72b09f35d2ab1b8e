package stages

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// joinRig is a scoring chain whose Score.Observe caches predictions for a
// label join on miniredis, with a clock the test moves.
type joinRig struct {
	*chain
	r       *redistest.Redis
	join    *LabelJoin
	cache   *PredictionCache
	metrics *JoinMetrics
	now     time.Time
	handler pipeline.PartitionHandler
	offset  int64
}

func newJoinRig(t *testing.T, spec *pipeline.Spec) *joinRig {
	t.Helper()
	r, rdb := startRedis(t)
	m, err := NewJoinMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rig := &joinRig{chain: newChain(t, spec, nil), r: r, metrics: m,
		now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	rig.cache = NewPredictionCache(spec, rdb, spec.Model.Version, m)
	rig.cache.now = func() time.Time { return rig.now }
	rig.join = NewLabelJoin(spec, rig.cache, rig.champion)
	rig.score.Observe = rig.join.Observe
	if rig.handler, err = rig.join.Open("labels", 0); err != nil {
		t.Fatal(err)
	}
	return rig
}

// predict scores events with the given ids.
func (rig *joinRig) predict(t *testing.T, ids ...string) {
	t.Helper()
	rows := make([][]byte, len(ids))
	for i, id := range ids {
		rows[i] = row(map[string]string{"event_id": `"` + id + `"`, "f0": strconv.Itoa(i % 3)})
	}
	b := newBatch(rig.offset, rows...)
	rig.offset += int64(len(ids))
	mustProcess(t, b, rig.stages()...)
	if len(b.Outputs) != len(ids) {
		t.Fatalf("%d predictions for %d events", len(b.Outputs), len(ids))
	}
}

// label delivers label records {"event_id": id, "label": 1}.
func (rig *joinRig) label(t *testing.T, ids ...string) {
	t.Helper()
	msgs := make([]pipeline.Message, len(ids))
	for i, id := range ids {
		msgs[i] = pipeline.Message{Topic: "labels", Value: []byte(`{"event_id":"` + id + `","label":1,"extra":[1,{"a":null}]}`)}
	}
	if err := rig.handler.Handle(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func (rig *joinRig) weights() []float32 {
	p := rig.champion.Snapshot().Params()
	return append(p.W, p.B...)
}

type joinCounts struct{ joined, late, early, orphan, missing, evicted, invalid float64 }

func (rig *joinRig) counts() joinCounts {
	m := rig.metrics
	return joinCounts{testutil.ToFloat64(m.joined), testutil.ToFloat64(m.late), testutil.ToFloat64(m.early),
		testutil.ToFloat64(m.orphan), testutil.ToFloat64(m.missing), testutil.ToFloat64(m.evicted), testutil.ToFloat64(m.invalid)}
}

func (rig *joinRig) expect(t *testing.T, step string, want joinCounts) {
	t.Helper()
	if got := rig.counts(); got != want {
		t.Fatalf("%s: counts %+v, want %+v", step, got, want)
	}
}

func TestLabelJoin(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	w0 := rig.weights()
	rig.predict(t, "a", "b", "c")
	if !slices.Equal(w0, rig.weights()) {
		t.Fatal("scoring changed the weights")
	}
	if !rig.r.Mini.Exists(spec.Redis.KeyPrefix + "pred:a") {
		t.Fatalf("prediction not cached; keys %v", rig.r.Mini.Keys())
	}
	if ttl := rig.r.Mini.TTL(spec.Redis.KeyPrefix + "pred:a"); ttl != 20*time.Minute {
		t.Errorf("cache TTL %v, want twice the label TTL", ttl)
	}

	// On time: joined, and the learner learns.
	rig.now = rig.now.Add(time.Minute)
	rig.label(t, "a")
	rig.expect(t, "on time", joinCounts{joined: 1})
	w1 := rig.weights()
	if slices.Equal(w0, w1) {
		t.Fatal("weights unchanged after a joined label")
	}
	if rig.r.Mini.Exists(spec.Redis.KeyPrefix + "pred:a") {
		t.Error("joined prediction still cached")
	}

	// Redelivered label: not learned twice (it is parked, then orphaned).
	rig.label(t, "a")
	if !slices.Equal(w1, rig.weights()) {
		t.Fatal("a redelivered label was learned again")
	}
	rig.expect(t, "redelivered", joinCounts{joined: 1, early: 1})

	// Late: after the label TTL, within twice it.
	rig.now = rig.now.Add(15 * time.Minute)
	rig.label(t, "b")
	rig.expect(t, "late", joinCounts{joined: 1, late: 1, early: 1})
	w2 := rig.weights()
	if slices.Equal(w1, w2) {
		t.Fatal("weights unchanged after a late label")
	}

	// Early: the label overtakes its prediction; Observe joins it.
	rig.label(t, "d")
	rig.expect(t, "early", joinCounts{joined: 1, late: 1, early: 2})
	if !slices.Equal(w2, rig.weights()) {
		t.Fatal("a parked label was learned before its prediction")
	}
	rig.predict(t, "d", "e")
	rig.expect(t, "early joined", joinCounts{joined: 2, late: 1, early: 2})
	w3 := rig.weights()
	if slices.Equal(w2, w3) {
		t.Fatal("weights unchanged after an early label joined")
	}
	for _, k := range []string{"pred:d", "early-label:d"} {
		if rig.r.Mini.Exists(spec.Redis.KeyPrefix + k) {
			t.Errorf("%s still in redis after the join", k)
		}
	}
	rig.label(t, "d") // redelivered after an early join: not learned again
	if !slices.Equal(w3, rig.weights()) {
		t.Fatal("a redelivered early label was learned again")
	}

	// Invalid label records are counted, not fatal.
	if err := rig.handler.Handle(context.Background(), []pipeline.Message{
		{Value: []byte(`{"event_id":"e"}`)}, {Value: []byte(`not json`)}, {Value: []byte(`{"event_id":"","label":1}`)},
		{Value: []byte(`{"event_id":"e","label":"yes"}`)},
	}); err != nil {
		t.Fatal(err)
	}
	if got := rig.counts().invalid; got != 4 {
		t.Errorf("invalid = %v, want 4", got)
	}
	if got := rig.join.Processed(); got != 9 {
		t.Errorf("Processed = %d, want 9", got)
	}

	// Expiry: c and e never get labels; past twice the TTL the next Put
	// counts them missing, and the parked labels for a and d as orphans.
	rig.now = rig.now.Add(time.Hour)
	rig.predict(t, "f")
	c := rig.counts()
	if c.missing != 2 || c.orphan != 2 {
		t.Errorf("after expiry: %+v, want missing 2 (c, e), orphan 2 (a, d)", c)
	}
	if s := rig.metrics.Summaries(); len(s) != 1 || s[0].Labels != 3 || s[0].Version != "7" || s[0].Model != "unit-logistic" {
		t.Errorf("summaries %+v, want 3 labels (a, b, d) for unit-logistic/7", s)
	}
}

func TestLabelJoinEviction(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"max_pending: 1000": "max_pending: 3"})
	rig := newJoinRig(t, spec)
	rig.predict(t, "p1", "p2")
	rig.now = rig.now.Add(time.Second)
	rig.predict(t, "p3", "p4", "p5")
	c := rig.counts()
	if c.evicted != 2 || c.missing != 2 {
		t.Fatalf("after 5 predictions with max_pending 3: %+v, want evicted 2, missing 2", c)
	}
	for _, id := range []string{"p1", "p2"} {
		if rig.r.Mini.Exists(spec.Redis.KeyPrefix + "pred:" + id) {
			t.Errorf("oldest prediction %s not evicted", id)
		}
	}
	w := rig.weights()
	rig.label(t, "p1", "p2", "p3", "p4", "p5")
	c = rig.counts()
	if c.joined != 3 || c.early != 2 {
		t.Errorf("labels after eviction: %+v, want joined 3 (p3-p5), early 2 (evicted p1, p2)", c)
	}
	if slices.Equal(w, rig.weights()) {
		t.Error("weights unchanged after 3 joins")
	}
}
