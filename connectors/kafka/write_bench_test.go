package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// BenchmarkWriteAsync is the at-least-once produce path alone: one op is
// WriteAsync of a batch of 512 prediction-sized records (200 bytes, with
// a key id header) to kfake, until done. allocs/op shows what the client
// allocates per batch beyond franz-go's own.
//
//	go test -run '^$' -bench WriteAsync -benchmem ./connectors/kafka/
func BenchmarkWriteAsync(b *testing.B) {
	broker := kafkatest.StartKfake(b)
	const topic = "bench-write"
	broker.CreateTopic(b, topic, 1)
	c, err := kafka.New(kafka.Config{
		Client: kafka.ClientConfig{Brokers: []string{broker.Addr}, ClientID: "bench"}, Group: "bench-write", Topics: []string{"bench-write-in"},
		SessionTimeout: 6 * time.Second, BatchSize: 512, Linger: time.Millisecond, MaxInFlight: 4, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	hdrs := []pipeline.Header{{Key: pipeline.HeaderKeyID, Value: []byte("key-1")}}
	recs := make([]pipeline.OutRecord, 512)
	for i := range recs {
		recs[i] = pipeline.OutRecord{Topic: topic, Key: fmt.Appendf(nil, "e-%d", i), Value: make([]byte, 200), Headers: hdrs}
	}
	ctx := context.Background()
	if err := c.Write(ctx, recs); err != nil { // metadata, before timing
		b.Fatal(err)
	}
	errc := make(chan error, 1)
	done := func(err error) { errc <- err }
	b.ReportAllocs()
	for b.Loop() {
		c.WriteAsync(ctx, recs, done)
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
