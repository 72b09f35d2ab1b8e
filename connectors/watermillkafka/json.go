package watermillkafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// Retry policy of NewJSONRouter: a failed handler runs again up to JSONMaxRetries times,
// waiting JSONRetryInterval, doubling, at most JSONRetryMaxInterval.
const (
	JSONMaxRetries       = 3
	JSONRetryInterval    = 50 * time.Millisecond
	JSONRetryMaxInterval = time.Second
)

// ErrDecode marks a payload that is not the JSON of the router's type. NewJSONRouter
// sends such a message to the poison topic at once, without retries.
var ErrDecode = errors.New("watermillkafka: decode json payload")

// PublishJSON publishes v, marshaled as JSON, to topic as one message with a new UUID.
// A non-empty key is set as the metadata PartitionKeyMetadata, which the Publisher of
// this package uses as the record key, so that values with the same key keep their
// order; it is a dedupe key for alerts. ctx becomes the message context: a Publisher may
// stop waiting for delivery when it is done. PublishJSON is as safe for concurrent use as
// pub is.
func PublishJSON(ctx context.Context, pub message.Publisher, topic, key string, v any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("watermillkafka: publish json to %q: %w", topic, err)
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("watermillkafka: marshal %T for %q: %w", v, topic, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	if key != "" {
		msg.Metadata.Set(PartitionKeyMetadata, key)
	}
	msg.SetContext(ctx)
	if err := pub.Publish(topic, msg); err != nil {
		return fmt.Errorf("watermillkafka: publish json to %q: %w", topic, err)
	}
	return nil
}

// NewJSONRouter returns a watermill Router, not yet running, with one handler that
// consumes topic from sub, decodes each payload as JSON into a T and calls handle with
// the message context. The caller owns the Router: Run it, and Close it.
//
// A message is Acked when handle returns nil. When handle returns an error or panics,
// it runs again (JSONMaxRetries times, exponential backoff from JSONRetryInterval); when
// it still fails, or the payload does not decode (ErrDecode, not retried), the message is
// published unchanged to poisonTopic through pub, with watermill's poison metadata
// (middleware.ReasonForPoisonedKey and others), and Acked. Only a failed publish to the
// poison topic Nacks the message, so that it comes again. handle must be safe to call
// again for the same value. A nil logger means watermill.NopLogger.
func NewJSONRouter[T any](
	sub message.Subscriber,
	pub message.Publisher,
	topic, poisonTopic string,
	handle func(ctx context.Context, v T) error,
	logger watermill.LoggerAdapter,
) (*message.Router, error) {
	if topic == "" || poisonTopic == "" {
		return nil, fmt.Errorf("watermillkafka: json router: empty topic %q or poison topic %q", topic, poisonTopic)
	}
	if topic == poisonTopic {
		return nil, fmt.Errorf("watermillkafka: json router: poison topic %q is the consumed topic", topic)
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return nil, fmt.Errorf("watermillkafka: json router: %w", err)
	}
	poison, err := middleware.PoisonQueue(pub, poisonTopic)
	if err != nil {
		return nil, fmt.Errorf("watermillkafka: json router poison queue: %w", err)
	}
	retry := middleware.Retry{
		MaxRetries:      JSONMaxRetries,
		InitialInterval: JSONRetryInterval,
		MaxInterval:     JSONRetryMaxInterval,
		Multiplier:      2,
		ShouldRetry:     func(p middleware.RetryParams) bool { return !errors.Is(p.Err, ErrDecode) },
		Logger:          logger,
	}
	// The first middleware is the outermost: a panic becomes an error (Recoverer), is
	// retried (Retry), and finally goes to the poison topic (PoisonQueue).
	router.AddMiddleware(poison, retry.Middleware, middleware.Recoverer)
	router.AddConsumerHandler("json:"+topic, topic, sub, func(msg *message.Message) error {
		var v T
		if err := json.Unmarshal(msg.Payload, &v); err != nil {
			return fmt.Errorf("%w of message %s as %T: %w", ErrDecode, msg.UUID, v, err)
		}
		return handle(msg.Context(), v)
	})
	return router, nil
}

// PublishJSON publishes v as one JSON record with key to topic through p
// (see the function PublishJSON); it makes a Publisher a JSON publisher for
// the control loops that take one (governance.JSONPublisher).
func (p *Publisher) PublishJSON(ctx context.Context, topic, key string, v any) error {
	return PublishJSON(ctx, p, topic, key, v)
}
