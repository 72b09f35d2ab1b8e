package kafka

// Exactly-once mode (Config.TransactionalID).
//
// The Client is a kgo.GroupTransactSession that reads the input with
// read-committed isolation. It works in rounds: poll what the assigned
// partitions have fetched (topped up for up to Linger while a partition
// has less than a batch, at most BatchSize×MaxInFlight records per
// assigned partition), begin a transaction, run each partition's records
// through its handler in micro-batches of at most BatchSize (partitions in
// parallel goroutines, a partition's batches in order, each with
// PartitionHandler.Handle), then End the transaction with kgo.TryCommit,
// which commits the round's input offsets inside the same transaction as
// every record the handlers wrote through the Client's Sink (predictions,
// DLQ records, shadow outputs). A read-committed consumer sees a round's
// outputs exactly when the group sees its offsets. In this mode Write
// copies the records into the open transaction and returns at once (so a
// Runner's Handle does not wait for acknowledgements batch by batch); the
// round flushes them before it commits, and one failed record aborts the
// round and stops Run.
//
// A handler error aborts the round and stops Run, which returns it (as in
// the at-least-once mode); nothing of the round is visible to read-committed
// consumers and the next member to own the partitions reads its records
// again. With Config.Retry, a transient handler error (Redis unavailable)
// aborts the round too, but Run waits the policy's backoff and goes on: the
// aborted round's records are read again from the committed offsets. A
// round the session aborts by itself (the group rebalanced, the member was
// fenced) is rewound to the committed offsets and read again by this
// Client.
//
// The cluster going away does not stop Run either. A round whose records
// cannot be flushed in time is aborted and read again after a capped
// backoff. A transaction that cannot be begun or ended (the cluster did not
// answer in time) leaves the session in an unknown state: Run closes it and
// starts a new one with the same transactional id (resetSession), whose
// producer id initialization, retried while the cluster does not answer,
// aborts the open transaction, as a restarted process does; the new session
// reads from the committed offsets. Answers that no retry mends stop Run: a
// fenced transactional id (another process uses it), an authorization
// failure, a record the client could not write (an unknown topic, a record
// too large).
//
// A pipeline.Runner's Handle returns only once the batch's deferred work
// (pipeline.Batch.Defer: the entity aggregates written behind) is done, so
// a round commits after every store write its batches deferred.
//
// Stage side effects outside Kafka are not transactional: a re-read round
// runs the stages again. Dedupe stores each event's source position, so a
// re-read event is not its own duplicate; entity aggregates may count a
// re-read event twice; the label join's prediction cache is written again
// (same key). Pipeline counters (events in, predictions, DLQ) count
// processed batches, so an aborted round's batches are counted again.
//
// Rebalances are blocked while a round holds polled records
// (kgo.BlockRebalanceOnPoll) and run between rounds, so a handler is never
// closed while in use and nothing uncommitted remains when a partition is
// revoked. Shutdown (ctx done) lets the round in progress finish and
// commit, then the client leaves the group.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
)

// errEndTxn marks a failure to begin or end a transaction: the session is
// in an unknown state, and Run replaces it (resetSession).
var errEndTxn = errors.New("kafka: end transaction")

// errRoundAborted marks a round that the cluster failed (its records could
// not be written in time): it was aborted and rewound, and Run reads it
// again after a backoff.
var errRoundAborted = errors.New("kafka: round aborted")

// endTimeout bounds each step of ending one transaction (the flush; the
// offset commit and EndTxn), and a producer id initialization.
const endTimeout = 30 * time.Second

// Backoff between tries while the cluster fails rounds or the producer id
// initialization.
const (
	minClusterBackoff = 100 * time.Millisecond
	maxClusterBackoff = 5 * time.Second
)

// DefaultTransactionTimeout is Config.TransactionTimeout's default. A
// round must end within it (it is ample for a round of micro-batches); a
// transaction that a dead process left open holds read-committed
// consumers back for at most this long, unless a process with the same
// transactional id starts first and aborts it at once.
const DefaultTransactionTimeout = 15 * time.Second

// txnState is the exactly-once mode's part of a Client.
type txnState struct {
	// parts holds the assigned partitions' handlers; guarded by Client.mu.
	parts map[tp]*txnPartition
	// revoked is set by a revoke or loss since the last End: the session
	// then aborts the next End, so the round is rewound before any work.
	revoked atomic.Bool
	// committed and aborted count ended rounds; resets counts the
	// sessions Run had to build again.
	committed, aborted, resets atomic.Int64
	// opts build a session (newSession).
	opts []kgo.Opt
	// inRound is set between Begin and End; writes outside it fail.
	inRound atomic.Bool
	// produceErr is the round's first failed record, if any.
	produceMu  sync.Mutex
	produceErr error
}

// promise records a transactional record's failure for the round's End.
func (t *txnState) promise(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	t.produceMu.Lock()
	if t.produceErr == nil {
		t.produceErr = err
	}
	t.produceMu.Unlock()
}

// takeProduceErr returns and clears the round's first record failure.
func (t *txnState) takeProduceErr() error {
	t.produceMu.Lock()
	defer t.produceMu.Unlock()
	err := t.produceErr
	t.produceErr = nil
	return err
}

// txnPartition is one assigned partition in exactly-once mode.
type txnPartition struct {
	topic     string
	partition int32
	handler   pipeline.PartitionHandler
	lag       prometheus.Gauge
	msgs      []pipeline.Message
}

// roundPart is one partition's records in a round.
type roundPart struct {
	key           tp
	part          *txnPartition
	recs          []*kgo.Record
	highWatermark int64
}

// newTransactional finishes New for exactly-once mode; opts hold the
// consumer options shared with the at-least-once mode.
func (c *Client) newTransactional(opts []kgo.Opt) (*Client, error) {
	c.txn = &txnState{parts: map[tp]*txnPartition{}}
	opts = append(opts,
		kgo.TransactionalID(c.cfg.TransactionalID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(c.assignedTxn),
		kgo.OnPartitionsRevoked(c.revokedTxn),
		kgo.OnPartitionsLost(c.lostTxn),
		// Stable fetch offsets (KIP-447, kgo.RequireStableFetchOffsets) are
		// always on in this franz-go version: a member taking over a
		// partition waits for a pending transactional offset commit.
	)
	opts = append(opts, kgo.TransactionTimeout(c.transactionTimeout()))
	c.txn.opts = opts
	if err := c.newSession(); err != nil {
		return nil, err
	}
	return c, nil
}

// newSession builds the transactional session (and so c.cl) from the
// options New made.
func (c *Client) newSession() error {
	sess, err := kgo.NewGroupTransactSession(c.txn.opts...)
	if err != nil {
		return fmt.Errorf("kafka: new transactional session: %w", err)
	}
	c.sess, c.cl = sess, sess.Client()
	return nil
}

// initProducer initializes the transactional producer id, which fences an
// earlier producer with this transactional id and makes the broker abort
// its open transaction. While the cluster does not answer it retries with
// a capped backoff, on a new session each time; it returns an error the
// cluster answers that no retry mends (an authorization failure, a fenced
// id), and nil when ctx ends.
func (c *Client) initProducer(ctx context.Context) error {
	backoff := minClusterBackoff
	for attempt := 1; ; attempt++ {
		initCtx, cancel := context.WithTimeout(ctx, endTimeout)
		_, _, err := c.cl.ProducerID(initCtx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		var ke *kerr.Error
		if errors.As(err, &ke) && !ke.Retriable {
			return fmt.Errorf("kafka: init transactional producer %q: %w", c.cfg.TransactionalID, err)
		}
		if attempt == 1 {
			c.log.Warn("kafka: transactional producer not initialized; retrying while the cluster does not answer (not ready)",
				"transactional_id", c.cfg.TransactionalID, "err", err)
		}
		if !sleepCtx(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, maxClusterBackoff)
		c.sess.CloseAllowingRebalance()
		if err := c.newSession(); err != nil {
			return err
		}
	}
}

// resetSession replaces a session whose transaction could not be begun or
// ended (the cluster went away mid-round): it closes the partitions'
// handlers and the session, and starts a new one with the same
// transactional id, whose initialization aborts the old open transaction,
// as a restarted process does. The new session reads from the committed
// offsets, so nothing of the failed round is committed twice.
func (c *Client) resetSession(ctx context.Context) error {
	c.ready.Store(false)
	c.closeTxnParts(nil)
	c.sess.CloseAllowingRebalance()
	c.txn.revoked.Store(false)
	c.txn.inRound.Store(false)
	c.txn.takeProduceErr()
	c.txn.resets.Add(1)
	if err := c.newSession(); err != nil {
		return err
	}
	return c.initProducer(ctx)
}

// fatalTxnError reports whether err, End's answer to a round that began
// at began, is an answer of the cluster that a new session cannot mend:
// this producer was fenced by another process with its transactional id
// (which must stop, not fence it back), or is not authorized.
func (c *Client) fatalTxnError(err error, began time.Time) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable && !c.brokerEnded(err, began)
}

// brokerEnded reports whether err, a record's or End's answer in a round
// that began at began, says the broker ended the round's transaction on
// its own, which aborting it (and, failing that, a new session) mends:
//   - INVALID_PRODUCER_EPOCH, UNKNOWN_PRODUCER_ID,
//     INVALID_PRODUCER_ID_MAPPING, TRANSACTION_ABORTABLE: the broker
//     aborted the transaction (its timeout ran out while the cluster was
//     away, which bumps the producer's epoch) or lost the producer id;
//   - PRODUCER_FENCED when the round outlived the transaction timeout:
//     kfake, and any broker that does the same, answers a timed-out
//     transaction so. A fence that a quick round meets is another process
//     with this transactional id, and stays fatal.
func (c *Client) brokerEnded(err error, began time.Time) bool {
	if errors.Is(err, kerr.ProducerFenced) {
		return time.Since(began) >= c.transactionTimeout()
	}
	return errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.UnknownProducerID) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.TransactionAbortable)
}

// transactionTimeout is Config.TransactionTimeout or its default.
func (c *Client) transactionTimeout() time.Duration {
	return cmp.Or(c.cfg.TransactionTimeout, DefaultTransactionTimeout)
}

// sleepCtx waits d, or less when ctx ends first (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// TransactionalID returns the transactional id of an exactly-once Client,
// or "".
func (c *Client) TransactionalID() string { return c.cfg.TransactionalID }

// Transactions returns how many exactly-once rounds this Client committed
// and aborted (both 0 in at-least-once mode). Safe for concurrent use.
//
// A session whose transaction could not be ended (the cluster went away
// mid-round) is replaced by a new one: Sessions counts those.
func (c *Client) Transactions() (committed, aborted int64) {
	if c.txn == nil {
		return 0, 0
	}
	return c.txn.committed.Load(), c.txn.aborted.Load()
}

// SessionResets returns how many times Run replaced its transactional
// session because a transaction could not be begun or ended (0 in
// at-least-once mode). Safe for concurrent use.
func (c *Client) SessionResets() int64 {
	if c.txn == nil {
		return 0
	}
	return c.txn.resets.Load()
}

// runTransact is Run in exactly-once mode.
func (c *Client) runTransact(ctx context.Context, open func(topic string, partition int32) (pipeline.PartitionHandler, error)) error {
	// A round finishes after ctx ends, so handlers and End run on a context
	// that outlives it.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	c.mu.Lock()
	c.open, c.runCtx = open, workCtx
	c.mu.Unlock()
	c.startOnce.Do(func() { close(c.started) })

	// Initializing the producer id now fences an earlier process with this
	// transactional id and makes the broker abort its open transaction, so
	// a restart after a crash does not wait for the transaction timeout.
	if err := c.initProducer(ctx); err != nil || ctx.Err() != nil {
		c.closeTxnParts(nil)
		c.Close()
		return err // nil: stopped before the first round
	}

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
	retries := pipeline.Retries{Policy: c.cfg.Retry}
	clusterBackoff := minClusterBackoff
	for runErr == nil {
		round, closed := c.pollRound(pollCtx)
		if closed {
			break
		}
		if len(round) > 0 {
			if runErr = c.transact(workCtx, round); runErr == nil {
				retries.Succeeded()
				clusterBackoff = minClusterBackoff
			}
		}
		c.cl.AllowRebalance()
		switch {
		case errors.Is(runErr, errEndTxn):
			c.log.Warn("kafka: the transaction could not end; starting a new session (its records are read again)", "err", runErr)
			if runErr = c.resetSession(pollCtx); runErr == nil && pollCtx.Err() == nil {
				c.log.Info("kafka: new transactional session", "transactional_id", c.cfg.TransactionalID)
			}
			continue
		case errors.Is(runErr, errRoundAborted):
			c.log.Warn("kafka: round aborted; reading it again", "err", runErr, "after", clusterBackoff)
			runErr = nil
			sleepCtx(pollCtx, clusterBackoff)
			clusterBackoff = min(2*clusterBackoff, maxClusterBackoff)
			continue
		}
		if runErr != nil {
			// The round was aborted and rewound: its records come again.
			if retries.Tries() == 0 {
				c.log.Warn("round failed and was aborted; retrying it while the error is transient", "err", runErr)
			}
			if retries.Failed(pollCtx, nil, runErr) {
				runErr = nil
				continue
			}
			if pollCtx.Err() != nil && ctx.Err() != nil {
				runErr = nil // stopped while waiting: nothing of the round was committed
			}
		}
		if runErr == nil {
			select {
			case runErr = <-c.errs:
			default:
			}
		}
		if pollCtx.Err() != nil {
			break
		}
	}
	c.closeTxnParts(nil)
	if runErr == nil {
		select {
		case runErr = <-c.errs:
		default:
		}
	}
	c.Close()
	return runErr
}

// pollRound polls the next round's records, grouped by partition in
// fetch order. closed reports a closed client.
func (c *Client) pollRound(ctx context.Context) (round []roundPart, closed bool) {
	c.mu.Lock()
	assigned := len(c.txn.parts)
	c.mu.Unlock()
	limit := c.cfg.BatchSize * c.cfg.MaxInFlight * max(1, assigned)
	total := 0
	index := map[tp]int{}
	add := func(fs kgo.Fetches) {
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			c.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			k := tp{p.Topic, p.Partition}
			i, ok := index[k]
			if !ok {
				i = len(round)
				index[k] = i
				round = append(round, roundPart{key: k})
			}
			round[i].recs = append(round[i].recs, p.Records...)
			round[i].highWatermark = p.HighWatermark
			total += len(p.Records)
		})
	}
	fs := c.cl.PollRecords(ctx, limit)
	if fs.IsClientClosed() {
		return nil, true
	}
	add(fs)
	if total == 0 || c.cfg.Linger <= 0 {
		return round, false
	}
	short := func() bool {
		for i := range round {
			if len(round[i].recs) < c.cfg.BatchSize {
				return true
			}
		}
		return false
	}
	// Linger: top the round up while a partition has less than a batch.
	deadline := time.Now().Add(c.cfg.Linger)
	for total < limit && short() {
		lctx, cancel := context.WithDeadline(ctx, deadline)
		fs := c.cl.PollRecords(lctx, limit-total)
		cancel()
		if fs.IsClientClosed() {
			return nil, true
		}
		add(fs)
		if lctx.Err() != nil {
			break
		}
	}
	return round, false
}

// transact runs one round in a transaction: Begin, every partition's
// batches through its handler, End with a commit unless a handler failed.
// It returns a handler's error (after aborting) or a failure to end the
// transaction; a round the session aborted is rewound and returns nil.
func (c *Client) transact(ctx context.Context, round []roundPart) error {
	if c.txn.revoked.Swap(false) {
		// The group revoked partitions since the last End, so the session
		// would abort this round: rewind to the committed offsets now,
		// before any work, and read the records again next round.
		if err := c.sess.Begin(); err != nil {
			return fmt.Errorf("%w: begin: %w", errEndTxn, err)
		}
		c.cl.AllowRebalance() // End's heartbeat may wait for a rejoin
		endCtx, cancel := context.WithTimeout(ctx, endTimeout)
		defer cancel()
		if _, err := c.sess.End(endCtx, kgo.TryAbort); err != nil {
			return fmt.Errorf("%w: rewind after a revoke: %w", errEndTxn, err)
		}
		c.log.Info("partitions were revoked since the last transaction; round rewound to the committed offsets")
		return nil
	}
	c.mu.Lock()
	for i := range round {
		round[i].part = c.txn.parts[round[i].key]
	}
	c.mu.Unlock()
	for i := range round {
		if round[i].part == nil {
			// Never commit offsets past records no handler saw.
			return fmt.Errorf("kafka: records of %s/%d, which has no open handler", round[i].key.topic, round[i].key.partition)
		}
	}
	if err := c.sess.Begin(); err != nil {
		return fmt.Errorf("%w: begin: %w", errEndTxn, err)
	}
	began := time.Now()
	c.txn.takeProduceErr()
	c.txn.inRound.Store(true)
	roundCtx, cancelRound := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for i := range round {
		rp := &round[i]
		wg.Go(func() {
			if err := c.handleRound(roundCtx, rp); err != nil {
				errOnce.Do(func() { firstErr = err })
				cancelRound()
			}
		})
	}
	wg.Wait()
	cancelRound()
	// The handlers are done with the round: a rebalance may run now. It
	// makes End abort and rewind (the next round reads the records again),
	// and End's own heartbeat would wait for it: the group rejoins, for
	// one, after the broker restarted.
	c.cl.AllowRebalance()

	if firstErr == nil {
		// Every record must be written before the commit: flush, then
		// check the promises (End would flush too, but commit regardless).
		flushCtx, cancel := context.WithTimeout(ctx, endTimeout)
		err := c.cl.Flush(flushCtx)
		cancel()
		if err != nil {
			firstErr = fmt.Errorf("%w: flush the round: %w", errRoundAborted, err)
		} else if err := c.txn.takeProduceErr(); err != nil {
			if c.brokerEnded(err, began) {
				// The broker ended the transaction on its own (it timed
				// out while the cluster was away): the abort below
				// recovers the producer, or a new session does, and the
				// round is read again.
				firstErr = fmt.Errorf("%w: produce: %w", errRoundAborted, err)
			} else {
				// The client retried the record as long as it could: what
				// is left (an unknown topic, a record too large) does not
				// mend.
				firstErr = fmt.Errorf("kafka: produce: %w", err)
			}
		}
	}
	c.txn.inRound.Store(false)
	endCtx, cancel := context.WithTimeout(ctx, endTimeout)
	defer cancel()
	committed, err := c.sess.End(endCtx, kgo.TransactionEndTry(firstErr == nil))
	if err != nil {
		c.txn.aborted.Add(1)
		if c.fatalTxnError(err, began) {
			if firstErr != nil { // text only: nothing may make this look retryable
				return fmt.Errorf("kafka: end transaction: %w (the round had failed: %v)", err, firstErr)
			}
			return fmt.Errorf("kafka: end transaction: %w", err)
		}
		if firstErr != nil {
			// firstErr is text only here: a transient handler error must
			// not make a failed End look retryable.
			return fmt.Errorf("%w: %w (the round had failed: %v)", errEndTxn, err, firstErr)
		}
		return fmt.Errorf("%w: %w", errEndTxn, err)
	}
	if firstErr != nil {
		c.txn.aborted.Add(1)
		return firstErr
	}
	if !committed {
		c.txn.aborted.Add(1)
		c.log.Warn("transaction aborted by the session (the group rebalanced or this member was fenced); its records are read again")
		return nil
	}
	c.txn.committed.Add(1)
	for i := range round {
		rp := &round[i]
		last := rp.recs[len(rp.recs)-1]
		rp.part.lag.Set(float64(max(0, rp.highWatermark-last.Offset-1)))
	}
	return nil
}

// writeTxn is WriteAsync in exactly-once mode: it copies recs (the caller
// may reuse their bytes once done is called), produces them into the
// round's transaction and calls done at once. A record that fails makes
// the round abort at its End.
func (c *Client) writeTxn(ctx context.Context, recs []pipeline.OutRecord, done func(error)) {
	if !c.txn.inRound.Load() {
		done(errors.New("kafka: exactly-once write outside a transactional round"))
		return
	}
	size := 0
	for i := range recs {
		size += len(recs[i].Key) + len(recs[i].Value)
		for _, h := range recs[i].Headers {
			size += len(h.Value)
		}
	}
	arena := make([]byte, 0, size)
	clone := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(arena)
		arena = append(arena, b...)
		return arena[start:len(arena):len(arena)]
	}
	// The records outlive the handler's call: End sends what is buffered.
	ctx = context.WithoutCancel(ctx)
	krecs := make([]kgo.Record, len(recs))
	for i := range recs {
		r, kr := &recs[i], &krecs[i]
		kr.Topic, kr.Key, kr.Value = r.Topic, clone(r.Key), clone(r.Value)
		if len(r.Headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: clone(h.Value)}
			}
		}
		c.cl.Produce(ctx, kr, c.txn.promise)
	}
	done(nil)
}

// handleRound hands one partition's records of a round to its handler in
// micro-batches of at most BatchSize, synchronously and in order.
func (c *Client) handleRound(ctx context.Context, rp *roundPart) error {
	p := rp.part
	for recs := rp.recs; len(recs) > 0; {
		n := min(len(recs), c.cfg.BatchSize)
		batch := recs[:n]
		recs = recs[n:]
		p.msgs = p.msgs[:0]
		for _, r := range batch {
			p.msgs = append(p.msgs, message(r))
		}
		if err := p.handler.Handle(ctx, p.msgs); err != nil {
			return fmt.Errorf("partition %s/%d: %w", p.topic, p.partition, err)
		}
	}
	return nil
}

func (c *Client) assignedTxn(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.openAssigned(assigned, func(topic string, p int32, h pipeline.PartitionHandler) {
		c.txn.parts[tp{topic, p}] = &txnPartition{
			topic: topic, partition: p, handler: h,
			lag: c.lag.WithLabelValues(topic, strconv.Itoa(int(p))),
		}
	})
	c.log.Info("partitions assigned", "assigned", assigned, "transactional_id", c.cfg.TransactionalID)
}

// revokedTxn runs between rounds (rebalances are blocked during one):
// every round so far has ended, so there is nothing to commit.
func (c *Client) revokedTxn(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked) > 0 {
		c.txn.revoked.Store(true)
	}
	c.closeTxnParts(revoked)
	c.log.Info("partitions revoked", "revoked", revoked)
}

func (c *Client) lostTxn(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if len(lost) > 0 {
		c.txn.revoked.Store(true)
	}
	c.closeTxnParts(lost)
	c.log.Warn("partitions lost", "lost", lost)
}

// closeTxnParts closes the handlers of parts (every partition when nil).
func (c *Client) closeTxnParts(parts map[string][]int32) {
	var closing []*txnPartition
	c.mu.Lock()
	for k, p := range c.txn.parts {
		if parts != nil && !containsPartition(parts[k.topic], k.partition) {
			continue
		}
		delete(c.txn.parts, k)
		c.lag.DeleteLabelValues(k.topic, strconv.Itoa(int(k.partition)))
		closing = append(closing, p)
	}
	c.mu.Unlock()
	for _, p := range closing {
		p.handler.Close()
	}
}

func containsPartition(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
