// Package watermillkafka is a watermill Publisher and Subscriber built on franz-go, for
// driftline's control plane: alerts, rollout commands, retrain requests and audit events.
// It exists so that the control plane can use watermill's router and middleware without a
// second Kafka client (watermill-kafka is built on Sarama).
//
// A message travels as one Kafka record: the payload is the record value, the watermill
// UUID is the header UUIDHeader, and every metadata entry is a header of the same name.
// The record key comes from PublisherConfig.Key; by default it is the metadata value
// PartitionKeyMetadata, so messages with the same partition key keep their order.
//
// PublishJSON and NewJSONRouter carry typed values as JSON over any watermill Publisher
// and Subscriber, with retry, poison queue and panic recovery on the consuming side.
package watermillkafka

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
)

const (
	// UUIDHeader is the record header that carries the watermill message UUID. It is the
	// header watermill-kafka uses, so both can read each other's records.
	UUIDHeader = "_watermill_message_uuid"
	// PartitionKeyMetadata is the metadata key whose value DefaultKey uses as the record
	// key.
	PartitionKeyMetadata = "partition_key"
	// DefaultPublishTimeout bounds how long one Publish call waits for the broker when
	// PublisherConfig.PublishTimeout is zero.
	DefaultPublishTimeout = 30 * time.Second
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("watermillkafka: publisher closed")

// KeyFunc returns the record key of msg published to topic; a nil key lets the
// partitioner spread records. It must be safe for concurrent use.
type KeyFunc func(topic string, msg *message.Message) ([]byte, error)

// DefaultKey is the KeyFunc used when PublisherConfig.Key is nil: the metadata value
// PartitionKeyMetadata, or no key when that is empty.
func DefaultKey(_ string, msg *message.Message) ([]byte, error) {
	if k := msg.Metadata.Get(PartitionKeyMetadata); k != "" {
		return []byte(k), nil
	}
	return nil, nil
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Client is how to reach the brokers: addresses, client id, TLS, SASL and
	// compression. Required (Client.Brokers at least).
	Client kafka.ClientConfig
	// Key computes each record's key. Default DefaultKey.
	Key KeyFunc
	// PublishTimeout bounds the delivery of each record (kgo.RecordDeliveryTimeout), so
	// that Publish returns an error rather than waiting forever for an unreachable
	// broker. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
}

// Validate reports whether the config can build a Publisher.
func (c PublisherConfig) Validate() error {
	if err := c.Client.Validate(); err != nil {
		return fmt.Errorf("watermillkafka: publisher config: %w", err)
	}
	if c.PublishTimeout < 0 {
		return fmt.Errorf("watermillkafka: publisher config: negative publish timeout %s", c.PublishTimeout)
	}
	return nil
}

// Publisher is a watermill message.Publisher that writes each message as one Kafka record
// through a franz-go client it owns. It is safe for concurrent use.
type Publisher struct {
	cl  *kgo.Client
	key KeyFunc

	mu     sync.RWMutex // held for reading by Publish, for writing by Close
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher validates cfg and returns a Publisher. It does not contact the brokers;
// the first Publish does. Close it to release the client.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Key == nil {
		cfg.Key = DefaultKey
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	cl, err := cfg.Client.NewFranzClient(kgo.RecordDeliveryTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("watermillkafka: new publisher client: %w", err)
	}
	return &Publisher{cl: cl, key: cfg.Key}, nil
}

// Publish writes msgs to topic and returns once the broker has acknowledged every one
// of them, or failed one. Messages with the same key keep their order. Each message's
// Context bounds its own delivery: Publish stops waiting for a message whose context
// ends and fails it (the record may still reach the broker later). On error, some
// messages may have been written: watermill publishing is at-least-once, and a retry may
// duplicate them. Publish does not modify or retain msgs.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrPublisherClosed
	}
	if topic == "" {
		return errors.New("watermillkafka: publish: empty topic")
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, msg := range msgs {
		key, err := p.key(topic, msg)
		if err != nil {
			return fmt.Errorf("watermillkafka: key of message %s for topic %q: %w", msg.UUID, topic, err)
		}
		recs[i] = toRecord(topic, key, msg)
	}
	// One result per record, buffered: a promise that comes after Publish
	// stopped waiting for it (its context ended) does not block.
	results := make([]chan error, len(recs))
	for i, rec := range recs {
		results[i] = make(chan error, 1)
		p.cl.Produce(msgs[i].Context(), rec, func(_ *kgo.Record, err error) { results[i] <- err })
	}
	var errs []error
	for i, res := range results {
		var err error
		select {
		case err = <-res:
		case <-msgs[i].Context().Done():
			// The client fails a canceled record only once it can; the
			// caller's deadline is not to wait for that.
			err = msgs[i].Context().Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("watermillkafka: publish message %s to %q: %w", msgs[i].UUID, topic, err))
		}
	}
	return errors.Join(errs...)
}

// Close waits for in-flight Publish calls, then closes the client. Later Publish calls
// return ErrPublisherClosed. Close is idempotent and always returns nil.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cl.Close()
	return nil
}

func toRecord(topic string, key []byte, msg *message.Message) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(msg.Metadata)+1)
	headers = append(headers, kgo.RecordHeader{Key: UUIDHeader, Value: []byte(msg.UUID)})
	for k, v := range msg.Metadata {
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return &kgo.Record{Topic: topic, Key: key, Value: msg.Payload, Headers: headers}
}

// toMessage builds a fresh watermill message from rec; every call gives a new message
// with its own Ack and Nack.
func toMessage(rec *kgo.Record) *message.Message {
	var uuid string
	md := make(message.Metadata, len(rec.Headers))
	for _, h := range rec.Headers {
		if h.Key == UUIDHeader {
			uuid = string(h.Value)
			continue
		}
		md.Set(h.Key, string(h.Value))
	}
	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = md
	return msg
}
