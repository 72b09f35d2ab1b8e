package feed

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/streams"
)

// TestProduceHoldsItsBacklog: a producer whose consumer takes nothing
// stops once it is MaxBacklog rows ahead (give or take a check's worth of
// rows), however fast it may write, and goes on as the consumer takes
// rows.
func TestProduceHoldsItsBacklog(t *testing.T) {
	const maxBacklog = 500
	broker := kafkatest.StartKfake(t)
	broker.CreateTopic(t, "events", 1)
	broker.CreateTopic(t, "labels", 1)
	cl, err := kafka.NewProducer(kafka.ProducerConfig{Client: broker.ClientConfig("feed")})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var taken atomic.Int64
	cfg := Config{Topic: "events", LabelsTopic: "labels", Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 1},
		Taken: func() (int64, int64) { return taken.Load(), taken.Load() }, MaxBacklog: maxBacklog}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stats Stats
	done := make(chan error, 1)
	go func() { done <- Produce(ctx, cl, cfg, &stats) }()
	settle := func(want int64) int64 {
		t.Helper()
		// Written rows are acknowledged within moments; the producer is
		// stopped when their count holds still.
		last := int64(-1)
		for n := stats.Rows.Load(); n != last; n = stats.Rows.Load() {
			last = n
			time.Sleep(300 * time.Millisecond)
		}
		if last < want-backlogEvery || last > want+backlogEvery {
			t.Fatalf("%d rows written with %d taken, want %d ± %d", last, taken.Load(), want, backlogEvery)
		}
		return last
	}
	settle(maxBacklog)
	taken.Store(1000)
	settle(1000 + maxBacklog)
	cancel() // a record in flight then may fail as canceled
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
