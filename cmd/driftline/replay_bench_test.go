package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
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

// BenchmarkReplayLake replays a lake of 100,000 demo-spec events (written
// by the live stages and lake sink, 4 source partitions) through featurize
// (entity aggregates in miniredis) and score into a fresh --to-lake per
// iteration, with the CLI, and reports events/s.
func BenchmarkReplayLake(b *testing.B) {
	const events = 100_000
	rds := redistest.StartMiniredis(b)
	env := loadReplayEnv(b, "127.0.0.1:1", rds.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	evs := seededEvents(b, streams.Config{Concept: streams.ConceptSEA, Seed: 21}, events)
	writeLiveLake(b, env.spec, rdb, src, stages.NewServedModel(env.spec.Model.Name, "1", stages.ArmChampion, env.learner.Clone()), evs, 4)
	var total time.Duration
	i := 0
	for b.Loop() {
		i++
		var stdout, stderr bytes.Buffer
		start := time.Now()
		args := []string{"replay", "--spec", env.specPath, "--lake", src, "--to-lake", filepath.Join(dir, fmt.Sprint("out", i)),
			"--snapshot", env.snapshot, "--model-version", "bench", "--progress-interval", "1h"}
		if code := runMain(context.Background(), args, &stdout, &stderr); code != 0 {
			b.Fatalf("replay exit %d: %s", code, stderr.String())
		}
		total += time.Since(start)
		if !strings.Contains(stdout.String(), fmt.Sprintf(" %d input rows", events)) {
			b.Fatalf("replay: %s", stdout.String())
		}
	}
	b.ReportMetric(float64(events*i)/total.Seconds(), "events/s")
}
