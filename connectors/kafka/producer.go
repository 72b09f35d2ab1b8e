package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
)

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Client is how to reach the brokers. Required.
	Client ClientConfig
	// Linger is how long a batch waits for more records (default 5ms).
	Linger time.Duration
}

// Producer writes records through one franz-go client, asynchronously,
// with the sticky key partitioner (records with one key keep their
// order). It is safe for concurrent use; Close is idempotent.
type Producer struct {
	cl *kgo.Client
}

// NewProducer builds a producer. It does not connect until the first
// record.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	linger := cfg.Linger
	if linger == 0 {
		linger = 5 * time.Millisecond
	}
	cl, err := cfg.Client.NewFranzClient(kgo.ProducerLinger(linger), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		return nil, err
	}
	return &Producer{cl: cl}, nil
}

// Produced is where the broker stored a record.
type Produced struct {
	Partition int32
	Offset    int64
}

// Produce queues rec and calls done, when not nil, once the broker has
// acknowledged it (err nil) or it failed. It blocks while the client's
// buffer is full, which paces a fast caller. Produce keeps rec's byte
// slices until done runs: the caller must not change them before.
func (p *Producer) Produce(ctx context.Context, rec pipeline.OutRecord, done func(Produced, error)) {
	r := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value}
	for _, h := range rec.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if done != nil {
			done(Produced{Partition: r.Partition, Offset: r.Offset}, err)
		}
	})
}

// Flush waits until every queued record is acknowledged or failed.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kafka: flush: %w", err)
	}
	return nil
}

// Close closes the client; records not yet acknowledged fail.
func (p *Producer) Close() { p.cl.Close() }

// RecordTooLarge reports whether err says that a record is larger than a
// broker, a topic or the client takes (kerr.MessageTooLarge,
// kerr.RecordListTooLarge): producing it again cannot succeed.
func RecordTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}
