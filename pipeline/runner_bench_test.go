package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
)

// benchStage answers every row with a 200-byte prediction and rejects one
// row in a hundred, like a chain whose input is 1% malformed.
type benchStage struct{ pred []byte }

func (benchStage) Name() string { return "bench" }

func (s benchStage) Process(_ context.Context, b *pipeline.Batch) error {
	for i := range b.Len() {
		if i%100 == 99 {
			b.Reject(i, "bench", "bench.bad", "field x")
			continue
		}
		b.AppendOutput(i, pipeline.OutRecord{Topic: "predictions", Key: b.Messages[i].Key, Value: s.pred})
	}
	return nil
}

// deferNop defers a no-op per batch: the cost of Batch.Defer's machinery.
type deferNop struct{}

func (deferNop) Name() string { return "defer-nop" }

func (deferNop) Process(ctx context.Context, b *pipeline.Batch) error {
	return b.Defer(ctx, func(context.Context) error { return nil })
}

type nopSink struct{}

func (nopSink) Write(context.Context, []pipeline.OutRecord) error { return nil }

// BenchmarkRunner is the runner's own cost per event on batches of 512:
// outputs, DLQ records, accounting and the acknowledgement, behind a stage
// that does nothing but emit and a sink that writes nothing. With
// limits+propagate every record's size is checked against its topic's
// limit and each input's traceparent reaches its outputs. With deferred a
// second stage defers a no-op per batch (Batch.Defer): the mechanism's own
// cost, a goroutine and a wait per batch.
func BenchmarkRunner(b *testing.B) {
	for _, mode := range []string{"plain", "limits+propagate", "deferred"} {
		b.Run(mode, func(b *testing.B) {
			m, err := pipeline.NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			cfg := pipeline.RunnerConfig{Stages: []pipeline.Stage{benchStage{pred: make([]byte, 200)}}, Sink: nopSink{}, DLQTopic: "dlq", Metrics: m}
			msgs := make([]pipeline.Message, 512)
			for i := range msgs {
				msgs[i] = pipeline.Message{Topic: "events", Offset: int64(i), Key: fmt.Appendf(nil, "k%d", i), Value: make([]byte, 280)}
			}
			if mode == "deferred" {
				cfg.Stages = append(cfg.Stages, deferNop{})
			}
			if mode == "limits+propagate" {
				cfg.RecordLimit = func(string) int { return 1_048_588 }
				cfg.PropagateHeaders = []string{"traceparent", "tracestate"}
				for i := range msgs {
					msgs[i].Headers = []pipeline.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
				}
			}
			r, err := pipeline.NewRunner(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := r.Handle(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
		})
	}
}
