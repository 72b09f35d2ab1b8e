//go:build integration

package watermillkafka

import (
	"os"
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/driftline/driftline/testkit/kafkatest"
)

func TestMain(m *testing.M) { os.Exit(kafkatest.Main(m)) }

// TestConformanceRealKafkaSASLSSL runs watermill's conformance suite against a real
// Apache Kafka broker whose only client listener is SASL_SSL (TLS with a CA made for
// the test, SCRAM-SHA-512), with the same features and full message counts as on
// kfake. Every publisher, subscriber and admin client reaches it through a
// kafka.ClientConfig.
func TestConformanceRealKafkaSASLSSL(t *testing.T) {
	b := kafkatest.SharedSASLSSL(t)
	plain, withGroup := conformanceConstructors(b, "conformance")
	tests.TestPubSub(t, conformanceFeatures, plain, withGroup)
}
