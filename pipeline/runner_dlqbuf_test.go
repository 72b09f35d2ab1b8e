package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/driftline/driftline/pipeline"
)

// heldSink keeps each write's records (not copies) and its done func
// until the test acknowledges it.
type heldSink struct {
	mu     sync.Mutex
	writes [][]pipeline.OutRecord
	dones  []func(error)
}

func (*heldSink) Write(context.Context, []pipeline.OutRecord) error {
	return errors.New("heldSink is asynchronous")
}

func (s *heldSink) WriteAsync(_ context.Context, recs []pipeline.OutRecord, done func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, recs)
	s.dones = append(s.dones, done)
}

// dlqValue is write n's DLQ record's value.
func (s *heldSink) dlqValue(t *testing.T, n int) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range s.writes[n] {
		if rec.Topic == "events.dlq" {
			return rec.Value
		}
	}
	t.Fatalf("write %d has no DLQ record", n)
	return nil
}

func (s *heldSink) ack(n int, err error) {
	s.mu.Lock()
	done := s.dones[n]
	s.mu.Unlock()
	done(err)
}

// The runner reuses a batch's DLQ payload buffer only once that batch was
// acknowledged without error: a pending batch's DLQ records are never
// written over, and a failed batch's buffer is not reused.
func TestRunnerReusesDLQBuffersOfAcknowledgedBatches(t *testing.T) {
	sink := &heldSink{}
	r, _ := newRunner(t, pipeline.RunnerConfig{Sink: sink, MaxPendingBatches: 3})
	log := newAckLog()
	ctx := context.Background()
	handle := func(first int64, value string) {
		t.Helper()
		if err := r.HandleAsync(ctx, msgs("events", 0, first, value), log.ack(first)); err != nil {
			t.Fatal(err)
		}
	}
	same := func(a, b []byte) bool { return unsafe.SliceData(a) == unsafe.SliceData(b) }

	handle(0, "bad-aaaa")
	handle(1, "bad-bbbb")
	a, b := sink.dlqValue(t, 0), sink.dlqValue(t, 1)
	if string(a) != "bad-aaaa" || string(b) != "bad-bbbb" {
		t.Fatalf("pending batches' DLQ values %q, %q: written over", a, b)
	}
	sink.ack(0, nil)
	log.wait(t, 1)
	time.Sleep(10 * time.Millisecond) // finish hands the buffer back after the ack
	handle(2, "bad-cccc")
	c := sink.dlqValue(t, 2)
	if string(b) != "bad-bbbb" || string(c) != "bad-cccc" {
		t.Fatalf("DLQ values %q (pending), %q: written over", b, c)
	}
	if !same(a, c) {
		t.Error("the acknowledged batch's DLQ buffer was not reused")
	}
	sink.ack(1, errors.New("broker down"))
	sink.ack(2, nil)
	log.wait(t, 2)
	time.Sleep(10 * time.Millisecond)
	handle(3, "bad-dddd")
	// Batch 2 failed too: its ack waits for batch 1's and carries its error.
	d := sink.dlqValue(t, 3)
	if same(b, d) || same(c, d) {
		t.Error("a failed batch's DLQ buffer was reused")
	}
	if string(d) != "bad-dddd" {
		t.Fatalf("DLQ value %q, want bad-dddd", d)
	}
	sink.ack(3, nil)
	log.wait(t, 1)
}
