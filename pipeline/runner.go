package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// DLQPayloadFunc shapes a rejected input's DLQ record: it appends the
// record's value to dst (e.g. the input, encrypted) and returns the
// record's key and any extra headers (e.g. the key id). Input keys may hold
// PII too, so the function decides what happens to them.
type DLQPayloadFunc func(dst []byte, msg *Message) (value, key []byte, hdrs []Header, err error)

// RunnerConfig configures a per-partition Runner.
type RunnerConfig struct {
	// Stages run in order on every batch; the first must decode.
	Stages []Stage
	// Sink receives each batch's outputs; Handle returns after they are
	// acknowledged, so offsets are committed only after outputs are durable.
	Sink Sink
	// DLQTopic receives rejected rows.
	DLQTopic string
	// DLQPayload shapes DLQ values; nil writes the input bytes unchanged.
	DLQPayload DLQPayloadFunc
	Metrics    *Metrics
}

// Runner is one partition's loop body: it turns each micro-batch of
// messages into a Batch, runs the stages, adds a DLQ record per rejected
// row and writes every output through the Sink. It implements
// PartitionHandler and is used by one goroutine.
type Runner struct {
	cfg   RunnerConfig
	batch Batch
	dlq   []byte
}

// NewRunner validates the config and builds a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if len(cfg.Stages) == 0 {
		return nil, fmt.Errorf("runner: no stages")
	}
	if cfg.Sink == nil {
		return nil, fmt.Errorf("runner: no sink")
	}
	if cfg.DLQTopic == "" {
		return nil, fmt.Errorf("runner: no dlq topic")
	}
	if cfg.Metrics == nil {
		return nil, fmt.Errorf("runner: no metrics")
	}
	return &Runner{cfg: cfg}, nil
}

// Handle implements PartitionHandler. A stage or sink error fails the
// whole batch, whose offsets then stay uncommitted (at-least-once).
func (r *Runner) Handle(ctx context.Context, msgs []Message) error {
	b := &r.batch
	b.Reset(msgs)
	m := r.cfg.Metrics
	m.eventsIn.Add(float64(len(msgs)))
	m.in.Add(int64(len(msgs)))
	m.batchSize.Observe(float64(len(msgs)))
	for _, st := range r.cfg.Stages {
		start := time.Now()
		if err := st.Process(ctx, b); err != nil {
			return fmt.Errorf("stage %s: %w", st.Name(), err)
		}
		m.stageTime.WithLabelValues(st.Name()).Observe(time.Since(start).Seconds())
	}
	predictions := len(b.Outputs)
	if err := r.addDLQRecords(b); err != nil {
		return err
	}
	start := time.Now()
	if err := r.cfg.Sink.Write(ctx, b.Outputs); err != nil {
		return fmt.Errorf("write outputs: %w", err)
	}
	m.stageTime.WithLabelValues("produce").Observe(time.Since(start).Seconds())
	dups, dlq := 0, 0
	for i, s := range b.State {
		switch s {
		case RowDuplicate:
			dups++
		case RowRejected:
			dlq++
			m.dlq.WithLabelValues(b.Rejections[i].Reason).Inc()
		}
	}
	m.predictions.Add(float64(predictions))
	m.out.Add(int64(predictions))
	m.duplicates.Add(float64(dups))
	m.dup.Add(int64(dups))
	m.dlqTotal.Add(int64(dlq))
	return nil
}

func (r *Runner) addDLQRecords(b *Batch) error {
	r.dlq = r.dlq[:0]
	type span struct{ start, end int }
	var spans []span
	var extra [][]Header
	var keys [][]byte
	for i, s := range b.State {
		if s != RowRejected {
			continue
		}
		start := len(r.dlq)
		var hdrs []Header
		key := b.Messages[i].Key
		if r.cfg.DLQPayload != nil {
			var err error
			if r.dlq, key, hdrs, err = r.cfg.DLQPayload(r.dlq, &b.Messages[i]); err != nil {
				return fmt.Errorf("dlq payload: %w", err)
			}
		} else {
			r.dlq = append(r.dlq, b.Messages[i].Value...)
		}
		spans = append(spans, span{start, len(r.dlq)})
		extra = append(extra, hdrs)
		keys = append(keys, key)
	}
	n := 0
	for i, s := range b.State {
		if s != RowRejected {
			continue
		}
		msg, rej := &b.Messages[i], &b.Rejections[i]
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
		}, extra[n]...)
		sp := spans[n]
		b.Outputs = append(b.Outputs, OutRecord{Topic: r.cfg.DLQTopic, Key: keys[n], Value: r.dlq[sp.start:sp.end:sp.end], Headers: hdrs})
		n++
	}
	return nil
}

// Close implements PartitionHandler.
func (r *Runner) Close() {
	if r.batch.Record != nil {
		r.batch.Record.Release()
		r.batch.Record = nil
	}
}
