package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	redisconn "github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/pipeline"
)

// writeGate holds every write of entity aggregates (a call of the
// writeAggregates script, by EVALSHA or EVAL) until it is opened, so that a
// test can keep a batch's write-behind in flight while the next batch runs.
type writeGate struct {
	once sync.Once
	open chan struct{}
}

func newWriteGate() *writeGate { return &writeGate{open: make(chan struct{})} }

func (g *writeGate) release() { g.once.Do(func() { close(g.open) }) }

func (*writeGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *writeGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isAggregatesWrite(cmd) {
			<-g.open
		}
		return next(ctx, cmd)
	}
}

func (*writeGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// isAggregatesWrite reports whether cmd runs the writeAggregates script.
func isAggregatesWrite(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 2 {
		return false
	}
	switch cmd.Name() {
	case "evalsha":
		return args[1] == writeAggregates.Hash()
	case "eval":
		return strings.Contains(fmt.Sprint(args[1]), "'mean', v[j + 1]")
	}
	return false
}

// entityCounts is an in-test stage after featurize: it records each
// batch's entity counts (the first aggregate of each feature row).
type entityCounts struct {
	mu     sync.Mutex
	counts [][]float32
}

func (*entityCounts) Name() string { return "entity-counts" }

func (s *entityCounts) Process(_ context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	var c []float32
	for j := range fb.Len() {
		c = append(c, fb.Dense[j*fb.NumDense+fb.NumDense-3])
	}
	s.mu.Lock()
	s.counts = append(s.counts, c)
	s.mu.Unlock()
	for i := range b.Len() {
		if b.OK(i) {
			b.AppendOutput(i, pipeline.OutRecord{Topic: "predictions", Value: []byte("p")})
		}
	}
	return nil
}

// asyncNopSink acknowledges every write at once from another goroutine.
type asyncNopSink struct{}

func (asyncNopSink) Write(context.Context, []pipeline.OutRecord) error { return nil }

func (asyncNopSink) WriteAsync(_ context.Context, _ []pipeline.OutRecord, done func(error)) {
	go done(nil)
}

// writeBehindRunner runs decode, validate, featurize (entity aggregates,
// local cache off so that every batch would read Redis) and entityCounts
// in a Runner over an async sink.
func writeBehindRunner(t *testing.T, rdb redis.UniversalClient, retry *pipeline.RetryPolicy) (*pipeline.Runner, *entityCounts, *pipeline.Spec) {
	t.Helper()
	spec := testSpec(t, true)
	off := 0
	spec.Stages.Featurize.Entity.LocalCache = &off
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	counts := &entityCounts{}
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{
		Stages: []pipeline.Stage{NewDecode(spec), NewValidate(spec), fz, counts},
		Sink:   asyncNopSink{}, DLQTopic: "dlq", Metrics: m, MaxPendingBatches: 4, Retry: retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, counts, spec
}

func userEvents(base int64, users ...string) []pipeline.Message {
	return newBatch(base, userEventsRows(users...)...).Messages
}

// acks collects a runner's acks in order.
type acks struct {
	mu   sync.Mutex
	got  []error
	seen chan struct{}
}

func newAcks() *acks { return &acks{seen: make(chan struct{}, 16)} }

func (a *acks) ack(err error) {
	a.mu.Lock()
	a.got = append(a.got, err)
	a.mu.Unlock()
	a.seen <- struct{}{}
}

func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.got)
}

func (a *acks) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-a.seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d acks in 10 s, want %d more", a.count(), n)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, err := range a.got {
		if err != nil {
			t.Fatalf("ack %d failed: %v", i, err)
		}
	}
}

// While a batch's write of aggregates is in flight, the next batches of
// the same entity read them from memory (read-your-writes), none of the
// batches is acknowledged, and Redis gets the writes in batch order.
func TestFeaturizeWriteBehindReadsItsWrites(t *testing.T) {
	mr, rdb := startRedis(t)
	gate := newWriteGate()
	rdb.AddHook(gate)
	r, counts, spec := writeBehindRunner(t, rdb, nil)
	t.Cleanup(gate.release) // before the runner's Close, on a failure
	a := newAcks()
	ctx := context.Background()
	for _, batch := range [][]pipeline.Message{
		userEvents(0, "alice", "alice"),
		userEvents(2, "alice", "bob"),
		userEvents(4, "bob", "alice"),
	} {
		if err := r.HandleAsync(ctx, batch, a.ack); err != nil {
			t.Fatal(err)
		}
	}
	counts.mu.Lock()
	got := counts.counts
	counts.mu.Unlock()
	want := [][]float32{{0, 1}, {2, 0}, {1, 3}}
	if len(got) != len(want) {
		t.Fatalf("counts of %d batches, want 3", len(got))
	}
	for k := range want {
		if len(got[k]) != len(want[k]) || got[k][0] != want[k][0] || got[k][1] != want[k][1] {
			t.Fatalf("entity counts %v, want %v (each batch sees the earlier batches' events)", got, want)
		}
	}
	key := spec.Redis.KeyPrefix + "entity:alice"
	time.Sleep(20 * time.Millisecond)
	if mr.Mini.Exists(key) {
		t.Fatal("alice's aggregates reached Redis while the write was held")
	}
	if n := a.count(); n != 0 {
		t.Fatalf("%d batches acknowledged before their aggregates were written", n)
	}
	gate.release()
	a.wait(t, 3)
	if got := mr.Mini.HGet(key, "n"); got != "4" {
		t.Fatalf("alice's n in redis %q after the flush, want 4 (the last batch's write last)", got)
	}
	if got := mr.Mini.HGet(spec.Redis.KeyPrefix+"entity:bob", "n"); got != "2" {
		t.Fatalf("bob's n in redis %q after the flush, want 2", got)
	}
}

// Redis failing the write-behind (miniredis answering LOADING) never fails
// the batch: it is retried under the policy, Redis is marked down (not
// ready) and no batch is acknowledged until the write went through.
func TestFeaturizeWriteBehindRetriesWhileRedisIsDown(t *testing.T) {
	mr, rdb := startRedis(t)
	gate := newWriteGate()
	rdb.AddHook(gate)
	health, err := pipeline.NewHealth(prometheus.NewRegistry(), nil, "redis")
	if err != nil {
		t.Fatal(err)
	}
	policy := &pipeline.RetryPolicy{
		Classify: func(err error) (string, string, bool) {
			reason, ok := redisconn.Unavailable(err)
			return "redis", reason, ok
		},
		Health: health, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	}
	r, _, spec := writeBehindRunner(t, rdb, policy)
	t.Cleanup(gate.release)
	a := newAcks()
	ctx := context.Background()
	if err := r.HandleAsync(ctx, userEvents(0, "alice", "alice"), a.ack); err != nil {
		t.Fatal(err)
	}
	if err := r.HandleAsync(ctx, userEvents(2, "alice"), a.ack); err != nil {
		t.Fatal(err)
	}
	// The reads went through; now every command fails as a loading Redis.
	mr.Mini.SetError("LOADING Redis is loading the dataset in memory")
	gate.release()
	deadline := time.Now().Add(10 * time.Second)
	for health.IsUp("redis") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if health.IsUp("redis") {
		t.Fatal("redis still up 10 s after the write-behind failed on it")
	}
	time.Sleep(30 * time.Millisecond) // a few retries
	if n := a.count(); n != 0 {
		t.Fatalf("%d batches acknowledged while their aggregates could not be written", n)
	}
	mr.Mini.SetError("")
	a.wait(t, 2)
	if !health.IsUp("redis") {
		t.Fatal("redis still down after the write went through")
	}
	if got := mr.Mini.HGet(spec.Redis.KeyPrefix+"entity:alice", "n"); got != "3" {
		t.Fatalf("alice's n in redis %q, want 3", got)
	}
}

// A Featurize run outside a Runner (a replay, prepare) writes its
// aggregates before Process returns, as before.
func TestFeaturizeWritesAtOnceOutsideARunner(t *testing.T) {
	mr, rdb := startRedis(t)
	spec := testSpec(t, true)
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	b := newBatch(0, userEventsRows("alice", "alice")...)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz)
	if got := mr.Mini.HGet(spec.Redis.KeyPrefix+"entity:alice", "n"); got != "2" {
		t.Fatalf("alice's n in redis %q when Process returned, want 2", got)
	}
	mr.Mini.SetError("LOADING Redis is loading the dataset in memory")
	b = newBatch(2, userEventsRows("alice")...)
	mustProcess(t, b, NewDecode(spec), NewValidate(spec))
	if err := fz.Process(context.Background(), b); err == nil || !strings.Contains(err.Error(), "LOADING") {
		t.Fatalf("Process with redis loading: %v, want the write's error", err)
	}
}

func userEventsRows(users ...string) [][]byte {
	rows := make([][]byte, len(users))
	for i, u := range users {
		rows[i] = row(map[string]string{"user_id": `"` + u + `"`, "ts": `"2025-01-01T00:00:00Z"`, "f0": "1"})
	}
	return rows
}

// Dedupe under overlap: while a batch's aggregates are still being
// written behind, the next batches' dedupe sees its ids (dedupe answers
// before its batch goes on), with the recent-id filter on and off; the
// duplicates count for no entity.
func TestDedupeAcrossOverlappedBatches(t *testing.T) {
	for _, recent := range []int{0, 64} {
		t.Run(fmt.Sprintf("recent_ids=%d", recent), func(t *testing.T) {
			_, rdb := startRedis(t)
			gate := newWriteGate()
			rdb.AddHook(gate)
			spec := testSpec(t, true)
			off := 0
			spec.Stages.Featurize.Entity.LocalCache = &off
			spec.Stages.Dedupe.RecentIDs = &recent
			fz, err := NewFeaturize(spec, rdb)
			if err != nil {
				t.Fatal(err)
			}
			counts := &entityCounts{}
			m, err := pipeline.NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			r, err := pipeline.NewRunner(pipeline.RunnerConfig{
				Stages: []pipeline.Stage{NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb), fz, counts},
				Sink:   asyncNopSink{}, DLQTopic: "dlq", Metrics: m, MaxPendingBatches: 4,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			t.Cleanup(gate.release)
			ev := func(id string) []byte {
				return row(map[string]string{"event_id": `"` + id + `"`, "user_id": `"alice"`, "ts": `"2025-01-01T00:00:00Z"`, "f0": "1"})
			}
			a := newAcks()
			ctx := context.Background()
			for k, ids := range [][]string{{"e1", "e2"}, {"e1", "e3", "e3"}, {"e2", "e3", "e4"}} {
				rows := make([][]byte, len(ids))
				for i, id := range ids {
					rows[i] = ev(id)
				}
				if err := r.HandleAsync(ctx, newBatch(int64(10*k), rows...).Messages, a.ack); err != nil {
					t.Fatal(err)
				}
			}
			counts.mu.Lock()
			got := fmt.Sprint(counts.counts)
			counts.mu.Unlock()
			// Live rows per batch: e1 e2 | e3 | e4; alice's count goes on.
			if want := "[[0 1] [2] [3]]"; got != want {
				t.Fatalf("alice's counts per batch %s, want %s (later repeats are duplicates)", got, want)
			}
			gate.release()
			a.wait(t, 3)
		})
	}
}

// failStage fails the batches while on is set, after featurize deferred
// its write: the runner drops that write (it never runs).
type failStage struct{ on bool }

func (*failStage) Name() string { return "fail" }

func (s *failStage) Process(context.Context, *pipeline.Batch) error {
	if s.on {
		return errors.New("failed on purpose")
	}
	return nil
}

// With the local cache off, an entity leaves memory once its latest write
// is acknowledged (seen at the next batch), and a write that never runs
// (its batch failed after featurize) is dropped once later writes carry
// its entities: memory holds the in-flight entities only.
func TestFeaturizeWriteBehindReleasesMemory(t *testing.T) {
	_, rdb := startRedis(t)
	spec := testSpec(t, true)
	off := 0
	spec.Stages.Featurize.Entity.LocalCache = &off
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	fail := &failStage{on: true}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{
		Stages: []pipeline.Stage{NewDecode(spec), NewValidate(spec), fz, fail},
		Sink:   asyncNopSink{}, DLQTopic: "dlq", Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	ctx := context.Background()
	a := newAcks()
	if err := r.HandleAsync(ctx, userEvents(0, "alice", "bob"), a.ack); err == nil {
		t.Fatal("the failing stage did not fail the batch")
	}
	fail.on = false
	for k, users := range [][]string{{"alice", "bob"}, {"carol"}} {
		if err := r.HandleAsync(ctx, userEvents(int64(2+2*k), users...), a.ack); err != nil {
			t.Fatal(err)
		}
	}
	a.wait(t, 2)
	if err := r.HandleAsync(ctx, userEvents(6, "dave"), a.ack); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 1)
	if len(fz.entities) != 1 || fz.entities["dave"] == nil {
		keys := make([]string, 0, len(fz.entities))
		for k := range fz.entities {
			keys = append(keys, k)
		}
		t.Fatalf("entities in memory %v, want dave's alone (the others' writes are acknowledged)", keys)
	}
	if len(fz.pending) != 1 {
		t.Fatalf("%d writes pending, want dave's alone (the failed batch's write dropped)", len(fz.pending))
	}
}

// A full local cache is emptied whole before the next entity goes in:
// the entities cached before are read from Redis again, the new one is not.
func TestFeaturizeEntityLocalCacheFull(t *testing.T) {
	r, rdb := startRedis(t)
	spec := testSpec(t, true)
	two := 2
	spec.Stages.Featurize.Entity.LocalCache = &two
	fz, err := NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	st := []pipeline.Stage{NewDecode(spec), NewValidate(spec), fz}
	counts := func(base int64, users ...string) []float32 {
		b := newBatch(base, userEventsRows(users...)...)
		mustProcess(t, b, st...)
		var c []float32
		for j := range b.Features.Len() {
			c = append(c, b.Features.Dense[j*b.Features.NumDense+b.Features.NumDense-3])
		}
		return c
	}
	counts(0, "alice", "bob")
	counts(2, "carol") // the cache held alice and bob: emptied, then carol
	for _, u := range []string{"alice", "carol"} {
		r.Mini.HSet(spec.Redis.KeyPrefix+"entity:"+u, "n", "100") // someone else's write
	}
	if got := counts(3, "carol"); got[0] != 1 {
		t.Fatalf("carol's count %v, want 1 from the local cache", got[0])
	}
	if got := counts(4, "alice"); got[0] != 100 {
		t.Fatalf("alice's count %v, want 100 read from redis (the full cache was emptied)", got[0])
	}
}
