package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
)

// heldAckSink is an AsyncSink that keeps each write's records (not
// copies) and acknowledges a write only when the test says so.
type heldAckSink struct {
	mu     sync.Mutex
	writes [][]pipeline.OutRecord
	dones  []func(error)
	acked  []bool
}

func (*heldAckSink) Write(context.Context, []pipeline.OutRecord) error {
	return errors.New("heldAckSink is asynchronous")
}

func (s *heldAckSink) WriteAsync(_ context.Context, recs []pipeline.OutRecord, done func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, recs)
	s.dones = append(s.dones, done)
	s.acked = append(s.acked, false)
}

func (s *heldAckSink) ack(n int) {
	s.mu.Lock()
	done := s.dones[n]
	s.acked[n] = true
	s.mu.Unlock()
	done(nil)
}

// ackRest acknowledges every write not acknowledged yet.
func (s *heldAckSink) ackRest() {
	s.mu.Lock()
	n := len(s.dones)
	s.mu.Unlock()
	for i := range n {
		s.mu.Lock()
		acked := s.acked[i]
		s.mu.Unlock()
		if !acked {
			s.ack(i)
		}
	}
}

// recordText is every cell of rec, for comparing a record with itself
// later.
func recordText(rec arrow.RecordBatch) string {
	var sb strings.Builder
	for c, col := range rec.Columns() {
		fmt.Fprintf(&sb, "%s:", rec.ColumnName(c))
		for i := range col.Len() {
			sb.WriteString(col.ValueStr(i))
			sb.WriteByte('|')
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// outputText is the topics, keys and values of recs, copied.
func outputText(recs []pipeline.OutRecord) string {
	var sb strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&sb, "%s %s %s\n", r.Topic, r.Key, r.Value)
	}
	return sb.String()
}

// columnData is the first byte of the values buffer of rec's column c.
func columnData(rec arrow.RecordBatch, c int) *byte {
	return unsafe.SliceData(rec.Column(c).Data().Buffers()[1].Bytes())
}

// Under a Runner the chain reuses its per-batch buffers (decode's and
// anonymize's columns, score's output bytes), and never while a batch is
// pending: each pending batch's outputs and record keep their bytes
// while later batches run, and a record retained past its batch's ack
// (as the lake's writer retains it) keeps its bytes until released.
func TestChainUnderRunnerNeverWritesOverPendingBatches(t *testing.T) {
	const batches, size, pending = 10, 256, 3
	spec := benchSpec(t)
	_, rows := genEvents(t, 7, batches*size, 100_000)
	for i := range rows {
		switch {
		case i%50 == 7:
			rows[i] = []byte(`{"event_id":`) // rejected: a DLQ record
		case i%5 == 0: // the optional fields set: columns with and without nulls
			r := rows[i][:len(rows[i])-1]
			rows[i] = fmt.Appendf(r[:len(r):len(r)], `,"n":%d,"flag":true,"amount":1.5}`, i%100)
		}
	}
	c := newChain(t, spec, nil)
	// The records as the stages left them (views, not retained: valid while
	// the batch is pending), their text then, and batch 0's record,
	// retained past its ack as the lake's writer does.
	var views []arrow.RecordBatch
	var viewText []string
	var colData []*byte // each batch's f0 values
	var kept arrow.RecordBatch
	c.score.Observe = func(_ context.Context, b *pipeline.Batch) error {
		if kept == nil {
			b.Record.Retain()
			kept = b.Record
		}
		views = append(views, b.Record)
		viewText = append(viewText, recordText(b.Record))
		colData = append(colData, columnData(b.Record, spec.FieldIndex("f0")))
		return nil
	}
	sink := &heldAckSink{}
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: c.stages(), Sink: sink, DLQTopic: "events.dlq", Metrics: m, MaxPendingBatches: pending})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sink.ackRest()
		r.Close()
	})
	keptText := ""
	var outText []string
	var outData []*byte
	check := func(from, to int) {
		t.Helper()
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for k := from; k < to; k++ {
			if got := outputText(sink.writes[k]); got != outText[k] {
				t.Fatalf("batch %d is pending, but its outputs were written over", k)
			}
			if got := recordText(views[k]); got != viewText[k] {
				t.Fatalf("batch %d is pending, but its record was written over", k)
			}
		}
		if got := recordText(kept); got != keptText {
			t.Fatal("batch 0's record is retained, but it was written over")
		}
	}
	ctx := context.Background()
	acked := make(chan struct{}, batches)
	for k := range batches {
		if k >= pending {
			sink.ack(k - pending) // the oldest batch is acknowledged
			// The runner acks on a goroutine of its own, after it took
			// the batch's buffers back: wait for it, so that this batch
			// finds them (under load it may not have run yet).
			select {
			case <-acked:
			case <-time.After(10 * time.Second):
				t.Fatalf("batch %d: no ack within 10s of its outputs' acknowledgement", k-pending)
			}
		}
		msgs := benchMessages(rows[k*size : (k+1)*size])
		for i := range msgs {
			msgs[i].Offset = int64(k*size + i)
		}
		if err := r.HandleAsync(ctx, msgs, func(err error) {
			if err != nil {
				t.Errorf("ack: %v", err)
			}
			acked <- struct{}{}
		}); err != nil {
			t.Fatal(err)
		}
		sink.mu.Lock()
		outText = append(outText, outputText(sink.writes[k]))
		outData = append(outData, unsafe.SliceData(sink.writes[k][0].Value))
		sink.mu.Unlock()
		if k == 0 {
			keptText = viewText[0]
		}
		check(max(0, k-pending+1), k+1)
	}
	// The test must have seen reuse: later batches' output bytes and
	// columns in acknowledged batches' memory.
	reusedOut, reusedCol := false, false
	for k := pending; k < batches; k++ {
		for j := range k - pending + 1 {
			reusedOut = reusedOut || outData[k] == outData[j]
			reusedCol = reusedCol || colData[k] == colData[j]
		}
	}
	if !reusedOut || !reusedCol {
		t.Fatalf("no reuse seen (outputs %v, columns %v): the test checks nothing", reusedOut, reusedCol)
	}
	kept.Release()
}
