package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// outageSpec is the demo spec (every plane, the governance loop included)
// on broker and the Redis at redisAddr, with a short Redis timeout and the
// text edits (old, new) applied, and its topics created.
func outageSpec(t testing.TB, broker *kafkatest.Broker, redisAddr string, edits ...[2]string) *pipeline.Spec {
	t.Helper()
	text := strings.Replace(string(DemoSpec), "name: demo\n", "name: demo\nredis:\n  addr: \""+redisAddr+"\"\n  timeout: 300ms\n", 1)
	for _, e := range edits {
		if !strings.Contains(text, e[0]) {
			t.Fatalf("demo.yaml has no %q", e[0])
		}
		text = strings.Replace(text, e[0], e[1], 1)
	}
	spec, err := pipeline.ParseSpec("outage.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	spec.Kafka.Brokers = []string{broker.Addr}
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	for _, topic := range []string{spec.Topics.Input, spec.Topics.Predictions, spec.Topics.DLQ, spec.Topics.Labels, spec.Topics.Alerts,
		spec.Topics.Alerts + ".poison", spec.Topics.Audit, spec.Rollout.ShadowTopic} {
		broker.CreateTopic(t, topic, 2)
	}
	return spec
}

// waitFor polls cond every 20 ms for up to limit, and fails the test with
// what when it does not hold by then, or when Run returned.
func waitFor(t testing.TB, runErr <-chan error, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case err := <-runErr:
			t.Fatalf("Run returned while waiting for %s: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasProblem reports whether a's NotReady holds a line starting with prefix.
func hasProblem(a *App, prefix string) bool {
	for _, p := range a.NotReady() {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// TestRunWaitsOutRedisOutages starts a pipeline while Redis is down, then
// takes Redis away again mid-stream. Open does not fail and Run does not
// return: the App is not ready while Redis is away (NotReady names it),
// its loops pause, and it goes on by itself each time Redis is back; every
// event ends up with its output. Before issue 11, Open failed on the ping
// and a stage's Redis error stopped Run.
func TestRunWaitsOutRedisOutages(t *testing.T) {
	const events = 4000
	broker := kafkatest.StartKfake(t, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(t)
	spec := outageSpec(t, broker, mr.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	mr.Mini.Close() // down at start
	a, err := Open(ctx, spec, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open with Redis down: %v", err)
	}
	defer a.Close()
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(runCtx) }()
	waitFor(t, runErr, 5*time.Second, "not ready, waiting for redis at start", func() bool { return hasProblem(a, "starting") })
	time.Sleep(time.Second)
	if a.Ready() {
		t.Fatal("ready while Redis is down")
	}
	if err := mr.Mini.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, runErr, 20*time.Second, "ready once redis is up", a.Ready)

	prod, err := kafka.NewProducer(kafka.ProducerConfig{Client: broker.ClientConfig("feed")})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var stats feed.Stats
	load := feed.Config{Topic: spec.Topics.Input, LabelsTopic: spec.Topics.Labels, Events: events, Rate: 2000,
		MalformedRate: 0.01, DuplicateRate: 0.01, LabelDelay: 100 * time.Millisecond,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 3}}
	produced := make(chan error, 1)
	go func() { produced <- feed.Produce(ctx, prod, load, &stats) }()
	done := func() int64 { t := a.Totals(); return t.Out + t.DLQ + t.Duplicates }
	waitFor(t, runErr, 30*time.Second, "a quarter of the events", func() bool { return done() >= events/4 })

	// Down mid-run. Every command first fails as a loading Redis answers
	// (an outage to the classifier as well), so that no script runs when
	// Close drops the server: miniredis v2.40.0 answers an EVAL that races
	// with Close with "ERR Error compiling script … nil pointer
	// dereference" (it builds the script's redis.call on the server Close
	// just cleared), which no real Redis says and Run rightly stops on.
	mr.Mini.SetError("LOADING Redis is loading the dataset in memory")
	time.Sleep(200 * time.Millisecond)
	mr.Mini.Close()
	waitFor(t, runErr, 5*time.Second, "not ready, naming redis", func() bool { return hasProblem(a, "redis: ") })
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-runErr:
		t.Fatalf("Run returned during the outage: %v", err)
	default:
	}
	if err := mr.Mini.Restart(); err != nil {
		t.Fatal(err)
	}
	mr.Mini.SetError("")
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	waitFor(t, runErr, time.Minute, "every event processed", func() bool { return done() >= stats.Rows.Load() })
	waitFor(t, runErr, 10*time.Second, "ready after the outage", a.Ready)
	stop()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	res, err := feed.ReadBack(ctx, broker.ClientConfig("readback"), spec, &stats)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 {
		t.Errorf("lost %d events across two Redis outages", res.Lost)
	}
	t.Logf("%d rows: %d predictions (%d repeated), %d DLQ records; %d batches retried", stats.Rows.Load(), res.Predictions,
		res.DuplicatePredictions, res.DLQ, int64(retries(t, a)))
}

// retries is the App's driftline_pipeline_batch_retries_total.
func retries(t *testing.T, a *App) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "driftline_pipeline_batch_retries_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// A Redis that refuses the pipeline's credentials fails Open at once, with
// an error naming Redis and the refusal: waiting would not mend it.
func TestOpenFailsFastOnWrongRedisPassword(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	mr := redistest.StartMiniredis(t)
	mr.Mini.RequireAuth("the-right-one")
	spec := outageSpec(t, broker, mr.Addr)
	start := time.Now()
	a, err := Open(context.Background(), spec, Options{Log: slog.New(slog.DiscardHandler)})
	if err == nil {
		a.Close()
		t.Fatal("Open succeeded against a Redis that wants a password")
	}
	if !strings.Contains(err.Error(), "redis") || !strings.Contains(err.Error(), "NOAUTH") || time.Since(start) > 5*time.Second {
		t.Errorf("Open: %v after %s; want a prompt error naming redis and NOAUTH", err, time.Since(start))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open waited out a deadline: %v", err)
	}
}
