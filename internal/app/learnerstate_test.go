package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// stateEnv is a pipeline with a learner-state log on a broker and a Redis.
type stateEnv struct {
	broker *kafkatest.Broker
	redis  *redistest.Redis
	spec   *pipeline.Spec
}

// newStateEnv parses the demo spec (without rollout unless rolloutBlock is
// set) with topics.model_state and a learner_state block, on broker and
// rds (exactly-once when exactlyOnce is set), and creates its topics (labelParts partitions for labels, 4 for the
// rest; the state topic is left to the App).
func newStateEnv(t testing.TB, broker *kafkatest.Broker, rds *redistest.Redis, labelParts int32, learnerState string, exactlyOnce bool) *stateEnv {
	t.Helper()
	text := demoSpecWithoutRollout(t)
	if exactlyOnce {
		text = strings.Replace(text, "kafka:\n", "kafka:\n  exactly_once: true\n", 1)
	}
	text = strings.Replace(text, "  audit: audit\n", "  model_state: model-state\n", 1)
	text = strings.Replace(text, "model:\n", "learner_state: {"+learnerState+"}\nmodel:\n", 1)
	spec, err := pipeline.ParseSpec("state.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	spec.Kafka.Brokers = []string{broker.Addr}
	spec.Redis.Addr = rds.Addr
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	for _, topic := range []string{spec.Topics.Input, spec.Topics.Predictions, spec.Topics.DLQ, spec.Topics.Alerts, spec.Topics.Alerts + ".poison"} {
		broker.CreateTopic(t, topic, 4)
	}
	broker.CreateTopic(t, spec.Topics.Labels, labelParts)
	return &stateEnv{broker: broker, redis: rds, spec: spec}
}

// runningApp is an App running in the background.
type runningApp struct {
	*App
	stop func()
	done chan error
}

// start opens and runs an App of the env's spec as holder, with its own
// Redis client (closed at stop).
func (e *stateEnv) start(t testing.TB, holder string) *runningApp {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: e.redis.Addr})
	a, err := Open(context.Background(), e.spec, Options{Redis: rdb, Holder: holder, Log: testLogger(holder)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningApp{App: a, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	var once bool
	r.stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s: run: %v", holder, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s: run did not stop", holder)
		}
		a.Close()
		_ = rdb.Close()
	}
	t.Cleanup(r.stop)
	return r
}

// produce writes n events of a SEA stream and their labels labelDelay
// later, through a producer closed before it returns.
func (e *stateEnv) produce(t testing.TB, ctx context.Context, seed uint64, n int64, labels bool, labelDelay time.Duration) *feed.Stats {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{e.broker.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := feed.Config{Topic: e.spec.Topics.Input, Events: n, LabelDelay: labelDelay,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: seed}}
	if labels {
		cfg.LabelsTopic = e.spec.Topics.Labels
	}
	var stats feed.Stats
	if err := feed.Produce(ctx, p, cfg, &stats); err != nil {
		t.Fatal(err)
	}
	return &stats
}

// produceLabels writes the labels of the stream's events [from, to), in
// event order.
func (e *stateEnv) produceLabels(t testing.TB, ctx context.Context, seed uint64, from, to int) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{e.broker.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var ev streams.Event
	for i := range to {
		gen.Next(&ev)
		if i < from {
			continue
		}
		p.Produce(ctx, pipeline.OutRecord{Topic: e.spec.Topics.Labels, Key: []byte(ev.ID), Value: streams.AppendLabelJSON(nil, &ev)}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// latestState reads the state topic and returns the newest record of
// version (nil when none).
func (e *stateEnv) latestState(t testing.TB, ctx context.Context, version string) *governance.StateRecord {
	t.Helper()
	var last *governance.StateRecord
	err := kafka.ReadTopics(ctx, kafka.ClientConfig{Brokers: []string{e.broker.Addr}}, e.spec.Kafka.ExactlyOnce, func(r *kafka.Record) error {
		if string(r.Key) != governance.StateKey(e.spec.Model.Name, version) {
			return nil
		}
		rec, err := governance.DecodeStateRecord(r.Value)
		if err != nil {
			return fmt.Errorf("offset %d: %w", r.Offset, err)
		}
		if last == nil || rec.Mark().Newer(last.Mark()) {
			last = rec
		}
		return nil
	}, e.spec.Topics.ModelState)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	return last
}

// championState returns the champion's snapshot bytes and mark.
func championState(t testing.TB, a *App) ([]byte, governance.Mark) {
	t.Helper()
	l, m := a.champion.SnapshotMarked()
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b, governance.Mark(m)
}

// TestLearnerStateRestoresBeforeReady: one instance learns inline from
// every label and publishes; stopped, its last publish covers everything
// it learned. A new instance of the same spec is not ready until it
// serves that state, byte for byte, and then it is.
func TestLearnerStateRestoresBeforeReady(t *testing.T) {
	for _, eos := range []bool{false, true} {
		t.Run(fmt.Sprintf("exactly_once=%v", eos), func(t *testing.T) { testRestoresBeforeReady(t, eos) })
	}
}

func testRestoresBeforeReady(t *testing.T, exactlyOnce bool) {
	const events = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := newStateEnv(t, kafkatest.StartKfake(t), redistest.StartMiniredis(t), 2, "publish_interval: 100ms, lease_ttl: 3s", exactlyOnce)
	first := env.start(t, "first")
	waitUntil(t, ctx, "the first instance to be ready", first.Ready)
	env.produce(t, ctx, 3, events, true, 20*time.Millisecond)
	waitUntil(t, ctx, "every label learned", func() bool {
		s, _ := first.Labels()
		return s.Joined == events
	})
	if w := metricValue(t, first.App, "driftline_model_state_writer"); w != 1 {
		t.Errorf("the only instance is not the writer (gauge %v)", w)
	}
	first.stop()
	want, wantMark := championState(t, first.App)
	if wantMark.Learned != events {
		t.Fatalf("the champion learned %d labels, want %d", wantMark.Learned, events)
	}
	rec := env.latestState(t, ctx, env.spec.Model.Version)
	if rec == nil {
		t.Fatal("no published state")
	}
	if rec.Learned != events || !bytes.Equal(rec.State, want) {
		t.Fatalf("the last published state (%d labels learned, same bytes: %v) is not what the instance learned (%d labels)", rec.Learned, bytes.Equal(rec.State, want), wantMark.Learned)
	}
	if total := rec.Positions.Labels[0] + rec.Positions.Labels[1]; total != events {
		t.Errorf("the last publish covers %d label records, want %d", total, events)
	}

	second, err := Open(ctx, env.spec, Options{Redis: env.redis.Client(t), Holder: "second", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.Ready() {
		t.Fatal("ready before Run")
	}
	if got, _ := championState(t, second); bytes.Equal(got, want) {
		t.Fatal("the champion is the learned state before any restore: the test cannot tell a restore")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- second.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for !second.Ready() {
		// Whenever it is not ready yet, it may serve anything; once ready,
		// it must serve the logged state (checked right after).
		select {
		case <-ctx.Done():
			t.Fatal("the second instance never became ready")
		case <-time.After(5 * time.Millisecond):
		}
	}
	got, mark := championState(t, second)
	if !bytes.Equal(got, want) || mark.Learned != events {
		t.Errorf("ready, the second instance serves a state of %d labels (equal %v), want the logged one of %d", mark.Learned, bytes.Equal(got, want), events)
	}
}

// metricValue sums the samples of the metric called name on a's registry.
func metricValue(t testing.TB, a *App, name string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// testLogger discards logs unless DRIFTLINE_TEST_LOG is set.
func testLogger(name string) *slog.Logger {
	if os.Getenv("DRIFTLINE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", name)
}

// writerOf returns which of apps holds the learner lease now (nil: none).
func writerOf(t testing.TB, apps ...*runningApp) *runningApp {
	t.Helper()
	var w *runningApp
	for _, a := range apps {
		if metricValue(t, a.App, "driftline_model_state_writer") == 1 {
			if w != nil {
				t.Fatal("two instances are writers at once")
			}
			w = a
		}
	}
	return w
}

// TestLearnerStateHandOver runs two instances of one pipeline. The writer
// (the lease holder) learns part of the labels, then goes away: stopped
// (it publishes and releases the lease: the other takes over at once), or
// cut off from Redis (it can neither renew nor release: the other takes
// over once the lease has run out). Either way the other instance takes
// the lease within the stated bound, restores from the log and learns the
// rest: the final state has learned every label exactly once.
func TestLearnerStateHandOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash bool
	}{{"stopped", false}, {"cut off", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const events, ttl = 3000, 3 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			env := newStateEnv(t, kafkatest.StartKfake(t), redistest.StartMiniredis(t), 1, "publish_interval: 100ms, publish_labels: 200, lease_ttl: 3s", false)
			a, b := env.start(t, "a"), env.start(t, "b")
			env.produce(t, ctx, 5, events, false, 0)
			waitUntil(t, ctx, "every event predicted", func() bool { return a.Totals().Out+b.Totals().Out == events })
			var first, second *runningApp
			waitUntil(t, ctx, "a writer", func() bool { first = writerOf(t, a, b); return first != nil })
			second = a
			if first == a {
				second = b
			}
			// Half the labels now, the rest once the other instance took
			// over: so that it has labels to learn and publish, however
			// fast the first went through the first half.
			env.produceLabels(t, ctx, 5, 0, events/2)
			waitUntil(t, ctx, "a third of the labels learned and published", func() bool {
				rec := env.latestState(t, ctx, env.spec.Model.Version)
				return rec != nil && rec.Learned >= events/3
			})
			gone := time.Now()
			if tc.crash {
				_ = first.App.rdb.Close() // lease neither renewed nor released
				// miniredis's keys age only when told: as TTL passes here,
				// it passes there.
				go func() {
					time.Sleep(ttl)
					env.redis.Mini.FastForward(ttl)
				}()
			} else {
				first.stop()
			}
			waitUntil(t, ctx, "the other instance to take over", func() bool { return writerOf(t, second) == second })
			took := time.Since(gone)
			// The other instance tries the lease every third of its TTL.
			bound := ttl/3 + time.Second
			if tc.crash {
				bound = ttl + ttl/3 + time.Second
			}
			t.Logf("%s: the other instance took the lease after %s (bound %s)", tc.name, took.Round(time.Millisecond), bound)
			if took > bound {
				t.Errorf("take-over after %s, over the bound %s", took, bound)
			}
			env.produceLabels(t, ctx, 5, events/2, events)
			waitUntil(t, ctx, "every label learned", func() bool {
				_, m := championState(t, second.App)
				return m.Learned >= events
			})
			time.Sleep(300 * time.Millisecond) // a publish or two more, should anything be learned twice
			served, m := championState(t, second.App)
			rec := env.latestState(t, ctx, env.spec.Model.Version)
			if m.Learned != events || rec == nil || rec.Learned != events || !bytes.Equal(rec.State, served) {
				t.Fatalf("learned %d (published %v), want every one of the %d labels exactly once, published", m.Learned, rec != nil && bytes.Equal(rec.State, served), events)
			}
			if rec.Writer != second.holder || rec.Epoch < 2 {
				t.Errorf("the last publish is by %q in epoch %d, want %q, which took over the lease", rec.Writer, rec.Epoch, second.holder)
			}
			if rec.Positions.Labels[0] != events {
				t.Errorf("the last publish covers labels up to offset %d, want %d", rec.Positions.Labels[0], events)
			}
		})
	}
}

// TestStateFollowerOrdersByEpoch: the follower serves the newest state by
// (lease epoch, sequence), not by offset: a record of an earlier writer
// that lands after a later writer's (a zombie's late publish) is not
// served, and a corrupt record is skipped and counted; the rollout
// watcher's view (Latest) agrees.
func TestStateFollowerOrdersByEpoch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := newStateEnv(t, kafkatest.StartKfake(t), redistest.StartMiniredis(t), 1, "", false)
	env.broker.CreateTopic(t, env.spec.Topics.ModelState, 1)
	// Another writer holds the lease: this instance only follows.
	reg, err := registry.New(env.redis.Client(t), registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if held, err := reg.TryLease(ctx, "learner."+env.spec.Model.Name, "another-writer", time.Hour); err != nil || !held {
		t.Fatalf("lease: %v, %v", held, err)
	}
	a := env.start(t, "a")
	waitUntil(t, ctx, "ready", a.Ready)
	base, _ := a.champion.SnapshotMarked()
	newer, older := base.Clone(), base.Clone()
	// Two distinct states: the newer one has learned one row more.
	if err := newer.Learn(oneRow(newer.(models.ShapedLearner)), []float32{1}); err != nil {
		t.Fatal(err)
	}
	if err := older.Learn(oneRow(older.(models.ShapedLearner)), []float32{0}); err != nil {
		t.Fatal(err)
	}
	key := governance.StateKey(env.spec.Model.Name, env.spec.Model.Version)
	publish := func(l interface{ MarshalBinary() ([]byte, error) }, epoch, seq, learned int64, corrupt bool) {
		t.Helper()
		state, err := l.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		rec := governance.StateRecord{Model: env.spec.Model.Name, Version: env.spec.Model.Version, Writer: "test", Epoch: epoch, Seq: seq,
			Learned: learned, PublishedAt: time.Now(), Positions: governance.Positions{Labels: map[int32]int64{0: learned}}, State: state}
		val, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if corrupt {
			val[len(val)/2] ^= 1
		}
		p, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{env.broker.Addr}}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.Produce(ctx, pipeline.OutRecord{Topic: env.spec.Topics.ModelState, Key: []byte(key), Value: val}, nil)
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := newer.MarshalBinary()
	publish(newer, 5, 1, 100, false)
	waitUntil(t, ctx, "the published state served", func() bool { got, _ := championState(t, a.App); return bytes.Equal(got, want) })
	publish(older, 4, 9, 90, false) // an earlier writer's late record
	publish(older, 6, 1, 200, true) // a corrupt one
	waitUntil(t, ctx, "the corrupt record counted", func() bool { return metricValue(t, a.App, "driftline_model_state_invalid_total") == 1 })
	got, mark := championState(t, a.App)
	if !bytes.Equal(got, want) || mark != (governance.Mark{Epoch: 5, Seq: 1, Learned: 100}) {
		t.Errorf("serves the state marked %+v (the newest: %v), want epoch 5 seq 1, 100 labels", mark, bytes.Equal(got, want))
	}
	l, m, ok, err := a.state.latest(env.spec.Model.Version)
	if err != nil || !ok || m.Epoch != 5 {
		t.Fatalf("Latest = %+v, %v, %v", m, ok, err)
	}
	if b, _ := l.MarshalBinary(); !bytes.Equal(b, want) {
		t.Error("Latest is not the newest state")
	}
	if s := metricValue(t, a.App, "driftline_model_state_learned_labels"); s != 100 {
		t.Errorf("learned gauge %v, want 100", s)
	}
}

// oneRow is a single row of zeros in l's layout, with a hashed index.
func oneRow(l models.ShapedLearner) *models.Rows {
	s := l.Shape()
	r := &models.Rows{N: 1, NumDense: s.NumDense, NumHashed: s.NumHashed, Dense: make([]float32, s.NumDense), Hashed: make([]int32, s.NumHashed)}
	for i := range r.Dense {
		r.Dense[i] = 1
	}
	return r
}
