//go:build integration

package kafka_test

import (
	"fmt"
	"testing"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// The real-broker counterparts of the kfake tests: Apache Kafka in KRaft
// mode, started by testkit from the cached jars. The tests share one broker
// (kafkatest.SharedKafka, stopped by TestMain); each uses its own topics and
// group.

func TestIntegrationOrderBatchesLagAndCommit(t *testing.T) {
	testOrderAndCommit(t, kafkatest.SharedKafka(t))
}

func TestIntegrationHandlerErrorStopsRunAndIsReRead(t *testing.T) {
	testHandlerErrorRereads(t, kafkatest.SharedKafka(t))
}

func TestIntegrationExactlyOnceCommitsOutputsWithOffsets(t *testing.T) {
	testExactlyOnceCommitsTogether(t, kafkatest.SharedKafka(t))
}

func TestIntegrationExactlyOnceHandlerErrorAbortsRound(t *testing.T) {
	testExactlyOnceHandlerErrorAborts(t, kafkatest.SharedKafka(t))
}

func TestIntegrationExactlyOnceRestartResumesWithoutDuplicates(t *testing.T) {
	testExactlyOnceRestart(t, kafkatest.SharedKafka(t))
}

func BenchmarkIntegrationExactlyOnceVsAtLeastOnce(b *testing.B) {
	benchModes(b, kafkatest.StartKafka(b))
}

func TestIntegrationExactlyOnceBrokerAbortedTransactionIsReadAgain(t *testing.T) {
	for _, commitOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit_only=%v", commitOnly), func(t *testing.T) {
			testExactlyOnceBrokerAbortsTheTransaction(t, kafkatest.SharedKafka(t), commitOnly)
		})
	}
}
