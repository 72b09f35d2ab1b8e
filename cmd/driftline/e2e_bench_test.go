//go:build integration

package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// e2eEvents is the stream size of one end-to-end measurement.
const e2eEvents = 200_000

// BenchmarkEndToEnd measures, in one run on one real broker, driftline's
// throughput from the input topic to acknowledged outputs, and a bare
// franz-go consume → produce passthrough of the same events, and reports
// both and their ratio. Run it once per measurement:
//
//	go test -tags integration -run '^$' -bench EndToEnd -benchtime 1x ./cmd/driftline/
//
// DRIFTLINE_BENCH_NO_REDIS_STAGES=1 turns dedupe and the entity aggregates
// off, to show what the Redis round trips cost.
func BenchmarkEndToEnd(b *testing.B) {
	broker := kafkatest.StartKafka(b)
	rds := redistest.StartRedis(b)
	spec, specPath := integrationSpec(b, broker, rds.Addr)
	broker.CreateTopic(b, "passthrough", 4)
	ctx := context.Background()
	stats := produceStream(b, ctx, broker, spec, e2eEvents)
	rows := stats.Rows.Load()
	b.ReportAllocs()
	b.ResetTimer()
	var passthrough, dataPlane time.Duration
	for i := 0; i < b.N; i++ {
		passthrough += runPassthrough(b, broker, spec.Topics.Input, "passthrough", "passthrough-"+time.Now().Format("150405.000000"), rows)
		dataPlane += runPipelineOnce(b, specPath, rds.Addr, rows)
	}
	b.StopTimer()
	pt := float64(rows) * float64(b.N) / passthrough.Seconds()
	dl := float64(rows) * float64(b.N) / dataPlane.Seconds()
	b.ReportMetric(pt, "passthrough-events/s")
	b.ReportMetric(dl, "driftline-events/s")
	b.ReportMetric(dl/pt, "ratio")
}

// runPassthrough consumes n records in a fresh group and produces each to
// out, committing after the produces are acknowledged, like driftline.
func runPassthrough(b *testing.B, broker *kafkatest.Broker, in, out, group string, n int64) time.Duration {
	cl := broker.Client(b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.ProducerLinger(2*time.Millisecond))
	ctx := context.Background()
	start := time.Now()
	var seen int64
	for seen < n {
		fetches := cl.PollFetches(ctx)
		var wg sync.WaitGroup
		fetches.EachRecord(func(r *kgo.Record) {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
			seen++
		})
		wg.Wait()
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// runPipelineOnce runs the data plane in a fresh group and Redis database
// until it has accounted for n rows.
func runPipelineOnce(b *testing.B, specPath, redisAddr string, n int64) time.Duration {
	spec, err := pipeline.LoadSpec(specPath)
	if err != nil {
		b.Fatal(err)
	}
	spec.Topics.Labels, spec.Topics.Alerts = "", "" // the data plane alone
	if os.Getenv("DRIFTLINE_BENCH_NO_REDIS_STAGES") != "" {
		// Measures what the Redis stages cost: no dedupe, no entity aggregates.
		off := false
		spec.Stages.Dedupe.Enabled = &off
		spec.Stages.Featurize.Entity = nil
	}
	spec.Kafka.Group = "driftline-" + time.Now().Format("150405.000000")
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	dp, err := app.Open(context.Background(), spec, app.Options{Redis: rdb, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- dp.Run(ctx) }()
	for {
		tot := dp.Totals()
		if tot.Out+tot.DLQ+tot.Duplicates >= n {
			break
		}
		select {
		case err := <-done:
			b.Fatalf("pipeline stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}
