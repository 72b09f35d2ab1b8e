//go:build integration

package app

import (
	"testing"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// BenchmarkLearnerStateWriterVsInlineReal is benchmarkWriterVsInline on a
// real Apache Kafka broker and a real redis-server: BENCHMARKS.md's
// figures.
//
//	go test -tags integration -run '^$' -bench WriterVsInlineReal -benchtime 200x ./internal/app/
func BenchmarkLearnerStateWriterVsInlineReal(b *testing.B) {
	benchmarkWriterVsInline(b, kafkatest.StartKafka(b), redistest.StartRedis(b))
}
