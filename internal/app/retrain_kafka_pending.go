package app

import (
	"errors"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/pipeline"
)

// NewKafkaRetrainRows is a placeholder: the Kafka retrain row source moves
// here from cmd/driftline/retrain_kafka.go on the replay branch, which
// replaces this file.
func NewKafkaRetrainRows(*pipeline.Spec, kafka.ClientConfig, goredis.UniversalClient, int, int, *slog.Logger) (governance.RowSource, error) {
	return nil, errors.New("rollout.retrain.source kafka: not wired yet on this branch")
}
