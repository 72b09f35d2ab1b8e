//go:build integration

package kafka_test

import (
	"testing"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// TestIntegrationReplay runs the replay side's checks (Admin, Reader,
// ReadTopics, ReplayCommitter) on the package's shared real broker.
func TestIntegrationReplay(t *testing.T) {
	b := kafkatest.SharedKafka(t)
	t.Run("admin", func(t *testing.T) { testAdmin(t, b) })
	t.Run("reader", func(t *testing.T) { testReader(t, b) })
	t.Run("read topics", func(t *testing.T) { testReadTopics(t, b) })
	t.Run("committer", func(t *testing.T) { testReplayCommitter(t, b) })
}
