//go:build integration

package app

import (
	"context"
	"testing"
	"time"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationRetrainKafkaOnRealKafkaAndRedis is the kafka retrain
// source's core check on a real broker (its time index maps the range to
// offsets) and a real redis-server: the rows are exactly the labelled
// events of the range, with the generator's labels and the live stages'
// features, and the lineage of the offsets read; a since narrows them; the
// warm-up gives the rows the live entity features; a
// retrain job on the source registers a good candidate and leaves the live
// dedupe and entity state as it was.
func TestIntegrationRetrainKafkaOnRealKafkaAndRedis(t *testing.T) {
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("rows", func(t *testing.T) {
		checkRetrainKafkaRows(t, ctx, newRetrainKafkaEnv(t, broker, rds, false))
	})
	t.Run("warm-up", func(t *testing.T) {
		checkRetrainKafkaWarmup(t, ctx, newRetrainKafkaEnvNamed(t, broker, rds, true, "warmup"))
	})
	t.Run("job", func(t *testing.T) {
		// A Redis database and topics of its own: the spec's key prefix and
		// topic names are the rows subtest's.
		env := newRetrainKafkaEnvNamed(t, broker, rds, true, "job")
		retrainKafkaJobCheck(t, ctx, env)
	})
}
