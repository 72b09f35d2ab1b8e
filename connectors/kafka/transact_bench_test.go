package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// BenchmarkExactlyOnceVsAtLeastOnce measures, in one run on kfake, the
// connector's events/s from the input topic to committed outputs in both
// modes, with a pipeline.Runner whose one stage writes an output per row
// (1 in 7 to the DLQ), and reports their ratio:
//
//	go test -run '^$' -bench ExactlyOnceVsAtLeastOnce -benchtime 3x ./connectors/kafka/
//
// The integration build runs the same on a real broker
// (BenchmarkIntegrationExactlyOnceVsAtLeastOnce).
func BenchmarkExactlyOnceVsAtLeastOnce(b *testing.B) {
	benchModes(b, kafkatest.StartKfake(b))
}

const (
	benchEvents     = 100_000
	benchPartitions = 4
)

func benchModes(b *testing.B, broker *kafkatest.Broker) {
	const in, out, dlq = "bench-in", "bench-out", "bench-dlq"
	broker.CreateTopic(b, in, benchPartitions)
	broker.CreateTopic(b, out, benchPartitions)
	broker.CreateTopic(b, dlq, 1)
	// About 300-byte values, like the seeded event streams.
	cl := broker.Client(b, kgo.ProducerLinger(5*time.Millisecond))
	pad := strings.Repeat("x", 280)
	ctx := context.Background()
	for i := 0; i < benchEvents; i += 10_000 {
		recs := make([]*kgo.Record, 0, 10_000)
		for j := i; j < i+10_000; j++ {
			recs = append(recs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "k%d", j), Value: fmt.Appendf(nil, `{"id":%d,"pad":%q}`, j, pad)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var alo, eos time.Duration
	for i := range b.N {
		alo += benchRun(b, broker, in, out, dlq, fmt.Sprintf("alo-%d", i), "")
		eos += benchRun(b, broker, in, out, dlq, fmt.Sprintf("eos-%d", i), fmt.Sprintf("bench-eos-%d", i))
	}
	b.StopTimer()
	a := float64(benchEvents) * float64(b.N) / alo.Seconds()
	e := float64(benchEvents) * float64(b.N) / eos.Seconds()
	b.ReportMetric(a, "at-least-once-events/s")
	b.ReportMetric(e, "exactly-once-events/s")
	b.ReportMetric(e/a, "ratio")
}

// benchRun consumes the input in a fresh group until every row's output is
// acknowledged (in exactly-once mode: written in a round), then stops,
// which commits; it returns the time until Run returned.
func benchRun(b *testing.B, broker *kafkatest.Broker, in, out, dlq, group, txnID string) time.Duration {
	reg := prometheus.NewRegistry()
	metrics, err := pipeline.NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	c, err := kafka.New(kafka.Config{
		Client: kafka.ClientConfig{Brokers: []string{broker.Addr}, ClientID: "bench"}, Group: group, Topics: []string{in},
		SessionTimeout: 6 * time.Second, BatchSize: 512, Linger: 5 * time.Millisecond, MaxInFlight: 4,
		Registerer: reg, TransactionalID: txnID,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	open := func(string, int32) (pipeline.PartitionHandler, error) {
		return pipeline.NewRunner(pipeline.RunnerConfig{Stages: []pipeline.Stage{echoStage{out: out}}, Sink: c, DLQTopic: dlq, Metrics: metrics})
	}
	began := time.Now()
	run := start(c, open)
	for {
		tot := metrics.Totals()
		if tot.Out+tot.DLQ >= benchEvents {
			break
		}
		select {
		case err := <-run.done:
			b.Fatalf("Run stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	run.cancel()
	if err := <-run.done; err != nil {
		b.Fatal(err)
	}
	return time.Since(began)
}
