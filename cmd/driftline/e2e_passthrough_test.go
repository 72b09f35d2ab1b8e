//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
)

// passthrough is the bare franz-go consume → produce baseline of the
// end-to-end benchmark: driftline's Kafka connector and runner with no
// stages, so that the ratio measures the stages and nothing else. It
// copies each input record's key and value to one output topic and is
// built like driftline's data plane (connectors/kafka.New, kafka.go's
// partitionWorker, pipeline.Runner):
//   - one franz-go client from kafka.ClientConfig.NewFranzClient, so with
//     the same client options as driftline's (snappy compression, the
//     spec's default), plus the ones connectors/kafka.New adds: producer
//     linger 2 ms, the sticky key partitioner, a consumer group reading
//     from the start with FetchMaxWait 500 ms, BlockRebalanceOnPoll, and
//     AutoCommitMarks with a 1 s commit interval;
//   - one poll loop hands each partition's fetched records to that
//     partition's goroutine through a queue of maxInFlight chunks (the
//     spec's batch.max_in_flight), which pushes back on the poll;
//   - each partition goroutine cuts micro-batches of up to batchSize
//     records, topping a short one up from its queue until linger has
//     passed since its first records were polled (the spec's batch.size
//     and batch.linger), produces the batch's records,
//     and goes on to the next batch while at most
//     pipeline.DefaultMaxPendingBatches (2) batches await their
//     acknowledgements;
//   - once every record of a batch is acknowledged, and the batch before
//     it was, its last offset is marked for commit (MarkCommitRecords);
//     marks are committed every second and at Stop, as driftline commits
//     them.
//
// Start it with startPassthrough; Acked and Ready are safe to call from
// any goroutine, Stop once.
type passthrough struct {
	cl                     *kgo.Client
	out                    string
	batchSize, maxInFlight int
	linger                 time.Duration
	acked                  atomic.Int64 // input records whose outputs are acknowledged
	ready                  atomic.Bool
	firstErr               atomic.Pointer[error]
	cancel                 context.CancelFunc
	done                   chan error
}

// startPassthrough starts copying topic in to topic out in consumer group
// group, with the batching of spec's batch block.
func startPassthrough(cc kafka.ClientConfig, spec *pipeline.Spec, in, out, group string) (*passthrough, error) {
	p := &passthrough{out: out, batchSize: spec.Batch.Size, maxInFlight: spec.Batch.MaxInFlight, linger: spec.Batch.Linger.D(), done: make(chan error, 1)}
	cl, err := cc.NewFranzClient(
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { p.ready.Store(true) }),
	)
	if err != nil {
		return nil, err
	}
	p.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.run(ctx) }()
	return p, nil
}

// Acked is how many input records have acknowledged outputs.
func (p *passthrough) Acked() int64 { return p.acked.Load() }

// Ready reports whether the group assigned the partitions.
func (p *passthrough) Ready() bool { return p.ready.Load() }

// Stop stops polling, waits for every batch's acknowledgement, commits the
// marked offsets and closes the client; it returns the first failure.
func (p *passthrough) Stop() error {
	p.cancel()
	return <-p.done
}

func (p *passthrough) fail(err error) {
	p.firstErr.CompareAndSwap(nil, &err)
	p.cancel()
}

func (p *passthrough) run(ctx context.Context) error {
	defer p.cl.CloseAllowingRebalance() // Close would wait for an AllowRebalance (BlockRebalanceOnPoll)
	workers := map[int32]*passthroughPartition{}
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		fetches := p.cl.PollRecords(ctx, 0)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.fail(fmt.Errorf("fetch %s/%d: %w", t, part, err))
			}
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			w := workers[fp.Partition]
			if w == nil {
				w = &passthroughPartition{p: p, queue: make(chan passthroughChunk, p.maxInFlight), pending: make(chan struct{}, pipeline.DefaultMaxPendingBatches)}
				workers[fp.Partition] = w
				wg.Add(1)
				go func() { defer wg.Done(); w.run(ctx) }()
			}
			select {
			case w.queue <- passthroughChunk{fp.Records, time.Now()}:
			case <-ctx.Done():
			}
		})
		p.cl.AllowRebalance()
	}
	for _, w := range workers {
		close(w.queue)
	}
	wg.Wait()
	commitCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.cl.CommitMarkedOffsets(commitCtx); err != nil {
		p.fail(fmt.Errorf("final commit: %w", err))
	}
	if err := p.firstErr.Load(); err != nil {
		return *err
	}
	return nil
}

// passthroughPartition is one partition's loop: micro-batches produced
// with up to cap(pending) awaiting acknowledgement, acknowledged in order.
type passthroughPartition struct {
	p       *passthrough
	queue   chan passthroughChunk
	pending chan struct{}
	prev    chan struct{} // closed once the previous batch is acknowledged
}

// passthroughChunk is one partition's records of a poll, and when they
// were polled.
type passthroughChunk struct {
	records []*kgo.Record
	polled  time.Time
}

func (w *passthroughPartition) run(ctx context.Context) {
	w.prev = make(chan struct{})
	close(w.prev)
	var pending []*kgo.Record
	var since, last time.Time // when the batch's first and the latest records were polled
	closed := false
	add := func(ch passthroughChunk, ok bool) {
		if !ok {
			closed = true
			return
		}
		pending = append(pending[:len(pending):len(pending)], ch.records...)
		last = ch.polled
	}
	for !closed || len(pending) > 0 {
		if len(pending) == 0 {
			ch, ok := <-w.queue
			if add(ch, ok); closed {
				break
			}
			since = ch.polled
		}
		// Top up as connectors/kafka does: what is queued, then until
		// linger has passed since the first records were polled.
	drain:
		for !closed && len(pending) < w.p.batchSize {
			select {
			case ch, ok := <-w.queue:
				add(ch, ok)
			default:
				break drain
			}
		}
		if wait := w.p.linger - time.Since(since); !closed && len(pending) < w.p.batchSize && wait > 0 {
			timer := time.NewTimer(wait)
		fill:
			for !closed && len(pending) < w.p.batchSize {
				select {
				case ch, ok := <-w.queue:
					add(ch, ok)
				case <-timer.C:
					break fill
				}
			}
			timer.Stop()
		}
		n := min(len(pending), w.p.batchSize)
		w.produce(ctx, pending[:n])
		pending = pending[n:]
		since = last
	}
	<-w.prev // every batch acknowledged
}

// produce sends one batch, after waiting for a free pending slot.
func (w *passthroughPartition) produce(ctx context.Context, batch []*kgo.Record) {
	w.pending <- struct{}{}
	prev, cur := w.prev, make(chan struct{})
	w.prev = cur
	last := batch[len(batch)-1]
	var remaining atomic.Int64
	var failed atomic.Bool
	remaining.Store(int64(len(batch)))
	finish := func() {
		<-prev
		if !failed.Load() { // a failed batch stays uncommitted
			w.p.cl.MarkCommitRecords(last)
			w.p.acked.Add(int64(len(batch)))
		}
		close(cur)
		<-w.pending
	}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Store(true)
			w.p.fail(fmt.Errorf("produce: %w", err))
		}
		if remaining.Add(-1) == 0 {
			go finish()
		}
	}
	// Produced on a context that outlives Stop's cancel: a batch that
	// started is finished, as driftline finishes its in-flight batch.
	pctx := context.WithoutCancel(ctx)
	for _, r := range batch {
		w.p.cl.Produce(pctx, &kgo.Record{Topic: w.p.out, Key: r.Key, Value: r.Value}, promise)
	}
}
