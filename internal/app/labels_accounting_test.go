package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// TestEveryLabelCountedOnce runs the demo's pipeline on kfake and
// miniredis with labels of every kind: on time after a delay, early (before
// their event), for events that never come or come malformed, second
// labels of events whose first label is parked, and malformed labels.
// Every label record must be counted once, in
// one terminal counter or as parked:
//
//	processed = joined + late + orphan + invalid + parked_overflow + parked
//
// with parked what the early-label index holds (the label batches). (Nothing expires within
// the test: TestLabelBatchCountedOnceWhenRetried in stages covers orphans,
// and a batch that fails and is handled again.)
func TestEveryLabelCountedOnce(t *testing.T) {
	const (
		events    = 9000
		rate      = 3000
		never     = 40  // labels for events that never come: parked
		malformed = 25  // label records that do not parse: invalid
		seconds   = 10  // second labels of events that never come: refused as duplicates (invalid)
		early     = 200 // labels written before their event
	)
	broker := kafkatest.StartKfake(t, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(t)
	spec := outageSpec(t, broker, mr.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startFedApp(t, ctx, spec, broker)
	defer a.Close()
	stream := streams.Config{Concept: streams.ConceptSEA, Seed: 21}
	var written int64
	write := func(values ...[]byte) {
		t.Helper()
		for _, v := range values {
			a.feed.Produce(ctx, pipeline.OutRecord{Topic: spec.Topics.Labels, Value: v}, func(_ kafka.Produced, err error) {
				if err != nil {
					t.Errorf("produce a label: %v", err)
				}
			})
		}
		if err := a.feed.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		written += int64(len(values))
	}
	var first [][]byte
	for i := range never {
		first = append(first, fmt.Appendf(nil, `{"event_id":"never-%d","label":1}`, i))
	}
	for i := range malformed {
		first = append(first, fmt.Appendf(nil, `{"event_id":"bad-%d","label":`, i))
	}
	for i := range seconds {
		first = append(first, fmt.Appendf(nil, `{"event_id":"never-%d","label":0}`, i))
	}
	// The feed writes the stream's fresh events in order (a malformed row
	// is a corrupted fresh event, whose label then never joins; a
	// duplicate repeats the event before): label events 3,000 to 3,200
	// before the feed writes them, every other one once it wrote them all.
	gen, err := streams.NewGenerator(stream)
	if err != nil {
		t.Fatal(err)
	}
	var ev streams.Event
	var rest [][]byte
	labelOf := func() []byte {
		gen.Next(&ev)
		return streams.AppendLabelJSON(nil, &ev)
	}
	for i := range int64(3000 + early) {
		if l := labelOf(); i >= 3000 {
			first = append(first, l)
		} else {
			rest = append(rest, l)
		}
	}
	write(first...)

	var stats feed.Stats
	load := feed.Config{Topic: spec.Topics.Input, Events: events, Rate: rate, MalformedRate: 0.01, DuplicateRate: 0.01, Stream: stream}
	if err := feed.Produce(ctx, a.feed, load, &stats); err != nil {
		t.Fatal(err)
	}
	for i := int64(3000 + early); i < stats.Valid.Load()+stats.Malformed.Load(); i++ {
		rest = append(rest, labelOf())
	}
	write(rest...) // seconds after their events: joined
	counts := func() stages.LabelCounts { ls, _ := a.Labels(); return ls.Counts }
	labels := written
	done := func() int64 { t := a.Totals(); return t.Out + t.DLQ + t.Duplicates }
	waitFor(t, a.runErr, time.Minute, "every event and label processed", func() bool {
		return done() >= stats.Rows.Load() && counts().Processed >= labels
	})
	if err := a.Stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	c := counts()
	parkedNow := parkedLabelKeys(t, mr, spec.Redis.KeyPrefix)
	t.Logf("labels %d: %+v, parked %d, in the early index %d", labels, c, c.Parked(), len(parkedNow))
	if c.Processed != labels {
		t.Errorf("processed %d label records, want the %d written", c.Processed, labels)
	}
	if c.Settled()+c.Parked() != c.Processed {
		t.Errorf("joined %d + late %d + orphan %d + invalid %d + parked overflow %d + parked %d = %d, want processed %d",
			c.Joined, c.Late, c.Orphan, c.Invalid, c.ParkedOverflow, c.Parked(), c.Settled()+c.Parked(), c.Processed)
	}
	if c.Parked() != int64(len(parkedNow)) || c.Parked() < never {
		t.Errorf("parked by the counters %d, in the early index %d: want the same, and at least the %d labels of events that never came", c.Parked(), len(parkedNow), never)
	}
	if c.Invalid != malformed+seconds || c.EarlyJoined == 0 || c.Joined == 0 {
		t.Errorf("want %d invalid (malformed, second labels), an early label joined and labels joined: %+v", malformed+seconds, c)
	}
}

// parkedLabelKeys is the parked labels' keys the label batches hold: the
// members of the sets early-batches lists (see stages' labelplane_scripts.go).
func parkedLabelKeys(t *testing.T, mr *redistest.Redis, prefix string) []string {
	t.Helper()
	refs, err := mr.Mini.ZMembers(prefix + "early-batches")
	if err != nil && len(refs) != 0 {
		t.Fatal(err)
	}
	var keys []string
	for _, ref := range refs {
		ks, err := mr.Mini.Members(prefix + "early-batch:" + ref)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ks...)
	}
	return keys
}
