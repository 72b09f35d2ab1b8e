package watermillkafka

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/driftline/driftline/testkit/kafkatest"
)

// testPublisherConfig is a publisher config for the broker b.
func testPublisherConfig(b *kafkatest.Broker) PublisherConfig {
	return PublisherConfig{Client: b.ClientConfig("watermill-test")}
}

// testSubscriberConfig is cfg for the broker b, with group rebalances and fetches
// quick enough for tests: members learn of a rebalance at their next heartbeat.
func testSubscriberConfig(b *kafkatest.Broker, cfg SubscriberConfig) SubscriberConfig {
	cfg.Client = b.ClientConfig("watermill-test")
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second
	cfg.FetchMaxWait = 500 * time.Millisecond
	return cfg
}

// conformanceFeatures describe this Pub/Sub to watermill's conformance suite.
//
// GuaranteedOrder holds because SubscribeInitialize creates topics with one partition
// (the suite initializes every topic it uses). NewSubscriberReceivesOldMessages is false
// because the suite's plain constructor puts every subscriber in one consumer group, as
// watermill-kafka's tests do: a new member resumes from the group's committed offsets.
// TestConformanceKfakeNoGroup runs the suite again with group-less plain subscribers.
// TestReconnect skips itself: it needs RestartServiceCommand, and neither kfake nor the
// test broker can be restarted under a running client.
var conformanceFeatures = tests.Features{
	ConsumerGroups:                   true,
	ExactlyOnceDelivery:              false,
	GuaranteedOrder:                  true,
	Persistent:                       true,
	NewSubscriberReceivesOldMessages: false,
}

// noGroupFeatures are conformanceFeatures for a plain constructor without a consumer
// group: every new subscriber reads the topic from the start. ForceShort keeps the
// suite's short counts, because there every subscriber of TestConcurrentSubscribe's 50
// reads every message.
var noGroupFeatures = tests.Features{
	ConsumerGroups:                   true,
	ExactlyOnceDelivery:              false,
	GuaranteedOrder:                  true,
	Persistent:                       true,
	NewSubscriberReceivesOldMessages: true,
	ForceShort:                       true,
}

// conformanceConstructors returns the suite's constructors for the broker b: the
// plain one joins the consumer group plainGroup, or none when it is empty.
func conformanceConstructors(b *kafkatest.Broker, plainGroup string) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		pub, err := NewPublisher(testPublisherConfig(b))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := NewSubscriber(testSubscriberConfig(b, SubscriberConfig{ConsumerGroup: group, NackResendDelay: 10 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	plain := func(t *testing.T) (message.Publisher, message.Subscriber) {
		return withGroup(t, plainGroup)
	}
	return plain, withGroup
}

func TestConformanceKfake(t *testing.T) {
	b := kafkatest.StartKfake(t)
	plain, withGroup := conformanceConstructors(b, "conformance")
	tests.TestPubSub(t, conformanceFeatures, plain, withGroup)
}

func TestConformanceKfakeNoGroup(t *testing.T) {
	b := kafkatest.StartKfake(t)
	plain, withGroup := conformanceConstructors(b, "")
	tests.TestPubSub(t, noGroupFeatures, plain, withGroup)
}
