// Package kafka is driftline's franz-go connector: a consumer-group Source
// with one goroutine per assigned partition, and a Sink that returns once
// every record is acknowledged. One kgo.Client carries both.
//
// By default delivery is at-least-once: a partition's offsets are committed
// after its outputs are acknowledged. With Config.TransactionalID the
// Client is exactly-once instead: one Kafka transaction covers a round's
// outputs and its input offsets (see transact.go).
package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/driftline/driftline/pipeline"
)

// Config configures a Client.
type Config struct {
	// Client is how to reach the brokers (addresses, TLS, SASL,
	// compression). Required.
	Client ClientConfig
	// Group and Topics turn on consuming; leave them empty for a
	// produce-only client.
	Group  string
	Topics []string
	// SessionTimeout bounds how long a dead member holds its partitions.
	SessionTimeout time.Duration
	// BatchSize is the most records handed to a partition handler at once.
	BatchSize int
	// Linger is how long a partition loop waits to fill a batch, counted
	// from the fetch of the batch's first records: records that waited in
	// the partition's queue while the previous batch was handled have
	// lingered already, and go with whatever else is queued at once.
	Linger time.Duration
	// MaxInFlight is the most fetched chunks queued per partition.
	MaxInFlight int
	// CommitInterval is how often processed offsets are committed (default
	// 1s); it bounds how much a crash makes the group re-read.
	CommitInterval time.Duration
	// TransactionalID, when set, switches the consumer to exactly-once
	// mode: each poll round's outputs and its input offsets are committed
	// in one Kafka transaction (kgo.GroupTransactSession), and the input
	// is read with read-committed isolation. It needs Group. Every running
	// instance needs its own id (two processes with one id fence each
	// other); keeping it stable across an instance's restarts lets the
	// restarted process abort its predecessor's open transaction at once
	// instead of waiting TransactionTimeout. Needs Kafka 2.5+ (KIP-447).
	TransactionalID string
	// TransactionTimeout is how long the broker keeps a transaction open
	// before aborting it (default DefaultTransactionTimeout): a round must
	// end within it, and read-committed consumers of the outputs wait at
	// most this long behind a transaction that a dead process left open.
	TransactionTimeout time.Duration
	// Retry, when set, makes a partition loop whose handler failed with an
	// error Retry classifies as transient (Redis is unavailable) pause and
	// hand the handler the same batch again until it succeeds, instead of
	// stopping Run; in exactly-once mode the round is aborted and read
	// again. Nil: a handler error stops Run.
	Retry *pipeline.RetryPolicy
	// CommitGate, when set, holds each batch's offset mark (at-least-once
	// mode only) until the gate releases it: the handler's side effects
	// outside Kafka (the live lake's files) are durable. Marks are held,
	// not batches: the partition loop goes on. Before the final commit
	// and the commit on a revoke, Run flushes the gate.
	CommitGate CommitGate
	// OnCommitted, when set, is called after each successful autocommit
	// (at-least-once mode only), once per partition the commit covered,
	// with the partition's committed offset (the next one to consume):
	// what is below it will not be delivered again, even after a crash.
	// It runs on franz-go's commit goroutine and must not block.
	OnCommitted func(topic string, partition int32, next int64)
	// Registerer receives the consumer lag gauge; required when consuming.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return err
	}
	if (c.Group == "") != (len(c.Topics) == 0) {
		return errors.New("kafka: group and topics go together")
	}
	if c.Group != "" {
		if c.BatchSize < 1 {
			return errors.New("kafka: batch size must be at least 1")
		}
		if c.MaxInFlight < 1 {
			return errors.New("kafka: max in flight must be at least 1")
		}
		if c.Registerer == nil {
			return errors.New("kafka: a consumer needs a metrics registerer")
		}
	}
	if c.TransactionalID != "" && c.CommitGate != nil {
		return errors.New("kafka: a commit gate (the live lake) cannot be combined with a transactional id (kafka.exactly_once)")
	}
	if c.TransactionalID != "" && c.OnCommitted != nil {
		return errors.New("kafka: an on-committed callback needs at-least-once mode, not a transactional id (kafka.exactly_once)")
	}
	if c.TransactionalID != "" && c.Group == "" {
		return errors.New("kafka: a transactional id needs a consumer group (exactly-once consuming)")
	}
	if c.TransactionTimeout < 0 {
		return errors.New("kafka: transaction timeout must not be negative")
	}
	if c.Retry != nil {
		if err := c.Retry.Validate(); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
	}
	return nil
}

// CommitGate defers offset marks until what the handlers wrote elsewhere is
// durable (lake.Live implements it).
type CommitGate interface {
	// Hold calls release once the effects of every batch handled before
	// the call are durable; release may run on another goroutine.
	Hold(release func())
	// Flush makes every effect durable now and runs every held release
	// before it returns.
	Flush(ctx context.Context) error
}

// Client is a franz-go client that is a pipeline.Source (when configured
// with a group) and a pipeline.Sink. Run may be called once; Write is safe
// for concurrent use. Close is idempotent.
type Client struct {
	cfg Config
	cl  *kgo.Client
	// sess is set in exactly-once mode; cl is then its client.
	sess  *kgo.GroupTransactSession
	txn   *txnState
	log   *slog.Logger
	lag   *prometheus.GaugeVec
	ready atomic.Bool
	// limits are the output topics' record limits (LearnRecordLimits).
	limits recordLimits

	mu      sync.Mutex // guards workers and open between callbacks and Run
	workers map[tp]*partitionWorker
	open    func(topic string, partition int32) (pipeline.PartitionHandler, error)
	runCtx  context.Context
	errs    chan error
	// failed is closed by the first fail, to wake Run's poll.
	failed     chan struct{}
	failedOnce sync.Once
	// started is closed when Run has set open (or on Close): the group may
	// assign partitions as soon as the client exists, before Run.
	started   chan struct{}
	startOnce sync.Once

	closeOnce sync.Once
}

type tp struct {
	topic     string
	partition int32
}

// New validates cfg and connects.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger, workers: map[tp]*partitionWorker{}, errs: make(chan error, 1), failed: make(chan struct{}), started: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	opts, err := cfg.Client.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerBatchMaxBytesFn(c.limits.batchMaxBytes),
	)
	if cfg.Group != "" {
		lag, err := lagGauge(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		c.lag = lag
		st := cfg.SessionTimeout
		if st == 0 {
			st = pipeline.DefaultSessionTimeout
		}
		opts = append(opts,
			kgo.ConsumerGroup(cfg.Group),
			kgo.ConsumeTopics(cfg.Topics...),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(st),
			kgo.HeartbeatInterval(st/10),
			kgo.BlockRebalanceOnPoll(),
			kgo.FetchMaxWait(500*time.Millisecond),
		)
		if cfg.TransactionalID != "" {
			return c.newTransactional(opts)
		}
		opts = append(opts,
			kgo.AutoCommitMarks(),
			kgo.AutoCommitInterval(cmp.Or(cfg.CommitInterval, time.Second)),
			kgo.OnPartitionsAssigned(c.assigned),
			kgo.OnPartitionsRevoked(c.revoked),
			kgo.OnPartitionsLost(c.lost),
		)
		if cfg.OnCommitted != nil {
			opts = append(opts, kgo.AutoCommitCallback(c.committed))
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	c.cl = cl
	return c, nil
}

// lagGauge registers the consumer lag gauge on reg, or returns the one
// another Client already registered there.
func lagGauge(reg prometheus.Registerer) (*prometheus.GaugeVec, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "driftline_kafka_consumer_lag_records",
		Help: "Records between the last processed offset and the high watermark, per assigned partition.",
	}, []string{"topic", "partition"})
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("kafka: register lag gauge: %w", err)
	}
	return g, nil
}

// Kgo returns the underlying franz-go client, for admin calls.
func (c *Client) Kgo() *kgo.Client { return c.cl }

// Ready reports whether the consumer has joined its group and received an
// assignment (possibly empty).
func (c *Client) Ready() bool { return c.ready.Load() }

// Run implements pipeline.Source. On return — ctx done, or a handler
// failed — every partition loop has finished its in-flight batch, the
// offsets of the batches whose outputs were acknowledged are committed, and
// the client has left the group. With Config.Retry, a handler that fails
// on a transient error pauses its partition loop, which retries the same
// batch (backpressure then stops the fetching of that partition) and never
// marks an offset past it; a shutdown during the pause leaves the batch
// uncommitted. In exactly-once mode Run works in
// transactional rounds instead (see transact.go): on return the round in
// progress has committed or aborted, and handlers are used with Handle
// only, never HandleAsync.
func (c *Client) Run(ctx context.Context, open func(topic string, partition int32) (pipeline.PartitionHandler, error)) error {
	if c.cfg.Group == "" {
		return errors.New("kafka: run needs a consumer group")
	}
	if c.sess != nil {
		return c.runTransact(ctx, open)
	}
	// Partition loops finish their batch after ctx ends, so they run on a
	// context that outlives it; Close stops them for good.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	c.mu.Lock()
	c.open, c.runCtx = open, workCtx
	c.mu.Unlock()
	c.startOnce.Do(func() { close(c.started) })

	// A failed handler must stop a poll that waits for records that may
	// never come.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		select {
		case <-c.failed:
			stopPoll()
		case <-pollCtx.Done():
		}
	}()

	var runErr error
	for runErr == nil {
		fetches := c.cl.PollRecords(pollCtx, 0)
		if fetches.IsClientClosed() || pollCtx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			c.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		c.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			// Once Run stops, nothing more is queued: a chunk dropped while
			// a later one of its partition went on would be skipped by the
			// later one's commit.
			if len(p.Records) == 0 || pollCtx.Err() != nil {
				return
			}
			if w := c.workers[tp{p.Topic, p.Partition}]; w != nil {
				w.enqueue(pollCtx, chunk{records: p.Records, highWatermark: p.HighWatermark, polled: time.Now()})
			}
		})
		c.mu.Unlock()
		c.cl.AllowRebalance()
		select {
		case runErr = <-c.errs:
		default:
		}
	}
	c.mu.Lock()
	all := make(map[string][]int32)
	for k := range c.workers {
		all[k.topic] = append(all[k.topic], k.partition)
	}
	c.mu.Unlock()
	c.stopWorkers(all)
	commitCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.flushGate(commitCtx); err != nil && runErr == nil {
		runErr = err
	}
	if err := c.cl.CommitMarkedOffsets(commitCtx); err != nil && runErr == nil {
		runErr = fmt.Errorf("kafka: final commit: %w", err)
	}
	if runErr == nil {
		select {
		case runErr = <-c.errs:
		default:
		}
	}
	c.Close()
	return runErr
}

func (c *Client) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.openAssigned(assigned, func(topic string, p int32, h pipeline.PartitionHandler) {
		w := newPartitionWorker(c, topic, p, h)
		c.workers[tp{topic, p}] = w
		go w.run(c.runCtx)
	})
	c.log.Info("partitions assigned", "assigned", assigned)
}

// openAssigned opens a handler for every newly assigned partition and
// hands it to keep, holding c.mu; a partition that does not open fails the
// client. It marks the client ready. It does nothing once the client was
// closed before Run.
func (c *Client) openAssigned(assigned map[string][]int32, keep func(topic string, p int32, h pipeline.PartitionHandler)) {
	<-c.started
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		return // closed before Run
	}
	for topic, parts := range assigned {
		for _, p := range parts {
			h, err := c.open(topic, p)
			if err != nil {
				c.fail(fmt.Errorf("open partition %s/%d: %w", topic, p, err))
				continue
			}
			keep(topic, p, h)
		}
	}
	c.ready.Store(true)
}

func (c *Client) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.stopWorkers(revoked)
	if err := c.flushGate(ctx); err != nil {
		c.log.Warn("commit gate flush on revoke failed; the revoked partitions' held offsets stay uncommitted", "err", err)
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("commit on revoke failed", "err", err)
	}
	c.log.Info("partitions revoked", "revoked", revoked)
}

func (c *Client) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.stopWorkers(lost)
	c.log.Warn("partitions lost", "lost", lost)
}

// stopWorkers stops the partitions' loops and waits for their in-flight
// batches to finish.
func (c *Client) stopWorkers(parts map[string][]int32) {
	var stopping []*partitionWorker
	c.mu.Lock()
	for topic, ps := range parts {
		for _, p := range ps {
			if w := c.workers[tp{topic, p}]; w != nil {
				delete(c.workers, tp{topic, p})
				close(w.quit)
				stopping = append(stopping, w)
				c.lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
			}
		}
	}
	c.mu.Unlock()
	for _, w := range stopping {
		<-w.done
	}
}

// committed is the autocommit's callback when Config.OnCommitted is set:
// it logs a failed commit, as franz-go's default does, and reports each
// partition the broker accepted.
func (c *Client) committed(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.log.Warn("autocommit failed", "err", err)
		}
		return
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				c.log.Warn("autocommit of a partition failed", "topic", rt.Topic, "partition", rp.Partition, "err", kerr.ErrorForCode(rp.ErrorCode))
				continue
			}
			if next, ok := committedOffset(req, rt.Topic, rp.Partition); ok {
				c.cfg.OnCommitted(rt.Topic, rp.Partition, next)
			}
		}
	}
}

// committedOffset is the offset req commits for a partition.
func committedOffset(req *kmsg.OffsetCommitRequest, topic string, partition int32) (int64, bool) {
	for _, t := range req.Topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.Partition == partition {
				return p.Offset, true
			}
		}
	}
	return 0, false
}

// flushGate flushes Config.CommitGate, releasing its held marks.
func (c *Client) flushGate(ctx context.Context) error {
	if c.cfg.CommitGate == nil {
		return nil
	}
	if err := c.cfg.CommitGate.Flush(ctx); err != nil {
		return fmt.Errorf("kafka: commit gate: %w", err)
	}
	return nil
}

func (c *Client) fail(err error) {
	select {
	case c.errs <- err:
	default:
	}
	c.failedOnce.Do(func() { close(c.failed) })
}

// Write implements pipeline.Sink: it produces every record and returns
// once all are acknowledged, or with the first error. In exactly-once mode
// the records join the round's open transaction instead and Write returns
// at once (a Write outside a round fails): the round's commit is their
// acknowledgement, and a failed record aborts the round.
func (c *Client) Write(ctx context.Context, recs []pipeline.OutRecord) error {
	errc := make(chan error, 1)
	c.WriteAsync(ctx, recs, func(err error) { errc <- err })
	return <-errc
}

// WriteAsync implements pipeline.AsyncSink: it produces every record and
// calls done once, from a franz-go promise goroutine, when all are
// acknowledged or with the first error.
func (c *Client) WriteAsync(ctx context.Context, recs []pipeline.OutRecord, done func(error)) {
	if len(recs) == 0 {
		done(nil)
		return
	}
	if c.txn != nil {
		c.writeTxn(ctx, recs, done)
		return
	}
	pb, _ := produceBatches.Get().(*produceBatch)
	if pb == nil {
		pb = &produceBatch{}
		pb.promise = pb.acked
	}
	pb.done = done
	pb.remaining.Store(int64(len(recs)))
	pb.recs = slices.Grow(pb.recs[:0], len(recs))[:len(recs)]
	krecs := pb.recs
	for i := range recs {
		r := &recs[i]
		kr := &krecs[i]
		*kr = kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: kgoHeaders(r.Headers)}
		// The last promise may recycle pb: nothing reads krecs after it.
		c.cl.Produce(ctx, kr, pb.promise)
	}
}

// produceBatch is one WriteAsync's records and acknowledgement count. It
// is recycled (produceBatches) once its last record's promise has run:
// franz-go reads a record no more once its promise is called, so a batch's
// kgo.Record slice and promise serve the next batches without allocating.
type produceBatch struct {
	recs      []kgo.Record
	remaining atomic.Int64
	mu        sync.Mutex
	firstErr  error
	done      func(error)
	promise   func(*kgo.Record, error) // acked, bound once
}

// produceBatches recycles produceBatch values between WriteAsync calls.
var produceBatches sync.Pool

// acked is every record's promise: the last one calls done with the first
// error and recycles the batch.
func (pb *produceBatch) acked(_ *kgo.Record, err error) {
	if err != nil {
		pb.mu.Lock()
		if pb.firstErr == nil {
			pb.firstErr = err
		}
		pb.mu.Unlock()
	}
	if pb.remaining.Add(-1) != 0 {
		return
	}
	// Every other promise ran its decrement after its write of firstErr.
	done, first := pb.done, pb.firstErr
	clear(pb.recs) // drop the caller's bytes
	pb.done, pb.firstErr = nil, nil
	produceBatches.Put(pb)
	if first != nil {
		done(fmt.Errorf("kafka: produce: %w", first))
		return
	}
	done(nil)
}

// Close closes the client; it is idempotent.
func (c *Client) Close() {
	c.startOnce.Do(func() { close(c.started) })
	c.closeOnce.Do(func() { c.cl.CloseAllowingRebalance() })
}

type chunk struct {
	records       []*kgo.Record
	highWatermark int64
	polled        time.Time // when the poll loop had the records
}

// partitionWorker is one partition's loop: it cuts queued chunks into
// micro-batches, hands them to the handler and marks their offsets for
// commit once the handler (and so the outputs) succeeded.
type partitionWorker struct {
	c         *Client
	topic     string
	partition int32
	handler   pipeline.PartitionHandler
	queue     chan chunk
	quit      chan struct{}
	done      chan struct{}
	msgs      []pipeline.Message
	lag       prometheus.Gauge
	retries   pipeline.Retries
}

func newPartitionWorker(c *Client, topic string, p int32, h pipeline.PartitionHandler) *partitionWorker {
	return &partitionWorker{
		c: c, topic: topic, partition: p, handler: h,
		queue: make(chan chunk, c.cfg.MaxInFlight),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		lag:   c.lag.WithLabelValues(topic, strconv.Itoa(int(p))),
	}
}

// enqueue blocks while the partition's queue is full: backpressure reaches
// the poll loop, which stops fetching, so memory stays bounded. It gives
// up when the worker quits or ctx (Run's poll) ends: a worker that retries
// a batch while a dependency is down may hold its queue full for long.
func (w *partitionWorker) enqueue(ctx context.Context, ch chunk) {
	select {
	case w.queue <- ch:
	case <-w.quit:
	case <-ctx.Done():
	}
}

func (w *partitionWorker) run(ctx context.Context) {
	defer close(w.done)
	defer w.handler.Close()
	var pending []*kgo.Record
	var hw int64
	// since is when the pending batch's first records were polled, last
	// when the latest queued ones were.
	var since, last time.Time
	for {
		if len(pending) == 0 {
			select {
			case <-w.quit:
				return
			case ch := <-w.queue:
				pending, hw, since, last = ch.records, ch.highWatermark, ch.polled, ch.polled
			}
		}
		if len(pending) < w.c.cfg.BatchSize && w.c.cfg.Linger > 0 {
			pending, hw, last = w.topUp(pending, hw, since, last)
		}
		n := min(len(pending), w.c.cfg.BatchSize)
		batch := pending[:n]
		pending = pending[n:]
		// What is left came with the latest chunks: counted from their
		// poll, it lingers no longer than they may.
		since = last
		w.msgs = w.msgs[:0]
		for _, r := range batch {
			w.msgs = append(w.msgs, message(r))
		}
		if err := w.handleRetrying(ctx, batch, hw); err != nil {
			select {
			case <-w.quit:
				return // stopped while the batch waited for a retry: it stays uncommitted
			default:
			}
			w.c.fail(fmt.Errorf("partition %s/%d: %w", w.topic, w.partition, err))
			// Keep the poll loop from blocking on this queue until Run stops us.
			for {
				select {
				case <-w.queue:
				case <-w.quit:
					return
				}
			}
		}
		select {
		case <-w.quit:
			return
		default:
		}
	}
}

// topUp fills a short batch from the queue: with what is queued already,
// then with what comes until Linger has passed since the batch's first
// records were polled (since). It returns the batch, the latest chunk's
// high watermark and when that chunk was polled.
func (w *partitionWorker) topUp(pending []*kgo.Record, hw int64, since, last time.Time) ([]*kgo.Record, int64, time.Time) {
	size := w.c.cfg.BatchSize
	add := func(ch chunk) {
		pending = append(pending[:len(pending):len(pending)], ch.records...)
		hw, last = ch.highWatermark, ch.polled
	}
queued:
	for len(pending) < size {
		select {
		case ch := <-w.queue:
			add(ch)
		default:
			break queued
		}
	}
	wait := w.c.cfg.Linger - time.Since(since)
	if len(pending) >= size || wait <= 0 {
		return pending, hw, last
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(pending) < size {
		select {
		case ch := <-w.queue:
			add(ch)
		case <-timer.C:
			return pending, hw, last
		case <-w.quit:
			return pending, hw, last
		}
	}
	return pending, hw, last
}

// handleRetrying is handle, tried again under Config.Retry while the
// handler fails with a transient error.
func (w *partitionWorker) handleRetrying(ctx context.Context, batch []*kgo.Record, hw int64) error {
	w.retries.Policy = w.c.cfg.Retry
	for {
		err := w.handle(ctx, batch, hw)
		if err == nil {
			w.retries.Succeeded()
			return nil
		}
		if w.retries.Tries() == 0 {
			w.c.log.Warn("batch failed; retrying it while the error is transient", "topic", w.topic, "partition", w.partition,
				"offset", batch[0].Offset, "records", len(batch), "err", err)
		}
		if !w.retries.Failed(ctx, w.quit, err) {
			return err
		}
	}
}

// handle hands one micro-batch (already in w.msgs) to the handler and marks
// its last offset for commit once its outputs are acknowledged: at once for
// a plain handler, from the ack callback for an asynchronous one, which may
// come after the next batch started.
func (w *partitionWorker) handle(ctx context.Context, batch []*kgo.Record, hw int64) error {
	last := batch[len(batch)-1]
	markDone := func() {
		w.lag.Set(float64(max(0, hw-last.Offset-1)))
		if g := w.c.cfg.CommitGate; g != nil {
			g.Hold(func() { w.c.cl.MarkCommitRecords(last) })
			return
		}
		w.c.cl.MarkCommitRecords(last)
	}
	ah, ok := w.handler.(pipeline.AsyncPartitionHandler)
	if !ok {
		if err := w.handler.Handle(ctx, w.msgs); err != nil {
			return err
		}
		markDone()
		return nil
	}
	return ah.HandleAsync(ctx, w.msgs, func(err error) {
		if err != nil {
			select {
			case <-w.quit:
				// Stopped (revoke, shutdown) while the batch's deferred
				// work was retrying a dependency: it stays uncommitted.
				return
			default:
			}
			w.c.fail(fmt.Errorf("partition %s/%d: %w", w.topic, w.partition, err))
			return
		}
		markDone()
	})
}
