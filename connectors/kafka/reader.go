package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
)

// rangeFetchBytes is the most bytes a range reader fetches per partition
// at once.
const rangeFetchBytes = 8 << 20

// Reader reads offset ranges of partitions with read-committed isolation:
// it is the replay.Input of a replay from Kafka. Each range gets a client
// of its own. It is safe for concurrent use.
type Reader struct {
	cc ClientConfig
}

// NewReader checks cc and builds a Reader.
func NewReader(cc ClientConfig) (*Reader, error) {
	if err := cc.Validate(); err != nil {
		return nil, err
	}
	return &Reader{cc: cc}, nil
}

// OpenRange implements replay.Input.
func (r *Reader) OpenRange(_ context.Context, topic string, partition int32, from, _ int64) (replay.RangeReader, error) {
	cl, err := r.cc.NewFranzClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(rangeFetchBytes),
	)
	if err != nil {
		return nil, err
	}
	return &rangeReader{cl: cl, partition: partition}, nil
}

// rangeReader is one partition's replay.RangeReader.
type rangeReader struct {
	cl        *kgo.Client
	partition int32
}

// Fetch implements replay.RangeReader: one poll's records, control
// records included.
func (r *rangeReader) Fetch(ctx context.Context, dst []replay.Record) ([]replay.Record, error) {
	fs := r.cl.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	var ferr error
	fs.EachError(func(_ string, _ int32, err error) { ferr = err })
	if ferr != nil {
		return dst, fmt.Errorf("fetch partition %d: %w", r.partition, ferr)
	}
	fs.EachRecord(func(rec *kgo.Record) {
		dst = append(dst, replay.Record{
			Message: pipeline.Message{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp},
			Control: rec.Attrs.IsControl(),
		})
	})
	return dst, nil
}

// Close implements replay.RangeReader.
func (r *rangeReader) Close() { r.cl.Close() }

// Record is a record read back from a topic.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []pipeline.Header
	Timestamp time.Time
}

// ReadTopics reads every record of topics from their start offsets up to
// their end offsets at the call and calls fn with each, in offset order
// per partition (partitions interleave). With committed set, it reads with
// read-committed isolation up to the last stable offsets, so that records
// of aborted and of still open transactions are left out. Control records
// are never passed to fn. fn may keep the record and its slices. A topic
// that does not exist is an error; an error from fn stops the read and is
// returned. Records written after the call are not read.
func ReadTopics(ctx context.Context, cc ClientConfig, committed bool, fn func(*Record) error, topics ...string) error {
	cl, err := cc.NewFranzClient(readOpts(committed)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	list := adm.ListEndOffsets
	if committed {
		list = adm.ListCommittedOffsets // the last stable offsets
	}
	ends, err := list(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	want := map[string][]replay.Range{}
	for _, topic := range topics {
		ps, ok := ends[topic]
		if !ok || len(ps) == 0 {
			return fmt.Errorf("topic %s does not exist", topic)
		}
		for p, e := range ps {
			if errors.Is(e.Err, kerr.UnknownTopicOrPartition) && p < 0 {
				return fmt.Errorf("topic %s does not exist", topic)
			}
			if e.Err != nil {
				return fmt.Errorf("topic %s partition %d: %w", topic, p, e.Err)
			}
			s, ok := starts.Lookup(topic, p)
			if !ok || s.Err != nil {
				return fmt.Errorf("topic %s partition %d: no start offset", topic, p)
			}
			want[topic] = append(want[topic], replay.Range{Partition: p, Start: s.Offset, End: e.Offset})
		}
	}
	return readRanges(ctx, cl, want, fn)
}

// ReadRanges reads the offset ranges of topic, with read-committed
// isolation when committed is set, and calls fn with each data record in
// them, as ReadTopics does. Every range must be readable to its end: the
// call waits for records not yet written.
func ReadRanges(ctx context.Context, cc ClientConfig, topic string, ranges []replay.Range, committed bool, fn func(*Record) error) error {
	cl, err := cc.NewFranzClient(readOpts(committed)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return readRanges(ctx, cl, map[string][]replay.Range{topic: ranges}, fn)
}

// readOpts are the options of a client that reads to end offsets:
// control records come through, so that a partition that ends with a
// transaction marker is read to its end.
func readOpts(committed bool) []kgo.Opt {
	opts := []kgo.Opt{kgo.KeepControlRecords()}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	return opts
}

// readRanges consumes the non-empty ranges with cl, pausing each partition
// once its end is reached.
func readRanges(ctx context.Context, cl *kgo.Client, ranges map[string][]replay.Range, fn func(*Record) error) error {
	want := map[string]map[int32]int64{}
	from := map[string]map[int32]kgo.Offset{}
	left := 0
	for topic, rs := range ranges {
		for _, r := range rs {
			if r.End <= r.Start {
				continue
			}
			if want[topic] == nil {
				want[topic], from[topic] = map[int32]int64{}, map[int32]kgo.Offset{}
			}
			want[topic][r.Partition] = r.End
			from[topic][r.Partition] = kgo.NewOffset().At(r.Start)
			left++
		}
	}
	if left == 0 {
		return nil
	}
	cl.AddConsumePartitions(from)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("topic %s partition %d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var fnErr error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Topic][r.Partition]
			if fnErr != nil || !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(want[r.Topic], r.Partition)
				left--
				cl.PauseFetchPartitions(map[string][]int32{r.Topic: {r.Partition}})
			}
			if r.Attrs.IsControl() {
				return
			}
			rec := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			if len(r.Headers) > 0 {
				rec.Headers = make([]pipeline.Header, len(r.Headers))
				for i, h := range r.Headers {
					rec.Headers[i] = pipeline.Header{Key: h.Key, Value: h.Value}
				}
			}
			fnErr = fn(&rec)
		})
		if fnErr != nil {
			return fnErr
		}
	}
	return nil
}
