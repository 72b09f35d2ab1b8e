package app

import (
	"context"
	"fmt"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
)

// CreateTopics creates the spec's topics that do not exist yet, with
// partitions partitions each and the brokers' default replication factor,
// through the spec's kafka block, and waits until the brokers serve them.
// Existing topics are left as they are (a cluster that auto-creates topics
// needs none of this; production clusters usually do not).
func CreateTopics(ctx context.Context, spec *pipeline.Spec, partitions int32) error {
	cc, err := KafkaClient(spec, "driftline-topics")
	if err != nil {
		return err
	}
	adm, err := kafka.NewAdmin(cc)
	if err != nil {
		return err
	}
	defer adm.Close()
	for _, name := range Topics(spec) {
		if err := adm.EnsureTopic(ctx, name, partitions, false); err != nil {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	return nil
}
