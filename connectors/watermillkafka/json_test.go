package watermillkafka

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// testAlert has the shape of an alert: nested values, floats and times survive the
// JSON round trip.
type testAlert struct {
	Detector  string            `json:"detector"`
	Subject   string            `json:"subject"`
	Statistic float64           `json:"statistic"`
	Window    int               `json:"window"`
	FirstSeen time.Time         `json:"first_seen"`
	Labels    map[string]string `json:"labels"`
	DedupeKey string            `json:"dedupe_key"`
}

func sampleAlert() testAlert {
	return testAlert{
		Detector:  "adwin",
		Subject:   "feature:amount",
		Statistic: 0.4375,
		Window:    512,
		FirstSeen: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC),
		Labels:    map[string]string{"model_version": "v7"},
		DedupeKey: "adwin/feature:amount/v7",
	}
}

// startJSONRouter creates topic and its poison topic, and runs a JSON router with handle
// until the test ends. The router logs to the returned logger.
func startJSONRouter(t *testing.T, b *kafkatest.Broker, topic string, handle func(context.Context, testAlert) error) (*Publisher, *retryCounter) {
	t.Helper()
	b.CreateTopic(t, topic, 1)
	b.CreateTopic(t, topic+".poison", 1)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{ConsumerGroup: "router-" + topic})
	logger := &retryCounter{}
	router, err := NewJSONRouter(sub, pub, topic, topic+".poison", handle, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := router.Close(); err != nil {
			t.Errorf("router close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("router run: %v", err)
		}
	})
	select {
	case <-router.Running():
	case <-time.After(waitFor):
		t.Fatalf("router not running after %s", waitFor)
	}
	return pub, logger
}

// retryCounter is a watermill logger that counts the retry attempts watermill's Retry
// middleware logs, safe for concurrent use (watermill's CaptureLoggerAdapter hands out
// its map unguarded).
type retryCounter struct{ n atomic.Int32 }

func (c *retryCounter) Error(msg string, _ error, _ watermill.LogFields) {
	if msg == "Error occurred, retrying" {
		c.n.Add(1)
	}
}
func (c *retryCounter) Info(string, watermill.LogFields)                 {}
func (c *retryCounter) Debug(string, watermill.LogFields)                {}
func (c *retryCounter) Trace(string, watermill.LogFields)                {}
func (c *retryCounter) With(watermill.LogFields) watermill.LoggerAdapter { return c }

func retries(c *retryCounter) int { return int(c.n.Load()) }

// poisoned returns the first message on topic's poison topic.
func poisoned(t *testing.T, b *kafkatest.Broker, topic string) *message.Message {
	t.Helper()
	sub := newTestSubscriber(t, b, SubscriberConfig{})
	msgs, err := sub.Subscribe(context.Background(), topic+".poison")
	if err != nil {
		t.Fatal(err)
	}
	msg := receive(t, msgs)
	msg.Ack()
	return msg
}

func TestJSONRouterDeliversValue(t *testing.T) {
	b := kafkatest.StartKfake(t)
	got := make(chan testAlert, 1)
	pub, _ := startJSONRouter(t, b, "alerts", func(_ context.Context, a testAlert) error {
		got <- a
		return nil
	})
	want := sampleAlert()
	if err := PublishJSON(context.Background(), pub, "alerts", want.DedupeKey, want); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if !reflect.DeepEqual(a, want) {
			t.Fatalf("handler got %+v, want %+v", a, want)
		}
	case <-time.After(waitFor):
		t.Fatalf("handler not called within %s", waitFor)
	}
}

func TestJSONRouterFailingHandlerPoisons(t *testing.T) {
	b := kafkatest.StartKfake(t)
	var calls atomic.Int32
	pub, logger := startJSONRouter(t, b, "failing", func(context.Context, testAlert) error {
		calls.Add(1)
		return errors.New("rollout controller unavailable")
	})
	a := sampleAlert()
	if err := PublishJSON(context.Background(), pub, "failing", a.DedupeKey, a); err != nil {
		t.Fatal(err)
	}
	msg := poisoned(t, b, "failing")
	var back testAlert
	if err := json.Unmarshal(msg.Payload, &back); err != nil || !reflect.DeepEqual(back, a) {
		t.Fatalf("poisoned payload %s (%v), want the alert %+v", msg.Payload, err, a)
	}
	if r := msg.Metadata.Get(middleware.ReasonForPoisonedKey); !strings.Contains(r, "rollout controller unavailable") {
		t.Fatalf("poison reason %q does not carry the handler error", r)
	}
	if k := msg.Metadata.Get(PartitionKeyMetadata); k != a.DedupeKey {
		t.Fatalf("poisoned partition key %q, want %q", k, a.DedupeKey)
	}
	if got, want := calls.Load(), int32(1+JSONMaxRetries); got != want {
		t.Fatalf("handler called %d times, want %d (one try and %d retries)", got, want, JSONMaxRetries)
	}
	if n := retries(logger); n != JSONMaxRetries {
		t.Fatalf("%d retries logged, want %d", n, JSONMaxRetries)
	}
}

func TestJSONRouterUndecodablePoisonsWithoutRetry(t *testing.T) {
	b := kafkatest.StartKfake(t)
	var calls atomic.Int32
	pub, logger := startJSONRouter(t, b, "garbled", func(context.Context, testAlert) error {
		calls.Add(1)
		return nil
	})
	if err := pub.Publish("garbled", message.NewMessage(watermill.NewUUID(), []byte(`{"window":"wide"}`))); err != nil {
		t.Fatal(err)
	}
	msg := poisoned(t, b, "garbled")
	if r := msg.Metadata.Get(middleware.ReasonForPoisonedKey); !strings.Contains(r, ErrDecode.Error()) {
		t.Fatalf("poison reason %q does not name the decode error", r)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for an undecodable payload", n)
	}
	if n := retries(logger); n != 0 {
		t.Fatalf("%d retries logged for an undecodable payload, want none", n)
	}
}

func TestJSONRouterPanicPoisons(t *testing.T) {
	b := kafkatest.StartKfake(t)
	pub, _ := startJSONRouter(t, b, "panicky", func(context.Context, testAlert) error {
		panic("nil registry")
	})
	a := sampleAlert()
	if err := PublishJSON(context.Background(), pub, "panicky", a.DedupeKey, a); err != nil {
		t.Fatal(err)
	}
	msg := poisoned(t, b, "panicky")
	if r := msg.Metadata.Get(middleware.ReasonForPoisonedKey); !strings.Contains(r, "nil registry") {
		t.Fatalf("poison reason %q does not carry the panic", r)
	}
}

func TestNewJSONRouterRejectsTopics(t *testing.T) {
	b := kafkatest.StartKfake(t)
	pub := newTestPublisher(t, b, nil)
	sub := newTestSubscriber(t, b, SubscriberConfig{})
	handle := func(context.Context, testAlert) error { return nil }
	for _, topics := range [][2]string{{"", "p"}, {"t", ""}, {"t", "t"}} {
		if _, err := NewJSONRouter(sub, pub, topics[0], topics[1], handle, nil); err == nil {
			t.Errorf("NewJSONRouter(topic %q, poison %q) succeeded; want an error", topics[0], topics[1])
		}
	}
}

func TestPublishJSONErrors(t *testing.T) {
	b := kafkatest.StartKfake(t)
	pub := newTestPublisher(t, b, nil)
	if err := PublishJSON(context.Background(), pub, "t", "", func() {}); err == nil {
		t.Error("PublishJSON of a func succeeded; want a marshal error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := PublishJSON(ctx, pub, "t", "", sampleAlert()); !errors.Is(err, context.Canceled) {
		t.Errorf("PublishJSON with a canceled context: %v, want %v", err, context.Canceled)
	}
}
