package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline/replay"
)

// Admin does the topic and offset look-ups of replay, backfill and
// retraining. It is safe for concurrent use; Close it when done.
type Admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewAdmin builds an admin client from cc. It does not connect.
func NewAdmin(cc ClientConfig) (*Admin, error) {
	cl, err := cc.NewFranzClient()
	if err != nil {
		return nil, err
	}
	return &Admin{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Close closes the client.
func (a *Admin) Close() { a.cl.Close() }

// topicReadyTries and topicReadyWait bound EnsureTopic's wait for a new
// topic's metadata.
const (
	topicReadyTries = 100
	topicReadyWait  = 50 * time.Millisecond
)

// EnsureTopic creates topic name with partitions partitions (and the
// broker's default replication factor), compacted (cleanup.policy
// compact) when compacted is set, unless it exists; then it waits until
// the topic's metadata is served. An existing topic is left as it is.
func (a *Admin) EnsureTopic(ctx context.Context, name string, partitions int32, compacted bool) error {
	var configs map[string]*string
	if compacted {
		configs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	}
	return a.ensureTopic(ctx, name, partitions, configs)
}

// ensureTopic is EnsureTopic with the new topic's configs.
func (a *Admin) ensureTopic(ctx context.Context, name string, partitions int32, configs map[string]*string) error {
	resp, err := a.adm.CreateTopic(ctx, partitions, -1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	for i := 0; ; i++ {
		n, err := a.Partitions(ctx, name)
		if err == nil && n > 0 {
			return nil
		}
		if i == topicReadyTries {
			return fmt.Errorf("topic %s not ready: %v", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(topicReadyWait):
		}
	}
}

// Partitions is the number of partitions of topic.
func (a *Admin) Partitions(ctx context.Context, topic string) (int32, error) {
	td, err := a.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	t, ok := td[topic]
	if !ok || t.Err != nil {
		return 0, fmt.Errorf("topic %s does not exist", topic)
	}
	return int32(len(t.Partitions)), nil
}

// Bound is one end of an offset range.
type Bound int

// The ends of a range.
const (
	BoundStart Bound = iota
	BoundEnd
)

// RangeError is an offset range that the log cannot give. Bound is the end
// at fault, so that the caller can name where that end came from (a flag,
// a field); the message does not.
type RangeError struct {
	Bound Bound
	Err   error
}

func (e *RangeError) Error() string { return e.Err.Error() }
func (e *RangeError) Unwrap() error { return e.Err }

func rangeErr(b Bound, format string, args ...any) error {
	return &RangeError{Bound: b, Err: fmt.Errorf(format, args...)}
}

// TimeRanges maps the time range [from, to) onto offsets, per partition
// of topic: from the first record with a timestamp at or after from to
// the first at or after to, by the broker's time index. The ranges come
// sorted by partition.
func (a *Admin) TimeRanges(ctx context.Context, topic string, from, to time.Time) ([]replay.Range, error) {
	starts, err := a.adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	if err != nil {
		return nil, rangeErr(BoundStart, "list offsets of %s: %w", topic, err)
	}
	ends, err := a.adm.ListOffsetsAfterMilli(ctx, to.UnixMilli(), topic)
	if err != nil {
		return nil, rangeErr(BoundEnd, "list offsets of %s: %w", topic, err)
	}
	var out []replay.Range
	var ferr error
	starts.Each(func(o kadm.ListedOffset) {
		if ferr != nil {
			return
		}
		if o.Partition < 0 && errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			ferr = fmt.Errorf("topic %s does not exist", topic)
			return
		}
		if o.Err != nil {
			ferr = rangeErr(BoundStart, "topic %s partition %d: %w", topic, o.Partition, o.Err)
			return
		}
		e, ok := ends.Lookup(topic, o.Partition)
		if !ok || e.Err != nil {
			ferr = rangeErr(BoundEnd, "no end offset for topic %s partition %d", topic, o.Partition)
			return
		}
		out = append(out, replay.Range{Partition: o.Partition, Start: o.Offset, End: max(e.Offset, o.Offset)})
	})
	if ferr != nil {
		return nil, ferr
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	slices.SortFunc(out, func(a, b replay.Range) int { return int(a.Partition - b.Partition) })
	return out, nil
}

// CheckRanges checks explicit ranges of topic against the log: each
// partition must exist, and each range lie within its log start and end
// offsets.
func (a *Admin) CheckRanges(ctx context.Context, topic string, ranges []replay.Range) error {
	starts, err := a.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	ends, err := a.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	for _, r := range ranges {
		lo, ok1 := starts.Lookup(topic, r.Partition)
		hi, ok2 := ends.Lookup(topic, r.Partition)
		if !ok1 || !ok2 || lo.Err != nil || hi.Err != nil {
			return rangeErr(BoundStart, "topic %s has no partition %d", topic, r.Partition)
		}
		if r.Start < lo.Offset {
			return rangeErr(BoundStart, "partition %d starts at %d, before the log start %d", r.Partition, r.Start, lo.Offset)
		}
		if r.End > hi.Offset {
			return rangeErr(BoundEnd, "partition %d ends at %d, after the log end %d", r.Partition, r.End, hi.Offset)
		}
	}
	return nil
}
