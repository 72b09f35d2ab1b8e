package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/testkit/nettest"
)

// A produce that cannot reach a broker within its delivery timeout, and a
// retriable answer, are the cluster being unavailable; answers that no
// wait mends (a record too large, a denied topic, a fenced producer) and a
// shutdown are not.
func TestUnavailable(t *testing.T) {
	down := nettest.ClosedAddr(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(down), kgo.RecordDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	timedOut := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()
	canceled, stop := context.WithCancel(ctx)
	stop()
	shutdown := cl.ProduceSync(canceled, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()

	for _, c := range []struct {
		name   string
		err    error
		reason string
	}{
		{"delivery timeout", timedOut, "delivery timeout"},
		{"no leader", fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), "NOT_LEADER_FOR_PARTITION"},
		{"coordinator loading", kerr.CoordinatorLoadInProgress, "COORDINATOR_LOAD_IN_PROGRESS"},
		{"too large", kerr.MessageTooLarge, ""},
		{"denied", kerr.TopicAuthorizationFailed, ""},
		{"fenced", kerr.ProducerFenced, ""},
		{"shutdown", shutdown, ""},
		{"closed client", kgo.ErrClientClosed, ""},
	} {
		if c.err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		reason, ok := kafka.Unavailable(c.err)
		if ok != (c.reason != "") || reason != c.reason {
			t.Errorf("%s: Unavailable(%v) = %q, %v; want %q", c.name, c.err, reason, ok, c.reason)
		}
	}
}
