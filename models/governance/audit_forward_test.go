package governance

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	connredis "github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/connectors/watermillkafka"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// readTopic reads topic from its start until it holds want records, then
// briefly for more, and returns them all.
func readTopic(t *testing.T, broker *kafkatest.Broker, topic string, want int) []*kgo.Record {
	t.Helper()
	cl := broker.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	deadline := time.Now().Add(15 * time.Second)
	for len(recs) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	return recs
}

// TestAuditForwarder: the lease holder forwards every audit event, in
// stream order, as the admin API's JSON, and advances the cursor; another
// instance publishes nothing while the lease is held; after the holder
// stops (forwarding what is left and releasing the lease) a new instance
// goes on from the cursor without repeating an event.
func TestAuditForwarder(t *testing.T) {
	ctx := context.Background()
	reg, rdb := newTestRegistry(t) // two events: register, alias.set
	broker := kafkatest.StartKfake(t)
	const topic = "driftline.audit"
	broker.CreateTopic(t, topic, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: kafka.ClientConfig{Brokers: []string{broker.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	newForwarder := func(holder string) *AuditForwarder {
		f, err := NewAuditForwarder(AuditForwarderConfig{Registry: reg, Publisher: pub, Cursors: connredis.Cursors{Client: rdb},
			CursorKey: "{driftline:admin}:audit-forwarder:" + topic, Topic: topic, Model: testModel, Holder: holder, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	appendEvents := func(what string, n int) {
		for range n {
			if _, err := reg.AppendAudit(ctx, registry.Event{Who: "test", What: what, Model: testModel, Why: "forwarder test"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	forward := func(f *AuditForwarder, want int) {
		t.Helper()
		if n, err := f.forward(ctx); err != nil || n != want {
			t.Fatalf("%s forwarded %d (%v), want %d", f.holder, n, err, want)
		}
	}
	cursor := func() string {
		c, err := rdb.Get(ctx, newForwarder("cursor-reader").cursorKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	a := newForwarder("fwd-a")
	forward(a, 2)
	evs, err := reg.ReadAudit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if c := cursor(); c != evs[1].ID {
		t.Fatalf("cursor %q after two events, want %q", c, evs[1].ID)
	}
	forward(a, 0) // nothing new
	appendEvents("test.while-a-holds", 3)
	b := newForwarder("fwd-b")
	forward(b, 0) // a holds the lease
	if c := cursor(); c != evs[1].ID {
		t.Fatalf("cursor moved to %q by an instance without the lease", c)
	}
	// a stops: it forwards what is left, then releases the lease.
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	a.Run(stopped)
	if h, err := reg.LeaseHolder(ctx, auditForwarderLease(topic, testModel)); err != nil || h != "" {
		t.Fatalf("lease held by %q (%v) after a stopped", h, err)
	}
	appendEvents("test.after-a", 2)
	c := newForwarder("fwd-c")
	forward(c, 2)

	evs, err = reg.ReadAudit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 {
		t.Fatalf("%d audit events, want 7", len(evs))
	}
	if cur := cursor(); cur != evs[6].ID {
		t.Fatalf("cursor %q, want the last event %q", cur, evs[6].ID)
	}
	recs := readTopic(t, broker, topic, len(evs))
	if len(recs) != len(evs) {
		t.Fatalf("%d records on %s, want %d (each event once)", len(recs), topic, len(evs))
	}
	for i, r := range recs {
		var got registry.Event
		if err := json.Unmarshal(r.Value, &got); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, r.Value)
		}
		e := evs[i]
		if got.ID != e.ID || got.What != e.What || got.Who != e.Who || got.Model != e.Model || got.Version != e.Version || !got.When.Equal(e.When) {
			t.Fatalf("record %d is %+v, want event %+v", i, got, e)
		}
		if string(r.Key) != e.Model {
			t.Fatalf("record %d key %q, want the model %q", i, r.Key, e.Model)
		}
	}
}
