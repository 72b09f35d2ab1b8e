//go:build integration

package watermillkafka

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// TestConformanceRealKafka runs watermill's conformance suite against a real Apache Kafka
// broker, with the same features and full message counts as on kfake (about 25 s on two
// cores, broker start included).
func TestConformanceRealKafka(t *testing.T) {
	b := kafkatest.StartKafka(t)
	plain, withGroup := conformanceConstructors(b.Addr, "conformance")
	tests.TestPubSub(t, conformanceFeatures, plain, withGroup)
}
