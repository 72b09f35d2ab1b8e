package stages

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// joinRig is a scoring chain whose Score.Observe caches predictions for a
// label join on miniredis, with a clock the test moves.
type joinRig struct {
	*chain
	r       *redistest.Redis
	reg     *prometheus.Registry
	join    *LabelJoin
	cache   *PredictionCache
	metrics *JoinMetrics
	now     time.Time
	handler pipeline.PartitionHandler
	offset  int64
	// labelOffset is the next label record's offset (handle).
	labelOffset int64
}

func newJoinRig(t testing.TB, spec *pipeline.Spec) *joinRig {
	t.Helper()
	r, rdb := startRedis(t)
	return newJoinRigOn(t, spec, r, rdb)
}

// newJoinRigOn is newJoinRig on the Redis r, through rdb.
func newJoinRigOn(t testing.TB, spec *pipeline.Spec, r *redistest.Redis, rdb redis.UniversalClient) *joinRig {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewJoinMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rig := &joinRig{chain: newChain(t, spec, nil), r: r, reg: reg, metrics: m,
		now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	rig.cache = NewPredictionCache(spec, rdb, spec.Model.Version, m)
	rig.cache.now = rig.clock
	rig.join = NewLabelJoin(spec, rig.cache, rig.champion)
	rig.score.Observe = rig.join.Observe
	if rig.handler, err = rig.join.Open("labels", 0); err != nil {
		t.Fatal(err)
	}
	return rig
}

// clock is the cache's clock: the test's, which miniredis's TIME (the
// scripts' clock for expiry) follows too.
func (rig *joinRig) clock() time.Time {
	if rig.r != nil && rig.r.Mini != nil {
		rig.r.Mini.SetTime(rig.now)
	}
	return rig.now
}

// predict scores events with the given ids.
func (rig *joinRig) predict(t testing.TB, ids ...string) {
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
func (rig *joinRig) label(t testing.TB, ids ...string) {
	t.Helper()
	rig.handle(t, labelMsgs(ids, func(int) int { return 1 }))
}

func (rig *joinRig) handle(t testing.TB, msgs []pipeline.Message) {
	t.Helper()
	if !slices.ContainsFunc(msgs, func(m pipeline.Message) bool { return m.Offset != 0 }) {
		// Records without positions get the next ones on the topic: a
		// position is a record's identity (a retried batch's labels).
		for i := range msgs {
			msgs[i].Offset = rig.labelOffset
			rig.labelOffset++
		}
	}
	if err := rig.handler.Handle(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		// The next records without positions come after these, as on
		// the topic (a record below is one delivered again).
		rig.labelOffset = max(rig.labelOffset, msgs[i].Offset+1)
	}
}

// labelMsgs builds label records {"event_id": ids[i], "label": label(i)}.
func labelMsgs(ids []string, label func(i int) int) []pipeline.Message {
	msgs := make([]pipeline.Message, len(ids))
	for i, id := range ids {
		msgs[i] = pipeline.Message{Topic: "labels", Value: []byte(`{"event_id":"` + id + `","label":` + strconv.Itoa(label(i)) + `,"extra":[1,{"a":null}]}`)}
	}
	return msgs
}

func (rig *joinRig) weights() []float32 {
	p := rig.champion.Snapshot().(models.LinearModel).Params()
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
	// The key has no TTL: its batch's index entry expires it, twice the
	// label TTL on (the sweep deletes it; see labelplane_scripts.go).
	if ttl := rig.r.Mini.TTL(spec.Redis.KeyPrefix + "pred:a"); ttl != 0 {
		t.Errorf("cache TTL %v, want none: the batch index expires the key", ttl)
	}
	if refs, err := rig.r.Mini.ZMembers(rig.cache.batches); err != nil || len(refs) != 1 {
		t.Errorf("pending batches %v (%v), want the one", refs, err)
	} else if at, _ := rig.r.Mini.ZScore(rig.cache.batches, refs[0]); int64(at) != rig.now.Add(20*time.Minute).UnixMilli() {
		t.Errorf("batch expires at %v, want twice the label TTL from now (%v)", time.UnixMilli(int64(at)), rig.now.Add(20*time.Minute))
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
	rig.handle(t, []pipeline.Message{
		{Value: []byte(`{"event_id":"e"}`)}, {Value: []byte(`not json`)}, {Value: []byte(`{"event_id":"","label":1}`)},
		{Value: []byte(`{"event_id":"e","label":"yes"}`)},
	})
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

// armsRig is a joinRig whose score stage serves Arms (the rig's champion,
// version 7, to start with) and whose label join teaches them. It records
// every outcome and a copy of every row OnLearned sees.
type armsRig struct {
	*joinRig
	spec       *pipeline.Spec
	arms       *Arms
	mu         sync.Mutex
	outcomes   []Outcome
	learned    []learnedRow
	learnCalls int
}

type learnedRow struct {
	dense  []float32
	hashed []int32
	y      float32
}

func newArmsRig(t testing.TB) *armsRig {
	t.Helper()
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	ar := &armsRig{joinRig: rig, spec: spec, arms: NewArms(rig.champion)}
	score := NewScoreWithArms(spec, ar.arms, "", testKeys().AESKeyID)
	score.Observe = func(ctx context.Context, b *pipeline.Batch) error {
		return rig.join.ObserveVersions(ctx, b, score.Versions())
	}
	rig.score = score
	rig.join.Arms = ar.arms
	rig.join.OnOutcome = func(o Outcome) {
		ar.mu.Lock()
		defer ar.mu.Unlock()
		ar.outcomes = append(ar.outcomes, o)
	}
	rig.join.OnLearned = func(rows *models.Rows, y []float32) {
		ar.mu.Lock()
		defer ar.mu.Unlock()
		ar.learnCalls++
		if len(y) != rows.N {
			t.Errorf("OnLearned: %d labels for %d rows", len(y), rows.N)
		}
		for i := range rows.N {
			ar.learned = append(ar.learned, learnedRow{
				dense: slices.Clone(rows.DenseRow(i)), hashed: slices.Clone(rows.HashedRow(i)), y: y[i]})
		}
	}
	return ar
}

// model builds a fresh learner of the spec's layout serving version on arm.
func (ar *armsRig) model(t testing.TB, version, arm string) *ServedModel {
	t.Helper()
	l, err := NewLearner(ar.spec, ar.fz)
	if err != nil {
		t.Fatal(err)
	}
	return NewServedModel(ar.spec.Model.Name, version, arm, l)
}

func (ar *armsRig) set(t testing.TB, arm string, m *ServedModel) {
	t.Helper()
	if err := ar.arms.Set(arm, m); err != nil {
		t.Fatal(err)
	}
}

// take returns and forgets the outcomes and learned rows recorded so far,
// the outcomes counted by version/arm.
func (ar *armsRig) take() (map[string]int, []Outcome, []learnedRow, int) {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	counts := map[string]int{}
	for _, o := range ar.outcomes {
		counts[o.Version+"/"+o.Arm]++
	}
	out, learned, calls := ar.outcomes, ar.learned, ar.learnCalls
	ar.outcomes, ar.learned, ar.learnCalls = nil, nil, 0
	return counts, out, learned, calls
}

// probe is m's prediction on a fixed row.
func (ar *armsRig) probe(t testing.TB, m *ServedModel) float32 {
	t.Helper()
	nd, nh := ar.fz.NumDense(), ar.fz.NumHashed()
	rows := models.Rows{N: 1, NumDense: nd, NumHashed: nh, Dense: make([]float32, nd), Hashed: make([]int32, nh)}
	for i := range rows.Dense {
		rows.Dense[i] = 0.5
	}
	for i := range rows.Hashed {
		rows.Hashed[i] = int32(7 * (i + 1))
	}
	dst := make([]float32, 1)
	if err := m.Predict(dst, &rows); err != nil {
		t.Fatal(err)
	}
	return dst[0]
}

// labelRule labels the event predicted i-th in a rig.predict call: 1 when
// its f0 (i%3, dense column 0) is 0, else 0.
func labelRule(i int) int {
	if i%3 == 0 {
		return 1
	}
	return 0
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// checkLearned checks that rows are n rows whose labels follow labelRule.
func checkLearned(t *testing.T, step string, rows []learnedRow, n int) {
	t.Helper()
	if len(rows) != n {
		t.Fatalf("%s: OnLearned saw %d rows, want %d", step, len(rows), n)
	}
	ones := 0
	for k, r := range rows {
		want := float32(0)
		if r.dense[0] == 0 {
			want = 1
		}
		if r.y != want {
			t.Fatalf("%s: learned row %d has f0 %v and label %v, want label %v", step, k, r.dense[0], r.y, want)
		}
		ones += int(r.y)
	}
	if want := (n + 2) / 3; ones != want {
		t.Errorf("%s: %d rows labelled 1, want %d", step, ones, want)
	}
}

// TestLabelJoinShadowLearnsEveryLabel: with a champion and a shadow, every
// joined label, on both join paths, is an outcome of the champion and one
// of the shadow, the shadow learns it, and OnLearned sees the champion's
// rows alone.
func TestLabelJoinShadowLearnsEveryLabel(t *testing.T) {
	ar := newArmsRig(t)
	shadow := ar.model(t, "9", ArmShadow)
	ar.set(t, ArmShadow, shadow)
	const n = 30
	for _, path := range []string{"after prediction", "early"} {
		evs := ids(path[:1], n)
		p0, w0 := ar.probe(t, shadow), ar.weights()
		if path == "early" {
			ar.handle(t, labelMsgs(evs, labelRule))
			if c, _, _, _ := ar.take(); len(c) != 0 {
				t.Fatalf("%s: outcomes %v before the predictions", path, c)
			}
			ar.predict(t, evs...)
		} else {
			ar.predict(t, evs...)
			ar.handle(t, labelMsgs(evs, labelRule))
		}
		counts, outs, learned, calls := ar.take()
		if want := map[string]int{"7/champion": n, "9/shadow": n}; !maps.Equal(counts, want) {
			t.Fatalf("%s: outcomes %v, want %v", path, counts, want)
		}
		ones := map[string]int{}
		for _, o := range outs {
			ones[o.Version] += int(o.Label)
			if !o.At.Equal(ar.now) {
				t.Fatalf("%s: outcome at %v, want %v", path, o.At, ar.now)
			}
		}
		if ones["7"] != n/3 || ones["9"] != n/3 {
			t.Errorf("%s: labels 1 per version %v, want %d each", path, ones, n/3)
		}
		// Each shadow outcome is paired with the champion's served score
		// of its label: the same scores as the champion's outcomes.
		var served, paired []float32
		for _, o := range outs {
			switch {
			case o.Version == "9" && o.Paired:
				paired = append(paired, o.PairedScore)
			case o.Version == "9" || o.Paired:
				t.Fatalf("%s: outcome of version %s paired %v, want the shadow's (9) paired, the champion's not", path, o.Version, o.Paired)
			default:
				served = append(served, o.Score)
			}
		}
		slices.Sort(served)
		slices.Sort(paired)
		if !slices.Equal(served, paired) {
			t.Errorf("%s: the shadow's outcomes paired with scores %v, want the champion's %v", path, paired, served)
		}
		if calls != 1 {
			t.Errorf("%s: OnLearned called %d times for one batch", path, calls)
		}
		checkLearned(t, path, learned, n)
		if p1 := ar.probe(t, shadow); p1 == p0 {
			t.Errorf("%s: the shadow's prediction on the probe stayed %v: it did not learn", path, p1)
		}
		if slices.Equal(w0, ar.weights()) {
			t.Errorf("%s: the champion did not learn", path)
		}
	}
	got := map[string]int64{}
	for _, s := range ar.metrics.Summaries() {
		got[s.Version] = s.Labels
	}
	if want := map[string]int64{"7": 2 * n, "9": 2 * n}; !maps.Equal(got, want) {
		t.Errorf("prequential labels per version %v, want %v", got, want)
	}
	if c := ar.counts(); c.joined != 2*n || c.early != n {
		t.Errorf("counts %+v, want joined %d, early %d", c, 2*n, n)
	}
	if got := testutil.ToFloat64(ar.metrics.shadowSkipped); got != 0 {
		t.Errorf("shadow skipped %v, want 0", got)
	}
}

// TestLabelJoinShadowOfAnotherLayoutIsSkipped: a shadow that cannot predict
// the cached rows is skipped and counted, and the champion still learns.
func TestLabelJoinShadowOfAnotherLayoutIsSkipped(t *testing.T) {
	ar := newArmsRig(t)
	l, err := models.NewLinear(models.LinearConfig{Link: models.LinkSigmoid, NumDense: 2})
	if err != nil {
		t.Fatal(err)
	}
	ar.set(t, ArmShadow, NewServedModel(ar.spec.Model.Name, "9", ArmShadow, l))
	const n = 12
	for k, path := range []string{"after prediction", "early"} {
		evs := ids(path[:1], n)
		w0 := ar.weights()
		if path == "early" {
			ar.handle(t, labelMsgs(evs, labelRule))
			ar.predict(t, evs...)
		} else {
			ar.predict(t, evs...)
			ar.handle(t, labelMsgs(evs, labelRule))
		}
		counts, _, learned, _ := ar.take()
		if want := map[string]int{"7/champion": n}; !maps.Equal(counts, want) {
			t.Fatalf("%s: outcomes %v, want %v", path, counts, want)
		}
		checkLearned(t, path, learned, n)
		if slices.Equal(w0, ar.weights()) {
			t.Errorf("%s: the champion did not learn", path)
		}
		if got, want := testutil.ToFloat64(ar.metrics.shadowSkipped), float64((k+1)*n); got != want {
			t.Errorf("%s: shadow skipped %v, want %v", path, got, want)
		}
	}
	if p := l.Params(); slices.ContainsFunc(append(p.W, p.B...), func(w float32) bool { return w != 0 }) {
		t.Error("the skipped shadow learned")
	}
	problems, err := testutil.CollectAndLint(ar.metrics.shadowSkipped)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	problems, err = testutil.GatherAndLint(ar.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(ar.reg, "driftline_labels_shadow_skipped_total"); err != nil || n != 1 {
		t.Errorf("driftline_labels_shadow_skipped_total: %d series, %v", n, err)
	}
}

// TestLabelJoinArmsOutcomes: labels of the champion's, the canary's and a
// retired version's predictions are outcomes of their arm ("" when
// retired); the champion and the canary learn theirs (OnLearned sees them
// together), a retired version's are not learned; the shadow takes every
// row that another version served.
func TestLabelJoinArmsOutcomes(t *testing.T) {
	ar := newArmsRig(t)
	canary := ar.model(t, "2", ArmCanary)
	ar.set(t, ArmCanary, canary)
	ar.arms.SetCanaryPercent(50)
	ar.set(t, ArmShadow, ar.model(t, "9", ArmShadow))
	const n = 60
	inCanary := func(evs []string) int {
		c := 0
		for _, id := range evs {
			if rollout.InCanary([]byte(id), 50) {
				c++
			}
		}
		if c == 0 || c == len(evs) {
			t.Fatalf("%d of %d events in the canary: pick other ids", c, len(evs))
		}
		return c
	}

	evs := ids("c", n)
	nc := inCanary(evs)
	pc := ar.probe(t, canary)
	ar.predict(t, evs...)
	ar.handle(t, labelMsgs(evs, labelRule))
	counts, _, learned, calls := ar.take()
	if want := map[string]int{"7/champion": n - nc, "2/canary": nc, "9/shadow": n}; !maps.Equal(counts, want) {
		t.Fatalf("champion and canary: outcomes %v, want %v", counts, want)
	}
	if calls != 1 {
		t.Errorf("OnLearned called %d times for one batch", calls)
	}
	checkLearned(t, "champion and canary", learned, n)
	if ar.probe(t, canary) == pc {
		t.Error("the canary did not learn")
	}

	// A shadow of the canary's version leaves out the rows the canary served.
	ar.set(t, ArmShadow, ar.model(t, "2", ArmShadow))
	evs = ids("d", n)
	nc = inCanary(evs)
	ar.predict(t, evs...)
	ar.handle(t, labelMsgs(evs, labelRule))
	counts, _, learned, _ = ar.take()
	if want := map[string]int{"7/champion": n - nc, "2/canary": nc, "2/shadow": n - nc}; !maps.Equal(counts, want) {
		t.Fatalf("shadow of the canary's version: outcomes %v, want %v", counts, want)
	}
	checkLearned(t, "shadow of the canary's version", learned, n)

	// Retired: the champion and the canary change between the predictions
	// and their labels.
	evs = ids("e", n)
	nc = inCanary(evs)
	ar.predict(t, evs...)
	champion := ar.model(t, "8", ArmChampion)
	ar.set(t, ArmChampion, champion)
	ar.set(t, ArmCanary, nil)
	ar.set(t, ArmShadow, ar.model(t, "9", ArmShadow))
	p8 := ar.probe(t, champion)
	ar.handle(t, labelMsgs(evs, labelRule))
	counts, _, learned, calls = ar.take()
	if want := map[string]int{"7/": n - nc, "2/": nc, "9/shadow": n}; !maps.Equal(counts, want) {
		t.Fatalf("retired versions: outcomes %v, want %v", counts, want)
	}
	if calls != 0 || len(learned) != 0 {
		t.Errorf("retired versions: OnLearned called %d times with %d rows", calls, len(learned))
	}
	if ar.probe(t, champion) != p8 {
		t.Error("the new champion learned a retired version's labels")
	}
}

// teachBatch fills a join batch of n rows of the rig's layout, served in
// turn by versions 7 (the champion), 2 and "retired", labelled 0, 1, 0, …
func (ar *armsRig) teachBatch(n int) *joinBuf {
	nd, nh := ar.fz.NumDense(), ar.fz.NumHashed()
	dense, hashed := make([]float32, nd), make([]int32, nh)
	jb := &joinBuf{}
	jb.reset(nd, nh)
	for i := range n {
		for k := range dense {
			dense[k] = float32((i + k) % 5)
		}
		for k := range hashed {
			hashed[k] = int32((i*31 + k) % 1000)
		}
		jb.add([]string{"7", "2", "retired"}[i%3], 0.5, dense, hashed, float32(i%2))
	}
	return jb
}

// TestLabelJoinTeachSteadyStateAllocations: once its buffers have grown, a
// join batch's learning (champion, canary, shadow pass) does not allocate.
func TestLabelJoinTeachSteadyStateAllocations(t *testing.T) {
	ar := newArmsRig(t)
	ar.set(t, ArmCanary, ar.model(t, "2", ArmCanary))
	learned, outcomes := 0, 0
	ar.join.OnLearned = func(rows *models.Rows, _ []float32) { learned += rows.N }
	ar.join.OnOutcome = func(Outcome) { outcomes++ }
	for _, shadowVersion := range []string{"9", "2"} {
		ar.set(t, ArmShadow, ar.model(t, shadowVersion, ArmShadow))
		jb := ar.teachBatch(200)
		view := ar.arms.Load()
		if err := ar.join.teach(jb, &view, ar.now); err != nil {
			t.Fatal(err)
		}
		learned, outcomes = 0, 0
		allocs := testing.AllocsPerRun(20, func() {
			if err := ar.join.teach(jb, &view, ar.now); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("shadow %s: %v allocs per 200-row batch, want 0", shadowVersion, allocs)
		}
		runs := 21 // AllocsPerRun's warm-up run, then 20
		wantShadow := 200
		if shadowVersion == "2" {
			wantShadow = 200 - 67 // the canary's rows, i%3 == 1
		}
		if learned != runs*134 || outcomes != runs*wantShadow {
			t.Errorf("shadow %s: %d rows learned, %d shadow outcomes per batch; want 134, %d",
				shadowVersion, learned/runs, outcomes/runs, wantShadow)
		}
	}
}

// BenchmarkLabelJoinTeach measures what a join batch of 256 joined rows
// costs after the cache round trip: the champion's batched learning, the
// canary's row-by-row learning, and the shadow's pass when set.
func BenchmarkLabelJoinTeach(b *testing.B) {
	for _, shadow := range []bool{false, true} {
		name := "shadow=off"
		if shadow {
			name = "shadow=on"
		}
		b.Run(name, func(b *testing.B) {
			ar := newArmsRig(b)
			ar.join.OnOutcome, ar.join.OnLearned = nil, nil
			ar.set(b, ArmCanary, ar.model(b, "2", ArmCanary))
			if shadow {
				ar.set(b, ArmShadow, ar.model(b, "9", ArmShadow))
			}
			jb := ar.teachBatch(256)
			view := ar.arms.Load()
			b.ReportAllocs()
			for b.Loop() {
				if err := ar.join.teach(jb, &view, ar.now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLabelJoin measures the main join path (labels arriving after
// their cached predictions), per batch of 256 labels, without and with a
// shadow. On miniredis, which runs each EVAL in a fresh Lua state, the
// cache round trip dominates; BenchmarkLabelJoinTeach isolates the rest.
func BenchmarkLabelJoin(b *testing.B) {
	for _, shadow := range []bool{false, true} {
		name := "shadow=off"
		if shadow {
			name = "shadow=on"
		}
		b.Run(name, func(b *testing.B) {
			ar := newArmsRig(b)
			ar.join.OnOutcome, ar.join.OnLearned = nil, nil
			if shadow {
				ar.set(b, ArmShadow, ar.model(b, "9", ArmShadow))
			}
			const n = 256
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				evs := ids(strconv.Itoa(i)+"-", n)
				ar.predict(b, evs...)
				msgs := labelMsgs(evs, labelRule)
				b.StartTimer()
				if err := ar.handler.Handle(context.Background(), msgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
