package pipeline

import (
	"context"
	"fmt"
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
	// ShadowTopic, when set, names the outputs that are shadow predictions:
	// they are written like any output but not counted as events out (one
	// prediction per event is; see Metrics.Totals).
	ShadowTopic string
	// DLQPayload shapes DLQ values; nil writes the input bytes unchanged.
	DLQPayload DLQPayloadFunc
	Metrics    *Metrics
	// MaxPendingBatches is how many batches' outputs may await
	// acknowledgement at once when the Sink is an AsyncSink (default 2). It
	// bounds memory: each pending batch holds its output records.
	MaxPendingBatches int
	// RecordLimit, when set, returns the largest record (OutRecord.Size)
	// topic takes, or 0 for no limit: its max.message.bytes, which
	// connectors/kafka learns. A row with an output over its limit goes
	// to the DLQ instead (reason output.too_large); a DLQ record over the
	// limit carries the longest prefix of the input that fits, with the
	// HeaderPayload* headers. Either way the row stays accounted for and
	// the pipeline goes on.
	RecordLimit func(topic string) int
	// PropagateHeaders lists the input record headers (such as traceparent
	// and tracestate) copied to the outputs of each row (Batch.AppendOutput)
	// and to its DLQ record, after their own headers. A value longer than
	// MaxPropagatedHeaderBytes is not copied.
	PropagateHeaders []string
	// Retry, when set, retries a batch's deferred work (Batch.Defer) that
	// fails with an error it calls transient: the dependency is marked
	// down in its Health (not ready) and the work is tried again after the
	// backoff, while the batch stays unacknowledged, until it succeeds or
	// the Runner closes. Without it, or for any other error, a failed
	// deferred work fails the batch's ack (and so every later one).
	Retry *RetryPolicy
	// BufferPoolBytes bounds the memory the runner keeps to reuse the
	// batches' buffers (Batch.Pool: the Record's columns, the outputs'
	// bytes), which come back once their batch is acknowledged (default
	// DefaultBufferPoolBytes). Negative: no pool, every batch's buffers
	// are fresh memory.
	BufferPoolBytes int
}

// DefaultMaxPendingBatches is RunnerConfig.MaxPendingBatches' default.
const DefaultMaxPendingBatches = 2

// Runner is one partition's loop body: it turns each micro-batch of
// messages into a Batch, runs the stages, adds a DLQ record per rejected
// row and writes every output through the Sink. It implements
// PartitionHandler and is used by one goroutine.
type Runner struct {
	cfg   RunnerConfig
	batch Batch
	// dlq builds DLQ records and propagates input headers.
	dlq *DLQBuilder
	// pending holds a token per batch awaiting acknowledgement.
	pending chan struct{}
	// prev is the previous batch's acknowledgement, which the next one
	// waits for, so that acks run in batch order.
	prev *batchAck
	// spareOuts holds output slices whose batches were acknowledged, for
	// the next batches to reuse (the sink is done with them then).
	spareOuts chan []OutRecord
	// spareDLQ holds the DLQ payload buffers of acknowledged batches, for
	// the next batches' DLQ records (see DLQBuilder.BeginReusing).
	spareDLQ chan []byte
	// spareLeases holds emptied leases (Batch.TakeLease) for the next
	// batches: each pending batch keeps its buffers in one until its ack.
	spareLeases chan *Lease
	// lastDeferred is the latest batch's deferred work, which the next
	// batch's deferred work waits for (nil before the first). stop closes
	// when the Runner closes: deferred work stops retrying.
	lastDeferred *batchAck
	stop         chan struct{}
}

// batchAck is one batch's acknowledgement (or deferred work's) outcome,
// set before done closes.
type batchAck struct {
	done chan struct{}
	err  error
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
	if cfg.MaxPendingBatches <= 0 {
		cfg.MaxPendingBatches = DefaultMaxPendingBatches
	}
	dlq, err := NewDLQBuilder(DLQConfig{Topic: cfg.DLQTopic, Payload: cfg.DLQPayload, RecordLimit: cfg.RecordLimit, PropagateHeaders: cfg.PropagateHeaders})
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if cfg.BufferPoolBytes == 0 {
		cfg.BufferPoolBytes = DefaultBufferPoolBytes
	}
	first := &batchAck{done: make(chan struct{})}
	close(first.done)
	spares := cfg.MaxPendingBatches + 1
	r := &Runner{cfg: cfg, dlq: dlq, pending: make(chan struct{}, cfg.MaxPendingBatches), prev: first,
		spareOuts: make(chan []OutRecord, spares), spareDLQ: make(chan []byte, spares),
		spareLeases: make(chan *Lease, spares), stop: make(chan struct{})}
	if cfg.BufferPoolBytes > 0 {
		r.batch.Pool = NewBufferPool(cfg.BufferPoolBytes)
	}
	return r, nil
}

// Handle implements PartitionHandler: it processes the batch and returns
// once its outputs are acknowledged and its deferred work is done. A stage or sink error fails the whole
// batch, whose offsets then stay uncommitted (at-least-once). A failed
// batch may be handed in again (a Source's RetryPolicy): it is processed
// from its messages afresh, and its events are counted in once it gets
// through the stages.
func (r *Runner) Handle(ctx context.Context, msgs []Message) error {
	errc := make(chan error, 1)
	if err := r.HandleAsync(ctx, msgs, func(err error) { errc <- err }); err != nil {
		return err
	}
	return <-errc
}

// HandleAsync implements AsyncPartitionHandler. With a plain Sink it
// writes synchronously and acks before returning; with an AsyncSink it
// returns once the outputs are sent, blocking first while
// MaxPendingBatches batches await acknowledgement. The work the stages
// deferred (Batch.Defer) runs meanwhile, in batch order, and the batch is
// acknowledged once both its outputs and its deferred work are done.
func (r *Runner) HandleAsync(ctx context.Context, msgs []Message, ack func(error)) error {
	b := &r.batch
	b.Reset(msgs)
	b.deferring = true
	m := r.cfg.Metrics
	for _, st := range r.cfg.Stages {
		start := time.Now()
		if err := st.Process(ctx, b); err != nil {
			return fmt.Errorf("stage %s: %w", st.Name(), err)
		}
		m.stageTime.WithLabelValues(st.Name()).Observe(time.Since(start).Seconds())
	}
	// A pending batch's records still point into the previous buffers:
	// only an acknowledged batch's payload buffer is reused.
	select {
	case buf := <-r.spareDLQ:
		r.dlq.BeginReusing(buf)
	default:
		r.dlq.Begin()
	}
	r.propagate(b)
	r.dropOversized(b)
	predictions := len(b.Outputs)
	if r.cfg.ShadowTopic != "" {
		for i := range b.Outputs {
			if b.Outputs[i].Topic == r.cfg.ShadowTopic {
				predictions--
			}
		}
	}
	if err := r.addDLQRecords(b); err != nil {
		return err
	}
	dlqBuf := r.dlq.Payloads()
	// Counted once the batch got through its stages, so that a batch the
	// Source retries after a failed stage counts once.
	m.eventsIn.Add(float64(len(msgs)))
	m.in.Add(int64(len(msgs)))
	m.batchSize.Observe(float64(len(msgs)))
	var counts batchCounts
	counts.predictions = predictions
	for i, s := range b.State {
		switch s {
		case RowDuplicate:
			counts.duplicates++
		case RowRejected:
			counts.dlqReasons = append(counts.dlqReasons, b.Rejections[i].Reason)
		}
	}
	// The outputs leave with the batch: the next batch reuses b.Outputs.
	// The copy goes to a spare slice of an acknowledged batch when there
	// is one, and back to the spares once this batch is acknowledged.
	var outs []OutRecord
	select {
	case outs = <-r.spareOuts:
	default:
	}
	outs = append(outs[:0], b.Outputs...)
	select {
	case r.pending <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The outputs point into the batch's held buffers and its Record:
	// they come back for reuse only once the batch is acknowledged.
	var lease *Lease
	select {
	case lease = <-r.spareLeases:
	default:
		lease = &Lease{}
	}
	b.TakeLease(lease)
	prev := r.prev
	cur := &batchAck{done: make(chan struct{})}
	r.prev = cur
	deferred := r.startDeferred(ctx, b)
	start := time.Now()
	finish := func(err error) {
		<-prev.done
		if err == nil && prev.err != nil {
			err = fmt.Errorf("an earlier batch failed: %w", prev.err)
		}
		if deferred != nil {
			<-deferred.done
			if err == nil && deferred.err != nil {
				err = deferred.err
			}
		}
		if err == nil {
			m.stageTime.WithLabelValues("produce").Observe(time.Since(start).Seconds())
			counts.record(m)
		} else {
			err = fmt.Errorf("write outputs: %w", err)
		}
		// The sink is done with the records: their buffers go back to the
		// pool before the ack, so that the next batches find them. After a
		// failure the sink may not be done with every record: they are
		// left to the collector.
		if err == nil {
			lease.Release()
		} else {
			lease.Drop()
		}
		select {
		case r.spareLeases <- lease:
		default:
		}
		cur.err = err
		ack(err)
		clear(outs) // drop the records' bytes
		select {
		case r.spareOuts <- outs[:0]:
		default:
		}
		// Once the outputs are acknowledged nothing reads the DLQ
		// payloads; after a failure the buffer is left to the collector.
		if err == nil && cap(dlqBuf) > 0 && cap(dlqBuf) <= maxSpareDLQBytes {
			select {
			case r.spareDLQ <- dlqBuf[:0]:
			default:
			}
		}
		close(cur.done)
		<-r.pending
	}
	if as, ok := r.cfg.Sink.(AsyncSink); ok {
		as.WriteAsync(ctx, outs, func(err error) { go finish(err) })
		return nil
	}
	finish(r.cfg.Sink.Write(ctx, outs))
	return nil
}

// startDeferred starts the batch's deferred work on its own goroutine,
// after the previous batch's, and returns its outcome; nil when the batch
// deferred nothing (its ack then waits for the previous batch's ack,
// which waits for that batch's deferred work).
func (r *Runner) startDeferred(ctx context.Context, b *Batch) *batchAck {
	if len(b.deferred) == 0 {
		return nil
	}
	work := append([]DeferredFunc(nil), b.deferred...)
	clear(b.deferred)
	b.deferred = b.deferred[:0]
	prev := r.lastDeferred
	cur := &batchAck{done: make(chan struct{})}
	r.lastDeferred = cur
	stageTime := r.cfg.Metrics.stageTime.WithLabelValues("deferred")
	go func() {
		defer close(cur.done)
		if prev != nil {
			<-prev.done
			if prev.err != nil {
				cur.err = fmt.Errorf("an earlier batch's deferred work failed: %w", prev.err)
				return
			}
		}
		start := time.Now()
		cur.err = r.runDeferred(ctx, work)
		stageTime.Observe(time.Since(start).Seconds())
	}()
	return cur
}

// runDeferred runs work in order, retrying a transiently failed fn under
// RunnerConfig.Retry until it succeeds or the Runner closes.
func (r *Runner) runDeferred(ctx context.Context, work []DeferredFunc) error {
	retries := Retries{Policy: r.cfg.Retry}
	for _, fn := range work {
		for {
			err := fn(ctx)
			if err == nil {
				retries.Succeeded()
				break
			}
			if !retries.Failed(ctx, r.stop, err) {
				return fmt.Errorf("deferred work: %w", err)
			}
		}
	}
	return nil
}

// batchCounts are a batch's outcome counts, recorded once it is acknowledged.
type batchCounts struct {
	predictions, duplicates int
	dlqReasons              []string
}

func (c *batchCounts) record(m *Metrics) {
	for _, reason := range c.dlqReasons {
		m.dlq.WithLabelValues(reason).Inc()
	}
	m.predictions.Add(float64(c.predictions))
	m.out.Add(int64(c.predictions))
	m.duplicates.Add(float64(c.duplicates))
	m.dup.Add(int64(c.duplicates))
	m.dlqTotal.Add(int64(len(c.dlqReasons)))
}

// Close implements PartitionHandler: it stops deferred work from
// retrying (a batch whose deferred work still fails is then acknowledged
// with its error), waits for every pending acknowledgement, then releases
// the batch.
func (r *Runner) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.prev.done
	_ = CloseStages(r.cfg.Stages)
	if r.batch.Record != nil {
		r.batch.Record.Release()
		r.batch.Record = nil
	}
}
