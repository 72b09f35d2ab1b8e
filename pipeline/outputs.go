package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// Headers of a DLQ record whose input was too large for the DLQ topic:
// its payload holds a prefix of the input instead of all of it.
const (
	// HeaderPayloadTruncated is "true" on such a record.
	HeaderPayloadTruncated = "driftline.payload.truncated"
	// HeaderPayloadSize is the input value's size in bytes, in decimal.
	HeaderPayloadSize = "driftline.payload.size"
	// HeaderPayloadSHA256 is the hex SHA-256 of the whole input value, to
	// match the record with the producer's copy.
	HeaderPayloadSHA256 = "driftline.payload.sha256"
	// HeaderPayloadKept is how many leading bytes of the input value the
	// payload holds (encrypted, with dlq_payload encrypt).
	HeaderPayloadKept = "driftline.payload.kept"
	// HeaderSourceKeySize is set when the input's key was left out too
	// (it alone did not fit): the key's size in bytes.
	HeaderSourceKeySize = "driftline.source.key.size"
)

// The rejection of a row whose prediction is too large for its topic.
const (
	StageOutput          = "output"
	ReasonOutputTooLarge = "output.too_large"
)

// MaxPropagatedHeaderBytes bounds the value of an input header that
// RunnerConfig.PropagateHeaders copies: a longer value is not copied
// (W3C trace context's tracestate is at most 512 bytes).
const MaxPropagatedHeaderBytes = 4096

// RecordOverhead bounds the bytes a record adds to a Kafka record batch of
// its own besides its key, value and headers (the batch header and the
// record's lengths and deltas), and HeaderOverhead those each header adds.
// A topic's max.message.bytes limits such a batch.
const (
	RecordOverhead = 128
	HeaderOverhead = 10
)

// Size bounds the bytes r takes as the only record of a Kafka record
// batch, which is what a topic's max.message.bytes limits.
func (r *OutRecord) Size() int {
	n := RecordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += HeaderOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// propagate gives each output that answers a row the row's allow-listed
// input headers, after its own. The headers live in one arena per batch.
func (r *Runner) propagate(b *Batch) {
	if len(r.cfg.PropagateHeaders) == 0 {
		return
	}
	r.hdrs = nil // a pending batch's records still point into the previous arena
	for k := range b.Outputs {
		o := &b.Outputs[k]
		if o.row == 0 {
			continue
		}
		o.Headers = r.appendPropagated(o.Headers, &b.Messages[o.row-1])
	}
}

// appendPropagated returns own followed by msg's allow-listed headers,
// held in the batch's arena; own itself when msg has none of them.
func (r *Runner) appendPropagated(own []Header, msg *Message) []Header {
	start := -1
	for _, h := range msg.Headers {
		if len(h.Value) > MaxPropagatedHeaderBytes || !r.propagated(h.Key) {
			continue
		}
		if start < 0 {
			start = len(r.hdrs)
			r.hdrs = append(r.hdrs, own...)
		}
		r.hdrs = append(r.hdrs, h)
	}
	if start < 0 {
		return own
	}
	return r.hdrs[start:len(r.hdrs):len(r.hdrs)]
}

func (r *Runner) propagated(key string) bool {
	for _, k := range r.cfg.PropagateHeaders {
		if k == key {
			return true
		}
	}
	return false
}

// limit is the size limit of topic's records (0: none).
func (r *Runner) limit(topic string) int {
	if r.cfg.RecordLimit == nil {
		return 0
	}
	return r.cfg.RecordLimit(topic)
}

// dropOversized sends every row with an output over its topic's size
// limit to the DLQ, and drops that row's outputs.
func (r *Runner) dropOversized(b *Batch) {
	if r.cfg.RecordLimit == nil {
		return
	}
	over := false
	for k := range b.Outputs {
		o := &b.Outputs[k]
		if o.row == 0 {
			continue
		}
		if lim := r.limit(o.Topic); lim > 0 && o.Size() > lim {
			b.Reject(o.row-1, StageOutput, ReasonOutputTooLarge,
				"a record of "+strconv.Itoa(o.Size())+" bytes is over the "+strconv.Itoa(lim)+"-byte limit of topic "+o.Topic)
			over = true
		}
	}
	if !over {
		return
	}
	kept := b.Outputs[:0]
	for _, o := range b.Outputs {
		if o.row == 0 || b.State[o.row-1] == RowOK {
			kept = append(kept, o)
		}
	}
	clear(b.Outputs[len(kept):])
	b.Outputs = kept
}

// addDLQRecords adds one DLQ record per rejected row.
func (r *Runner) addDLQRecords(b *Batch) error {
	// A fresh buffer per batch: a pending batch's DLQ records still point
	// into the previous one.
	r.dlq = nil
	for i, s := range b.State {
		if s != RowRejected {
			continue
		}
		msg := &b.Messages[i]
		mark := len(r.dlq)
		rec, err := r.dlqRecord(msg, &b.Rejections[i])
		if err != nil {
			return err
		}
		if lim := r.limit(r.cfg.DLQTopic); lim > 0 && rec.Size() > lim {
			if rec, err = r.truncatedDLQRecord(msg, &b.Rejections[i], lim, mark); err != nil {
				return err
			}
			r.cfg.Metrics.dlqTruncated.Inc()
		}
		rec.row = i + 1
		b.Outputs = append(b.Outputs, rec)
	}
	return nil
}

// dlqRecord builds the DLQ record of msg, rejected for rej, with its
// payload appended to r.dlq.
func (r *Runner) dlqRecord(msg *Message, rej *Rejection) (OutRecord, error) {
	start := len(r.dlq)
	key := msg.Key
	var extra []Header
	if r.cfg.DLQPayload != nil {
		var err error
		if r.dlq, key, extra, err = r.cfg.DLQPayload(r.dlq, msg); err != nil {
			return OutRecord{}, fmt.Errorf("dlq payload: %w", err)
		}
	} else {
		r.dlq = append(r.dlq, msg.Value...)
	}
	end := len(r.dlq)
	return OutRecord{Topic: r.cfg.DLQTopic, Key: key, Value: r.dlq[start:end:end], Headers: r.dlqHeaders(msg, rej, extra)}, nil
}

// dlqHeaders are a DLQ record's headers: the rejection, the source
// position, the payload function's extra headers and msg's propagated
// ones.
func (r *Runner) dlqHeaders(msg *Message, rej *Rejection, extra []Header) []Header {
	reason := rej.Reason
	if rej.Detail != "" {
		reason += ": " + rej.Detail
	}
	hdrs := append([]Header{
		{Key: HeaderReason, Value: []byte(reason)},
		{Key: HeaderStage, Value: []byte(rej.Stage)},
		{Key: HeaderSourceTopic, Value: []byte(msg.Topic)},
		{Key: HeaderSourcePart, Value: strconv.AppendInt(nil, int64(msg.Partition), 10)},
		{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, msg.Offset, 10)},
	}, extra...)
	if len(r.cfg.PropagateHeaders) > 0 {
		hdrs = r.appendPropagated(hdrs, msg)
	}
	return hdrs
}

// truncatedDLQRecord builds msg's DLQ record from the longest prefix of
// its value that fits limit, with the HeaderPayload* headers; when the
// record does not fit even with no value, the key is left out too
// (HeaderSourceKeySize), and at last the payload function's and the
// propagated headers, which leaves the rejection and the source position.
// Each try shrinks the prefix by the measured growth of the payload
// (encryption adds a third), so it takes few tries. Every try writes its
// payload at mark in r.dlq, over the previous one.
func (r *Runner) truncatedDLQRecord(msg *Message, rej *Rejection, limit, mark int) (OutRecord, error) {
	sum := sha256.Sum256(msg.Value)
	info := []Header{
		{Key: HeaderPayloadTruncated, Value: []byte("true")},
		{Key: HeaderPayloadSize, Value: strconv.AppendInt(nil, int64(len(msg.Value)), 10)},
		{Key: HeaderPayloadSHA256, Value: hex.AppendEncode(nil, sum[:])},
	}
	cut := *msg
	build := func(n int) (OutRecord, error) {
		cut.Value = msg.Value[:n]
		r.dlq = r.dlq[:mark]
		rec, err := r.dlqRecord(&cut, rej)
		if err != nil {
			return OutRecord{}, err
		}
		hdrs := append(rec.Headers, info...)
		hdrs = append(hdrs, Header{Key: HeaderPayloadKept, Value: strconv.AppendInt(nil, int64(n), 10)})
		if cut.Key == nil && len(msg.Key) > 0 {
			hdrs = append(hdrs, Header{Key: HeaderSourceKeySize, Value: strconv.AppendInt(nil, int64(len(msg.Key)), 10)})
		}
		rec.Headers = hdrs
		return rec, nil
	}
	empty, err := build(0)
	if err != nil {
		return OutRecord{}, err
	}
	if empty.Size() > limit && len(msg.Key) > 0 {
		cut.Key = nil
		if empty, err = build(0); err != nil {
			return OutRecord{}, err
		}
	}
	if empty.Size() > limit {
		// The headers alone are too large: keep the rejection and the
		// source position only.
		hdrs := r.dlqHeaders(&Message{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}, rej, nil)
		return OutRecord{Topic: r.cfg.DLQTopic, Headers: append(hdrs, info...)}, nil
	}
	n := len(msg.Value)
	for range 16 {
		rec, err := build(n)
		if err != nil {
			return OutRecord{}, err
		}
		over := rec.Size() - limit
		if over <= 0 {
			return rec, nil
		}
		growth := max(1, float64(len(rec.Value)-len(empty.Value))/float64(max(n, 1)))
		n = max(0, n-int(float64(over)/growth)-64)
	}
	return build(0)
}
