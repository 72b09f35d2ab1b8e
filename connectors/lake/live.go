package lake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/driftline/driftline/pipeline"
)

// LabelsDir is the labels table's directory under a live lake's root: a
// lake of its own (manifest, hour partitions) whose rows are joined labels.
// Its leading underscore keeps dataset readers of the root's hive
// partitions (pyarrow.dataset, Spark) from taking it for event files.
const LabelsDir = "_labels"

// ColEventID is the labels table's event id column (string): the spec's id
// field of the event the label belongs to, as the events table holds it.
const ColEventID = "event_id"

// LiveConfig configures a Live lake.
type LiveConfig struct {
	// Events configures the events table, at Events.Root; the labels table
	// is at Root/LabelsDir with the same codec and roll settings.
	// CommitTogether is forced on for both.
	Events Config
	// RetentionMaxAge and RetentionMaxBytes bound each table (see
	// Writer.Expire); 0 is no bound. RetentionEvery is how often the bounds
	// are applied (default 1 minute).
	RetentionMaxAge   time.Duration
	RetentionMaxBytes int64
	RetentionEvery    time.Duration
	// QueueBatches bounds the batches queued for the writer goroutine
	// (default 64); Append blocks while it is full (backpressure).
	QueueBatches int
}

// Live is the lake `driftline run` writes: the events each partition loop
// scores and the labels the label plane joins, written by one goroutine
// (Run) off the partition loops' critical path.
//
// Durability contract. Append copies a batch's rows (it retains the
// batch's immutable Arrow record; the Parquet encode happens in Run), and
// AppendLabel buffers a joined label. Hold runs a callback once every row
// and every label appended before the call is in a committed file
// (fsynced, renamed, in its table's manifest). Both Kafka consumers hold
// each batch's offset mark on it (kafka.Config.CommitGate): the data
// plane's, so an input offset is committed only after its event (and the
// early labels its batch joined) is durable; the label plane's, so a
// labels-topic offset is committed only after the labels its batch joined
// are. Files roll by size and age (Config.MaxBytes, MaxAge); every roll
// commits every open file of a table as one manifest group
// (Config.CommitTogether), so a commit is a cut: every row appended to
// that table before it is durable. Flush commits both tables now and runs
// every held callback.
//
// After a crash, the records whose offsets were not committed are
// delivered again. Run skips each event row at an input offset the events
// table already holds (Writer.LastOffset, from its manifest), and each
// label row whose source (LabelRow.Source: the label record's position,
// or the event's for a label joined when its event was scored) the labels
// table holds, so no event or label is written twice, and none whose
// offset is committed is missing.
//
// Append, AppendLabel, Hold and Flush are safe for concurrent use; Run is
// called once, Close after Run returned.
type Live struct {
	cfg            LiveConfig
	events, labels *Writer
	queue          chan liveItem
	// mu orders Append's count and send, so that queued counts items in
	// the order Run receives them; Hold reads queued without it (a full
	// queue must not stall the acknowledgements that call Hold).
	mu     sync.Mutex
	queued atomic.Int64
	failed atomic.Pointer[error]
	pool   sync.Pool

	holdMu sync.Mutex
	holds  []heldMark
	// durableItems is the count of items (from the start, in queue order)
	// whose rows are durable; guarded by holdMu.
	durableItems int64

	// Run's state.
	processed int64
	pending   []itemWrites
	last      map[SourceKey]int64
	idB       *array.StringBuilder
	labelSch  *arrow.Schema
	dropped   atomic.Int64
	// done is closed when Run returns.
	done chan struct{}
	// labelBuf holds the labels AppendLabel added since Run last wrote
	// them; labelWake wakes Run when it is long.
	labelMu    sync.Mutex
	labelBuf   []LabelRow
	labelSpare []LabelRow
	labelWake  chan struct{}
	// labelDrained is closed (and replaced) when Run takes a full
	// buffer, waking the AppendLabel calls that wait; guarded by labelMu.
	labelDrained chan struct{}
	// labelsIn counts the labels appended (from the start); Run's
	// labelsTaken those it took from the buffer, labelPending the labels
	// table's writes behind them, and durableLabels (guarded by holdMu)
	// how many are durable.
	labelsIn      atomic.Int64
	labelsTaken   int64
	labelPending  []itemWrites
	durableLabels int64
	// labelLast is, per source partition, the greatest offset of a label
	// row written (skipped ones included): Run's.
	labelLast map[SourceKey]int64
}

// liveItem is one queued piece of work: an event batch or a flush
// request.
type liveItem struct {
	ev    *eventRows
	flush chan error
}

// eventRows are the rows of one appended batch.
type eventRows struct {
	rec               arrow.RecordBatch
	rows              Rows
	offsets, recTimes []int64
	sel               []int
	scores            []float32
	versions          []string
}

type heldMark struct {
	// items and labels are the counts appended before the Hold.
	items, labels int64
	release       func()
}

type itemWrites struct{ item, writes int64 }

// LabelRow is one joined label for the labels table.
type LabelRow struct {
	// EventID is the labelled event's id.
	EventID string
	Label   float32
	// Score and ModelVersion are the prediction the label was joined to.
	Score        float32
	ModelVersion string
	// At is when the label was joined: the row's event time.
	At time.Time
	// Source is the position of the record the label came from: the
	// label record's on the labels topic, or, for a label joined when its
	// event was scored (it came first), the event's on the input topic. A
	// label whose source offset is at or below the greatest one the
	// labels table holds for that partition is not written again (the
	// label plane delivers a partition's labels in order, the data plane
	// its events). Topic "" is no source: never skipped.
	Source SourceOffset
}

// SourceOffset is a record's position on an input partition.
type SourceOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}

// OpenLive opens both tables (see New: a crashed writer's temporary files
// and torn manifest group are cleaned up).
func OpenLive(cfg LiveConfig) (*Live, error) {
	if cfg.QueueBatches == 0 {
		cfg.QueueBatches = 64
	}
	if cfg.RetentionEvery == 0 {
		cfg.RetentionEvery = time.Minute
	}
	switch {
	case cfg.QueueBatches < 1:
		return nil, errors.New("lake: queue batches must be at least 1")
	case cfg.RetentionMaxAge < 0 || cfg.RetentionMaxBytes < 0 || cfg.RetentionEvery < 0:
		return nil, errors.New("lake: retention bounds must not be negative")
	}
	cfg.Events.CommitTogether = true
	lc := cfg.Events
	lc.Root = filepath.Join(cfg.Events.Root, LabelsDir)
	lc.TimeColumn, lc.ForbiddenColumns = "", nil
	events, err := New(cfg.Events)
	if err != nil {
		return nil, err
	}
	labels, err := New(lc)
	if err != nil {
		events.Close()
		return nil, err
	}
	l := &Live{cfg: cfg, events: events, labels: labels, queue: make(chan liveItem, cfg.QueueBatches), done: make(chan struct{}), labelWake: make(chan struct{}, 1), labelDrained: make(chan struct{}),
		last: map[SourceKey]int64{}, idB: array.NewStringBuilder(memory.DefaultAllocator),
		labelSch: arrow.NewSchema([]arrow.Field{{Name: ColEventID, Type: arrow.BinaryTypes.String}}, nil)}
	for k, o := range events.last {
		l.last[k] = o
	}
	l.labelLast = maps.Clone(labels.last)
	return l, nil
}

func (l *Live) err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Live) fail(err error) {
	l.failed.CompareAndSwap(nil, &err)
}

// Append queues the rows of b that are RowOK and scored (b.Features.Row),
// with b.Scores and modelVersion (see Writer.WriteBatch), for Run to
// write. versions, when set, holds each feature row's model version
// instead (a canary's rows). It is the hot path's whole cost: it retains
// b.Record (Arrow arrays are immutable) and copies the rows' indices,
// scores, versions, offsets and record times. It blocks while the queue is full, until ctx ends. It
// returns the writer's failure, if any.
func (l *Live) Append(ctx context.Context, b *pipeline.Batch, modelVersion string, versions []string) error {
	if err := l.err(); err != nil {
		return err
	}
	rows := b.Features.Row
	if len(b.Scores) != len(rows) || versions != nil && len(versions) != len(rows) {
		return fmt.Errorf("lake: batch has %d feature rows but %d scores and %d versions", len(rows), len(b.Scores), len(versions))
	}
	ev, _ := l.pool.Get().(*eventRows)
	if ev == nil {
		ev = &eventRows{}
	}
	ev.sel, ev.scores, ev.offsets, ev.recTimes, ev.versions = ev.sel[:0], ev.scores[:0], ev.offsets[:0], ev.recTimes[:0], ev.versions[:0]
	for j, i := range rows {
		if b.State[i] != pipeline.RowOK {
			continue
		}
		m := &b.Messages[i]
		t := noTime
		if !m.Timestamp.IsZero() {
			t = m.Timestamp.UnixMicro()
		}
		ev.sel = append(ev.sel, i)
		ev.scores = append(ev.scores, b.Scores[j])
		ev.offsets = append(ev.offsets, m.Offset)
		ev.recTimes = append(ev.recTimes, t)
		if versions != nil {
			ev.versions = append(ev.versions, versions[j])
		}
	}
	if len(ev.sel) > 0 {
		b.Record.Retain()
		ev.rec = b.Record
	}
	ev.rows = Rows{Sel: ev.sel, Scores: ev.scores, ModelVersion: modelVersion, Topic: b.Topic, Partition: b.Partition,
		Offsets: ev.offsets, RecordTimes: ev.recTimes}
	if versions != nil {
		ev.rows.Versions = ev.versions
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.queue <- liveItem{ev: ev}:
		l.queued.Add(1)
		return nil
	case <-l.done:
		l.recycle(ev)
		return l.stopped()
	case <-ctx.Done():
		l.recycle(ev)
		return ctx.Err()
	}
}

// AppendLabel adds a joined label for the labels table. It appends to a
// buffer under a mutex; Run writes the buffer every chunk of labelChunk
// labels, at every age check and at every flush. While maxBufferedLabels
// labels wait (Run lags), it blocks until Run takes them: backpressure on
// the label plane, not unbounded memory. Once Run has returned it never
// blocks (what it adds is not written).
func (l *Live) AppendLabel(r LabelRow) {
	l.labelMu.Lock()
	for len(l.labelBuf) >= maxBufferedLabels {
		drained := l.labelDrained
		l.labelMu.Unlock()
		l.wakeForLabels()
		select {
		case <-drained:
		case <-l.done:
		}
		l.labelMu.Lock()
		if l.stoppedRunning() {
			break
		}
	}
	l.labelBuf = append(l.labelBuf, r)
	n := len(l.labelBuf)
	l.labelsIn.Add(1)
	l.labelMu.Unlock()
	if n >= labelChunk {
		l.wakeForLabels()
	}
}

// wakeForLabels wakes Run to write the buffered labels.
func (l *Live) wakeForLabels() {
	select {
	case l.labelWake <- struct{}{}:
	default:
	}
}

// stoppedRunning reports whether Run has returned.
func (l *Live) stoppedRunning() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// labelChunk is how many buffered labels wake Run to write them, and
// maxBufferedLabels how many make AppendLabel wait for Run.
const (
	labelChunk        = 4096
	maxBufferedLabels = 16 * labelChunk
)

// Hold runs release, on Run's goroutine, once every batch and every label
// appended before the call is durable; at once when all already are.
// Callbacks run in the order of their Holds. A failed writer never runs
// them.
func (l *Live) Hold(release func()) {
	h := heldMark{items: l.queued.Load(), labels: l.labelsIn.Load(), release: release}
	l.holdMu.Lock()
	if l.covers(h) && len(l.holds) == 0 {
		l.holdMu.Unlock()
		release()
		return
	}
	l.holds = append(l.holds, h)
	l.holdMu.Unlock()
}

// covers reports whether what h waits for is durable; holdMu held.
func (l *Live) covers(h heldMark) bool {
	return l.durableItems >= h.items && l.durableLabels >= h.labels
}

// Flush commits every open file of both tables after the batches queued
// before it, and runs every callback held until then, before it returns.
func (l *Live) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case l.queue <- liveItem{flush: done}:
	case <-l.done:
		return l.stopped()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-l.done:
		return l.stopped()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopped is Flush's error once Run has returned.
func (l *Live) stopped() error {
	if err := l.err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: the live lake stopped", ErrClosed)
}

// Skipped is the number of rows Run did not write because the lake held
// their offsets already (events delivered again after a crash or retry).
func (l *Live) Skipped() int64 { return l.dropped.Load() }

// Close closes both tables (committing their open files unless the lake
// failed). Call it after Run returned.
func (l *Live) Close() error {
	err := l.events.Close()
	if lerr := l.labels.Close(); err == nil {
		err = lerr
	}
	l.idB.Release()
	return err
}
