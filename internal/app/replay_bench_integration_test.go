//go:build integration

package app

import (
	"testing"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// BenchmarkReplayRealKafka is BenchmarkReplayKafka on a real Apache Kafka
// broker and a real redis-server.
func BenchmarkReplayRealKafka(b *testing.B) {
	benchReplay(b, kafkatest.StartKafka(b), redistest.StartRedis(b))
}
