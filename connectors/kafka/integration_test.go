//go:build integration

package kafka_test

import (
	"testing"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// The real-broker counterparts of the kfake tests: Apache Kafka in KRaft
// mode, started by testkit from the cached jars.

func TestIntegrationOrderBatchesLagAndCommit(t *testing.T) {
	testOrderAndCommit(t, kafkatest.StartKafka(t))
}

func TestIntegrationHandlerErrorStopsRunAndIsReRead(t *testing.T) {
	testHandlerErrorRereads(t, kafkatest.StartKafka(t))
}

func TestIntegrationExactlyOnceCommitsOutputsWithOffsets(t *testing.T) {
	testExactlyOnceCommitsTogether(t, kafkatest.StartKafka(t))
}

func TestIntegrationExactlyOnceHandlerErrorAbortsRound(t *testing.T) {
	testExactlyOnceHandlerErrorAborts(t, kafkatest.StartKafka(t))
}

func TestIntegrationExactlyOnceRestartResumesWithoutDuplicates(t *testing.T) {
	testExactlyOnceRestart(t, kafkatest.StartKafka(t))
}

func BenchmarkIntegrationExactlyOnceVsAtLeastOnce(b *testing.B) {
	benchModes(b, kafkatest.StartKafka(b))
}
