//go:build integration

package app

import (
	"os"
	"testing"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationLakeAfterKill is TestLakeAfterKill on a real Kafka broker
// and a real redis-server: a pipeline with a lake is SIGKILLed mid-stream
// and the stream finished by another; the lake then holds every predicted
// event exactly once.
func TestIntegrationLakeAfterKill(t *testing.T) {
	if env := os.Getenv("DRIFTLINE_LAKE_CHILD"); env != "" {
		runLakeChild(t, env)
		return
	}
	broker, rds := kafkatest.StartKafka(t), redistest.StartRedis(t)
	for _, at := range []killAt{killAfterLakeCommit, killAfterOffsetCommit} {
		t.Run(string(at), func(t *testing.T) { checkLakeAfterKill(t, broker, rds.Addr, "TestIntegrationLakeAfterKill", at) })
	}
}

// TestIntegrationLakeLabelsAfterKill is TestLakeLabelsAfterKill on a real
// Kafka broker and a real redis-server: the labels table holds every label
// whose label-plane offset is committed (its event's too) at the kill, and
// no label twice after the restart.
func TestIntegrationLakeLabelsAfterKill(t *testing.T) {
	if env := os.Getenv("DRIFTLINE_LAKE_CHILD"); env != "" {
		runLakeChild(t, env)
		return
	}
	checkLakeLabelsAfterKill(t, kafkatest.StartKafka(t), redistest.StartRedis(t).Addr, "TestIntegrationLakeLabelsAfterKill")
}
