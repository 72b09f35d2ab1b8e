package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
)

// deferStage emits one prediction per row and defers, per batch, a call
// of work with the batch's first offset (what a write-behind stage does
// with its Redis write).
type deferStage struct {
	work func(ctx context.Context, first int64) error
	fail atomic.Bool // fail the stage after deferring, once set
}

func (*deferStage) Name() string { return "defer" }

func (s *deferStage) Process(ctx context.Context, b *pipeline.Batch) error {
	for i := range b.Len() {
		b.AppendOutput(i, pipeline.OutRecord{Topic: "predictions", Value: b.Messages[i].Value})
	}
	first := b.Messages[0].Offset
	if err := b.Defer(ctx, func(ctx context.Context) error { return s.work(ctx, first) }); err != nil {
		return err
	}
	if s.fail.Load() {
		return errors.New("a later stage failed")
	}
	return nil
}

// asyncSink acknowledges every write at once, from another goroutine.
type asyncSink struct{ recordingSink }

func (s *asyncSink) WriteAsync(ctx context.Context, recs []pipeline.OutRecord, done func(error)) {
	err := s.Write(ctx, recs)
	go done(err)
}

// ackLog records the acks a runner makes, in order.
type ackLog struct {
	mu   sync.Mutex
	acks []int64 // the batch's first offset; -1-offset for a failed ack
	errs []error
	c    chan struct{}
}

func newAckLog() *ackLog { return &ackLog{c: make(chan struct{}, 100)} }

func (l *ackLog) ack(first int64) func(error) {
	return func(err error) {
		l.mu.Lock()
		if err != nil {
			first = -1 - first
		}
		l.acks = append(l.acks, first)
		l.errs = append(l.errs, err)
		l.mu.Unlock()
		l.c <- struct{}{}
	}
}

func (l *ackLog) snapshot() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.acks...)
}

func (l *ackLog) wait(t *testing.T, n int) []int64 {
	t.Helper()
	for range n {
		select {
		case <-l.c:
		case <-time.After(10 * time.Second):
			t.Fatalf("acks %v: waited 10 s for more", l.snapshot())
		}
	}
	return l.snapshot()
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The partition loop goes on with the next batch while a batch's deferred
// work is in flight; deferred work runs in batch order, one batch's after
// the previous one's; each batch is acknowledged, in order, only after its
// deferred work returned.
func TestRunnerDeferredWorkOverlapsAndGatesTheAck(t *testing.T) {
	gates := map[int64]chan struct{}{0: make(chan struct{}), 2: make(chan struct{}), 4: make(chan struct{})}
	var mu sync.Mutex
	var started, finished []int64
	st := &deferStage{work: func(_ context.Context, first int64) error {
		mu.Lock()
		started = append(started, first)
		mu.Unlock()
		<-gates[first]
		mu.Lock()
		finished = append(finished, first)
		mu.Unlock()
		return nil
	}}
	sink := &asyncSink{}
	r, _ := newRunner(t, pipeline.RunnerConfig{Stages: []pipeline.Stage{st}, Sink: sink, MaxPendingBatches: 3})
	log := newAckLog()
	ctx := context.Background()
	for _, first := range []int64{0, 2, 4} {
		// Returns while the earlier batches' deferred work is blocked.
		if err := r.HandleAsync(ctx, msgs("events", 0, first, "a", "b"), log.ack(first)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	if !equalInts(started, []int64{0}) {
		t.Errorf("deferred work started %v while batch 0's was in flight, want [0]", started)
	}
	mu.Unlock()
	if got := log.snapshot(); len(got) != 0 {
		t.Fatalf("acks %v before any deferred work finished", got)
	}
	if n := len(sink.byTopic("predictions")); n != 6 {
		t.Fatalf("%d predictions produced, want all 6 while the deferred work waits", n)
	}
	close(gates[2]) // batch 2's work may not finish before batch 0's
	time.Sleep(50 * time.Millisecond)
	if got := log.snapshot(); len(got) != 0 {
		t.Fatalf("acks %v while batch 0's deferred work was in flight", got)
	}
	close(gates[0])
	if got := log.wait(t, 2); !equalInts(got, []int64{0, 2}) {
		t.Fatalf("acks %v, want [0 2]", got)
	}
	close(gates[4])
	if got := log.wait(t, 1); !equalInts(got, []int64{0, 2, 4}) {
		t.Fatalf("acks %v, want [0 2 4]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !equalInts(finished, []int64{0, 2, 4}) {
		t.Fatalf("deferred work finished in order %v, want [0 2 4]", finished)
	}
}

var errDepDown = errors.New("dep: connection refused")

func retryPolicy(t *testing.T) (*pipeline.RetryPolicy, *pipeline.Health) {
	t.Helper()
	h, err := pipeline.NewHealth(prometheus.NewRegistry(), nil, "dep")
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline.RetryPolicy{
		Classify: func(err error) (string, string, bool) {
			return "dep", "connection refused", errors.Is(err, errDepDown)
		},
		Health: h, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}, h
}

// A transient failure of deferred work is retried under RunnerConfig.Retry:
// the dependency is down (not ready) meanwhile, no batch is acknowledged,
// and once the work succeeds the batches are acknowledged in order.
func TestRunnerDeferredWorkRetriesTransientFailures(t *testing.T) {
	policy, health := retryPolicy(t)
	var down atomic.Bool
	down.Store(true)
	var calls atomic.Int64
	st := &deferStage{work: func(_ context.Context, first int64) error {
		calls.Add(1)
		if down.Load() {
			return errDepDown
		}
		return nil
	}}
	r, _ := newRunner(t, pipeline.RunnerConfig{Stages: []pipeline.Stage{st}, Sink: &asyncSink{}, Retry: policy})
	log := newAckLog()
	ctx := context.Background()
	for _, first := range []int64{0, 2} {
		if err := r.HandleAsync(ctx, msgs("events", 0, first, "a", "b"), log.ack(first)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if calls.Load() < 5 {
		t.Fatalf("deferred work tried %d times in 10 s, want it retried", calls.Load())
	}
	if health.IsUp("dep") {
		t.Fatal("the dependency is up while deferred work fails on it")
	}
	if got := log.snapshot(); len(got) != 0 {
		t.Fatalf("acks %v while the deferred work fails", got)
	}
	down.Store(false)
	if got := log.wait(t, 2); !equalInts(got, []int64{0, 2}) {
		t.Fatalf("acks %v, want [0 2] once the dependency is back", got)
	}
	if !health.IsUp("dep") {
		t.Fatal("the dependency is still down after the deferred work succeeded")
	}
}

// Closing the runner stops deferred work from retrying: the batch is
// acknowledged with the error (never as a success), and so is every
// later one.
func TestRunnerCloseStopsDeferredRetries(t *testing.T) {
	policy, _ := retryPolicy(t)
	st := &deferStage{work: func(context.Context, int64) error { return errDepDown }}
	reg := prometheus.NewRegistry()
	m, err := pipeline.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: []pipeline.Stage{st}, Sink: &asyncSink{}, DLQTopic: "dlq", Metrics: m, Retry: policy})
	if err != nil {
		t.Fatal(err)
	}
	log := newAckLog()
	for _, first := range []int64{0, 2} {
		if err := r.HandleAsync(context.Background(), msgs("events", 0, first, "a", "b"), log.ack(first)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while deferred work retried")
	}
	if got := log.snapshot(); !equalInts(got, []int64{-1, -3}) {
		t.Fatalf("acks %v, want both failed ([-1 -3])", got)
	}
	if !errors.Is(log.errs[0], errDepDown) {
		t.Fatalf("ack error %v, want the deferred work's", log.errs[0])
	}
}

// Without a retry policy, or for an error it does not call transient,
// failed deferred work fails its batch's ack and every later one; a later
// batch's deferred work does not run.
func TestRunnerDeferredFailureFailsLaterAcks(t *testing.T) {
	policy, _ := retryPolicy(t)
	var ran []int64
	var mu sync.Mutex
	st := &deferStage{work: func(_ context.Context, first int64) error {
		mu.Lock()
		ran = append(ran, first)
		mu.Unlock()
		if first == 2 {
			return errors.New("wrong type")
		}
		return nil
	}}
	r, _ := newRunner(t, pipeline.RunnerConfig{Stages: []pipeline.Stage{st}, Sink: &asyncSink{}, Retry: policy})
	log := newAckLog()
	for _, first := range []int64{0, 2, 4} {
		if err := r.HandleAsync(context.Background(), msgs("events", 0, first, "a", "b"), log.ack(first)); err != nil {
			t.Fatal(err)
		}
	}
	if got := log.wait(t, 3); !equalInts(got, []int64{0, -3, -5}) {
		t.Fatalf("acks %v, want [0 -3 -5]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !equalInts(ran, []int64{0, 2}) {
		t.Fatalf("deferred work ran for %v, want [0 2] (none after a failure)", ran)
	}
}

// A batch that fails in a stage after deferring work drops that work: the
// batch is processed again from its messages, and only that try's work
// runs. Handle (the synchronous path, exactly-once's) returns only after
// the deferred work is done.
func TestRunnerStageFailureDropsDeferredWork(t *testing.T) {
	var ran []int64
	var mu sync.Mutex
	st := &deferStage{work: func(_ context.Context, first int64) error {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		ran = append(ran, first)
		mu.Unlock()
		return nil
	}}
	r, _ := newRunner(t, pipeline.RunnerConfig{Stages: []pipeline.Stage{st}, Sink: &asyncSink{}})
	st.fail.Store(true)
	if err := r.Handle(context.Background(), msgs("events", 0, 0, "a")); err == nil {
		t.Fatal("Handle succeeded with a failing stage")
	}
	st.fail.Store(false)
	if err := r.Handle(context.Background(), msgs("events", 0, 1, "a")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !equalInts(ran, []int64{1}) {
		t.Fatalf("deferred work ran for %v when Handle returned, want [1]", ran)
	}
}

// A batch not run by a Runner runs its deferred work at once.
func TestBatchDeferRunsAtOnceOutsideARunner(t *testing.T) {
	var b pipeline.Batch
	b.Reset(msgs("events", 0, 0, "a"))
	ran := false
	want := errors.New("store down")
	err := b.Defer(context.Background(), func(context.Context) error { ran = true; return want })
	if !ran || !errors.Is(err, want) {
		t.Fatalf("Defer outside a runner: ran %v, err %v; want it run at once, its error returned", ran, err)
	}
}
