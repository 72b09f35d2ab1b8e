package kafkatest

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/driftline/driftline/pipeline"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TxnRecord is one data record of a topic as the log holds it (aborted
// transactions' records included), with the fate of its transaction: the
// first control marker of its producer id that follows it in its
// partition.
type TxnRecord struct {
	Topic         string
	Partition     int32
	Offset        int64
	ProducerID    int64
	ProducerEpoch int16
	Transactional bool
	Key, Value    []byte
	Headers       []pipeline.Header
	// Marker is "commit" or "abort", or "" for a non-transactional record
	// or one whose transaction has no marker yet (still open).
	Marker string
	// MarkerOffset and MarkerEpoch locate the marker (-1 when none); a
	// marker's epoch may be higher than its records' (KIP-890 bumps the
	// epoch at every end).
	MarkerOffset int64
	MarkerEpoch  int16
}

// Committed reports whether a read-committed consumer sees the record: a
// non-transactional record, or one whose transaction was committed.
func (r *TxnRecord) Committed() bool { return !r.Transactional || r.Marker == "commit" }

// String is the record's position, producer and fate, for a test log.
func (r *TxnRecord) String() string {
	fate := r.Marker
	if !r.Transactional {
		fate = "non-transactional"
	} else if fate == "" {
		fate = "open (no marker)"
	}
	s := fmt.Sprintf("%s/%d@%d producer %d epoch %d: %s", r.Topic, r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch, fate)
	if r.MarkerOffset >= 0 {
		s += fmt.Sprintf(" (marker @%d, epoch %d)", r.MarkerOffset, r.MarkerEpoch)
	}
	return s
}

// ReadTxnLog reads topics from their start to their end offsets as of the
// call with read-uncommitted isolation and control records kept, and
// returns every data record in log order per partition with its
// transaction's fate (TxnRecord.Marker). It tells an exactly-once test
// which transaction wrote a record that a read-committed reader saw
// twice, and whether an aborted transaction's records were committed
// after all.
func (b *Broker) ReadTxnLog(tb testing.TB, ctx context.Context, topics ...string) ([]TxnRecord, error) {
	tb.Helper()
	ends, err := b.admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	remaining := map[string]map[int32]int64{} // the next offset to reach, per partition
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if remaining[o.Topic] == nil {
				remaining[o.Topic] = map[int32]int64{}
			}
			remaining[o.Topic][o.Partition] = o.Offset
		}
	})
	cl := b.Client(tb, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())
	type pkey struct {
		topic string
		part  int32
		pid   int64
	}
	var out []TxnRecord
	open := map[pkey][]int{} // indexes into out of records awaiting their marker
	left := 0
	for _, ps := range remaining {
		left += len(ps)
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("read %v: %d partitions not read to their end: %w", topics, left, err)
		}
		fs.EachError(func(t string, p int32, err error) { tb.Logf("kafkatest: ReadTxnLog: fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			k := pkey{r.Topic, r.Partition, r.ProducerID}
			if r.Attrs.IsControl() {
				marker := "abort"
				if len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key[2:4]) == 1 {
					marker = "commit"
				}
				for _, i := range open[k] {
					out[i].Marker, out[i].MarkerOffset, out[i].MarkerEpoch = marker, r.Offset, r.ProducerEpoch
				}
				delete(open, k)
			} else {
				out = append(out, TxnRecord{
					Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
					ProducerID: r.ProducerID, ProducerEpoch: r.ProducerEpoch, Transactional: r.Attrs.IsTransactional(),
					Key: r.Key, Value: r.Value, Headers: pipelineHeaders(r.Headers), MarkerOffset: -1,
				})
				if r.Attrs.IsTransactional() {
					open[k] = append(open[k], len(out)-1)
				}
			}
			if end, ok := remaining[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining[r.Topic], r.Partition)
				left--
			}
		})
	}
	return out, nil
}

// pipelineHeaders copies a record's headers as pipeline headers.
func pipelineHeaders(hs []kgo.RecordHeader) []pipeline.Header {
	out := make([]pipeline.Header, len(hs))
	for i, h := range hs {
		out[i] = pipeline.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
