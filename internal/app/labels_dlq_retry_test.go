package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// failingSink stands for the labels plane's Kafka client as the DLQ's
// sink: its first fails writes fail with err, as a produce whose broker
// was away fails; the later ones keep their records.
type failingSink struct {
	mu    sync.Mutex
	fails int
	err   error
	recs  []pipeline.OutRecord
}

func (s *failingSink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return s.err
	}
	s.recs = append(s.recs, recs...)
	return nil
}

// TestLabelBatchWhoseDLQWriteFailsIsNotLearnedTwice: a label batch with
// a refused label whose DLQ write fails (here with the error franz-go
// gives a produce whose broker was unreachable) is handed to the join
// again, as the partition loop retries a batch. The join writes the
// refused records before it teaches or publishes an outcome, so the
// failed try taught nothing and the retry teaches the valid label once
// (before, the join taught first: the retry joined the label again from
// its taken mark and taught it a second time) and writes the refused one
// to the DLQ with its reason.
func TestLabelBatchWhoseDLQWriteFailsIsNotLearnedTwice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dp, spec, b := runLabelsApp(t, ctx, demoSpecWithoutRollout(t))
	cl := b.Client(t)
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var ev streams.Event
	gen.Next(&ev)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: spec.Topics.Input, Value: streams.AppendJSON(nil, &ev)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "1 prediction", func() bool { return dp.Totals().Out == 1 })

	unreachable := fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout,
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	sink := &failingSink{fails: 1, err: unreachable}
	h, err := dp.join.Opener(dp.labelDLQ(sink, func(string) int { return 1 << 20 }))(spec.Topics.Labels, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Offsets past anything on the labels topic: the running label plane
	// never sees these records.
	batch := []pipeline.Message{
		{Topic: spec.Topics.Labels, Partition: 0, Offset: 1000, Value: []byte(`{"event_id":"` + ev.ID + `","label":1}`)},
		{Topic: spec.Topics.Labels, Partition: 0, Offset: 1001, Value: []byte(`{"event_id":"` + ev.ID + `","label":-5}`)},
	}
	learned := func() int64 { return dp.champion.Mark().Learned }
	before := learned()
	err = h.Handle(ctx, batch)
	if !errors.Is(err, kgo.ErrRecordTimeout) {
		t.Fatalf("Handle with the DLQ write failing: %v, want the write's error", err)
	}
	if got := learned() - before; got != 0 {
		t.Fatalf("the failed try taught %d labels, want 0 (the DLQ write comes before learning)", got)
	}
	if err := h.Handle(ctx, batch); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if got := learned() - before; got != 1 {
		t.Errorf("the valid label was taught %d times over the failed try and the retry, want once", got)
	}
	if len(sink.recs) != 1 {
		t.Fatalf("%d DLQ records, want the refused label's", len(sink.recs))
	}
	if reason := header(sink.recs[0].Headers, "driftline.reason"); reason == "" {
		t.Errorf("the refused label's DLQ record has no driftline.reason header: %+v", sink.recs[0].Headers)
	}
}

func header(hs []pipeline.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
