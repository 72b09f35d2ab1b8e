package watermillkafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/testkit/kafkatest"
)

const waitFor = 15 * time.Second

func newTestPublisher(t *testing.T, b *kafkatest.Broker, key KeyFunc) *Publisher {
	t.Helper()
	cfg := testPublisherConfig(b)
	cfg.Key = key
	pub, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

func newTestSubscriber(t *testing.T, b *kafkatest.Broker, cfg SubscriberConfig) *Subscriber {
	t.Helper()
	sub, err := NewSubscriber(testSubscriberConfig(b, cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// receive returns the next message from ch, failing the test after waitFor.
func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatal("messages channel closed")
		}
		return msg
	case <-time.After(waitFor):
		t.Fatalf("no message within %s", waitFor)
		return nil
	}
}

func TestRecordCarriesUUIDMetadataAndKey(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "raw", 1)
	pub := newTestPublisher(t, b, nil)

	msg := message.NewMessage("uuid-1", []byte("payload"))
	msg.Metadata.Set(PartitionKeyMetadata, "k-1")
	msg.Metadata.Set("driftline.reason", "drift")
	if err := pub.Publish("raw", msg); err != nil {
		t.Fatal(err)
	}

	cl := b.Client(t, kgo.ConsumeTopics("raw"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatalf("poll: %v", err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("consumed %d records, want 1", len(recs))
	}
	rec := recs[0]
	if string(rec.Key) != "k-1" || string(rec.Value) != "payload" {
		t.Fatalf("record key %q value %q; want k-1 payload", rec.Key, rec.Value)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	want := map[string]string{UUIDHeader: "uuid-1", PartitionKeyMetadata: "k-1", "driftline.reason": "drift"}
	if len(headers) != len(want) {
		t.Fatalf("headers %v, want %v", headers, want)
	}
	for k, v := range want {
		if headers[k] != v {
			t.Fatalf("headers %v, want %v", headers, want)
		}
	}

	got := toMessage(rec)
	if !got.Equals(msg) {
		t.Fatalf("decoded message %s %q %v, want %s %q %v", got.UUID, got.Payload, got.Metadata, msg.UUID, msg.Payload, msg.Metadata)
	}
}

func TestCustomKeyFunc(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "keyed", 1)
	errNoKey := errors.New("no tenant")
	pub := newTestPublisher(t, b, func(topic string, msg *message.Message) ([]byte, error) {
		tenant := msg.Metadata.Get("tenant")
		if tenant == "" {
			return nil, errNoKey
		}
		return []byte(topic + "/" + tenant), nil
	})

	if err := pub.Publish("keyed", message.NewMessage("no-tenant", nil)); !errors.Is(err, errNoKey) {
		t.Fatalf("publish without tenant: %v, want %v", err, errNoKey)
	}
	msg := message.NewMessage("with-tenant", nil)
	msg.Metadata.Set("tenant", "acme")
	if err := pub.Publish("keyed", msg); err != nil {
		t.Fatal(err)
	}
	cl := b.Client(t, kgo.ConsumeTopics("keyed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	recs := cl.PollRecords(ctx, 1).Records()
	if len(recs) != 1 || string(recs[0].Key) != "keyed/acme" {
		t.Fatalf("consumed %v; want one record with key keyed/acme (the failed message must not be written)", recs)
	}
}

func TestPublishCanceledContextFails(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "canceled", 1)
	pub := newTestPublisher(t, b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	msg := message.NewMessage("m", nil)
	msg.SetContext(ctx)
	if err := pub.Publish("canceled", msg); !errors.Is(err, context.Canceled) {
		t.Fatalf("publish with a canceled context: %v, want %v", err, context.Canceled)
	}
}

// A message whose context ends while the broker does not answer fails
// then: Publish does not wait for the client's delivery timeout.
func TestPublishStopsWaitingAtTheContextsEnd(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "gone", 1)
	pub := newTestPublisher(t, b, nil)
	if err := pub.Publish("gone", message.NewMessage("warm-up", []byte("{}"))); err != nil {
		t.Fatal(err)
	}
	b.Fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	msg := message.NewMessage("late", []byte("{}"))
	msg.SetContext(ctx)
	start := time.Now()
	err := pub.Publish("gone", msg)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Publish to a gone broker: %v after %s; want the deadline, promptly", err, time.Since(start))
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	b := kafkatest.StartKfake(t)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{ConsumerGroup: "g"})
	for range 2 {
		if err := pub.Close(); err != nil {
			t.Fatalf("publisher close: %v", err)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("subscriber close: %v", err)
		}
	}
	if err := pub.Publish("t", message.NewMessage("m", nil)); !errors.Is(err, ErrPublisherClosed) {
		t.Fatalf("publish after close: %v, want %v", err, ErrPublisherClosed)
	}
	if _, err := sub.Subscribe(context.Background(), "t"); !errors.Is(err, ErrSubscriberClosed) {
		t.Fatalf("subscribe after close: %v, want %v", err, ErrSubscriberClosed)
	}
	if err := sub.SubscribeInitialize("t"); !errors.Is(err, ErrSubscriberClosed) {
		t.Fatalf("subscribe initialize after close: %v, want %v", err, ErrSubscriberClosed)
	}
}

func TestConfigValidate(t *testing.T) {
	someBroker := kafka.ClientConfig{Brokers: []string{"b:9092"}}
	pubCases := map[string]PublisherConfig{
		"no brokers":        {},
		"negative timeout":  {Client: someBroker, PublishTimeout: -time.Second},
		"unknown codec":     {Client: kafka.ClientConfig{Brokers: []string{"b:9092"}, Compression: "brotli"}},
		"sasl without user": {Client: kafka.ClientConfig{Brokers: []string{"b:9092"}, SASL: &kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512}}},
	}
	for name, cfg := range pubCases {
		if _, err := NewPublisher(cfg); err == nil {
			t.Errorf("NewPublisher with %s succeeded; want an error", name)
		}
	}
	subCases := map[string]SubscriberConfig{
		"no brokers":               {},
		"unknown offset":           {Client: someBroker, InitialOffset: 7},
		"negative partitions":      {Client: someBroker, TopicPartitions: -1},
		"negative replication":     {Client: someBroker, TopicReplicationFactor: -1},
		"negative session timeout": {Client: someBroker, SessionTimeout: -time.Second},
		"negative heartbeat":       {Client: someBroker, HeartbeatInterval: -time.Second},
		"negative fetch max wait":  {Client: someBroker, FetchMaxWait: -time.Second},
		"tls cert without key":     {Client: kafka.ClientConfig{Brokers: []string{"b:9092"}, TLS: &kafka.TLSConfig{CertFile: "c.pem"}}},
	}
	for name, cfg := range subCases {
		if _, err := NewSubscriber(cfg); err == nil {
			t.Errorf("NewSubscriber with %s succeeded; want an error", name)
		}
	}
}

func TestSubscribeInitializeCreatesTopicOnce(t *testing.T) {
	b := kafkatest.StartKfake(t)
	sub := newTestSubscriber(t, b, SubscriberConfig{TopicPartitions: 3})
	for range 2 {
		if err := sub.SubscribeInitialize("created"); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	topics, err := adm.ListTopics(ctx, "created")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(topics["created"].Partitions); got != 3 {
		t.Fatalf("topic has %d partitions, want 3", got)
	}
}

// TestAckCommitsAndNackRedelivers checks the group contract message by message: a
// Nacked message comes again, equal, and the next is held back until it is Acked; each
// Ack commits the offset after the message.
func TestAckCommitsAndNackRedelivers(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "acks", 1)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{ConsumerGroup: "acks-group", NackResendDelay: -1})

	first := message.NewMessage("first", []byte("1"))
	first.Metadata.Set("m", "v")
	second := message.NewMessage("second", []byte("2"))
	if err := pub.Publish("acks", first, second); err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(context.Background(), "acks")
	if err != nil {
		t.Fatal(err)
	}

	got := receive(t, msgs)
	if !got.Equals(first) {
		t.Fatalf("first delivery %s, want %s", got.UUID, first.UUID)
	}
	got.Nack()
	select {
	case <-got.Context().Done():
	case <-time.After(waitFor):
		t.Fatalf("message context live %s after Nack", waitFor)
	}
	again := receive(t, msgs)
	if again == got || !again.Equals(first) {
		t.Fatalf("redelivery %s %q %v (same object %t), want a new message equal to %s", again.UUID, again.Payload, again.Metadata, again == got, first.UUID)
	}
	select {
	case m := <-msgs:
		t.Fatalf("message %s delivered before %s was Acked", m.UUID, again.UUID)
	case <-time.After(200 * time.Millisecond):
	}
	again.Ack()
	waitCommitted(t, b, "acks-group", "acks", 1)

	next := receive(t, msgs)
	if !next.Equals(second) {
		t.Fatalf("second delivery %s, want %s", next.UUID, second.UUID)
	}
	next.Ack()
	waitCommitted(t, b, "acks-group", "acks", 2)
}

// waitCommitted waits until group has committed offset want on partition 0 of topic.
func waitCommitted(t *testing.T, b *kafkatest.Broker, group, topic string, want int64) {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	deadline := time.Now().Add(waitFor)
	var got int64 = -1
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		offsets, err := adm.FetchOffsets(ctx, group)
		cancel()
		if err == nil {
			if o, ok := offsets.Lookup(topic, 0); ok {
				got = o.At
				if got == want {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("group %s committed offset %d on %s/0, want %d", group, got, topic, want)
}

func TestSubscriptionEndsWithContext(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "ctx", 1)
	sub := newTestSubscriber(t, b, SubscriberConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, "ctx")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-msgs:
		if ok {
			t.Fatal("message delivered from an empty topic")
		}
	case <-time.After(waitFor):
		t.Fatalf("channel still open %s after the context was canceled", waitFor)
	}
}

// TestFromEndSkipsOldMessages publishes until a message published after Subscribe
// arrives: the end offset is resolved after Subscribe returns, so the first few may be
// skipped too, but the old one must never come.
func TestFromEndSkipsOldMessages(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "tail", 1)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{InitialOffset: FromEnd})
	if err := pub.Publish("tail", message.NewMessage("old", nil)); err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(context.Background(), "tail")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitFor)
	for i := 0; ; i++ {
		if err := pub.Publish("tail", message.NewMessage("new", nil)); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-msgs:
			if msg.UUID != "new" {
				t.Fatalf("FromEnd subscription got %q, want only messages published after it started", msg.UUID)
			}
			msg.Ack()
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no new message after %d publishes", i+1)
		}
	}
}

func TestEmptyTopicRejected(t *testing.T) {
	b := kafkatest.StartKfake(t)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{})
	if err := pub.Publish("", message.NewMessage("m", nil)); err == nil || !strings.Contains(err.Error(), "empty topic") {
		t.Fatalf("publish to empty topic: %v, want an empty topic error", err)
	}
	if _, err := sub.Subscribe(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "empty topic") {
		t.Fatalf("subscribe to empty topic: %v, want an empty topic error", err)
	}
}

// TestHeldMessageDoesNotBlockGroup holds a message un-Acked in one member of a group
// while another member of the same group joins for another topic: the rebalance that
// assigns it must not wait for the held message (the group's rebalance timeout is 60 s).
func TestHeldMessageDoesNotBlockGroup(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "held", 1)
	b.CreateTopic(t, "other", 1)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{ConsumerGroup: "shared"})
	if err := pub.Publish("held", message.NewMessage("held-1", nil), message.NewMessage("held-2", nil)); err != nil {
		t.Fatal(err)
	}
	held, err := sub.Subscribe(context.Background(), "held")
	if err != nil {
		t.Fatal(err)
	}
	first := receive(t, held) // never Acked

	if err := pub.Publish("other", message.NewMessage("other-1", nil)); err != nil {
		t.Fatal(err)
	}
	other, err := sub.Subscribe(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	if msg := receive(t, other); msg.UUID != "other-1" {
		t.Fatalf("got %s, want other-1", msg.UUID)
	}
	select {
	case msg := <-held:
		t.Fatalf("%s delivered while %s is not Acked", msg.UUID, first.UUID)
	default:
	}
}
