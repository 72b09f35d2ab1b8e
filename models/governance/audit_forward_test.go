package governance

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// newTestPublisher is a watermill publisher over franz-go to broker.
func newTestPublisher(t *testing.T, broker *kafkatest.Broker) *watermillkafka.Publisher {
	t.Helper()
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: kafka.ClientConfig{Brokers: []string{broker.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// An event that can never be published — larger than MaxEventBytes, or
// refused by the client as too large for the broker — is logged with its
// id, counted and skipped: the events after it are forwarded, and the
// cursor moves past it. Before issue 11 such an event stopped every
// forward step, which published the batch before it again and again.
func TestAuditForwarderSkipsWhatCanNeverBePublished(t *testing.T) {
	ctx := context.Background()
	reg, rdb := newTestRegistry(t) // two events: register, alias.set
	broker := kafkatest.StartKfake(t)
	const topic = "skip.audit"
	broker.CreateTopic(t, topic, 1)
	var logged strings.Builder
	prom := prometheus.NewRegistry()
	f, err := NewAuditForwarder(AuditForwarderConfig{Registry: reg, Publisher: newTestPublisher(t, broker), Cursors: connredis.Cursors{Client: rdb},
		CursorKey: "cursor", Topic: topic, Model: testModel, Holder: "fwd", MaxEventBytes: 2 << 20,
		Unpublishable: kafka.RecordTooLarge, Registerer: prom, Log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, why := range []string{"small", strings.Repeat("x", 1200<<10), "small again", strings.Repeat("y", 3<<20), "last"} {
		id, err := reg.AppendAudit(ctx, registry.Event{Who: "op", What: "test.why", Model: testModel, Why: why})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	n, err := f.forward(ctx)
	if err != nil || n != 5 {
		t.Fatalf("forwarded %d (%v), want the 5 publishable events", n, err)
	}
	if c, _ := rdb.Get(ctx, "cursor").Result(); c != ids[4] {
		t.Fatalf("cursor %q, want the last event %q", c, ids[4])
	}
	recs := readTopic(t, broker, topic, 5)
	var whys []string
	for _, r := range recs {
		var e registry.Event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		whys = append(whys, e.Why)
	}
	if len(recs) != 5 || whys[2] != "small" || whys[3] != "small again" || whys[4] != "last" {
		t.Fatalf("topic holds %d records %q, want the 2 set-up events, then small, small again, last", len(recs), whys)
	}
	if got := testutil.ToFloat64(f.skipped); got != 2 {
		t.Errorf("driftline_audit_events_skipped_total %v, want 2", got)
	}
	for _, id := range []string{ids[1], ids[3]} {
		if !strings.Contains(logged.String(), id) {
			t.Errorf("the skipped event %s is not in the log:\n%s", id, logged.String())
		}
	}
	if problems, err := testutil.CollectAndLint(prom); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// A publish that fails for now (the broker is gone) skips nothing: the
	// step stops, the cursor stays, the event comes at a later step.
	id, err := reg.AppendAudit(ctx, registry.Event{Who: "op", What: "test.why", Model: testModel, Why: "while the broker is away"})
	if err != nil {
		t.Fatal(err)
	}
	broker.Fake.Close()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := f.forward(short); err == nil {
		t.Fatal("a forward step without a broker succeeded")
	}
	if c, _ := rdb.Get(ctx, "cursor").Result(); c != ids[4] {
		t.Fatalf("cursor moved to %q past %s, which was not published", c, id)
	}
	if got := testutil.ToFloat64(f.skipped); got != 2 {
		t.Errorf("skipped %v after a transient failure, want still 2", got)
	}
}

// Pipelines that share a Redis share its audit stream; each forwards the
// events of its own model (and those of no model) to its audit topic, on a
// cursor and lease of its own, so that none posts another's events.
func TestAuditForwarderForwardsItsModelOnly(t *testing.T) {
	ctx := context.Background()
	reg, rdb := newTestRegistry(t) // two events of testModel
	broker := kafkatest.StartKfake(t)
	pub := newTestPublisher(t, broker)
	const other = "other-model"
	for _, e := range []registry.Event{
		{Who: "op", What: "test.mine", Model: testModel},
		{Who: "op", What: "test.other", Model: other},
		{Who: "admin", What: "token.create"}, // no model
		{Who: "op", What: "test.other", Model: other},
	} {
		if _, err := reg.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	count := map[string]map[string]int{} // topic → model → records
	for _, m := range []struct{ model, topic string }{{testModel, "mine.audit"}, {other, "other.audit"}} {
		broker.CreateTopic(t, m.topic, 1)
		f, err := NewAuditForwarder(AuditForwarderConfig{Registry: reg, Publisher: pub, Cursors: connredis.Cursors{Client: rdb},
			CursorKey: "cursor:" + m.topic + ":" + m.model, Topic: m.topic, Model: m.model, Holder: "fwd-" + m.model,
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.forward(ctx); err != nil {
			t.Fatal(err)
		}
		count[m.topic] = map[string]int{}
		for _, r := range readTopic(t, broker, m.topic, 1) {
			var e registry.Event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			count[m.topic][e.Model]++
		}
	}
	if got := count["mine.audit"]; got[testModel] != 3 || got[other] != 0 || got[""] != 1 {
		t.Errorf("%s holds %v; want 3 events of %s, 1 of no model, none of %s", "mine.audit", got, testModel, other)
	}
	if got := count["other.audit"]; got[other] != 2 || got[testModel] != 0 || got[""] != 1 {
		t.Errorf("%s holds %v; want 2 events of %s, 1 of no model, none of %s", "other.audit", got, other, testModel)
	}
}

// A forwarder without a cursor of its own starts from the cursor an older
// version kept per topic, so that an upgrade does not publish again what
// was forwarded.
func TestAuditForwarderStartsFromTheLegacyCursor(t *testing.T) {
	ctx := context.Background()
	reg, rdb := newTestRegistry(t)
	evs, err := reg.ReadAudit(ctx, "", 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events (%v)", len(evs), err)
	}
	if err := rdb.Set(ctx, "legacy", evs[1].ID, 0).Err(); err != nil {
		t.Fatal(err)
	}
	broker := kafkatest.StartKfake(t)
	broker.CreateTopic(t, "legacy.audit", 1)
	f, err := NewAuditForwarder(AuditForwarderConfig{Registry: reg, Publisher: newTestPublisher(t, broker), Cursors: connredis.Cursors{Client: rdb},
		CursorKey: "new", LegacyCursorKey: "legacy", Topic: "legacy.audit", Model: testModel, Holder: "fwd", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.AppendAudit(ctx, registry.Event{Who: "op", What: "test.after-upgrade", Model: testModel}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.forward(ctx); err != nil || n != 1 {
		t.Fatalf("forwarded %d (%v) after an upgrade, want only the 1 new event", n, err)
	}
}
