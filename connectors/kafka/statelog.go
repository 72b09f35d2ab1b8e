package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// StateTailConfig configures a StateTail.
type StateTailConfig struct {
	// Client is how to reach the brokers. Required.
	Client ClientConfig
	// Topic is the learner-state topic. Required.
	Topic string
	// Committed reads with read-committed isolation (the topic of an
	// exactly-once writer): records of aborted or open transactions are
	// never returned, and Ends lists the last stable offsets.
	Committed bool
	// MaxRecordBytes is the largest record expected (default 64 MiB); the
	// fetch size follows it.
	MaxRecordBytes int
}

// StateTail reads the learner-state topic (a compacted topic keyed by
// model@version, one record per state) from its start and then follows
// it, every partition, without a consumer group: each instance reads the
// whole topic. Poll is used by one goroutine; Ends and Close are safe for
// concurrent use.
type StateTail struct {
	cl        *kgo.Client
	adm       *kadm.Client
	topic     string
	committed bool
}

// NewStateTail builds the reader; it does not connect until Poll.
func NewStateTail(cfg StateTailConfig) (*StateTail, error) {
	if cfg.Topic == "" {
		return nil, errors.New("kafka: state tail: no topic")
	}
	maxBytes := cfg.MaxRecordBytes
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	opts := []kgo.Opt{
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(int32(maxBytes)),
		kgo.FetchMaxBytes(int32(max(maxBytes, 50<<20))),
		kgo.FetchMaxWait(250 * time.Millisecond), // a new state shows within it
	}
	if cfg.Committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := cfg.Client.NewFranzClient(opts...)
	if err != nil {
		return nil, err
	}
	return &StateTail{cl: cl, adm: kadm.NewClient(cl), topic: cfg.Topic, committed: cfg.Committed}, nil
}

// TailRecord is a record of the followed topic; a control record (a
// transaction marker) has no key or value.
type TailRecord struct {
	Partition  int32
	Offset     int64
	Key, Value []byte
	Control    bool
}

// Poll returns the records fetched next, waiting until some arrive or ctx
// ends (then it returns none, and ctx's error). A fetch error is returned
// with the records fetched alongside it.
func (t *StateTail) Poll(ctx context.Context) ([]TailRecord, error) {
	fs := t.cl.PollFetches(ctx)
	if fs.IsClientClosed() {
		return nil, errors.New("kafka: state tail closed")
	}
	var ferr error
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		ferr = fmt.Errorf("topic %s partition %d: %w", topic, p, err)
	})
	var out []TailRecord
	fs.EachRecord(func(r *kgo.Record) {
		out = append(out, TailRecord{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Control: r.Attrs.IsControl()})
	})
	if ferr == nil && len(out) == 0 {
		ferr = ctx.Err()
	}
	return out, ferr
}

// Ends returns each partition's end offset now: the high watermark, or
// the last stable offset with Committed.
func (t *StateTail) Ends(ctx context.Context) (map[int32]int64, error) {
	list := t.adm.ListEndOffsets
	if t.committed {
		list = t.adm.ListCommittedOffsets
	}
	ends, err := list(ctx, t.topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: list end offsets of %s: %w", t.topic, err)
	}
	out := map[int32]int64{}
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = fmt.Errorf("kafka: end offset of %s partition %d: %w", t.topic, o.Partition, o.Err)
			return
		}
		out[o.Partition] = o.Offset
	})
	if lerr == nil && len(out) == 0 {
		lerr = fmt.Errorf("kafka: topic %s does not exist", t.topic)
	}
	return out, lerr
}

// Close closes the client.
func (t *StateTail) Close() { t.cl.Close() }

// EnsureStateTopic creates the learner-state topic when it is missing:
// one partition, compacted (cleanup.policy compact), with
// max.message.bytes maxRecordBytes so that a learner's snapshot fits. An
// existing topic is left as it is.
func (a *Admin) EnsureStateTopic(ctx context.Context, name string, maxRecordBytes int) error {
	if n, err := a.Partitions(ctx, name); err == nil && n > 0 {
		return nil // it exists: no need for the right to create topics
	}
	return a.ensureTopic(ctx, name, 1, map[string]*string{
		"cleanup.policy":    kadm.StringPtr("compact"),
		"max.message.bytes": kadm.StringPtr(fmt.Sprint(maxRecordBytes)),
	})
}
