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
