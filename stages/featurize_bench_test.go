package stages

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// BenchmarkEntityAggregatesRunner is decode → validate → featurize with
// entity aggregates (10,000 users, batches of 1,024 events) run by a
// pipeline.Runner over a sink that acknowledges at once, as a partition
// loop runs them: one op is one batch through HandleAsync. With the
// aggregates written behind (Batch.Defer), a batch's Redis write is in
// flight while the loop decodes and featurizes the next batch; written
// synchronously (before issue 15's item 2), the loop waits for it.
//   - cache=on: the default local cache; every batch writes its entities,
//     none reads them (steady state).
//   - cache=off: entity.local_cache 0; every batch also reads its
//     entities from Redis (or, written behind, from memory while their
//     write is in flight).
//
// Against miniredis (in process: its work is on this process's CPU) and a
// real redis-server on loopback.
func BenchmarkEntityAggregatesRunner(b *testing.B) {
	servers := []struct {
		name  string
		start func(testing.TB) *redistest.Redis
	}{{"redis=miniredis", redistest.StartMiniredis}, {"redis=server", redistest.StartRedis}}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			for _, cache := range []string{"on", "off"} {
				b.Run("cache="+cache, func(b *testing.B) {
					spec := testSpec(b, true)
					spec.Schema.MaxStringBytes = pipeline.DefaultMaxStringBytes
					if cache == "off" {
						off := 0
						spec.Stages.Featurize.Entity.LocalCache = &off
					}
					rdb := srv.start(b).Client(b)
					fz, err := NewFeaturize(spec, rdb)
					must(b, err)
					m, err := pipeline.NewMetrics(prometheus.NewRegistry())
					must(b, err)
					r, err := pipeline.NewRunner(pipeline.RunnerConfig{
						Stages: []pipeline.Stage{NewDecode(spec), NewValidate(spec), fz},
						Sink:   benchAsyncSink{}, DLQTopic: "dlq", Metrics: m,
					})
					must(b, err)
					defer r.Close()
					msgs := benchMessages(benchRows(b))
					acks := make(chan error, 1024)
					ack := func(err error) { acks <- err }
					ctx := context.Background()
					must(b, r.Handle(ctx, msgs)) // the first batch reads every entity
					n := 0
					perEvent(b, func() {
						must(b, r.HandleAsync(ctx, msgs, ack))
						n++
						for len(acks) > 0 {
							must(b, <-acks)
							n--
						}
					})
					for ; n > 0; n-- {
						must(b, <-acks)
					}
				})
			}
		})
	}
}

// benchAsyncSink acknowledges every write at once, from another goroutine,
// as a producer's callback would.
type benchAsyncSink struct{}

func (benchAsyncSink) Write(context.Context, []pipeline.OutRecord) error { return nil }

func (benchAsyncSink) WriteAsync(_ context.Context, _ []pipeline.OutRecord, done func(error)) {
	go done(nil)
}
