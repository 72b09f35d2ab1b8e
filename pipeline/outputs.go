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

// DLQConfig says how DLQ records are built, the same way for the data
// plane (RunnerConfig) and the label plane.
type DLQConfig struct {
	// Topic receives the records. Required.
	Topic string
	// Payload shapes the records' values; nil writes the input bytes
	// unchanged.
	Payload DLQPayloadFunc
	// RecordLimit, when set, returns the largest record a topic takes
	// (0: no limit); a record over it carries the longest prefix of its
	// input that fits, with the HeaderPayload* headers.
	RecordLimit func(topic string) int
	// PropagateHeaders lists the input headers copied to the records
	// (see RunnerConfig.PropagateHeaders).
	PropagateHeaders []string
}

// DLQBuilder builds the DLQ records of rejected input messages: the
// payload (DLQConfig.Payload), the headers driftline.reason,
// driftline.stage and driftline.source.*, the propagated input headers,
// and the truncation of a record over its topic's limit. It is used by one
// goroutine. Records it built stay valid after the next Begin, which
// starts fresh buffers rather than reusing them; BeginReusing reuses a
// payload buffer whose records are no longer read.
type DLQBuilder struct {
	cfg DLQConfig
	// buf holds the batch's payloads; hdrs its propagated headers.
	buf  []byte
	hdrs []Header
}

// NewDLQBuilder returns a builder for cfg.
func NewDLQBuilder(cfg DLQConfig) (*DLQBuilder, error) {
	if cfg.Topic == "" {
		return nil, fmt.Errorf("dlq: no topic")
	}
	return &DLQBuilder{cfg: cfg}, nil
}

// Begin starts a batch: the records built so far keep their buffers.
func (d *DLQBuilder) Begin() { d.buf, d.hdrs = nil, nil }

// BeginReusing starts a batch whose payloads are written over buf, a
// buffer an earlier Payloads returned: the caller guarantees that nothing
// reads that batch's records any more (its outputs were acknowledged).
// A large payload (an encrypted 256 KiB row is 350 KB of base64) then
// costs no allocation and no zeroing of a fresh buffer.
func (d *DLQBuilder) BeginReusing(buf []byte) { d.buf, d.hdrs = buf[:0], nil }

// Payloads returns the buffer holding the payloads built since Begin (nil
// when there were none); see BeginReusing.
func (d *DLQBuilder) Payloads() []byte { return d.buf }

// maxSpareDLQBytes bounds a payload buffer the Runner keeps for reuse:
// a batch with more DLQ bytes than this leaves its buffer to the collector.
const maxSpareDLQBytes = 16 << 20

// Record builds the DLQ record of msg, rejected for rej; truncated reports
// that its payload holds a prefix of the input only. An error comes from
// the payload function alone.
func (d *DLQBuilder) Record(msg *Message, rej *Rejection) (rec OutRecord, truncated bool, err error) {
	mark := len(d.buf)
	if rec, err = d.record(msg, rej); err != nil {
		return OutRecord{}, false, err
	}
	if lim := d.limit(d.cfg.Topic); lim > 0 && rec.Size() > lim {
		rec, err = d.truncated(msg, rej, lim, mark)
		return rec, err == nil, err
	}
	return rec, false, nil
}

// WithPropagated returns own followed by msg's allow-listed headers (see
// DLQConfig.PropagateHeaders), held in the batch's buffers; own itself
// when msg has none of them.
func (d *DLQBuilder) WithPropagated(own []Header, msg *Message) []Header {
	start := -1
	for _, h := range msg.Headers {
		if len(h.Value) > MaxPropagatedHeaderBytes || !d.propagated(h.Key) {
			continue
		}
		if start < 0 {
			start = len(d.hdrs)
			d.hdrs = append(d.hdrs, own...)
		}
		d.hdrs = append(d.hdrs, h)
	}
	if start < 0 {
		return own
	}
	return d.hdrs[start:len(d.hdrs):len(d.hdrs)]
}

// propagatedCount is how many of msg's headers WithPropagated copies.
func (d *DLQBuilder) propagatedCount(msg *Message) int {
	n := 0
	for _, h := range msg.Headers {
		if len(h.Value) <= MaxPropagatedHeaderBytes && d.propagated(h.Key) {
			n++
		}
	}
	return n
}

func (d *DLQBuilder) propagated(key string) bool {
	for _, k := range d.cfg.PropagateHeaders {
		if k == key {
			return true
		}
	}
	return false
}

// limit is the size limit of topic's records (0: none).
func (d *DLQBuilder) limit(topic string) int {
	if d.cfg.RecordLimit == nil {
		return 0
	}
	return d.cfg.RecordLimit(topic)
}

// record builds the DLQ record of msg with its payload appended to d.buf.
func (d *DLQBuilder) record(msg *Message, rej *Rejection) (OutRecord, error) {
	start := len(d.buf)
	key := msg.Key
	var extra []Header
	if d.cfg.Payload != nil {
		var err error
		if d.buf, key, extra, err = d.cfg.Payload(d.buf, msg); err != nil {
			return OutRecord{}, fmt.Errorf("dlq payload: %w", err)
		}
	} else {
		d.buf = append(d.buf, msg.Value...)
	}
	end := len(d.buf)
	return OutRecord{Topic: d.cfg.Topic, Key: key, Value: d.buf[start:end:end], Headers: d.headers(msg, rej, extra)}, nil
}

// dlqHeaderCount bounds the headers a DLQ record has besides the
// propagated ones: the five of headers and up to three of the payload
// function (encryption's key id and encrypted key).
const dlqHeaderCount = 8

// headers are a DLQ record's headers: the rejection, the source position,
// the payload function's extra headers and msg's propagated ones.
func (d *DLQBuilder) headers(msg *Message, rej *Rejection, extra []Header) []Header {
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
	if len(d.cfg.PropagateHeaders) > 0 {
		hdrs = d.WithPropagated(hdrs, msg)
	}
	return hdrs
}

// truncated builds msg's DLQ record from the longest prefix of its value
// that fits limit, with the HeaderPayload* headers; when the record does
// not fit even with no value, the key is left out too
// (HeaderSourceKeySize), and at last the payload function's and the
// propagated headers, which leaves the rejection and the source position.
// Each try shrinks the prefix by the measured growth of the payload
// (encryption adds a third), so it takes few tries. Every try writes its
// payload at mark in d.buf, over the previous one.
func (d *DLQBuilder) truncated(msg *Message, rej *Rejection, limit, mark int) (OutRecord, error) {
	sum := sha256.Sum256(msg.Value)
	info := []Header{
		{Key: HeaderPayloadTruncated, Value: []byte("true")},
		{Key: HeaderPayloadSize, Value: strconv.AppendInt(nil, int64(len(msg.Value)), 10)},
		{Key: HeaderPayloadSHA256, Value: hex.AppendEncode(nil, sum[:])},
	}
	cut := *msg
	build := func(n int) (OutRecord, error) {
		cut.Value = msg.Value[:n]
		d.buf = d.buf[:mark]
		rec, err := d.record(&cut, rej)
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
		pos := &Message{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
		hdrs := append(d.headers(pos, rej, nil), info...)
		return OutRecord{Topic: d.cfg.Topic, Headers: hdrs}, nil
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

// propagate gives each output that answers a row the row's allow-listed
// input headers, after its own.
func (r *Runner) propagate(b *Batch) {
	if len(r.cfg.PropagateHeaders) == 0 {
		return
	}
	// One arena per batch, sized to fit: a pending batch's records still
	// point into the previous one.
	need := 0
	for k := range b.Outputs {
		if o := &b.Outputs[k]; o.row != 0 {
			if n := r.dlq.propagatedCount(&b.Messages[o.row-1]); n > 0 {
				need += len(o.Headers) + n
			}
		}
	}
	for i, s := range b.State {
		if n := r.dlq.propagatedCount(&b.Messages[i]); s == RowRejected && n > 0 {
			need += dlqHeaderCount + n // the DLQ record's, see headers
		}
	}
	if need == 0 {
		return
	}
	r.dlq.hdrs = make([]Header, 0, need)
	for k := range b.Outputs {
		o := &b.Outputs[k]
		if o.row == 0 {
			continue
		}
		o.Headers = r.dlq.WithPropagated(o.Headers, &b.Messages[o.row-1])
	}
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
		if lim := r.cfg.RecordLimit(o.Topic); lim > 0 && o.Size() > lim {
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
	for i, s := range b.State {
		if s != RowRejected {
			continue
		}
		rec, truncated, err := r.dlq.Record(&b.Messages[i], &b.Rejections[i])
		if err != nil {
			return err
		}
		if truncated {
			r.cfg.Metrics.dlqTruncated.Inc()
		}
		rec.row = i + 1
		b.Outputs = append(b.Outputs, rec)
	}
	return nil
}
