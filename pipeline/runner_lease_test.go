package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// pooledEcho answers every row with a copy of its value, padded to 100
// bytes, written into one buffer per batch from the batch's Pool and held
// (Batch.Hold), as the score stage does.
type pooledEcho struct{}

func (pooledEcho) Name() string { return "pooled-echo" }

func (pooledEcho) Process(_ context.Context, b *pipeline.Batch) error {
	const size = 100
	buf := b.Pool.Get(b.Len() * size)
	for i := range b.Len() {
		v := buf[i*size : (i+1)*size : (i+1)*size]
		copy(v, bytes.Repeat(b.Messages[i].Value, size/len(b.Messages[i].Value)+1))
		b.AppendOutput(i, pipeline.OutRecord{Topic: "predictions", Value: v})
	}
	b.Hold(buf)
	return nil
}

// ackRestOnCleanup acknowledges, when the test ends, every write the test
// left pending, so that a failed test does not hang in Runner.Close.
func ackRestOnCleanup(t *testing.T, sink *heldSink, acked map[int]bool) {
	t.Cleanup(func() {
		sink.mu.Lock()
		n := len(sink.dones)
		sink.mu.Unlock()
		for i := range n {
			if !acked[i] {
				sink.ack(i, nil)
			}
		}
	})
}

// A batch's held buffers are reused only once it is acknowledged without
// error: while it is pending, later batches never write over its
// outputs, and a failed batch's buffers are never reused (the sink may
// still read them).
func TestRunnerReusesHeldBuffersOfAcknowledgedBatches(t *testing.T) {
	sink := &heldSink{}
	r, _ := newRunner(t, pipeline.RunnerConfig{Stages: []pipeline.Stage{pooledEcho{}}, Sink: sink, MaxPendingBatches: 3})
	acked := map[int]bool{}
	ackRestOnCleanup(t, sink, acked)
	ack := func(n int, err error) {
		acked[n] = true
		sink.ack(n, err)
	}
	log := newAckLog()
	ctx := context.Background()
	handle := func(first int64, value string) []byte {
		t.Helper()
		if err := r.HandleAsync(ctx, msgs("events", 0, first, value), log.ack(first)); err != nil {
			t.Fatal(err)
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.writes[len(sink.writes)-1][0].Value
	}
	want := func(v []byte, fill string) {
		t.Helper()
		if !bytes.Equal(v, bytes.Repeat([]byte(fill), 100)) {
			t.Fatalf("pending batch's output %q…: written over, want %q…", v[:8], fill)
		}
	}

	a := handle(0, "a")
	b := handle(1, "b")
	c := handle(2, "c")
	want(a, "a")
	want(b, "b")
	want(c, "c")
	ack(0, nil)
	log.wait(t, 1)
	d := handle(3, "d")
	want(b, "b")
	want(c, "c")
	want(d, "d")
	if !sameMemory(a, d) {
		t.Error("the acknowledged batch's buffer was not reused")
	}
	ack(1, errors.New("broker down"))
	log.wait(t, 1)
	e := handle(4, "e")
	want(c, "c")
	want(d, "d")
	if sameMemory(b, e) {
		t.Error("a failed batch's buffer was reused")
	}
	for n := 2; n <= 4; n++ {
		ack(n, nil) // fail too: after batch 1
	}
	log.wait(t, 3)
	f := handle(5, "f")
	for _, pending := range [][]byte{b, c, d, e} {
		if sameMemory(pending, f) {
			t.Error("a buffer of a failed batch was reused")
		}
	}
	ack(5, nil)
	log.wait(t, 1)
}

// Without a pool (BufferPoolBytes < 0), Hold does nothing and every batch
// gets fresh memory.
func TestRunnerWithoutBufferPool(t *testing.T) {
	sink := &heldSink{}
	r, _ := newRunner(t, pipeline.RunnerConfig{Stages: []pipeline.Stage{pooledEcho{}}, Sink: sink, BufferPoolBytes: -1})
	log := newAckLog()
	ctx := context.Background()
	var outs [][]byte
	for n := range int64(4) {
		if err := r.HandleAsync(ctx, msgs("events", 0, n, string(rune('a'+n))), log.ack(n)); err != nil {
			t.Fatal(err)
		}
		sink.mu.Lock()
		outs = append(outs, sink.writes[n][0].Value)
		sink.mu.Unlock()
		sink.ack(int(n), nil)
		log.wait(t, 1)
	}
	for n, v := range outs {
		if v[0] != byte('a'+n) {
			t.Fatalf("batch %d's output %q: written over", n, v[:8])
		}
		for _, w := range outs[:n] {
			if sameMemory(v, w) {
				t.Fatal("a buffer was reused without a pool")
			}
		}
	}
}
