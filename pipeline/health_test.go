package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
)

var errUnavailable = errors.New("store unavailable")

// classifyTest calls errUnavailable transient, as a store's own
// classifier would.
func classifyTest(err error) (string, string, bool) {
	if errors.Is(err, errUnavailable) {
		return "store", "unavailable", true
	}
	return "", "", false
}

func newHealth(t *testing.T) (*pipeline.Health, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := pipeline.NewHealth(reg, slog.New(slog.DiscardHandler), "store")
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

// Health follows a dependency down and up: the gauge, the problems that
// /readyz shows, and the channel a waiting loop wakes on.
func TestHealthDownAndUp(t *testing.T) {
	h, reg := newHealth(t)
	if p := h.Problems(); len(p) != 0 || !h.IsUp("store") {
		t.Fatalf("a new health has problems %v", p)
	}
	select {
	case <-h.UpC("store"):
	default:
		t.Fatal("UpC of a dependency that is up is not closed")
	}
	h.Down("store", "connection refused")
	h.Down("store", "timeout") // the outage's first reason stays
	if p := h.Problems(); len(p) != 1 || !strings.HasPrefix(p[0], "store: connection refused (for ") {
		t.Fatalf("problems %v, want the store down for its first reason", p)
	}
	up := h.UpC("store")
	select {
	case <-up:
		t.Fatal("UpC closed while the dependency is down")
	default:
	}
	if got := metricValue(t, reg, "driftline_pipeline_dependency_up"); got != 0 {
		t.Errorf("dependency_up %v while down, want 0", got)
	}
	h.Up("store")
	select {
	case <-up:
	case <-time.After(time.Second):
		t.Fatal("UpC not closed once the dependency is up")
	}
	if p := h.Problems(); len(p) != 0 || !h.IsUp("store") {
		t.Fatalf("problems %v after Up", p)
	}
	if got := metricValue(t, reg, "driftline_pipeline_dependency_up"); got != 1 {
		t.Errorf("dependency_up %v once up, want 1", got)
	}
	problems, err := testutil.CollectAndLint(reg)
	if err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if _, err := pipeline.NewHealth(reg, nil); err == nil {
		t.Error("registering the health metrics twice on one registry succeeded")
	}
}

// metricValue sums the samples of the gauge or counter name on reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// Retries retry a transient error with a backoff that doubles up to its
// cap, wake early when the dependency comes back, count each retry, and
// give up at once on any other error or when stopped.
func TestRetriesBackoffAndWake(t *testing.T) {
	h, reg := newHealth(t)
	p := &pipeline.RetryPolicy{Classify: classifyTest, Health: h, MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	r := pipeline.Retries{Policy: p}
	ctx := context.Background()
	var waits []time.Duration
	for range 4 {
		start := time.Now()
		if !r.Failed(ctx, nil, errUnavailable) {
			t.Fatal("a transient error was not retried")
		}
		waits = append(waits, time.Since(start))
	}
	for i, want := range []time.Duration{20, 40, 80, 80} {
		if w := waits[i]; w < want*time.Millisecond || w > want*time.Millisecond+time.Second {
			t.Errorf("wait %d: %s, want about %dms (doubling to the cap)", i+1, w, want)
		}
	}
	if r.Tries() != 4 || h.IsUp("store") {
		t.Fatalf("tries %d, store up %v; want 4 and down", r.Tries(), h.IsUp("store"))
	}
	r.Succeeded()
	if r.Tries() != 0 || !h.IsUp("store") {
		t.Fatalf("after success: tries %d, store up %v; want 0 and up", r.Tries(), h.IsUp("store"))
	}
	retries := metricValue(t, reg, "driftline_pipeline_batch_retries_total")
	if retries != 4 {
		t.Errorf("batch_retries_total %v, want 4", retries)
	}

	// A long backoff ends early (after the minimum) when the store is up.
	slow := &pipeline.RetryPolicy{Classify: classifyTest, Health: h, MinBackoff: 10 * time.Millisecond, MaxBackoff: time.Minute}
	r = pipeline.Retries{Policy: slow}
	for range 6 {
		r.Failed(ctx, nil, errUnavailable) // 10+20+…+320ms: the next backoff is 640ms
	}
	go func() { time.Sleep(50 * time.Millisecond); h.Up("store") }()
	start := time.Now()
	if !r.Failed(ctx, nil, errUnavailable) {
		t.Fatal("not retried")
	}
	if w := time.Since(start); w >= 640*time.Millisecond {
		t.Errorf("waited %s, the whole backoff; the store came back after 50ms", w)
	}

	// Other errors, a stop and a nil policy do not retry.
	if r.Failed(ctx, nil, errors.New("bad request")) {
		t.Error("a permanent error was retried")
	}
	stop := make(chan struct{})
	close(stop)
	if r.Failed(ctx, stop, errUnavailable) {
		t.Error("retried after stop")
	}
	if (&pipeline.Retries{}).Failed(ctx, nil, errUnavailable) {
		t.Error("retried without a policy")
	}
	if err := (&pipeline.RetryPolicy{Health: h}).Validate(); err == nil {
		t.Error("a policy without a classifier validated")
	}
}

// A batch handed in again after a failed stage is counted in once.
func TestRunnerRetriedBatchCountsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := pipeline.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyStage{failures: 2}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: []pipeline.Stage{flaky, screen{}}, Sink: &recordingSink{}, DLQTopic: "dlq", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	batch := msgs("events", 0, 0, "ok", "bad", "dup")
	for try := 1; ; try++ {
		err := r.Handle(context.Background(), batch)
		if err == nil {
			break
		}
		if !errors.Is(err, errUnavailable) || try > 3 {
			t.Fatalf("try %d: %v", try, err)
		}
	}
	if got := m.Totals(); got != (pipeline.Totals{In: 3, Out: 1, Duplicates: 1, DLQ: 1}) {
		t.Errorf("totals %+v after two failed tries and a success, want the batch counted once", got)
	}
}

// flakyStage fails its first failures calls with errUnavailable.
type flakyStage struct{ failures int }

func (*flakyStage) Name() string { return "flaky" }

func (f *flakyStage) Process(context.Context, *pipeline.Batch) error {
	if f.failures > 0 {
		f.failures--
		return errUnavailable
	}
	return nil
}
