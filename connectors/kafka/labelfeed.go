package kafka

// The learner-state writer's side of Kafka: it consumes every partition of
// the labels topic and publishes learner states with the label offsets
// they cover.
//
// At-least-once mode: the feed reads the partitions directly (no group
// membership: the learner lease, not the group, decides who reads), and a
// publish produces the state records, waits for their acknowledgement,
// and only then commits the offsets to the labels group (for lag
// monitoring; a writer resumes from the offsets in the records).
//
// Exactly-once mode (TransactionalID): the feed is the one member of the
// labels group through a kgo.GroupTransactSession, reading committed
// records; a publish is one transaction holding the state records and the
// offsets of every label polled since the last publish. Every writer of a
// model uses the same transactional id, so a new writer's producer
// initialization fences the previous one: its open transaction is aborted
// and it can commit nothing more. A transaction the session aborts (a
// rebalance, a failed offset commit) rewinds the feed to the committed
// offsets and Publish returns ErrPublishAborted.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
)

// ErrPublishAborted is Publish's error when the transaction was aborted and
// the feed rewound to the offsets of its last committed publish.
var ErrPublishAborted = errors.New("kafka: learner-state transaction aborted; the label feed rewound to its last commit")

// LabelFeedConfig configures a LabelFeed.
type LabelFeedConfig struct {
	// Client is how to reach the brokers. Required.
	Client ClientConfig
	// Topic is the labels topic, Group the consumer group whose offsets
	// record the writer's progress, StateTopic the learner-state topic.
	// Required.
	Topic, Group, StateTopic string
	// TransactionalID, when set, makes the feed exactly-once (see the file
	// comment). Every writer of one model must use the same id.
	TransactionalID string
	// SessionTimeout is the labels group's session timeout in exactly-once
	// mode (default pipeline.DefaultSessionTimeout): a new writer's join
	// waits at most this long for a dead writer to leave the group.
	SessionTimeout time.Duration
	// MaxPoll is the most records one Poll returns (default 4096).
	MaxPoll int
	// MaxRecordBytes bounds a produced record (default 64 MiB).
	MaxRecordBytes int
	// DeliveryTimeout bounds a publish's produce in at-least-once mode
	// (default 10s): a record not acknowledged by then fails the publish.
	DeliveryTimeout time.Duration
	// TransactionTimeout is the broker's bound on an open transaction
	// (default DefaultTransactionTimeout).
	TransactionTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Validate checks the config; its errors name the field at fault.
func (c *LabelFeedConfig) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return err
	}
	if c.Topic == "" || c.Group == "" || c.StateTopic == "" {
		return errors.New("kafka: label feed: topic, group and state topic are required")
	}
	if c.MaxPoll < 0 || c.MaxRecordBytes < 0 || c.DeliveryTimeout < 0 || c.SessionTimeout < 0 {
		return errors.New("kafka: label feed: negative limit")
	}
	return nil
}

// LabelFeed is a learner-state writer's consumer of the labels topic and
// producer of state records. Poll and Publish are used by one goroutine;
// Positions may be read concurrently. Close is idempotent.
type LabelFeed struct {
	cfg  LabelFeedConfig
	log  *slog.Logger
	cl   *kgo.Client
	sess *kgo.GroupTransactSession // exactly-once mode
	adm  *kadm.Client

	mu        sync.Mutex
	positions map[int32]int64 // next offset per partition, after what Poll returned
	committed map[int32]int64 // positions of the last committed publish (or Start)
	// refused are the records Write keeps for the next publish's
	// transaction (exactly-once mode).
	refused   []*kgo.Record
	started   chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

// NewLabelFeed builds the feed. In exactly-once mode it joins the labels
// group and initializes the transactional producer, which fences the
// previous writer; it consumes nothing before Start.
func NewLabelFeed(ctx context.Context, cfg LabelFeedConfig) (*LabelFeed, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.MaxPoll = cmp.Or(cfg.MaxPoll, 4096)
	cfg.MaxRecordBytes = cmp.Or(cfg.MaxRecordBytes, 64<<20)
	f := &LabelFeed{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), positions: map[int32]int64{}, committed: map[int32]int64{}, started: make(chan struct{})}
	produce := []kgo.Opt{
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxRecordBytes)),
		kgo.ProducerLinger(0),
		kgo.FetchMaxPartitionBytes(8 << 20),
	}
	if cfg.TransactionalID == "" {
		cl, err := cfg.Client.NewFranzClient(append(produce, kgo.RecordDeliveryTimeout(cmp.Or(cfg.DeliveryTimeout, 10*time.Second)))...)
		if err != nil {
			return nil, err
		}
		f.cl, f.adm = cl, kadm.NewClient(cl)
		return f, nil
	}
	opts, err := cfg.Client.clientOpts()
	if err != nil {
		return nil, err
	}
	st := cmp.Or(cfg.SessionTimeout, pipeline.DefaultSessionTimeout)
	opts = append(opts, produce...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(st),
		kgo.HeartbeatInterval(st/10),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.AdjustFetchOffsetsFn(f.adjustOffsets),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(cmp.Or(cfg.TransactionTimeout, DefaultTransactionTimeout)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: label feed: new transactional session: %w", err)
	}
	f.sess, f.cl = sess, sess.Client()
	f.adm = kadm.NewClient(f.cl)
	if _, _, err := f.cl.ProducerID(ctx); err != nil {
		f.Close()
		return nil, fmt.Errorf("kafka: label feed: init transactional producer %q: %w", cfg.TransactionalID, err)
	}
	return f, nil
}

// adjustOffsets starts each assigned partition at the positions of the
// last commit (Start's, then each publish's), where known; elsewhere at
// the group's committed offset. It waits for Start.
func (f *LabelFeed) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	select {
	case <-f.started:
	case <-ctx.Done():
		return offsets, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range offsets[f.cfg.Topic] {
		if at, ok := f.committed[p]; ok {
			offsets[f.cfg.Topic][p] = kgo.NewOffset().At(at).WithEpoch(-1)
			f.positions[p] = at
		}
	}
	return offsets, nil
}

// Start starts consuming at from: the next offset per partition; a
// partition absent from from starts at the labels group's committed
// offset, else at the log start.
func (f *LabelFeed) Start(ctx context.Context, from map[int32]int64) error {
	f.mu.Lock()
	f.committed = maps.Clone(from)
	if f.committed == nil {
		f.committed = map[int32]int64{}
	}
	f.positions = maps.Clone(f.committed)
	f.mu.Unlock()
	if f.sess != nil {
		f.startOnce.Do(func() { close(f.started) })
		return nil
	}
	parts, err := f.partitions(ctx)
	if err != nil {
		return err
	}
	group, err := f.adm.FetchOffsets(ctx, f.cfg.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		group, err = nil, nil // no offsets committed yet
	}
	if err != nil {
		return fmt.Errorf("kafka: label feed: committed offsets of group %s: %w", f.cfg.Group, err)
	}
	starts, err := f.adm.ListStartOffsets(ctx, f.cfg.Topic)
	if err != nil {
		return fmt.Errorf("kafka: label feed: start offsets of %s: %w", f.cfg.Topic, err)
	}
	assign := map[int32]kgo.Offset{}
	f.mu.Lock()
	for _, p := range parts {
		at, ok := f.committed[p]
		if !ok {
			if o, found := group.Lookup(f.cfg.Topic, p); found && o.Err == nil && o.At >= 0 {
				at, ok = o.At, true
			} else if s, found := starts.Lookup(f.cfg.Topic, p); found && s.Err == nil {
				at, ok = s.Offset, true
			}
		}
		if !ok {
			f.mu.Unlock()
			return fmt.Errorf("kafka: label feed: no start offset for %s partition %d", f.cfg.Topic, p)
		}
		f.positions[p], f.committed[p] = at, at
		assign[p] = kgo.NewOffset().At(at)
	}
	f.mu.Unlock()
	f.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.cfg.Topic: assign})
	f.startOnce.Do(func() { close(f.started) })
	return nil
}

// partitions lists the labels topic's partitions.
func (f *LabelFeed) partitions(ctx context.Context) ([]int32, error) {
	td, err := f.adm.ListTopics(ctx, f.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: label feed: list topic %s: %w", f.cfg.Topic, err)
	}
	t, ok := td[f.cfg.Topic]
	if !ok || t.Err != nil || len(t.Partitions) == 0 {
		return nil, fmt.Errorf("kafka: label feed: topic %s does not exist", f.cfg.Topic)
	}
	return t.Partitions.Numbers(), nil
}

// Poll returns the label records fetched next (at most n, and at most
// MaxPoll), waiting until some arrive or ctx ends (then none and no
// error).
func (f *LabelFeed) Poll(ctx context.Context, n int) ([]pipeline.Message, error) {
	n = min(max(n, 1), f.cfg.MaxPoll)
	var fs kgo.Fetches
	if f.sess != nil {
		f.sess.AllowRebalance()
		fs = f.sess.PollRecords(ctx, n)
	} else {
		fs = f.cl.PollRecords(ctx, n)
	}
	if fs.IsClientClosed() {
		return nil, errors.New("kafka: label feed closed")
	}
	var ferr error
	fs.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		ferr = fmt.Errorf("kafka: label feed: topic %s partition %d: %w", t, p, err)
	})
	var out []pipeline.Message
	f.mu.Lock()
	fs.EachRecord(func(r *kgo.Record) {
		out = append(out, pipeline.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp})
		f.positions[r.Partition] = r.Offset + 1
	})
	f.mu.Unlock()
	if len(out) > 0 {
		return out, nil
	}
	return nil, ferr
}

// Positions returns the next offset per partition after what Poll
// returned.
func (f *LabelFeed) Positions() map[int32]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.positions)
}

// Publish writes recs to the state topic and commits the positions Poll
// reached: at-least-once, it returns once every record is acknowledged,
// then commits the offsets to the labels group (a failed commit is not an
// error: the records carry the offsets); exactly-once, records and
// offsets commit in one transaction, or Publish returns
// ErrPublishAborted after the session rewound the feed.
func (f *LabelFeed) Publish(ctx context.Context, recs []pipeline.OutRecord) error {
	krecs := make([]*kgo.Record, len(recs))
	for i := range recs {
		krecs[i] = &kgo.Record{Topic: f.cfg.StateTopic, Key: recs[i].Key, Value: recs[i].Value}
	}
	f.mu.Lock()
	pos := maps.Clone(f.positions)
	krecs = append(krecs, f.refused...)
	f.refused = nil
	f.mu.Unlock()
	if f.sess == nil {
		if err := f.cl.ProduceSync(ctx, krecs...).FirstErr(); err != nil {
			return fmt.Errorf("kafka: publish learner state to %s: %w", f.cfg.StateTopic, err)
		}
		f.mu.Lock()
		f.committed = pos
		f.mu.Unlock()
		offs := kadm.Offsets{}
		for p, at := range pos {
			offs.AddOffset(f.cfg.Topic, p, at, -1)
		}
		resp, err := f.adm.CommitOffsets(ctx, f.cfg.Group, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			f.log.Warn("label feed: commit the labels group's offsets (the published states carry them)", "group", f.cfg.Group, "err", err)
		}
		return nil
	}
	if err := f.sess.Begin(); err != nil {
		return fmt.Errorf("kafka: begin learner-state transaction: %w", err)
	}
	var produceErr error
	var wg sync.WaitGroup
	var errMu sync.Mutex
	for _, r := range krecs {
		wg.Add(1)
		f.sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				produceErr = cmp.Or(produceErr, err)
				errMu.Unlock()
			}
			wg.Done()
		})
	}
	flushErr := f.cl.Flush(ctx)
	wg.Wait()
	errMu.Lock()
	produceErr = cmp.Or(produceErr, flushErr)
	errMu.Unlock()
	committed, err := f.sess.End(ctx, kgo.TransactionEndTry(produceErr == nil))
	if err != nil {
		return errors.Join(produceErr, fmt.Errorf("kafka: end learner-state transaction: %w", err))
	}
	if produceErr != nil {
		f.rewind()
		return fmt.Errorf("kafka: publish learner state to %s: %w", f.cfg.StateTopic, produceErr)
	}
	if !committed {
		f.rewind()
		return ErrPublishAborted
	}
	f.mu.Lock()
	f.committed = pos
	f.mu.Unlock()
	return nil
}

// rewind sets the positions back to the last commit's, as the session did
// with the consumer.
func (f *LabelFeed) rewind() {
	f.mu.Lock()
	f.positions = maps.Clone(f.committed)
	f.refused = nil // the labels they came from are polled again
	f.mu.Unlock()
}

// Write implements pipeline.Sink for the label records the join refuses
// (their DLQ records). At-least-once, it produces them and returns once
// they are acknowledged, before the offsets that cover them can be
// committed. Exactly-once, it keeps them for the next Publish, whose
// transaction holds them with the state records and the offsets that
// cover them; a rewind drops them, as the labels they came from are polled
// and refused again.
func (f *LabelFeed) Write(ctx context.Context, recs []pipeline.OutRecord) error {
	krecs := make([]*kgo.Record, len(recs))
	for i := range recs {
		krecs[i] = &kgo.Record{Topic: recs[i].Topic, Key: recs[i].Key, Value: recs[i].Value, Headers: kgoHeaders(recs[i].Headers)}
	}
	if f.sess == nil {
		if err := f.cl.ProduceSync(ctx, krecs...).FirstErr(); err != nil {
			return fmt.Errorf("kafka: label feed: write refused labels: %w", err)
		}
		return nil
	}
	f.mu.Lock()
	f.refused = append(f.refused, krecs...)
	f.mu.Unlock()
	return nil
}

// Close closes the client (leaving the group); it is idempotent.
func (f *LabelFeed) Close() {
	f.closeOnce.Do(func() {
		f.startOnce.Do(func() { close(f.started) })
		if f.sess != nil {
			// Rebalances are blocked between polls: a next writer may be
			// joining the group now.
			f.sess.CloseAllowingRebalance()
			return
		}
		f.cl.Close()
	})
}
