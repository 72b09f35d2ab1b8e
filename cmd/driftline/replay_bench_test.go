package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// BenchmarkReplayKafka replays 100,000 events (4 partitions) from kfake
// through the demo spec's stages (miniredis state) into a fresh backfill
// topic per iteration, transactions and checkpoints included, and reports
// events/s.
func BenchmarkReplayKafka(b *testing.B) {
	benchReplay(b, kafkatest.StartKfake(b), redistest.StartMiniredis(b))
}

func benchReplay(b *testing.B, broker *kafkatest.Broker, rds *redistest.Redis) {
	const events = 100_000
	env := loadReplayEnv(b, broker.Addr, rds.Addr)
	broker.CreateTopic(b, env.spec.Topics.Input, 4)
	ctx := context.Background()
	produceEvents(b, ctx, env.brokers, env.spec.Topics.Input, events, 21)
	adm := kadm.NewClient(mustClient(b, env.brokers))
	ends, err := adm.ListEndOffsets(ctx, env.spec.Topics.Input)
	if err != nil {
		b.Fatal(err)
	}
	var rr []replayRange
	ends.Each(func(o kadm.ListedOffset) { rr = append(rr, replayRange{Partition: o.Partition, End: o.Offset}) })
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	var total time.Duration
	i := 0
	for b.Loop() {
		i++
		model := stages.NewServedModel(env.spec.Model.Name, "bench", stages.ArmShadow, env.learner.Clone())
		start := time.Now()
		res, err := runReplay(ctx, replayConfig{Spec: env.spec, Ranges: rr, ToTopic: fmt.Sprintf("backfill-%d", i), CheckpointTopic: "ckpt",
			RunID: fmt.Sprintf("bench-%d", i), Model: model, BatchSize: 1024, Parallel: 4, Rdb: rdb, Progress: newReplayProgress(io.Discard, time.Hour)}, env.brokers)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if res.Inputs != events {
			b.Fatalf("replayed %d of %d", res.Inputs, events)
		}
	}
	b.ReportMetric(float64(events*i)/total.Seconds(), "events/s")
}
