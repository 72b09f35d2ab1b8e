// Package pipeline holds driftline's core types (Message, Batch, Stage,
// Source, Sink), the spec and its validation, and the per-partition runner
// that pushes micro-batches through the stages and writes their outputs.
package pipeline

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Message is one input record, in the order its partition delivered it.
// Key, Value and Headers belong to the source; stages must copy what they
// keep.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp time.Time
	// Headers are the input record's headers, in order (nil when it has
	// none). The runner copies the allow-listed ones to the row's outputs
	// (RunnerConfig.PropagateHeaders).
	Headers []Header
}

// Header is one record header. Its layout is franz-go's RecordHeader's,
// so that connectors/kafka converts header slices without copying.
type Header struct {
	Key   string
	Value []byte
}

// Output record headers written by the pipeline.
const (
	HeaderReason       = "driftline.reason"
	HeaderStage        = "driftline.stage"
	HeaderSourceOffset = "driftline.source.offset"
	HeaderSourceTopic  = "driftline.source.topic"
	HeaderSourcePart   = "driftline.source.partition"
	HeaderKeyID        = "driftline.key_id"
)

// OutRecord is a record the pipeline produces. Its byte slices must stay
// valid until Sink.Write returns.
type OutRecord struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
	// row is the batch row the record answers, plus one; 0 for none (see
	// Batch.AppendOutput).
	row int
}

// RowState says what happened to a row of a batch.
type RowState uint8

const (
	// RowOK rows go on to the next stage.
	RowOK RowState = iota
	// RowRejected rows go to the DLQ with their Rejection.
	RowRejected
	// RowDuplicate rows were seen before and are dropped silently (counted).
	RowDuplicate
)

// Rejection says why and where a row was rejected. Reason is a short,
// bounded code (a metric label, e.g. "validate.range"); Detail names the
// field at fault and never holds the field's value.
type Rejection struct {
	Stage  string
	Reason string
	Detail string
}

// FeatureBlock holds the features of a batch's OK rows, in the row-major
// layout the models take: NumDense values and NumHashed hash indices per
// row. Row[j] is the batch row index that feature row j came from.
type FeatureBlock struct {
	NumDense  int
	NumHashed int
	Dense     []float32
	Hashed    []int32
	Row       []int
}

// Len is the number of feature rows.
func (f *FeatureBlock) Len() int { return len(f.Row) }

// Batch is one micro-batch of one partition. Row i of Record came from
// Messages[i]; rejected rows are null in Record. A batch is owned by one
// partition loop and reused between micro-batches.
//
// Per-batch buffers. When Pool is set, the stages take the batch's large
// buffers from it: the Arrow buffers of the Record's columns (built with
// memory.NewBufferWithAllocator(buf, b.Pool), so each one returns to the
// pool when the last reference to it is released) and the bytes the
// outputs point into (given to Hold, returned when the batch's Lease is
// released). The contract:
//   - Whoever runs the batch keeps its Lease (TakeLease) until nothing
//     reads the batch's outputs any more, then releases it. The Runner
//     does so when the batch is acknowledged, so a pending batch's bytes
//     are never reused; the Lease also holds a reference to the Record,
//     so the columns outlive the acknowledgement only when another holder
//     retained the Record (the lake's writer does).
//   - Anything that keeps a view of the Record's memory (a string from
//     array.String.Value, a slice of a column's values) past the stage's
//     Process must either Retain the Record until it is done with it, or
//     copy what it keeps: once the last reference is gone, the next batch
//     writes over it.
//
// With Pool nil (a test, a replay that runs the stages itself) every
// buffer is fresh memory that the collector frees, and Hold does nothing.
type Batch struct {
	Topic     string
	Partition int32
	Messages  []Message
	// Record is the columnar form of the rows, one column per schema field,
	// set by the decode stage.
	Record     arrow.RecordBatch
	State      []RowState
	Rejections []Rejection
	Features   FeatureBlock
	// Scores holds the champion's score of each feature row.
	Scores []float32
	// Outputs are the records to produce for this batch.
	Outputs []OutRecord
	// Pool, when set, lends the stages the batch's per-batch buffers (see
	// the type's doc). Reset keeps it.
	Pool *BufferPool

	// held are the buffers from Pool that the outputs point into (Hold).
	held [][]byte
	// cols is ReplaceColumns' scratch.
	cols []arrow.Array

	// deferring is set by the Runner: Defer queues work instead of
	// running it at once. deferred is the queued work (see Defer).
	deferring bool
	deferred  []DeferredFunc
}

// DeferredFunc is work a stage finishes after the batch's stages ran
// (see Batch.Defer). It may be called more than once.
type DeferredFunc func(ctx context.Context) error

// Defer hands fn, the rest of a stage's work on this batch (typically a
// write to a store, such as entity aggregates to Redis), to whoever runs
// the batch, so that the partition loop can go on with the next batch
// while fn's round trip is in flight. It returns fn's error when it ran fn
// at once, nil when it queued it.
//
// Contract, for a batch run by a Runner (which queues the work):
//   - fn runs on another goroutine, after every stage of the batch ran,
//     concurrently with the produce of the batch's outputs and with the
//     stages of the next batches.
//   - The batch is acknowledged (AsyncPartitionHandler's ack: its offsets
//     may be committed; Handle returns, so that an exactly-once round
//     commits its transaction) only once fn returned nil. A failed fn
//     fails the batch's ack and every later one.
//   - Order: a batch's deferred work runs one fn after another in the
//     order Defer was called, and only after every fn of the runner's
//     previous batch returned nil; so writes of consecutive batches to one
//     key land in batch order.
//   - fn must own what it reads: once the stages ran, the batch and its
//     buffers (the Record, Features, Messages) belong to the next batch.
//     fn must not touch the batch.
//   - fn may run more than once: with RunnerConfig.Retry, an error the
//     policy calls transient marks the dependency down in its Health (not
//     ready), waits its backoff and calls fn again, until fn succeeds or
//     the runner closes. So fn must be idempotent (write absolute values,
//     not increments).
//   - When a later stage fails the batch, its queued work is dropped and
//     never runs: the batch is processed again from its messages.
//   - Stages keep read-your-writes themselves: the next batch's stages run
//     before fn returned, so a stage that reads back what fn writes must
//     read it from memory until fn is done (see stages.Featurize).
//
// A batch whose stages are run by other code (a replay, a test calling
// Process) runs fn at once, synchronously, with ctx, as if the stage had
// done the work itself.
func (b *Batch) Defer(ctx context.Context, fn DeferredFunc) error {
	if !b.deferring {
		return fn(ctx)
	}
	b.deferred = append(b.deferred, fn)
	return nil
}

// Reset prepares the batch for new messages, keeping its allocations. It
// releases the batch's reference to its Record; buffers held (Hold) and
// not taken with TakeLease are left to the collector, never reused.
func (b *Batch) Reset(msgs []Message) {
	if b.Record != nil {
		b.Record.Release()
		b.Record = nil
	}
	clear(b.held)
	b.held = b.held[:0]
	b.Messages = msgs
	n := len(msgs)
	if n > 0 {
		b.Topic, b.Partition = msgs[0].Topic, msgs[0].Partition
	}
	b.State = resize(b.State, n)
	clear(b.State)
	b.Rejections = resize(b.Rejections, n)
	clear(b.Rejections)
	b.Features.Dense = b.Features.Dense[:0]
	b.Features.Hashed = b.Features.Hashed[:0]
	b.Features.Row = b.Features.Row[:0]
	b.Scores = b.Scores[:0]
	clear(b.Outputs)
	b.Outputs = b.Outputs[:0]
	clear(b.deferred)
	b.deferred = b.deferred[:0]
}

// Len is the number of rows.
func (b *Batch) Len() int { return len(b.Messages) }

// AppendOutput adds rec to the batch's outputs as an answer to row i (a
// prediction of it). The runner gives it row i's propagated input headers
// (RunnerConfig.PropagateHeaders), and when a record of row i is too large
// for its topic (RunnerConfig.RecordLimit) it drops the row's records and
// sends the row to the DLQ instead.
func (b *Batch) AppendOutput(i int, rec OutRecord) {
	rec.row = i + 1
	b.Outputs = append(b.Outputs, rec)
}

// OK reports whether row i is still live.
func (b *Batch) OK(i int) bool { return b.State[i] == RowOK }

// Reject sends row i to the DLQ. A row already rejected keeps its first
// rejection.
func (b *Batch) Reject(i int, stage, reason, detail string) {
	if b.State[i] != RowOK {
		return
	}
	b.State[i] = RowRejected
	b.Rejections[i] = Rejection{Stage: stage, Reason: reason, Detail: detail}
}

// MarkDuplicate drops row i as a duplicate.
func (b *Batch) MarkDuplicate(i int) {
	if b.State[i] == RowOK {
		b.State[i] = RowDuplicate
	}
}

// ReplaceColumn swaps column i of Record for arr, which the batch then owns.
func (b *Batch) ReplaceColumn(i int, arr arrow.Array) {
	b.ReplaceColumns([]int{i}, []arrow.Array{arr})
}

// ReplaceColumns swaps column idx[k] of Record for arrs[k], for every k,
// in one new record; the batch then owns the arrays.
func (b *Batch) ReplaceColumns(idx []int, arrs []arrow.Array) {
	cols := append(b.cols[:0], b.Record.Columns()...)
	for k, i := range idx {
		cols[i] = arrs[k]
	}
	rec := newRecord(b.Record.Schema(), cols, b.Record.NumRows())
	clear(cols)
	b.cols = cols
	for _, arr := range arrs {
		arr.Release()
	}
	b.Record.Release()
	b.Record = rec
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Stage is one step of the data plane. Process works on the batch's live
// rows (State RowOK) and records per-row failures with Batch.Reject; it
// returns an error only when the whole batch can't be processed (a store is
// down), and then the batch is retried or the pipeline stops. A Stage is
// used by one partition loop at a time; stages that share state across
// partitions must make it safe for concurrent use.
//
// A stage that holds a resource beyond memory (an ONNX Runtime session it
// opened) also implements io.Closer; whoever builds a chain closes it with
// CloseStages when the chain is done (Runner.Close does).
type Stage interface {
	Name() string
	Process(ctx context.Context, b *Batch) error
}

// CloseStages closes every stage of list that implements io.Closer, and
// returns their errors joined.
func CloseStages(list []Stage) error {
	var errs []error
	for _, st := range list {
		if c, ok := st.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Source delivers input messages per partition.
type Source interface {
	// Run consumes until ctx is done or a fatal error. It calls open once
	// per assigned partition and feeds the handler batches in offset order
	// from a single goroutine. Once Handle returns nil the batch's offsets
	// may be committed; an error from Handle stops Run and is returned.
	// Close is called after the last Handle, on revoke or shutdown.
	Run(ctx context.Context, open func(topic string, partition int32) (PartitionHandler, error)) error
}

// PartitionHandler processes one partition's batches.
type PartitionHandler interface {
	Handle(ctx context.Context, msgs []Message) error
	Close()
}

// Sink writes output records. Write returns once every record is
// acknowledged by the store, or with an error; it is safe for concurrent
// use by several partition loops.
type Sink interface {
	Write(ctx context.Context, recs []OutRecord) error
}

// AsyncSink is a Sink that can also write without waiting: WriteAsync
// sends recs and calls done exactly once, from any goroutine, when every
// record is acknowledged (nil) or one failed. The records and their bytes
// must stay untouched until done is called. done must not block.
type AsyncSink interface {
	Sink
	WriteAsync(ctx context.Context, recs []OutRecord, done func(error))
}

// AsyncPartitionHandler is a PartitionHandler that lets a partition loop
// start its next batch while the outputs of the previous ones are still
// being acknowledged. HandleAsync processes msgs and sends the outputs;
// once it returns, it no longer uses msgs' slice (the records' bytes it
// may keep). It calls ack exactly once per batch, in batch order, when the
// batch's outputs are acknowledged, or with an error; after one failed
// ack every later ack fails too, so no offset is committed past a failed
// batch. An error from HandleAsync itself means ack will not be called.
// Close waits for every pending ack.
type AsyncPartitionHandler interface {
	PartitionHandler
	HandleAsync(ctx context.Context, msgs []Message, ack func(error)) error
}
