package kafka_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// pollAll polls f until it returned n records, and returns them.
func pollAll(t *testing.T, f *kafka.LabelFeed, n int) []pipeline.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out []pipeline.Message
	for len(out) < n {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		msgs, err := f.Poll(pctx, n-len(out))
		pcancel()
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		out = append(out, msgs...)
		if ctx.Err() != nil {
			t.Fatalf("polled %d of %d records", len(out), n)
		}
	}
	return out
}

// stateRecords reads the state topic's records' values.
func stateRecords(t *testing.T, b *kafkatest.Broker, topic string, committed bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out []string
	if err := kafka.ReadTopics(ctx, kafka.ClientConfig{Brokers: []string{b.Addr}}, committed, func(r *kafka.Record) error {
		out = append(out, string(r.Value))
		return nil
	}, topic); err != nil {
		t.Fatal(err)
	}
	return out
}

func newFeed(t *testing.T, b *kafkatest.Broker, txnID string) *kafka.LabelFeed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	f, err := kafka.NewLabelFeed(ctx, kafka.LabelFeedConfig{Client: kafka.ClientConfig{Brokers: []string{b.Addr}},
		Topic: "labels", Group: "g-labels", StateTopic: "state", TransactionalID: txnID, SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// TestLabelFeedAtLeastOnce: the feed starts each partition at the given
// position, else at the group's committed offset, else at the log start;
// a publish writes the records and then commits the positions reached,
// from which a later feed starts.
func TestLabelFeedAtLeastOnce(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "labels", 2)
	b.CreateTopic(t, "state", 1)
	produceN(t, b, "labels", 2, 5, 0)
	ctx := context.Background()

	f := newFeed(t, b, "")
	if err := f.Start(ctx, map[int32]int64{0: 2}); err != nil {
		t.Fatal(err)
	}
	msgs := pollAll(t, f, 3+5)
	for _, m := range msgs {
		if m.Partition == 0 && m.Offset < 2 {
			t.Fatalf("partition 0 read from offset %d, before its start 2", m.Offset)
		}
	}
	want := map[int32]int64{0: 5, 1: 5}
	if got := f.Positions(); !maps.Equal(got, want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
	if err := f.Publish(ctx, []pipeline.OutRecord{{Key: []byte("m@1"), Value: []byte("state-1")}}); err != nil {
		t.Fatal(err)
	}
	if got := stateRecords(t, b, "state", false); len(got) != 1 || got[0] != "state-1" {
		t.Fatalf("state topic %q, want the published record", got)
	}
	if got := committed(t, b, "g-labels", "labels"); !maps.Equal(got, want) {
		t.Fatalf("group offsets %v, want the positions %v", got, want)
	}
	f.Close()

	produceN(t, b, "labels", 2, 1, 5)
	g := newFeed(t, b, "")
	if err := g.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range pollAll(t, g, 2) {
		if m.Offset != 5 {
			t.Errorf("a feed without positions read %d/%d, want the records after the committed offsets", m.Partition, m.Offset)
		}
	}
}

// TestLabelFeedExactlyOnce: a publish is one transaction with the
// offsets; a second feed with the same transactional id (the next writer)
// fences the first, whose publish then fails and is never visible to
// read-committed readers, and it starts where the last commit left off.
func TestLabelFeedExactlyOnce(t *testing.T) {
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, "labels", 1)
	b.CreateTopic(t, "state", 1)
	produceN(t, b, "labels", 1, 6, 0)
	ctx := context.Background()

	first := newFeed(t, b, "learner-m")
	if err := first.Start(ctx, map[int32]int64{0: 1}); err != nil {
		t.Fatal(err)
	}
	if msgs := pollAll(t, first, 3); msgs[0].Offset != 1 {
		t.Fatalf("read from offset %d, want the start position 1", msgs[0].Offset)
	}
	if err := first.Publish(ctx, []pipeline.OutRecord{{Key: []byte("m@1"), Value: []byte("up to 4")}}); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, b, "g-labels", "labels"); got[0] != 4 {
		t.Fatalf("group offset %v after the publish, want 4", got)
	}
	pollAll(t, first, 2) // offsets 4 and 5, not yet published

	// The next writer takes over while the first still runs.
	second := newFeed(t, b, "learner-m")
	err := first.Publish(ctx, []pipeline.OutRecord{{Key: []byte("m@1"), Value: []byte("zombie")}})
	if err == nil {
		t.Fatal("the fenced writer's publish succeeded")
	}
	t.Logf("the fenced writer's publish: %v", err)
	first.Close()
	if got := stateRecords(t, b, "state", true); len(got) != 1 || got[0] != "up to 4" {
		t.Fatalf("read committed, the state topic holds %q; want only the first commit", got)
	}
	if err := second.Start(ctx, map[int32]int64{0: 4}); err != nil {
		t.Fatal(err)
	}
	msgs := pollAll(t, second, 2)
	if msgs[0].Offset != 4 || msgs[1].Offset != 5 {
		t.Fatalf("the next writer read %d, %d; want 4, 5", msgs[0].Offset, msgs[1].Offset)
	}
	if err := second.Publish(ctx, []pipeline.OutRecord{{Key: []byte("m@1"), Value: []byte("up to 6")}}); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, b, "g-labels", "labels"); got[0] != 6 {
		t.Fatalf("group offset %v, want 6", got)
	}
	if got := stateRecords(t, b, "state", true); len(got) != 2 || got[1] != "up to 6" {
		t.Fatalf("read committed, the state topic holds %q", got)
	}
}
