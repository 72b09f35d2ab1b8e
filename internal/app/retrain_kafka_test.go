package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
	"github.com/driftline/driftline/testkit/streams"
)

// retrainKafkaEnv is the demo spec with rollout.retrain.source kafka on a
// broker and Redis, with its input (3 partitions) and labels (2) topics.
type retrainKafkaEnv struct {
	broker *kafkatest.Broker
	spec   *pipeline.Spec
	rdb    redis.UniversalClient
	fz     *stages.Featurize
}

func newRetrainKafkaEnv(t testing.TB, broker *kafkatest.Broker, rds *redistest.Redis, entity bool) *retrainKafkaEnv {
	t.Helper()
	return newRetrainKafkaEnvNamed(t, broker, rds, entity, "")
}

// newRetrainKafkaEnvNamed is newRetrainKafkaEnv with suffix, when not
// empty, added to the input and labels topics and the Redis key prefix, so
// that several envs share a broker and Redis.
func newRetrainKafkaEnvNamed(t testing.TB, broker *kafkatest.Broker, rds *redistest.Redis, entity bool, suffix string) *retrainKafkaEnv {
	t.Helper()
	spec, err := ParseSpec("demo.yaml", []byte(replaytest.SpecText(t, DemoSpec, broker.Addr, rds.Addr)))
	if err != nil {
		t.Fatal(err)
	}
	if suffix != "" {
		spec.Topics.Input += "-" + suffix
		spec.Topics.Labels += "-" + suffix
		spec.Redis.KeyPrefix += suffix + ":"
	}
	spec.Rollout.Retrain.Source = pipeline.RetrainSourceKafka
	if !entity {
		spec.Stages.Featurize.Entity = nil
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := CheckSpec(spec); err != nil {
		t.Fatal(err)
	}
	broker.CreateTopic(t, spec.Topics.Input, 3)
	broker.CreateTopic(t, spec.Topics.Labels, 2)
	rdb := rds.Client(t)
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	return &retrainKafkaEnv{broker: broker, spec: spec, rdb: rdb, fz: fz}
}

// source is the env's kafka retrain source with window rows.
func (e *retrainKafkaEnv) source(t testing.TB, window int) *KafkaRetrainRows {
	t.Helper()
	k, err := NewKafkaRetrainRows(e.spec, e.clientConfig(t), e.rdb, e.fz.NumDense(), e.fz.NumHashed(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	k.window = window
	return k
}

// clientConfig is the env's Kafka client config, from its spec.
func (e *retrainKafkaEnv) clientConfig(t testing.TB) kafka.ClientConfig {
	t.Helper()
	cc, err := KafkaClient(e.spec, "")
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// produceLabelled writes n events of the SEA stream of seed, each with its
// label (no malformed rows, no duplicates), and returns them as the
// generator made them.
func (e *retrainKafkaEnv) produceLabelled(t testing.TB, ctx context.Context, seed uint64, n int) []streams.Event {
	t.Helper()
	return replaytest.ProduceLabelled(t, ctx, e.spec.Kafka.Brokers, e.spec.Topics.Input, e.spec.Topics.Labels, seed, n)
}

// inputRecords is every record of the input topic, by position, and the
// topic's end offsets.
func (e *retrainKafkaEnv) inputRecords(t testing.TB, ctx context.Context) (map[rowPos]*kgo.Record, map[int32]int64) {
	t.Helper()
	brokers := e.spec.Kafka.Brokers
	topic := e.spec.Topics.Input
	recs := map[rowPos]*kgo.Record{}
	endOf := replaytest.EndOffsets(t, ctx, brokers, topic)
	for p, end := range endOf {
		for _, r := range replaytest.ReadRange(t, ctx, brokers, topic, p, 0, end) {
			recs[rowPos{ms: r.Timestamp.UnixMilli(), partition: r.Partition, offset: r.Offset}] = r
		}
	}
	return recs, endOf
}

// liveFeatures runs recs through the preparation stages as the live data
// plane builds them for spec (its Redis state under spec's key prefix),
// partition by partition in offset order, in batches of 100, and returns
// each featurized row's dense and hashed features by position.
func (e *retrainKafkaEnv) liveFeatures(t testing.TB, ctx context.Context, spec *pipeline.Spec, recs map[rowPos]*kgo.Record) map[rowPos][]float64 {
	t.Helper()
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		t.Fatal(err)
	}
	list, err := stages.PreparationChain(spec, e.rdb, keys)
	if err != nil {
		t.Fatal(err)
	}
	byPart := map[int32][]rowPos{}
	for p := range recs {
		byPart[p.partition] = append(byPart[p.partition], p)
	}
	out := map[rowPos][]float64{}
	var b pipeline.Batch
	defer b.Reset(nil)
	for _, ps := range byPart {
		slices.SortFunc(ps, func(a, b rowPos) int { return int(a.offset - b.offset) })
		for lo := 0; lo < len(ps); lo += 100 {
			chunk := ps[lo:min(lo+100, len(ps))]
			msgs := make([]pipeline.Message, len(chunk))
			for i, p := range chunk {
				r := recs[p]
				msgs[i] = pipeline.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			}
			b.Reset(msgs)
			for _, st := range list {
				if err := st.Process(ctx, &b); err != nil {
					t.Fatal(err)
				}
			}
			fb := &b.Features
			for j, i := range fb.Row {
				out[chunk[i]] = featureRow(fb.Dense[j*fb.NumDense:(j+1)*fb.NumDense], fb.Hashed[j*fb.NumHashed:(j+1)*fb.NumHashed])
			}
		}
	}
	return out
}

// featureRow is one row's dense then hashed features, comparable with
// slices.Equal.
func featureRow(dense []float32, hashed []int32) []float64 {
	out := make([]float64, 0, len(dense)+len(hashed))
	for _, x := range dense {
		out = append(out, float64(x))
	}
	for _, h := range hashed {
		out = append(out, float64(h))
	}
	return out
}

// rowFeatures is each kept row's features (featureRow), by position.
func rowFeatures(rows *newestRows) map[rowPos][]float64 {
	out := make(map[rowPos][]float64, rows.Len())
	r := rows.rows()
	for i, p := range rows.at {
		out[p] = featureRow(r.Dense[i*r.NumDense:(i+1)*r.NumDense], r.Hashed[i*r.NumHashed:(i+1)*r.NumHashed])
	}
	return out
}

// sameFeatures reports whether two feature rows are equal, NaN equal to
// NaN.
func sameFeatures(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) })
}

// eventIDOf is the event_id of an input record.
func eventIDOf(t testing.TB, r *kgo.Record) string {
	t.Helper()
	var v struct {
		ID string `json:"event_id"`
	}
	if err := json.Unmarshal(r.Value, &v); err != nil || v.ID == "" {
		t.Fatalf("record %d/%d has no event_id: %s", r.Partition, r.Offset, r.Value)
	}
	return v.ID
}

// checkReplayedRows checks rows a kafka source returned against the input
// records: exactly the events of want, oldest first, each with its
// generator label and, when live is set, the live stages' features.
func checkReplayedRows(t testing.TB, got *newestRows, recs map[rowPos]*kgo.Record, live map[rowPos][]float64, want []streams.Event) {
	t.Helper()
	labels := map[string]float32{}
	for i := range want {
		labels[want[i].ID] = float32(want[i].Label)
	}
	if got.Len() != len(want) {
		t.Fatalf("%d rows, want the %d labelled events", got.Len(), len(want))
	}
	rows := got.rows()
	if rows.N != got.Len() || rows.NumDense != got.nd || rows.NumHashed != got.nh {
		t.Fatalf("rows %d×(%d, %d), kept %d", rows.N, rows.NumDense, rows.NumHashed, got.Len())
	}
	seen := map[string]bool{}
	for i, p := range got.at {
		if i > 0 && !got.at[i-1].before(p) {
			t.Fatalf("row %d at %+v is not after row %d at %+v: not oldest first", i, p, i-1, got.at[i-1])
		}
		r := recs[p]
		if r == nil {
			t.Fatalf("row %d: no input record at %+v", i, p)
		}
		id := eventIDOf(t, r)
		y, ok := labels[id]
		switch {
		case !ok:
			t.Fatalf("row %d is event %s, not one of the expected events", i, id)
		case seen[id]:
			t.Fatalf("event %s twice", id)
		case got.y[i] != y:
			t.Fatalf("event %s: label %v, the generator's is %v", id, got.y[i], y)
		}
		seen[id] = true
		if live != nil {
			f := featureRow(rows.Dense[i*rows.NumDense:(i+1)*rows.NumDense], rows.Hashed[i*rows.NumHashed:(i+1)*rows.NumHashed])
			if w, ok := live[p]; !ok || !sameFeatures(f, w) {
				t.Fatalf("event %s: features %v, the live stages computed %v", id, f, w)
			}
		}
	}
}

// checkLineage checks that a kafka source's lineage names the input topic,
// [from, to) and, per partition with records, the offsets [0, end).
func checkLineage(t testing.TB, src registry.Source, topic string, ends map[int32]int64, from time.Time) {
	t.Helper()
	var want []registry.PartitionRange
	for p := range int32(len(ends)) {
		if ends[p] > 0 {
			want = append(want, registry.PartitionRange{Partition: p, From: 0, To: ends[p]})
		}
	}
	if src.Topic != topic || !slices.Equal(src.Partitions, want) {
		t.Errorf("lineage %s %+v, want %s %+v", src.Topic, src.Partitions, topic, want)
	}
	if !src.From.Equal(from) || src.From.Location() != time.UTC || !src.To.After(from) || src.To.After(time.Now()) {
		t.Errorf("lineage span %v–%v, want from %v to about now", src.From, src.To, from)
	}
}

// stateSnapshot is every key under prefix with its value (strings and
// hashes), as text.
func stateSnapshot(t testing.TB, ctx context.Context, rdb redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	it := rdb.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			out[k] = rdb.Get(ctx, k).Val()
		case "hash":
			out[k] = fmt.Sprint(rdb.HGetAll(ctx, k).Val())
		default:
			out[k] = typ
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dedupeIDs is how many event ids dedupe's buckets under prefix hold.
func dedupeIDs(t testing.TB, ctx context.Context, rdb redis.UniversalClient, prefix string) int {
	t.Helper()
	keys, err := rdb.Keys(ctx, globEscape(prefix)+"dedupe-bucket:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		n += int(rdb.HLen(ctx, k).Val())
	}
	return n
}

// countKeys is how many keys of state start with prefix.
func countKeys(state map[string]string, prefix string) int {
	n := 0
	for k := range state {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// retrainKafkaRows is a stream produced in two seeded parts, and what the
// checks compare the kafka source's rows with.
type retrainKafkaRows struct {
	start, mid, end time.Time // before the first part, between the parts, after
	first, second   []streams.Event
	recs            map[rowPos]*kgo.Record
	ends            map[int32]int64
	live            map[rowPos][]float64 // the live stages' features, fresh state
}

// checkRetrainKafkaRows is the core check of the kafka source: it produces
// two parts and checks that rowsSince(start) gives exactly the labelled
// events, with the generator's labels and the live stages' features,
// oldest first, with the lineage of the offsets read, and that since
// narrows them by timestamp; countSince agrees.
func checkRetrainKafkaRows(t *testing.T, ctx context.Context, env *retrainKafkaEnv) *retrainKafkaRows {
	t.Helper()
	f := &retrainKafkaRows{start: replaytest.StampedMillis()}
	f.first = env.produceLabelled(t, ctx, 31, 1500)
	f.mid = replaytest.StampedMillis()
	f.second = env.produceLabelled(t, ctx, 32, 1000)
	f.end = replaytest.StampedMillis()
	f.recs, f.ends = env.inputRecords(t, ctx)
	fresh := *env.spec
	fresh.Redis.KeyPrefix = fmt.Sprintf("expected-%d:", time.Now().UnixNano())
	f.live = env.liveFeatures(t, ctx, &fresh, f.recs)
	all := append(slices.Clone(f.first), f.second...)

	k := env.source(t, 20_000)
	got, err := k.replay(ctx, f.start)
	if err != nil {
		t.Fatal(err)
	}
	checkReplayedRows(t, got, f.recs, f.live, all)
	checkLineage(t, got.source, env.spec.Topics.Input, f.ends, f.start)
	// rowsSince gives the same rows.
	rows, y, src, err := k.RowsSince(ctx, f.start)
	if err != nil || rows.N != len(all) || !slices.Equal(y, got.y) || !slices.Equal(rows.Dense, got.dense) || src.Topic != got.source.Topic {
		t.Errorf("rowsSince: %d rows, %v; want the replay's %d", rows.N, err, len(all))
	}
	if got, err = k.replay(ctx, f.mid); err != nil {
		t.Fatal(err)
	}
	checkReplayedRows(t, got, f.recs, f.live, f.second)
	for _, c := range []struct {
		since time.Time
		want  int
	}{{f.start, len(all)}, {f.mid, len(f.second)}, {f.end, 0}} {
		if n, err := k.CountSince(ctx, c.since); err != nil || n != c.want {
			t.Errorf("countSince(%v) = %d, %v; want %d", c.since, n, err, c.want)
		}
	}
	return f
}

// TestRetrainKafkaRowsOnKfake: checkRetrainKafkaRows on kfake, and a
// lookback narrows the rows by timestamp, and the window keeps the newest.
func TestRetrainKafkaRowsOnKfake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := newRetrainKafkaEnv(t, kafkatest.StartKfake(t), redistest.StartMiniredis(t), false)
	f := checkRetrainKafkaRows(t, ctx, env)
	start, mid, end, recs, live := f.start, f.mid, f.end, f.recs, f.live
	all := append(slices.Clone(f.first), f.second...)

	t.Run("lookback", func(t *testing.T) {
		k := env.source(t, 20_000)
		k.now = func() time.Time { return end }
		k.lookback = end.Sub(mid)
		got, err := k.replay(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		checkReplayedRows(t, got, recs, live, f.second)
		if !got.source.From.Equal(mid) || !got.source.To.Equal(end) {
			t.Errorf("span %v–%v, want %v–%v", got.source.From, got.source.To, mid, end)
		}
	})
	t.Run("window keeps the newest rows", func(t *testing.T) {
		const window = 300
		k := env.source(t, window)
		got, err := k.replay(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		positions := make([]rowPos, 0, len(recs))
		for p := range recs {
			positions = append(positions, p)
		}
		slices.SortFunc(positions, func(a, b rowPos) int {
			if a.before(b) {
				return -1
			}
			return 1
		})
		newest := map[string]bool{}
		for _, p := range positions[len(positions)-window:] {
			newest[eventIDOf(t, recs[p])] = true
		}
		var want []streams.Event
		for _, e := range all {
			if newest[e.ID] {
				want = append(want, e)
			}
		}
		checkReplayedRows(t, got, recs, live, want)
		if n, err := k.CountSince(ctx, start); err != nil || n != window {
			t.Errorf("countSince = %d, %v; want the window, %d", n, err, window)
		}
	})
}

// TestRetrainKafkaWarmupGivesTheLiveFeatures: with entity aggregates on, a
// replay of the second part of a stream warmed up over the first gives the
// second part's rows the live stages' features (entities seen in the
// first part keep their counts, means and times since the previous
// event); without the warm-up, or with a lookback that cuts it off, the
// rows of those entities start empty and differ from the live ones.
func TestRetrainKafkaWarmupGivesTheLiveFeatures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checkRetrainKafkaWarmup(t, ctx, newRetrainKafkaEnv(t, kafkatest.StartKfake(t), redistest.StartMiniredis(t), true))
}

// checkRetrainKafkaWarmup is TestRetrainKafkaWarmupGivesTheLiveFeatures's
// check on env, which must have entity aggregates on.
func checkRetrainKafkaWarmup(t *testing.T, ctx context.Context, env *retrainKafkaEnv) {
	t.Helper()
	env.produceLabelled(t, ctx, 31, 1500)
	mid := replaytest.StampedMillis()
	second := env.produceLabelled(t, ctx, 32, 1000)
	end := replaytest.StampedMillis()
	recs, _ := env.inputRecords(t, ctx)
	fresh := *env.spec
	fresh.Redis.KeyPrefix = fmt.Sprintf("expected-%d:", time.Now().UnixNano())
	live := env.liveFeatures(t, ctx, &fresh, recs)

	t.Run("warmed up", func(t *testing.T) {
		k := env.source(t, 20_000)
		k.warmup = 5 * time.Minute
		got, err := k.replay(ctx, mid)
		if err != nil {
			t.Fatal(err)
		}
		checkReplayedRows(t, got, recs, live, second)
		if !got.source.From.Equal(mid) {
			t.Errorf("lineage from %v, want the rows' span from %v", got.source.From, mid)
		}
	})
	// unwarmed counts the rows whose features differ from the live ones.
	unwarmed := func(t *testing.T, k *KafkaRetrainRows) int {
		t.Helper()
		got, err := k.replay(ctx, mid)
		if err != nil {
			t.Fatal(err)
		}
		checkReplayedRows(t, got, recs, nil, second)
		n := 0
		for p, f := range rowFeatures(got) {
			if !sameFeatures(f, live[p]) {
				n++
			}
		}
		return n
	}
	t.Run("off, the default", func(t *testing.T) {
		k := env.source(t, 20_000)
		if k.warmup != 0 {
			t.Fatalf("warmup %s by default, want 0 (off)", k.warmup)
		}
		if n := unwarmed(t, k); n == 0 {
			t.Error("without a warm-up every row has the live features: the check cannot tell a warm replay from a cold one")
		} else {
			t.Logf("without a warm-up %d of %d rows differ from the live features", n, len(second))
		}
	})
	t.Run("lookback bounds it", func(t *testing.T) {
		k := env.source(t, 20_000)
		k.now = func() time.Time { return end }
		k.lookback, k.warmup = end.Sub(mid), time.Hour
		if n := unwarmed(t, k); n == 0 {
			t.Error("a warm-up before now-lookback was replayed: every row has the live features")
		}
	})
}

// TestRetrainKafkaJobOnKfake: a retrain job on the kafka source registers a
// candidate with a good holdout accuracy and the lineage of the replay,
// and the replay leaves the live dedupe and entity state in Redis as it
// was (and no state of its own behind).
func TestRetrainKafkaJobOnKfake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := newRetrainKafkaEnv(t, kafkatest.StartKfake(t), redistest.StartMiniredis(t), true)
	retrainKafkaJobCheck(t, ctx, env)
}

// retrainKafkaJobCheck runs the live stages over a produced stream (live
// dedupe and entity keys), then a retrain job on the kafka source.
func retrainKafkaJobCheck(t *testing.T, ctx context.Context, env *retrainKafkaEnv) {
	t.Helper()
	start := replaytest.StampedMillis()
	evs := env.produceLabelled(t, ctx, 41, 3000)
	recs, ends := env.inputRecords(t, ctx)

	// The live data plane's state: its stages under the spec's own prefix.
	env.liveFeatures(t, ctx, env.spec, recs)
	prefix := env.spec.Redis.KeyPrefix
	before := stateSnapshot(t, ctx, env.rdb, prefix)
	if ids := dedupeIDs(t, ctx, env.rdb, prefix); ids != len(evs) || countKeys(before, prefix+"entity:") == 0 {
		t.Fatalf("live state: %d ids in dedupe's buckets for %d events, %d entity keys", ids, len(evs), countKeys(before, prefix+"entity:"))
	}

	reg, err := registry.New(env.rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rt := env.spec.Rollout.RetrainOrDefault()
	job, err := governance.NewRetrainJob(governance.RetrainConfig{Registry: reg, Model: env.spec.Model.Name, Mode: rt.Mode, Rows: env.source(t, rt.Window),
		NewLearner: func() (models.Learner, error) { return stages.NewLearner(env.spec, env.fz) },
		Signature:  LearnerSignature(env.fz), SpecHash: specHash(env.spec), MinRows: rt.MinRows, Holdout: rt.Holdout})
	if err != nil {
		t.Fatal(err)
	}
	v, err := job.RunOnce(ctx, "test", "test: retrain on Kafka", start)
	if err != nil {
		t.Fatal(err)
	}
	m := v.Lineage.Metrics
	t.Logf("candidate version %d: %v", v.Number, m)
	if m["trainRows"] != float64(len(evs)) || m["accuracy"] < 0.9 {
		t.Errorf("candidate metrics %v, want %d train rows and holdout accuracy ≥ 0.9", m, len(evs))
	}
	checkLineage(t, v.Lineage.Source, env.spec.Topics.Input, ends, start)
	set, err := reg.Aliases(ctx, env.spec.Model.Name)
	if err != nil || set.Versions[registry.AliasShadow] != v.Number {
		t.Errorf("shadow alias %v, %v; want version %d", set.Versions, err, v.Number)
	}
	after := stateSnapshot(t, ctx, env.rdb, prefix)
	if !mapsEqual(before, after) {
		t.Errorf("the retrain changed the state under %s: %d keys before, %d after (%d under %sreplay:)",
			prefix, len(before), len(after), countKeys(after, prefix+"replay:"), prefix)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRetrainKafkaErrorsNameTopicAndPartition: a missing labels topic, and
// a failing Redis during the replay, are errors that say where.
func TestRetrainKafkaErrorsNameTopicAndPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rds := redistest.StartMiniredis(t)
	env := newRetrainKafkaEnv(t, kafkatest.StartKfake(t), rds, true)
	start := replaytest.StampedMillis()
	env.produceLabelled(t, ctx, 51, 50)

	missing := *env.spec
	missing.Topics.Labels = "no-such-labels"
	k, err := NewKafkaRetrainRows(&missing, env.clientConfig(t), env.rdb, env.fz.NumDense(), env.fz.NumHashed(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.CountSince(ctx, start); err == nil || !strings.Contains(err.Error(), "labels topic no-such-labels") {
		t.Errorf("countSince on a missing labels topic: %v", err)
	}

	rds.Mini.SetError("LOADING redis is loading")
	defer rds.Mini.SetError("")
	_, _, _, err = env.source(t, 100).RowsSince(ctx, start)
	if err == nil || !strings.Contains(err.Error(), "input topic "+env.spec.Topics.Input+" partition ") || !strings.Contains(err.Error(), "offsets [") {
		t.Errorf("rowsSince with Redis failing: %v", err)
	}
}

// TestRecentLabelsKeepsTheNewest: past its bound the label map drops the
// labels with the oldest timestamps, across partitions read out of order,
// and a replaced label does not count twice.
func TestRecentLabelsKeepsTheNewest(t *testing.T) {
	l := newRecentLabels(3)
	for i, ms := range []int64{50, 10, 40, 20, 30} {
		l.put(fmt.Sprint("e", ms), float32(i%2), ms)
	}
	for _, id := range []string{"e10", "e20"} {
		if _, ok := l.get(id); ok {
			t.Errorf("%s kept; it is among the oldest", id)
		}
	}
	for _, id := range []string{"e30", "e40", "e50"} {
		if _, ok := l.get(id); !ok {
			t.Errorf("%s dropped; it is among the newest", id)
		}
	}
	l.put("e50", 1, 60) // a later label of e50
	if y, _ := l.get("e50"); y != 1 || l.len() != 3 || l.dropped != 2 {
		t.Errorf("after a replaced label: e50 = %v, %d held, %d dropped", y, l.len(), l.dropped)
	}
	for i := range 1000 { // replaced labels' stale entries stay bounded
		l.put("e60", float32(i%2), int64(100+i))
	}
	if len(l.order) > 2*l.max+16 || l.len() != 3 {
		t.Errorf("%d heap entries for %d labels held", len(l.order), l.len())
	}
}

// TestGovernorChoosesRetrainSource: the governor retrains on the window
// by default and on a KafkaRetrainRows of the spec with source kafka.
func TestGovernorChoosesRetrainSource(t *testing.T) {
	broker, rds := kafkatest.StartKfake(t), redistest.StartMiniredis(t)
	for _, source := range []string{"", pipeline.RetrainSourceWindow, pipeline.RetrainSourceKafka} {
		t.Run("source "+source, func(t *testing.T) {
			spec, err := ParseSpec("demo.yaml", []byte(replaytest.SpecText(t, DemoSpec, broker.Addr, rds.Addr)))
			if err != nil {
				t.Fatal(err)
			}
			spec.Rollout.Retrain.Source, spec.Rollout.Retrain.Lookback = source, pipeline.Duration(time.Hour)
			cc, err := KafkaClient(spec, "")
			if err != nil {
				t.Fatal(err)
			}
			rdb := rds.Client(t)
			fz, err := stages.NewFeaturize(spec, rdb)
			if err != nil {
				t.Fatal(err)
			}
			a := &App{spec: spec, kcc: cc, rdb: rdb, log: slog.New(slog.DiscardHandler)}
			rows, err := a.retrainRows(fz)
			if err != nil {
				t.Fatal(err)
			}
			switch rows := rows.(type) {
			case *governance.Window:
				if source == pipeline.RetrainSourceKafka {
					t.Errorf("source %q: the governor retrains on the window", source)
				}
			case *KafkaRetrainRows:
				if source != pipeline.RetrainSourceKafka || rows.spec != spec || rows.lookback != time.Hour ||
					rows.window != spec.Rollout.RetrainOrDefault().Window || rows.numDense != 13 || rows.numHashed != 3 {
					t.Errorf("source %q: kafka rows %+v", source, rows)
				}
			default:
				t.Errorf("source %q: rows %T", source, rows)
			}
		})
	}
}

// BenchmarkRetrainKafkaWarmup is the kafka retrain source's replay of the
// 1,000 rows labelled after a drift, cold (warm-up off, the default) and
// after a warm-up of the 4,000 events before them through the stateful
// stages (kfake and miniredis). rows/op is the training rows; the ratio of
// the two ns/op is what the warm-up costs a retrain at this 4:1 ratio of
// history to rows.
func BenchmarkRetrainKafkaWarmup(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env := newRetrainKafkaEnv(b, kafkatest.StartKfake(b), redistest.StartMiniredis(b), true)
	env.produceLabelled(b, ctx, 41, 4000)
	mid := replaytest.StampedMillis()
	env.produceLabelled(b, ctx, 42, 1000)
	for _, bc := range []struct {
		name   string
		warmup time.Duration
	}{{"off", 0}, {"on", 5 * time.Minute}} {
		b.Run("warmup="+bc.name, func(b *testing.B) {
			k := env.source(b, 20_000)
			k.log = slog.New(slog.DiscardHandler)
			k.warmup = bc.warmup
			rows := 0
			b.ReportAllocs()
			for b.Loop() {
				got, err := k.replay(ctx, mid)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(got.y)
			}
			if rows != 1000 {
				b.Fatalf("%d training rows, want the 1,000 after the drift", rows)
			}
			b.ReportMetric(float64(rows), "rows/op")
		})
	}
}
