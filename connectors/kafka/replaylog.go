package kafka

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
)

// DefaultReplayTransactionTimeout is ReplayCommitterConfig's default
// TransactionTimeout.
const DefaultReplayTransactionTimeout = 30 * time.Second

// ReplayCommitterConfig configures a ReplayCommitter.
type ReplayCommitterConfig struct {
	// Client is how to reach the brokers. Required.
	Client ClientConfig
	// TransactionalID is the run's transactional id: a committer fences
	// every earlier one of the same id. Required.
	TransactionalID string
	// CheckpointTopic holds the checkpoint records (a compacted topic;
	// see Admin.EnsureTopic). Required.
	CheckpointTopic string
	// TransactionTimeout bounds how long a killed run's open transaction
	// holds back read-committed consumers (default
	// DefaultReplayTransactionTimeout).
	TransactionTimeout time.Duration
}

// Validate checks the config; its errors name the field at fault.
func (c *ReplayCommitterConfig) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return err
	}
	switch {
	case c.TransactionalID == "":
		return errors.New("kafka: replay committer: no transactional id")
	case c.CheckpointTopic == "":
		return errors.New("kafka: replay committer: no checkpoint topic")
	case c.TransactionTimeout < 0:
		return errors.New("kafka: replay committer: transaction timeout must not be negative")
	}
	return nil
}

// ReplayCommitter is the replay.Committer of a replay into Kafka: one
// transactional producer writes each commit's outputs and checkpoint
// records (to CheckpointTopic, keyed by replay.Checkpoint.Key, JSON
// values) in one Kafka transaction. Consumers of the outputs must read
// with read-committed isolation. It is used by one goroutine; Close it.
type ReplayCommitter struct {
	cfg    ReplayCommitterConfig
	txn    *kgo.Client
	limits *recordLimits
}

// NewReplayCommitter validates cfg and builds the transactional producer.
// It does not connect: Fence does.
func NewReplayCommitter(cfg ReplayCommitterConfig) (*ReplayCommitter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	limits := &recordLimits{}
	txn, err := cfg.Client.NewFranzClient(
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(cmp.Or(cfg.TransactionTimeout, DefaultReplayTransactionTimeout)),
		kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchMaxBytesFn(limits.batchMaxBytes),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka transactional client: %w", err)
	}
	return &ReplayCommitter{cfg: cfg, txn: txn, limits: limits}, nil
}

// LearnRecordLimits reads the max.message.bytes of the topics the replay
// writes (as Client.LearnRecordLimits does); call it before the first
// commit. MaxRecordBytes then bounds each topic's records.
func (c *ReplayCommitter) LearnRecordLimits(ctx context.Context, log *slog.Logger, topics ...string) map[string]int {
	return c.limits.learn(ctx, kadm.NewClient(c.txn), cmp.Or(log, slog.Default()), topics...)
}

// MaxRecordBytes is the record limit of topic that LearnRecordLimits set
// (franz-go's default produce batch bound before); it is a
// replay.Config.RecordLimit.
func (c *ReplayCommitter) MaxRecordBytes(topic string) int { return c.limits.get(topic) }

// Close closes the producer; an open transaction is left to the broker,
// which aborts it after the transaction timeout or when the next
// committer of the id fences this one.
func (c *ReplayCommitter) Close() { c.txn.Close() }

// Fence implements replay.Committer: it initializes the transactional id,
// which fences earlier producers of the id and makes the broker abort
// their open transaction.
func (c *ReplayCommitter) Fence(ctx context.Context) error {
	if _, _, err := c.txn.ProducerID(ctx); err != nil {
		return fmt.Errorf("init transactional producer: %w", err)
	}
	return nil
}

// Checkpoints implements replay.Committer: it reads the checkpoint topic
// with read-committed isolation up to its last stable offset; a later
// checkpoint of a partition wins.
func (c *ReplayCommitter) Checkpoints(ctx context.Context, run, topic string) (map[int32]replay.Checkpoint, error) {
	out := map[int32]replay.Checkpoint{}
	err := ReadTopics(ctx, c.cfg.Client, true, func(r *Record) error {
		if ck, ok := replay.ParseCheckpoint(r.Key, r.Value, run, topic); ok {
			out[ck.Partition] = ck
		}
		return nil
	}, c.cfg.CheckpointTopic)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.cfg.CheckpointTopic, err)
	}
	return out, nil
}

// abortTimeout bounds aborting a failed transaction, and finishing the
// commit of one whose records are all flushed.
const abortTimeout = 10 * time.Second

// Commit implements replay.Committer: one transaction holds the outputs
// and the checkpoints; a failed record aborts it.
func (c *ReplayCommitter) Commit(ctx context.Context, outputs [][]pipeline.OutRecord, checkpoints []replay.Checkpoint) error {
	values := make([][]byte, len(checkpoints))
	for i, ck := range checkpoints {
		v, err := json.Marshal(ck)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		values[i] = v
	}
	if err := c.txn.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var (
		mu       sync.Mutex
		firstErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	n := len(checkpoints)
	for _, recs := range outputs {
		n += len(recs)
	}
	krecs := make([]kgo.Record, 0, n)
	for _, recs := range outputs {
		for i := range recs {
			o := &recs[i]
			krecs = append(krecs, kgo.Record{Topic: o.Topic, Key: o.Key, Value: o.Value})
			kr := &krecs[len(krecs)-1]
			if len(o.Headers) > 0 {
				kr.Headers = make([]kgo.RecordHeader, len(o.Headers))
				for j, h := range o.Headers {
					kr.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
				}
			}
			c.txn.Produce(ctx, kr, promise)
		}
	}
	for i, ck := range checkpoints {
		krecs = append(krecs, kgo.Record{Topic: c.cfg.CheckpointTopic, Key: ck.Key(), Value: values[i]})
		c.txn.Produce(ctx, &krecs[len(krecs)-1], promise)
	}
	flushErr := c.txn.Flush(ctx)
	mu.Lock()
	err := cmp.Or(flushErr, firstErr)
	mu.Unlock()
	if err != nil {
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_ = c.txn.AbortBufferedRecords(abortCtx)
		_ = c.txn.EndTransaction(abortCtx, kgo.TryAbort)
		return fmt.Errorf("produce: %w", err)
	}
	// Every record is flushed: finish the commit even if ctx ends now, so
	// that its outcome is known and a caller counts what it committed.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := c.txn.EndTransaction(endCtx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}
