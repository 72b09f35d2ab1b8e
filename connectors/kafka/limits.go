package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kadm"
)

// DefaultMaxMessageBytes is Kafka's default record batch limit: a topic's
// max.message.bytes falls back to the broker's message.max.bytes, whose
// default this is (1 MiB plus 12 bytes of log overhead).
const DefaultMaxMessageBytes = 1_048_588

// unlearnedBatchBytes is franz-go's default produce batch bound, which a
// topic whose limit was not learned keeps.
const unlearnedBatchBytes = 1_000_012

// recordLimits are the record limits of the topics a client writes, read
// from each topic's max.message.bytes. It is safe for concurrent use; the
// zero value has learned nothing.
type recordLimits struct {
	m atomic.Pointer[map[string]int]
}

// learn reads the max.message.bytes of each topic, the largest record
// batch the brokers take for it, and makes it the topic's limit. A topic
// whose config cannot be read (it does not exist yet and will be created
// on first use, or the principal may not describe it) takes the brokers'
// message.max.bytes instead, and failing that DefaultMaxMessageBytes;
// each such fallback is logged once, here. It returns the limits it set.
func (l *recordLimits) learn(ctx context.Context, adm *kadm.Client, log *slog.Logger, topics ...string) map[string]int {
	limits := make(map[string]int, len(topics))
	var missing []string
	configs, describeErr := adm.DescribeTopicConfigs(ctx, topics...)
	err := describeErr
	for _, t := range topics {
		rc, rerr := configs.On(t, nil)
		if rerr == nil {
			rerr = rc.Err
		}
		if rerr == nil && describeErr == nil {
			if v, ok := configValue(rc.Configs, "max.message.bytes"); ok {
				limits[t] = v
				continue
			}
			rerr = errors.New("no max.message.bytes in the topic's config")
		}
		missing = append(missing, t)
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("topic %s: %w", t, rerr))
		}
	}
	if len(missing) > 0 {
		fallback, source := DefaultMaxMessageBytes, "Kafka's default"
		if v, berr := brokerMaxMessageBytes(ctx, adm); berr == nil {
			fallback, source = v, "the broker's message.max.bytes"
		} else {
			err = errors.Join(err, berr)
		}
		for _, t := range missing {
			limits[t] = fallback
		}
		log.Warn("kafka: could not read max.message.bytes of some output topics; their records are kept within "+source,
			"topics", missing, "limit_bytes", fallback, "err", err)
	}
	merged := make(map[string]int, len(limits))
	if old := l.m.Load(); old != nil {
		for t, v := range *old {
			merged[t] = v
		}
	}
	for t, v := range limits {
		merged[t] = v
	}
	l.m.Store(&merged)
	return limits
}

// get is the limit learn set for topic, or franz-go's default produce
// batch bound (1,000,012 bytes) for a topic it was not given.
func (l *recordLimits) get(topic string) int {
	if m := l.m.Load(); m != nil {
		if v, ok := (*m)[topic]; ok {
			return v
		}
	}
	return unlearnedBatchBytes
}

// batchMaxBytes is franz-go's per-topic batch bound
// (kgo.ProducerBatchMaxBytesFn): the learned limit, within the range
// franz-go accepts.
func (l *recordLimits) batchMaxBytes(topic string) int32 {
	return int32(min(max(l.get(topic), 512), 1<<30))
}

// LearnRecordLimits reads the max.message.bytes of each topic and makes
// it the topic's limit (see recordLimits.learn): MaxRecordBytes returns
// it, and this client's produce batches to the topic stay within it. Call
// it before the first produce to the topics: franz-go fixes a partition's
// batch bound when it first sees the partition. It returns the limits it
// set.
func (c *Client) LearnRecordLimits(ctx context.Context, topics ...string) map[string]int {
	return c.limits.learn(ctx, kadm.NewClient(c.cl), c.log, topics...)
}

// MaxRecordBytes is the limit of topic's records that LearnRecordLimits
// set, or franz-go's default produce batch bound (1,000,012 bytes) for a
// topic it was not given. It is a pipeline.RunnerConfig.RecordLimit.
func (c *Client) MaxRecordBytes(topic string) int { return c.limits.get(topic) }

// brokerMaxMessageBytes reads message.max.bytes of one broker.
func brokerMaxMessageBytes(ctx context.Context, adm *kadm.Client) (int, error) {
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return 0, fmt.Errorf("list brokers: %w", err)
	}
	if len(brokers) == 0 {
		return 0, errors.New("no brokers")
	}
	configs, err := adm.DescribeBrokerConfigs(ctx, brokers[0].NodeID)
	if err != nil {
		return 0, fmt.Errorf("describe broker %d: %w", brokers[0].NodeID, err)
	}
	for _, rc := range configs {
		if rc.Err != nil {
			return 0, fmt.Errorf("describe broker %d: %w", brokers[0].NodeID, rc.Err)
		}
		if v, ok := configValue(rc.Configs, "message.max.bytes"); ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("broker %d has no message.max.bytes", brokers[0].NodeID)
}

// configValue is the positive integer value of config key.
func configValue(configs []kadm.Config, key string) (int, bool) {
	for _, c := range configs {
		if c.Key != key || c.Value == nil {
			continue
		}
		v, err := strconv.Atoi(*c.Value)
		return v, err == nil && v > 0
	}
	return 0, false
}
