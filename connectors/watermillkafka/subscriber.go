package watermillkafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
)

const (
	// DefaultNackResendDelay is the wait before a Nacked message is delivered again when
	// SubscriberConfig.NackResendDelay is zero.
	DefaultNackResendDelay = 100 * time.Millisecond
	// commitTimeout bounds the offset commit after an Ack. The commit does not stop when
	// the subscription ends, so that the last Ack before a Close is not redelivered.
	commitTimeout = 10 * time.Second
	// fetchErrorBackoff is the pause after a poll that returned only errors, so that a
	// persistent error (say, an unauthorized group) does not spin the poll loop.
	fetchErrorBackoff = 250 * time.Millisecond
	// initializeTimeout bounds SubscribeInitialize.
	initializeTimeout = 30 * time.Second
)

// ErrSubscriberClosed is returned by Subscribe and SubscribeInitialize after Close.
var ErrSubscriberClosed = errors.New("watermillkafka: subscriber closed")

// StartOffset says where a subscription starts reading a partition that has no committed
// offset: always without a consumer group, and for a new group with one.
type StartOffset int

const (
	// FromStart reads from the earliest retained record (the default).
	FromStart StartOffset = iota
	// FromEnd reads only records produced after the subscription starts.
	FromEnd
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Client is how to reach the brokers: addresses, client id, TLS and SASL.
	// Required (Client.Brokers at least).
	Client kafka.ClientConfig
	// ConsumerGroup is the Kafka consumer group every subscription joins. With a group,
	// each Ack commits the message's offset, and subscriptions of the group, in this
	// process or another, share the partitions of a topic. Empty means no group: every
	// subscription reads all partitions from InitialOffset and commits nothing.
	ConsumerGroup string
	// InitialOffset is where reading starts without a committed offset. Default
	// FromStart.
	InitialOffset StartOffset
	// NackResendDelay is the wait before a Nacked message is delivered again. Zero means
	// DefaultNackResendDelay; a negative value means no wait.
	NackResendDelay time.Duration
	// TopicPartitions is the partition count of topics that SubscribeInitialize creates.
	// Default 1, the only count under which a topic's messages keep one total order.
	TopicPartitions int32
	// TopicReplicationFactor is the replication factor of topics that
	// SubscribeInitialize creates. Zero means the broker's default.
	TopicReplicationFactor int16
	// SessionTimeout is how long the group waits for a silent member before it gives
	// the member's partitions to others; HeartbeatInterval is how often a member
	// reports, and so how soon it learns of a rebalance. Zero means franz-go's
	// defaults (45 s and 3 s). With a consumer group only.
	SessionTimeout, HeartbeatInterval time.Duration
	// FetchMaxWait is the longest the broker holds a fetch while it waits for
	// records. Zero means franz-go's default (5 s).
	FetchMaxWait time.Duration
	// Logger receives fetch and commit errors. Default watermill.NopLogger.
	Logger watermill.LoggerAdapter
}

// Validate reports whether the config can build a Subscriber.
func (c SubscriberConfig) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return fmt.Errorf("watermillkafka: subscriber config: %w", err)
	}
	if c.SessionTimeout < 0 || c.HeartbeatInterval < 0 || c.FetchMaxWait < 0 {
		return fmt.Errorf("watermillkafka: subscriber config: negative session timeout %s, heartbeat interval %s or fetch max wait %s", c.SessionTimeout, c.HeartbeatInterval, c.FetchMaxWait)
	}
	if c.InitialOffset != FromStart && c.InitialOffset != FromEnd {
		return fmt.Errorf("watermillkafka: subscriber config: unknown initial offset %d", c.InitialOffset)
	}
	if c.TopicPartitions < 0 {
		return fmt.Errorf("watermillkafka: subscriber config: negative topic partitions %d", c.TopicPartitions)
	}
	if c.TopicReplicationFactor < 0 {
		return fmt.Errorf("watermillkafka: subscriber config: negative replication factor %d", c.TopicReplicationFactor)
	}
	return nil
}

// Subscriber is a watermill message.Subscriber over franz-go. Every Subscribe call owns
// its own client (and, with a consumer group, its own group member), which it closes
// when the subscription ends. It is safe for concurrent use.
//
// Delivery is at-least-once. Within a partition, a message is delivered only after the
// one before it was Acked; a Nacked message is delivered again, as a new
// *message.Message with the same UUID, payload and metadata, after NackResendDelay.
// Partitions are delivered concurrently, so a topic with several partitions has no
// total order. With a consumer group, a rebalance that revokes a partition stops its
// delivery and waits for an Ack's commit in progress, but not for a message in flight:
// that message's context is canceled, its Ack no longer commits, and the partition's new
// owner delivers it again. A slow handler thus never holds up a rebalance of the group.
type Subscriber struct {
	cfg   SubscriberConfig
	admin *kgo.Client

	ctx    context.Context // canceled by Close; parent of every subscription's context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and wg.Add against Close
	closed bool
	wg     sync.WaitGroup // one per running subscription
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber validates cfg and returns a Subscriber. It does not contact the brokers.
// Close it to end its subscriptions and release its clients.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NackResendDelay == 0 {
		cfg.NackResendDelay = DefaultNackResendDelay
	}
	if cfg.TopicPartitions == 0 {
		cfg.TopicPartitions = 1
	}
	if cfg.TopicReplicationFactor == 0 {
		cfg.TopicReplicationFactor = -1
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	admin, err := cfg.Client.NewFranzClient()
	if err != nil {
		return nil, fmt.Errorf("watermillkafka: new admin client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{cfg: cfg, admin: admin, ctx: ctx, cancel: cancel}, nil
}

// Subscribe starts consuming topic and returns the channel of its messages. The channel
// is unbuffered; each message must be Acked or Nacked before the next of its partition
// comes. The channel is closed when ctx is done or Close is called; a message then not
// yet Acked is not committed and will be delivered again to a later subscription of the
// same group. The context of each delivered message is canceled once it is Acked or
// Nacked, and when the subscription ends.
//
// Subscribe does not create topic; see SubscribeInitialize.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("watermillkafka: subscribe: empty topic")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()

	out := make(chan *message.Message)
	c := &consumption{
		out:    out,
		group:  s.cfg.ConsumerGroup != "",
		delay:  s.cfg.NackResendDelay,
		logger: s.cfg.Logger.With(watermill.LogFields{"topic": topic, "consumer_group": s.cfg.ConsumerGroup}),
		owned:  map[topicPartition]bool{},
		active: map[topicPartition]*worker{},
	}
	cl, err := s.cfg.Client.NewFranzClient(s.clientOptions(topic, c)...)
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("watermillkafka: subscribe to %q: new client: %w", topic, err)
	}
	subCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	c.cl = cl
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cl.Close()
		defer stop()
		defer cancel()
		c.run(subCtx)
	}()
	return out, nil
}

func (s *Subscriber) clientOptions(topic string, c *consumption) []kgo.Opt {
	start := kgo.NewOffset().AtStart()
	if s.cfg.InitialOffset == FromEnd {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
	}
	if s.cfg.FetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(s.cfg.FetchMaxWait))
	}
	if s.cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(s.cfg.SessionTimeout))
	}
	if s.cfg.HeartbeatInterval > 0 {
		opts = append(opts, kgo.HeartbeatInterval(s.cfg.HeartbeatInterval))
	}
	if s.cfg.ConsumerGroup != "" {
		opts = append(opts,
			kgo.ConsumerGroup(s.cfg.ConsumerGroup),
			kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(c.assigned),
			kgo.OnPartitionsRevoked(c.revoked),
			kgo.OnPartitionsLost(c.revoked),
		)
	}
	return opts
}

// SubscribeInitialize creates topic with TopicPartitions partitions, unless it exists,
// and waits until every partition has a leader. It takes at most 30 s.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrSubscriberClosed
	}
	ctx, cancel := context.WithTimeout(s.ctx, initializeTimeout)
	defer cancel()
	adm := kadm.NewClient(s.admin)
	resp, err := adm.CreateTopic(ctx, s.cfg.TopicPartitions, s.cfg.TopicReplicationFactor, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("watermillkafka: create topic %q: %w", topic, err)
	}
	for {
		ready, err := topicReady(ctx, adm, topic)
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("watermillkafka: topic %q has no leaders: %w", topic, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicReady(ctx context.Context, adm *kadm.Client, topic string) (bool, error) {
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return false, err
	}
	td, ok := topics[topic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return false, td.Err
	}
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return false, p.Err
		}
	}
	return true, nil
}

// Close ends every subscription, closing their channels, and waits until their clients
// have left their groups. Messages delivered and not yet Acked are not committed.
// Later Subscribe calls return ErrSubscriberClosed. Close is idempotent and always
// returns nil.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.admin.Close()
	return nil
}

// consumption is one subscription: a client consuming one topic, delivering to out.
type consumption struct {
	cl     *kgo.Client
	out    chan<- *message.Message
	group  bool
	delay  time.Duration
	logger watermill.LoggerAdapter

	mu     sync.Mutex
	owned  map[topicPartition]bool    // with a group: the partitions assigned to this member
	active map[topicPartition]*worker // the partitions of the current poll still delivering
}

type topicPartition struct {
	topic     string
	partition int32
}

// worker delivers one partition's records of one poll.
type worker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// run polls and delivers until ctx is done. Each poll's partitions are delivered
// concurrently, each in order; the next poll waits for all of them.
func (c *consumption) run(ctx context.Context) {
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		failed := false
		fs.EachError(func(topic string, partition int32, err error) {
			failed = true
			c.logger.Error("fetch failed", err, watermill.LogFields{"partition": partition})
		})
		var wg sync.WaitGroup
		c.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			tp := topicPartition{p.Topic, p.Partition}
			// A partition revoked between the poll and here is not ours to deliver.
			if len(p.Records) == 0 || (c.group && !c.owned[tp]) {
				return
			}
			pctx, cancel := context.WithCancel(ctx)
			w := &worker{cancel: cancel, done: make(chan struct{})}
			c.active[tp] = w
			wg.Go(func() {
				defer close(w.done)
				defer cancel()
				c.deliverAll(pctx, p.Records)
			})
		})
		c.mu.Unlock()
		wg.Wait()
		c.mu.Lock()
		clear(c.active)
		c.mu.Unlock()
		if failed && fs.NumRecords() == 0 && !sleep(ctx, fetchErrorBackoff) {
			return
		}
	}
}

// assigned is the group's OnPartitionsAssigned callback.
func (c *consumption) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			c.owned[topicPartition{topic, p}] = true
		}
	}
}

// revoked is the group's OnPartitionsRevoked and OnPartitionsLost callback: it stops
// delivering parts and returns once their workers have ended, so that no commit for a
// revoked partition follows the rebalance.
func (c *consumption) revoked(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	var stopping []*worker
	c.mu.Lock()
	for topic, ps := range parts {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			delete(c.owned, tp)
			if w := c.active[tp]; w != nil {
				w.cancel()
				stopping = append(stopping, w)
				delete(c.active, tp)
			}
		}
	}
	c.mu.Unlock()
	for _, w := range stopping {
		<-w.done
	}
}

func (c *consumption) deliverAll(ctx context.Context, recs []*kgo.Record) {
	for _, rec := range recs {
		if !c.deliver(ctx, rec) {
			return
		}
	}
}

// deliver sends rec until it is Acked, commits it, and reports whether the subscription
// goes on.
func (c *consumption) deliver(ctx context.Context, rec *kgo.Record) bool {
	for {
		msg := toMessage(rec)
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case c.out <- msg:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			c.commit(ctx, rec)
			return true
		case <-msg.Nacked():
			cancel()
			if !sleep(ctx, c.delay) {
				return false
			}
		case <-ctx.Done():
			cancel()
			return false
		}
	}
}

// commit commits the offset after rec, with a context that outlives the subscription so
// that an Ack just before Close still counts. A failed commit is logged: the message may
// come again, which at-least-once delivery allows.
func (c *consumption) commit(ctx context.Context, rec *kgo.Record) {
	if !c.group {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := c.cl.CommitRecords(cctx, rec); err != nil {
		c.logger.Error("commit failed", err, watermill.LogFields{"partition": rec.Partition, "offset": rec.Offset})
	}
}

// sleep waits d, or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
