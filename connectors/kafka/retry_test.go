package kafka_test

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// errDown is a store's transient failure: the retry policy's classifier
// calls it so, as the app's calls a Redis outage.
var errDown = errors.New("store down")

func downPolicy(t *testing.T) (*pipeline.RetryPolicy, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := pipeline.NewHealth(reg, slog.New(slog.DiscardHandler), "store")
	if err != nil {
		t.Fatal(err)
	}
	classify := func(err error) (string, string, bool) {
		if errors.Is(err, errDown) {
			return "store", "down", true
		}
		return "", "", false
	}
	return &pipeline.RetryPolicy{Classify: classify, Health: h}, reg
}

// outage fails the batch holding offset poison of partition 0 while down
// is set, counting the tries and keeping the batch's first offset.
type outage struct {
	poison   int64
	down     atomic.Bool
	tries    atomic.Int64
	failedAt atomic.Int64
}

func (o *outage) fail(msgs []pipeline.Message) error {
	if msgs[0].Partition == 0 && msgs[0].Offset <= o.poison && o.poison <= msgs[len(msgs)-1].Offset && o.down.Load() {
		o.tries.Add(1)
		o.failedAt.Store(msgs[0].Offset)
		return fmt.Errorf("stage dedupe: %w", errDown)
	}
	return nil
}

// A handler that fails on a transient error (a store outage) does not stop
// Run: the partition loop pauses and retries the same batch until the store
// is back, commits nothing past it meanwhile, and then goes on; every
// record is handled once, in order. The store is reported down, and each
// retry is counted. Without Config.Retry, Run returns the first error
// (TestHandlerErrorStopsRunAndIsReRead).
func TestTransientHandlerErrorRetriesTheBatch(t *testing.T) {
	const topic, group, perPart, batch = "retry", "retry-group", 60, 8
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, 1)
	produceN(t, b, topic, 1, perPart, 0)
	policy, reg := downPolicy(t)
	o := &outage{poison: 27}
	o.down.Store(true)
	rec := newRecorder("retry", batch)
	rec.before = o.fail
	c := newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: 2, retry: policy, reg: reg})
	run := start(c, rec.open(nil))
	eventually(t, "the batch to fail three times", func() bool { return o.tries.Load() >= 3 })
	select {
	case err := <-run.done:
		t.Fatalf("Run returned during the outage: %v", err)
	default:
	}
	if policy.Health.IsUp("store") {
		t.Error("the store is reported up during the outage")
	}
	first := o.failedAt.Load()
	if got := committed(t, b, group, topic); got[0] > first {
		t.Fatalf("committed %d past the failing batch at %d", got[0], first)
	}
	o.down.Store(false)
	eventually(t, "every record handled", func() bool { return rec.total.Load() >= perPart })
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rec.Check(t)
	wantRange(t, "retry", 0, rec.Offsets(0), 0, perPart)
	if got := committed(t, b, group, topic); got[0] != perPart {
		t.Errorf("committed %d, want %d", got[0], perPart)
	}
	if !policy.Health.IsUp("store") {
		t.Error("the store is still reported down after the batch went through")
	}
	if got := retryCount(t, reg); got != float64(o.tries.Load()) {
		t.Errorf("driftline_pipeline_batch_retries_total %v, want %d (one per failed try)", got, o.tries.Load())
	}
	if problems, err := testutil.CollectAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// retryCount sums driftline_pipeline_batch_retries_total on reg.
func retryCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "driftline_pipeline_batch_retries_total" {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// An error the policy does not call transient still stops Run.
func TestPermanentHandlerErrorStopsRunWithARetryPolicy(t *testing.T) {
	const topic, group = "permanent", "permanent-group"
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, 1)
	produceN(t, b, topic, 1, 20, 0)
	policy, reg := downPolicy(t)
	rec := newRecorder("permanent", 8)
	rec.before = func([]pipeline.Message) error { return errBoom }
	c := newConsumer(t, b, group, topic, consumerOpts{batch: 8, inFlight: 2, retry: policy, reg: reg})
	if err := start(c, rec.open(nil)).wait(t); !errors.Is(err, errBoom) {
		t.Fatalf("Run returned %v, want the handler's error", err)
	}
}

// In exactly-once mode a transient handler error aborts the round, which
// is read again once the store is back, instead of stopping Run; a
// read-committed reader sees every input's output once.
func TestExactlyOnceTransientHandlerErrorRetriesTheRound(t *testing.T) {
	const (
		in, out, dlq, group = "eos-retry-in", "eos-retry-out", "eos-retry-dlq", "eos-retry-group"
		partitions, perPart = 2, 120
	)
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, in, partitions)
	b.CreateTopic(t, out, partitions)
	b.CreateTopic(t, dlq, 1)
	produceN(t, b, in, partitions, perPart, 0)
	policy, reg := downPolicy(t)
	o := &outage{poison: 70}
	o.down.Store(true)
	pipe := newEOSPipe(t, out, dlq)
	pipe.after = o.fail
	c := newEOSConsumer(t, b, group, in, "eos-retry", consumerOpts{batch: 8, inFlight: 2, retry: policy, reg: reg})
	run := start(c, pipe.open(c))
	eventually(t, "the round to fail three times", func() bool { return o.tries.Load() >= 3 })
	select {
	case err := <-run.done:
		t.Fatalf("Run returned during the outage: %v", err)
	default:
	}
	if got := stableCommitted(t, b, group, in); got[0] > o.poison {
		t.Fatalf("partition 0 committed %d past the failing batch holding %d", got[0], o.poison)
	}
	o.down.Store(false)
	eventually(t, "every input committed", func() bool {
		got := stableCommitted(t, b, group, in)
		return got[0] == perPart && got[1] == perPart
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	pipe.Check(t)
	committedExactly(t, b, out, dlq, map[int32]int64{0: perPart, 1: perPart}, "%s", false)
	if _, aborted := c.Transactions(); aborted < 3 {
		t.Errorf("%d aborted rounds, want one per failed try (≥ 3)", aborted)
	}
}
