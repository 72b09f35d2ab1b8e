package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// deferringStage emits one prediction per row on out and defers, per
// batch, a call of work with the batch's messages' partition and offsets
// (as a write-behind stage defers its store write).
type deferringStage struct {
	out  string
	work func(ctx context.Context, partition int32, first, last int64) error
}

func (*deferringStage) Name() string { return "deferring" }

func (s *deferringStage) Process(ctx context.Context, b *pipeline.Batch) error {
	for i := range b.Len() {
		m := &b.Messages[i]
		b.AppendOutput(i, pipeline.OutRecord{Topic: s.out, Key: m.Key, Value: fmt.Appendf(nil, "%d/%d", m.Partition, m.Offset)})
	}
	p, first, last := b.Partition, b.Messages[0].Offset, b.Messages[b.Len()-1].Offset
	return b.Defer(ctx, func(ctx context.Context) error { return s.work(ctx, p, first, last) })
}

func deferringOpen(t *testing.T, c *kafka.Client, st *deferringStage, retry *pipeline.RetryPolicy) func(string, int32) (pipeline.PartitionHandler, error) {
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return func(string, int32) (pipeline.PartitionHandler, error) {
		return pipeline.NewRunner(pipeline.RunnerConfig{Stages: []pipeline.Stage{st}, Sink: c, DLQTopic: "dlq", Metrics: m, Retry: retry})
	}
}

// A batch's deferred work that fails transiently (the store is down) is
// retried by the runner: Run goes on, the store is reported down, no
// offset is committed past the batch, and once the store is back every
// offset is committed and the store is up.
func TestDeferredWorkRetriedNeverStopsRun(t *testing.T) {
	const topic, group, perPart, batch, poison = "deferred", "deferred-group", 60, 8, 27
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, 1)
	b.CreateTopic(t, "out", 1)
	produceN(t, b, topic, 1, perPart, 0)
	policy, reg := downPolicy(t)
	var down atomic.Bool
	down.Store(true)
	var tries atomic.Int64
	st := &deferringStage{out: "out", work: func(_ context.Context, _ int32, first, last int64) error {
		if first <= poison && poison <= last && down.Load() {
			tries.Add(1)
			return fmt.Errorf("featurize: write entity aggregates: %w", errDown)
		}
		return nil
	}}
	c := newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: 2, retry: policy, reg: reg})
	run := start(c, deferringOpen(t, c, st, policy))
	eventually(t, "the deferred work to fail three times", func() bool { return tries.Load() >= 3 })
	if policy.Health.IsUp("store") {
		t.Error("the store is reported up while deferred work fails on it")
	}
	time.Sleep(300 * time.Millisecond) // time for a commit past the batch, were there one
	select {
	case err := <-run.done:
		t.Fatalf("Run returned while deferred work failed: %v", err)
	default:
	}
	if got := committed(t, b, group, topic)[0]; got > poison {
		t.Fatalf("committed offset %d while the batch of offset %d could not finish its deferred work", got, poison)
	}
	down.Store(false)
	eventually(t, "every offset committed", func() bool { return committed(t, b, group, topic)[0] == perPart })
	if !policy.Health.IsUp("store") {
		t.Error("the store is still reported down")
	}
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Exactly-once: a round commits its offsets only after the deferred work of
// its batches is done (Handle waits for it), so while one batch's deferred
// work is held, nothing of its round is committed; once released, all is.
func TestExactlyOnceWaitsForDeferredWork(t *testing.T) {
	const in, out, group, partitions, perPart, hold = "eosd-in", "eosd-out", "eosd-group", 2, 200, 100
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, in, partitions)
	b.CreateTopic(t, out, partitions)
	b.CreateTopic(t, "dlq", 1)
	produceN(t, b, in, partitions, perPart, 0)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st := &deferringStage{out: out, work: func(_ context.Context, p int32, first, last int64) error {
		if p == 1 && first <= hold && hold <= last {
			once.Do(func() { close(entered); <-release })
		}
		return nil
	}}
	c := newEOSConsumer(t, b, group, in, "eos-deferred", consumerOpts{batch: 16, inFlight: 2, linger: 2 * time.Millisecond})
	run := start(c, deferringOpen(t, c, st, nil))
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("the held batch's deferred work never ran")
	}
	time.Sleep(300 * time.Millisecond)
	if got := stableCommitted(t, b, group, in)[1]; got > hold {
		close(release)
		t.Fatalf("partition 1 committed %d while the deferred work of its batch holding %d was held", got, hold)
	}
	close(release)
	eventually(t, "every offset committed", func() bool {
		got := stableCommitted(t, b, group, in)
		return got[0] == perPart && got[1] == perPart
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
