package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// replayEnv is a spec on a broker and Redis, with its input topic filled.
type replayEnv struct {
	brokers   []string
	redisAddr string
	spec      *pipeline.Spec
	specPath  string
	snapshot  string // a trained learner's snapshot file
	learner   models.Learner
}

// replaySpecText is the demo spec pointed at addr and redisAddr.
func replaySpecText(t testing.TB, addr, redisAddr string) string {
	t.Helper()
	t.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "replay-hmac-key-0123456789abcdef")
	t.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("cd", 32))
	text := strings.Replace(string(app.DemoSpec), "kafka:\n", fmt.Sprintf("kafka:\n  brokers: [%q]\n", addr), 1)
	return strings.Replace(text, "name: demo\n", fmt.Sprintf("name: demo\nredis:\n  addr: %q\n", redisAddr), 1)
}

func loadReplayEnv(t testing.TB, addr, redisAddr string) *replayEnv {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.yaml")
	writeFile(t, path, replaySpecText(t, addr, redisAddr))
	spec, err := pipeline.LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	env := &replayEnv{brokers: []string{addr}, redisAddr: redisAddr, spec: spec, specPath: path}
	env.learner, env.snapshot = trainedSnapshot(t, spec, redisAddr, dir)
	return env
}

// trainedSnapshot trains the spec's learner on seeded random rows, so that
// its scores differ from row to row, and writes its snapshot.
func trainedSnapshot(t testing.TB, spec *pipeline.Spec, redisAddr, dir string) (models.Learner, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	l, err := stages.NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
	}
	data, err := l.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.snapshot")
	writeFile(t, path, string(data))
	return l, path
}

// readRange reads every input record of partition p in [from, to).
func readRange(t testing.TB, ctx context.Context, brokers []string, topic string, p int32, from, to int64) []*kgo.Record {
	t.Helper()
	if from >= to {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s/%d: %v", topic, p, ctx.Err())
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

// freshScoring scores the input ranges from scratch, independently of the
// replay machinery: one stage chain per partition, built from the stage
// constructors in the order the live data plane uses, on fresh Redis state,
// in batches. It returns event id → prediction value.
func freshScoring(t testing.TB, ctx context.Context, env *replayEnv, ranges map[int32][2]int64, version string) map[string][]byte {
	t.Helper()
	spec := *env.spec
	spec.Topics.Predictions = "expected"
	spec.Redis.KeyPrefix = fmt.Sprintf("expected-%d:", time.Now().UnixNano())
	rdb := redis.NewClient(&redis.Options{Addr: env.redisAddr})
	defer rdb.Close()
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		t.Fatal(err)
	}
	model := stages.NewServedModel(spec.Model.Name, version, stages.ArmShadow, env.learner.Clone())
	metrics, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sink := &collectSink{topic: "expected", recs: map[string][]byte{}}
	for p, r := range ranges {
		an, err := stages.NewAnonymize(&spec, keys)
		if err != nil {
			t.Fatal(err)
		}
		fz, err := stages.NewFeaturize(&spec, rdb)
		if err != nil {
			t.Fatal(err)
		}
		runner, err := pipeline.NewRunner(pipeline.RunnerConfig{
			Stages: []pipeline.Stage{stages.NewDecode(&spec), stages.NewValidate(&spec), stages.NewDedupe(&spec, rdb), an, fz, stages.NewScore(&spec, model, keys.AESKeyID)},
			Sink:   sink, DLQTopic: "expected.dlq", Metrics: metrics,
		})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []pipeline.Message
		for _, rec := range readRange(t, ctx, env.brokers, spec.Topics.Input, p, r[0], r[1]) {
			msgs = append(msgs, pipeline.Message{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp})
		}
		// Batches of 300 rows, unlike the replays' (stages do not depend on
		// where batches end).
		for len(msgs) > 0 {
			n := min(len(msgs), 300)
			if err := runner.Handle(ctx, msgs[:n]); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[n:]
		}
		runner.Close()
	}
	return sink.recs
}

// readCommitted reads a whole topic with read-committed isolation and
// returns key → every value seen under it.
func readCommitted(t testing.TB, ctx context.Context, brokers []string, topic string) map[string][][]byte {
	t.Helper()
	adm := kadm.NewClient(mustClient(t, brokers))
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("list offsets of %s: %v", topic, o.Err)
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	out := map[string][][]byte{}
	if len(want) == 0 {
		return out
	}
	cl := mustClient(t, brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (left %v)", topic, ctx.Err(), want)
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

func mustClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// checkBackfill compares a backfill topic with the expected predictions:
// exactly one record per event, byte-equal to the fresh scoring, arm shadow.
//
// Encrypted fields are AES-GCM with a random nonce, by design, so they are
// the one part of a prediction that differs between two scorings: they are
// compared after decryption (plaintext in place of the ciphertext).
func checkBackfill(t testing.TB, env *replayEnv, got map[string][][]byte, want map[string][]byte) {
	t.Helper()
	norm := decryptFields(t, env)
	if len(want) == 0 {
		t.Fatal("expected scoring is empty; the test proves nothing")
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
				t.Errorf("event %s: got %s\nwant %s", k, vs[0], v)
			}
			differ++
		}
		if len(vs) > 0 && !bytes.Contains(vs[0], []byte(`"arm":"shadow"`)) {
			t.Fatalf("event %s: not marked shadow: %s", k, vs[0])
		}
	}
	extra := 0
	for k := range got {
		if _, ok := want[k]; !ok {
			extra++
		}
	}
	if missing+dups+differ+extra != 0 {
		t.Fatalf("backfill vs fresh scoring of %d events: %d missing, %d duplicated, %d different, %d unexpected", len(want), missing, dups, differ, extra)
	}
}

// decryptFields returns a function that replaces each encrypted field's
// ciphertext in a prediction by its plaintext.
func decryptFields(t testing.TB, env *replayEnv) func([]byte) []byte {
	t.Helper()
	keys, err := stages.LoadKeys(&env.spec.Stages.Anonymize)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, f := range env.spec.Stages.Anonymize.Fields {
		if f.Op == pipeline.OpEncrypt {
			fields = append(fields, f.Field)
		}
	}
	return func(v []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatalf("prediction is not JSON: %s", v)
		}
		for _, f := range fields {
			ct, ok := m[f].(string)
			if !ok {
				continue
			}
			pt, err := stages.Decrypt(keys.AES, ct, []byte(f))
			if err != nil {
				t.Fatalf("decrypt %s: %v", f, err)
			}
			v = bytes.Replace(v, []byte(ct), pt, 1)
		}
		return v
	}
}
