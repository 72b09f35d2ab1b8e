package app

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
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
	env := loadReplayEnv(b, broker.Addr, rds)
	broker.CreateTopic(b, env.Spec.Topics.Input, 4)
	ctx := context.Background()
	replaytest.ProduceEvents(b, ctx, env.Brokers, env.Spec.Topics.Input, events, 21)
	rr, _ := allRanges(b, ctx, env)
	b.ReportAllocs()
	var total time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		res, err := startReplay(ctx, b, env, rr, ReplayOptions{ToTopic: fmt.Sprintf("backfill-%d", i), CheckpointTopic: "ckpt",
			RunID: fmt.Sprintf("bench-%d", i), BatchSize: 1024, Parallel: 4, Progress: replay.NewProgress(io.Discard, false, time.Hour)})
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
// (stages.ReplayFeaturize: entity aggregates in process; miniredis holds
// only the live run's state) and score into a fresh ToLake per iteration,
// with DirectReplay, and reports events/s and CPU time per event.
func BenchmarkReplayLake(b *testing.B) {
	const events = 100_000
	env := loadReplayEnv(b, "127.0.0.1:1", redistest.StartMiniredis(b))
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	evs := replaytest.SeededEvents(b, streams.Config{Concept: streams.ConceptSEA, Seed: 21}, events)
	replaytest.WriteLiveLake(b, env.Spec, env.Redis, src, stages.NewServedModel(env.Spec.Model.Name, "1", stages.ArmChampion, env.Learner.Clone()), evs, 4)
	b.ReportAllocs()
	var total, cpu time.Duration
	i := 0
	for b.Loop() {
		i++
		start, cpuStart := time.Now(), processCPU(b)
		res, err := DirectReplay(context.Background(), ReplayOptions{Spec: env.Spec, LakeDir: src, ToLake: filepath.Join(dir, fmt.Sprint("out", i)),
			Snapshot: env.Snapshot, ModelVersion: "bench", Progress: replay.NewProgress(io.Discard, false, time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cpu += processCPU(b) - cpuStart
		if res.Inputs != events {
			b.Fatalf("replayed %d of %d input rows", res.Inputs, events)
		}
	}
	b.ReportMetric(float64(events*i)/total.Seconds(), "events/s")
	// CPU time per event, all goroutines (the in-process miniredis's
	// included): steadier than events/s on a machine others load.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(events*i), "cpu-ns/event")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
