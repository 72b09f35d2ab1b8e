package app

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// labelPath is one way of learning from labels: the label join over a
// prediction cache, the champion it teaches, and the stages that cache
// the predictions.
type labelPath struct {
	spec    *pipeline.Spec
	chain   []pipeline.Stage
	join    *stages.LabelJoin
	handler pipeline.PartitionHandler
	model   *stages.ServedModel
}

func newLabelPath(b *testing.B, spec *pipeline.Spec, rdb redis.UniversalClient) *labelPath {
	b.Helper()
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		b.Fatal(err)
	}
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		b.Fatal(err)
	}
	l, err := stages.NewLearner(spec, fz)
	if err != nil {
		b.Fatal(err)
	}
	m, err := stages.NewJoinMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	p := &labelPath{spec: spec, model: stages.NewServedModel(spec.Model.Name, spec.Model.Version, stages.ArmChampion, l)}
	cache := stages.NewPredictionCache(spec, rdb, spec.Model.Version, m)
	if spec.Topics.ModelState != "" {
		cache = stages.NewLoggedPredictionCache(spec, rdb, spec.Model.Version, m)
	}
	p.join = stages.NewLabelJoin(spec, cache, p.model)
	if p.chain, err = stages.PreparationChain(spec, rdb, keys); err != nil {
		b.Fatal(err)
	}
	score := stages.NewScore(spec, p.model, keys.AESKeyID)
	score.Observe = p.join.Observe
	p.chain = append(p.chain, score)
	if p.handler, err = p.join.Open(spec.Topics.Labels, 0); err != nil {
		b.Fatal(err)
	}
	return p
}

// cache runs events through the chain, which caches their predictions.
func (p *labelPath) cache(b *testing.B, events []pipeline.Message) {
	b.Helper()
	var batch pipeline.Batch
	batch.Reset(events)
	for _, st := range p.chain {
		if err := st.Process(context.Background(), &batch); err != nil {
			b.Fatal(err)
		}
	}
}

// benchmarkWriterVsInline measures, side by side in one run, how many
// labels a second the label join learns inline (today's label plane: join,
// delete the cached row, learn) and how many the learner-state writer
// learns and publishes (join, keep the row, learn; every publish_labels
// labels snapshot the learner, publish it to the state topic with its
// positions, then release the joined rows, in the background as the
// writer does). The label records and their
// cached predictions are prepared outside the timed sections; the two
// paths alternate batch by batch. One op is one batch of 1,024 labels
// through both paths.
func benchmarkWriterVsInline(b *testing.B, broker *kafkatest.Broker, rds *redistest.Redis) {
	const batch = 1024
	env := newStateEnv(b, broker, rds, 1, "", false)
	env.broker.CreateTopic(b, env.spec.Topics.ModelState, 1)
	rdb := rds.Client(b)
	inlineSpec, writerSpec := *env.spec, *env.spec
	inlineSpec.Topics.ModelState = ""
	inlineSpec.Redis.KeyPrefix += "inline:"
	writerSpec.Redis.KeyPrefix += "writer:"
	inline, writer := newLabelPath(b, &inlineSpec, rdb), newLabelPath(b, &writerSpec, rdb)
	ctx := context.Background()
	feed, err := kafka.NewLabelFeed(ctx, kafka.LabelFeedConfig{Client: kafka.ClientConfig{Brokers: []string{broker.Addr}},
		Topic: env.spec.Topics.Labels, Group: "bench-labels", StateTopic: env.spec.Topics.ModelState})
	if err != nil {
		b.Fatal(err)
	}
	defer feed.Close()
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: 9})
	if err != nil {
		b.Fatal(err)
	}
	var (
		ev                          streams.Event
		offset                      int64
		inlineTime, writerTime      time.Duration
		publishTime, releaseTime    time.Duration
		consumed, published, labels int
		seq                         int64
		released                    = make(chan struct{})
	)
	close(released)
	publish := func() {
		l, m := writer.model.SnapshotMarked()
		state, err := l.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		seq++
		rec := governance.StateRecord{Model: writerSpec.Model.Name, Version: writerSpec.Model.Version, Writer: "bench", Epoch: 1, Seq: seq,
			Learned: m.Learned, PublishedAt: time.Now(), Positions: governance.Positions{Labels: map[int32]int64{0: offset}}, State: state}
		val, err := rec.Encode()
		if err != nil {
			b.Fatal(err)
		}
		key := governance.StateKey(rec.Model, rec.Version)
		if err := feed.Publish(ctx, []pipeline.OutRecord{{Key: []byte(key), Value: val}}); err != nil {
			b.Fatal(err)
		}
		// As the writer's session does: the release of the previous publish
		// must be done; this one's runs while the next labels are learned.
		waited := time.Now()
		<-released
		releaseTime += time.Since(waited)
		events := writer.join.TakeJoined()
		next := make(chan struct{})
		go func() {
			defer close(next)
			if err := writer.join.Cache().ReleaseJoined(ctx, events, nil); err != nil {
				b.Error(err)
			}
		}()
		released = next
		published++
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		events := make([]pipeline.Message, batch)
		msgs := make([]pipeline.Message, batch)
		for k := range batch {
			gen.Next(&ev)
			events[k] = pipeline.Message{Topic: inlineSpec.Topics.Input, Offset: int64(i*batch + k), Value: streams.AppendJSON(nil, &ev)}
			msgs[k] = pipeline.Message{Topic: inlineSpec.Topics.Labels, Offset: offset, Value: streams.AppendLabelJSON(nil, &ev)}
			offset++
		}
		inline.cache(b, events)
		writer.cache(b, events)
		b.StartTimer()
		runInline := func() {
			start := time.Now()
			if err := inline.handler.Handle(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			inlineTime += time.Since(start)
		}
		runWriter := func() {
			start := time.Now()
			if err := writer.handler.Handle(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			if consumed += batch; consumed >= writerSpec.LearnerState.PublishLabels {
				published := time.Now()
				publish()
				publishTime += time.Since(published)
				consumed = 0
			}
			writerTime += time.Since(start)
		}
		if i%2 == 0 {
			runInline()
			runWriter()
		} else {
			runWriter()
			runInline()
		}
		labels += batch
	}
	<-released
	if got := inline.model.Mark().Learned; got != int64(labels) {
		b.Fatalf("inline learned %d of %d labels", got, labels)
	}
	if got := writer.model.Mark().Learned; got != int64(labels) {
		b.Fatalf("the writer learned %d of %d labels", got, labels)
	}
	in, wr := float64(labels)/inlineTime.Seconds(), float64(labels)/writerTime.Seconds()
	b.ReportMetric(in, "inline-labels/s")
	b.ReportMetric(wr, "writer-labels/s")
	b.ReportMetric(wr/in, "writer/inline")
	b.ReportMetric(float64(published), "publishes")
	if published > 0 {
		// Of the writer's time: one publish (snapshot, record, produce and
		// acknowledgement, and waiting for the previous release), and the
		// wait alone.
		b.ReportMetric(float64(publishTime.Milliseconds())/float64(published), "ms/publish")
		b.ReportMetric(float64(releaseTime.Milliseconds())/float64(published), "release-wait-ms/publish")
	}
}

// BenchmarkLearnerStateWriterVsInline is benchmarkWriterVsInline on kfake
// and miniredis. miniredis builds a Lua state per EVAL and serializes
// every command, so the cache round trips dominate both paths here; the
// figures in BENCHMARKS.md come from the integration variant, on a real
// broker and redis-server.
func BenchmarkLearnerStateWriterVsInline(b *testing.B) {
	benchmarkWriterVsInline(b, kafkatest.StartKfake(b), redistest.StartMiniredis(b))
}
