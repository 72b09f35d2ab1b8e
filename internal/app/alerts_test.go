package app

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/watermillkafka"
	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

func keyedAlert(key string) alert.Alert {
	return alert.Alert{Detector: "ks", Subject: "x0", State: alert.StateDrift, DedupeKey: key}
}

// TestAlertRouterReceivesFromEnd: a router without a group reads every
// partition of the alerts topic from its end: alerts published before it
// started are not received, every alert published once it runs is.
func TestAlertRouterReceivesFromEnd(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	spec := &pipeline.Spec{Kafka: pipeline.KafkaSpec{Brokers: []string{broker.Addr}}, Topics: pipeline.TopicsSpec{Alerts: "alerts"}}
	broker.CreateTopic(t, spec.Topics.Alerts, 2)
	broker.CreateTopic(t, spec.Topics.Alerts+".poison", 1)
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: kafka.ClientConfig{Brokers: spec.Kafka.Brokers}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	publish := func(a alert.Alert) {
		t.Helper()
		if err := watermillkafka.PublishJSON(ctx, pub, spec.Topics.Alerts, a.DedupeKey, a); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		publish(keyedAlert("old-" + strconv.Itoa(i)))
	}
	var inbox governance.AlertInbox
	if err := StartAlertRouter(ctx, spec, kafka.ClientConfig{Brokers: spec.Kafka.Brokers}, "", inbox.Receive, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	var got []alert.Alert
	// Probe until the router reads (it starts at the end it finds).
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; len(got) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("router received no probe alert")
		}
		publish(keyedAlert("probe-" + strconv.Itoa(i)))
		time.Sleep(50 * time.Millisecond)
		got = append(got, inbox.Drain()...)
	}
	var want []string
	for i := range 8 {
		k := "new-" + strconv.Itoa(i)
		want = append(want, k)
		publish(keyedAlert(k))
	}
	received := func() (keys []string) {
		for _, a := range got {
			if a.DedupeKey[:4] == "new-" {
				keys = append(keys, a.DedupeKey)
			}
		}
		slices.Sort(keys)
		return keys
	}
	for deadline := time.Now().Add(20 * time.Second); len(received()) < len(want) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		got = append(got, inbox.Drain()...)
	}
	time.Sleep(200 * time.Millisecond) // room for a stray old alert or a repeat
	got = append(got, inbox.Drain()...)
	if keys := received(); !slices.Equal(keys, want) {
		t.Fatalf("received %q, want %q", keys, want)
	}
	for _, a := range got {
		if a.DedupeKey[:4] == "old-" {
			t.Fatalf("received %q, published before the router started", a.DedupeKey)
		}
		if a.Detector != "ks" || a.Subject != "x0" || a.State != alert.StateDrift {
			t.Fatalf("alert decoded as %+v", a)
		}
	}
}
