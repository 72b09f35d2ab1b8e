// Package replaytest holds the fixtures of the replay, backfill, backtest
// and retrain-replay tests (internal/app, cmd/driftline): a spec on a
// broker and Redis with a trained snapshot, seeded input streams written
// to Kafka or to a lake by the live stages, an independent fresh scoring
// to compare a replay with, and read-backs of the outputs.
package replaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// Env is a spec on a broker and Redis, with a trained learner's snapshot.
type Env struct {
	Brokers   []string
	RedisAddr string
	Redis     redis.UniversalClient
	Spec      *pipeline.Spec
	SpecPath  string
	Snapshot  string // the trained learner's snapshot file
	Learner   models.Learner
}

// SpecText is the demo spec (its YAML) pointed at the broker addr and the
// Redis at redisAddr, with the demo's anonymize keys set in the test's
// environment.
func SpecText(tb testing.TB, demoYAML []byte, addr, redisAddr string) string {
	tb.Helper()
	tb.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "replay-hmac-key-0123456789abcdef")
	tb.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("cd", 32))
	text := strings.Replace(string(demoYAML), "kafka:\n", fmt.Sprintf("kafka:\n  brokers: [%q]\n", addr), 1)
	return strings.Replace(text, "name: demo\n", fmt.Sprintf("name: demo\nredis:\n  addr: %q\n", redisAddr), 1)
}

// LoadEnv writes SpecText (for the broker at addr and rds) to a file,
// parses it with parse (the CLI's spec loader) and trains a snapshot of
// the spec's learner.
func LoadEnv(tb testing.TB, demoYAML []byte, parse func(path string) (*pipeline.Spec, error), addr string, rds *redistest.Redis) *Env {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "spec.yaml")
	WriteFile(tb, path, SpecText(tb, demoYAML, addr, rds.Addr))
	spec, err := parse(path)
	if err != nil {
		tb.Fatal(err)
	}
	env := &Env{Brokers: []string{addr}, RedisAddr: rds.Addr, Redis: rds.Client(tb), Spec: spec, SpecPath: path}
	env.Learner, env.Snapshot = TrainedSnapshot(tb, spec, env.Redis, dir)
	return env
}

// WriteFile writes text to path.
func WriteFile(tb testing.TB, path, text string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TrainedSnapshot trains the spec's learner on seeded random rows, so that
// its scores differ from row to row, and writes its snapshot to dir.
func TrainedSnapshot(tb testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, dir string) (models.Learner, string) {
	tb.Helper()
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := stages.NewLearner(spec, fz)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	rows := models.Rows{N: n, NumDense: fz.NumDense(), NumHashed: fz.NumHashed()}
	y := make([]float32, n)
	for i := range n {
		s := float32(0)
		for j := range rows.NumDense {
			x := float32(rng.NormFloat64())
			rows.Dense = append(rows.Dense, x)
			if j < 3 {
				s += x
			}
		}
		for range rows.NumHashed {
			rows.Hashed = append(rows.Hashed, int32(rng.IntN(1<<spec.Stages.Featurize.HashBits)))
		}
		if s > 0 {
			y[i] = 1
		}
	}
	if err := l.Learn(&rows, y); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "model.snapshot")
	WriteFile(tb, path, string(MarshalLearner(tb, l)))
	return l, path
}

// MarshalLearner is l's snapshot.
func MarshalLearner(tb testing.TB, l models.Learner) []byte {
	tb.Helper()
	data, err := l.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// Client is a franz-go client of brokers with opts, closed at the test's
// end.
func Client(tb testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// produceAll writes recs and fails the test on any error.
func produceAll(tb testing.TB, ctx context.Context, cl *kgo.Client, recs []*kgo.Record) {
	tb.Helper()
	var (
		mu       sync.Mutex
		firstErr error
	)
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

// ProduceEvents writes n rows of the SEA stream of seed to topic, keyed by
// user id: 1% are malformed (streams.Corrupt), 1% repeat the previous
// event.
func ProduceEvents(tb testing.TB, ctx context.Context, brokers []string, topic string, n int64, seed uint64) {
	tb.Helper()
	const malformed, duplicates = 0.01, 0.01
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: seed})
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6472696674))
	recs := make([]*kgo.Record, 0, n)
	var ev, prev streams.Event
	havePrev := false
	for range n {
		p := rng.Float64()
		if havePrev && p < duplicates {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(prev.UserID), Value: streams.AppendJSON(nil, &prev)})
			continue
		}
		gen.Next(&ev)
		row := streams.AppendJSON(nil, &ev)
		if p < duplicates+malformed {
			row, _ = streams.Corrupt(rng, row)
		} else {
			prev, havePrev = ev, true
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(ev.UserID), Value: row})
	}
	produceAll(tb, ctx, Client(tb, brokers, kgo.ProducerLinger(time.Millisecond)), recs)
}

// ProduceLabelled writes n events of the SEA stream of seed to topic (no
// malformed rows, no duplicates) and each one's label to labelsTopic,
// right after its event, and returns the events.
func ProduceLabelled(tb testing.TB, ctx context.Context, brokers []string, topic, labelsTopic string, seed uint64, n int) []streams.Event {
	tb.Helper()
	evs := SeededEvents(tb, streams.Config{Concept: streams.ConceptSEA, Seed: seed}, n)
	recs := make([]*kgo.Record, 0, 2*n)
	for i := range evs {
		e := &evs[i]
		recs = append(recs,
			&kgo.Record{Topic: topic, Key: []byte(e.UserID), Value: streams.AppendJSON(nil, e)},
			&kgo.Record{Topic: labelsTopic, Key: []byte(e.ID), Value: streams.AppendLabelJSON(nil, e)})
	}
	produceAll(tb, ctx, Client(tb, brokers, kgo.ProducerLinger(time.Millisecond)), recs)
	return evs
}

// SeededEvents generates n events of cfg.
func SeededEvents(tb testing.TB, cfg streams.Config, n int) []streams.Event {
	tb.Helper()
	g, err := streams.NewGenerator(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]streams.Event, n)
	for i := range out {
		g.Next(&out[i])
	}
	return out
}

// StampedMillis waits so that timestamps before and after the returned
// time fall in different milliseconds.
func StampedMillis() time.Time {
	time.Sleep(5 * time.Millisecond)
	now := time.Now().Truncate(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	return now
}

// EndOffsets is the end offset of each partition of topic.
func EndOffsets(tb testing.TB, ctx context.Context, brokers []string, topic string) map[int32]int64 {
	tb.Helper()
	ends, err := kadm.NewClient(Client(tb, brokers)).ListEndOffsets(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// ReadRange reads every record of partition p of topic in [from, to).
func ReadRange(tb testing.TB, ctx context.Context, brokers []string, topic string, p int32, from, to int64) []*kgo.Record {
	tb.Helper()
	if from >= to {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("reading %s/%d: %v", topic, p, ctx.Err())
		}
		for _, r := range fs.Records() {
			if r.Offset >= to {
				return out
			}
			out = append(out, r)
			if r.Offset == to-1 {
				return out
			}
		}
	}
}

// TimeRangeOffsets is the [start, end) offsets of each partition of topic
// whose records have timestamps in [from, to), found by reading the topic
// (not with the broker's time index, which the replay uses).
func TimeRangeOffsets(tb testing.TB, ctx context.Context, brokers []string, topic string, parts int32, from, to time.Time) map[int32][2]int64 {
	tb.Helper()
	ends := EndOffsets(tb, ctx, brokers, topic)
	out := map[int32][2]int64{}
	for p := range parts {
		lo, hi := int64(-1), int64(-1)
		for _, r := range ReadRange(tb, ctx, brokers, topic, p, 0, ends[p]) {
			ms := r.Timestamp.UnixMilli()
			if ms >= from.UnixMilli() && ms < to.UnixMilli() {
				if lo < 0 {
					lo = r.Offset
				}
				hi = r.Offset + 1
			}
		}
		if lo >= 0 {
			out[p] = [2]int64{lo, hi}
		}
	}
	return out
}

// collectSink keeps copies of the outputs of a topic.
type collectSink struct {
	topic string
	recs  map[string][]byte
}

func (s *collectSink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	for _, r := range recs {
		if r.Topic == s.topic {
			if _, dup := s.recs[string(r.Key)]; dup {
				return fmt.Errorf("expected scoring: key %s twice", r.Key)
			}
			s.recs[string(r.Key)] = bytes.Clone(r.Value)
		}
	}
	return nil
}

// FreshScoring scores the input ranges from scratch, independently of the
// replay machinery: one stage chain per partition, built from the stage
// constructors in the order the live data plane uses, on fresh Redis state,
// in batches, with the env's learner as version. It returns event id →
// prediction value.
func FreshScoring(tb testing.TB, ctx context.Context, env *Env, ranges map[int32][2]int64, version string) map[string][]byte {
	tb.Helper()
	spec := *env.Spec
	spec.Topics.Predictions = "expected"
	spec.Redis.KeyPrefix = fmt.Sprintf("expected-%d:", time.Now().UnixNano())
	rdb := env.Redis
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		tb.Fatal(err)
	}
	model := stages.NewServedModel(spec.Model.Name, version, stages.ArmShadow, env.Learner.Clone())
	metrics, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	sink := &collectSink{topic: "expected", recs: map[string][]byte{}}
	for p, r := range ranges {
		an, err := stages.NewAnonymize(&spec, keys)
		if err != nil {
			tb.Fatal(err)
		}
		fz, err := stages.NewFeaturize(&spec, rdb)
		if err != nil {
			tb.Fatal(err)
		}
		runner, err := pipeline.NewRunner(pipeline.RunnerConfig{
			Stages: []pipeline.Stage{stages.NewDecode(&spec), stages.NewValidate(&spec), stages.NewDedupe(&spec, rdb), an, fz, stages.NewScore(&spec, model, keys.AESKeyID)},
			Sink:   sink, DLQTopic: "expected.dlq", Metrics: metrics,
		})
		if err != nil {
			tb.Fatal(err)
		}
		var msgs []pipeline.Message
		for _, rec := range ReadRange(tb, ctx, env.Brokers, spec.Topics.Input, p, r[0], r[1]) {
			msgs = append(msgs, pipeline.Message{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp})
		}
		// Batches of 300 rows, unlike the replays' (stages do not depend on
		// where batches end).
		for len(msgs) > 0 {
			n := min(len(msgs), 300)
			if err := runner.Handle(ctx, msgs[:n]); err != nil {
				tb.Fatal(err)
			}
			msgs = msgs[n:]
		}
		runner.Close()
	}
	return sink.recs
}

// ReadCommitted reads a whole topic with read-committed isolation and
// returns key → every value seen under it.
func ReadCommitted(tb testing.TB, ctx context.Context, brokers []string, topic string) map[string][][]byte {
	tb.Helper()
	ends, err := kadm.NewClient(Client(tb, brokers)).ListCommittedOffsets(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			tb.Fatalf("list offsets of %s: %v", topic, o.Err)
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	out := map[string][][]byte{}
	if len(want) == 0 {
		return out
	}
	cl := Client(tb, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("reading %s: %v (left %v)", topic, ctx.Err(), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out[string(r.Key)] = append(out[string(r.Key)], r.Value)
			}
		})
	}
	return out
}

// CheckBackfill compares a backfill topic with the expected predictions:
// exactly one record per event, byte-equal to the fresh scoring, arm shadow.
//
// Encrypted fields are AES-GCM with a random nonce, by design, so they are
// the one part of a prediction that differs between two scorings: they are
// compared after decryption (plaintext in place of the ciphertext).
func CheckBackfill(tb testing.TB, env *Env, got map[string][][]byte, want map[string][]byte) {
	tb.Helper()
	norm := decryptFields(tb, env)
	if len(want) == 0 {
		tb.Fatal("expected scoring is empty; the test proves nothing")
	}
	missing, dups, differ := 0, 0, 0
	for k, v := range want {
		vs := got[k]
		switch {
		case len(vs) == 0:
			missing++
		case len(vs) > 1:
			dups++
		case !bytes.Equal(norm(vs[0]), norm(v)):
			if differ == 0 {
				tb.Errorf("event %s: got %s\nwant %s", k, vs[0], v)
			}
			differ++
		}
		if len(vs) > 0 && !bytes.Contains(vs[0], []byte(`"arm":"shadow"`)) {
			tb.Fatalf("event %s: not marked shadow: %s", k, vs[0])
		}
	}
	extra := 0
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	if missing+dups+differ+extra != 0 {
		tb.Fatalf("backfill vs fresh scoring of %d events: %d missing, %d duplicated, %d different, %d unexpected", len(want), missing, dups, differ, extra)
	}
}

// decryptFields returns a function that replaces each encrypted field's
// ciphertext in a prediction by its plaintext.
func decryptFields(tb testing.TB, env *Env) func([]byte) []byte {
	tb.Helper()
	keys, err := stages.LoadKeys(&env.Spec.Stages.Anonymize)
	if err != nil {
		tb.Fatal(err)
	}
	var fields []string
	for _, f := range env.Spec.Stages.Anonymize.Fields {
		if f.Op == pipeline.OpEncrypt {
			fields = append(fields, f.Field)
		}
	}
	return func(v []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			tb.Fatalf("prediction is not JSON: %s", v)
		}
		for _, f := range fields {
			ct, ok := m[f].(string)
			if !ok {
				continue
			}
			pt, err := stages.Decrypt(keys.AES, ct, []byte(f))
			if err != nil {
				tb.Fatalf("decrypt %s: %v", f, err)
			}
			v = bytes.Replace(v, []byte(ct), pt, 1)
		}
		return v
	}
}
