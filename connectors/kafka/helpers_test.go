package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

const waitFor = 60 * time.Second

// produceN writes n records to each of the topic's partitions, with values
// "p<partition>-<offset within this call + base>", and waits for the acks.
func produceN(t *testing.T, b *kafkatest.Broker, topic string, partitions int32, n, base int) {
	t.Helper()
	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	var recs []*kgo.Record
	for p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, base+i)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// recorder is a pipeline Source's handler factory that records every
// batch it is handed, per partition, and checks the Source's contract as
// it goes: batches are non-empty, at most maxBatch long, contiguous and in
// offset order within a partition, and one partition is never handled by
// two handlers at once.
type recorder struct {
	name     string
	maxBatch int
	// before, if set, runs at the start of each Handle; an error fails it.
	before func(msgs []pipeline.Message) error

	mu       sync.Mutex
	owned    map[int32]bool
	offsets  map[int32][]int64
	batches  int
	problems []string
	total    atomic.Int64
}

// active tracks which partitions are inside Handle right now, across every
// recorder of a test, to catch two group members owning one partition.
type active struct {
	mu  sync.Mutex
	who map[int32]string
}

func newRecorder(name string, maxBatch int) *recorder {
	return &recorder{name: name, maxBatch: maxBatch, offsets: map[int32][]int64{}, owned: map[int32]bool{}}
}

func (r *recorder) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *recorder) open(act *active) func(string, int32) (pipeline.PartitionHandler, error) {
	return func(topic string, p int32) (pipeline.PartitionHandler, error) {
		r.mu.Lock()
		if r.owned[p] {
			r.problems = append(r.problems, fmt.Sprintf("partition %d opened twice", p))
		}
		r.owned[p] = true
		r.mu.Unlock()
		return &recHandler{r: r, topic: topic, partition: p, act: act, last: -1}, nil
	}
}

// Offsets returns a copy of the offsets handled on partition p, in order.
func (r *recorder) Offsets(p int32) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.offsets[p])
}

// Check fails the test with every contract violation seen.
func (r *recorder) Check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Errorf("%s: %s", r.name, p)
	}
}

type recHandler struct {
	r         *recorder
	act       *active
	topic     string
	partition int32
	last      int64
}

func (h *recHandler) Handle(_ context.Context, msgs []pipeline.Message) error {
	r := h.r
	if h.act != nil {
		h.act.mu.Lock()
		if other, busy := h.act.who[h.partition]; busy {
			r.problem("partition %d handled by %s and %s at once", h.partition, other, r.name)
		}
		h.act.who[h.partition] = r.name
		h.act.mu.Unlock()
		defer func() {
			h.act.mu.Lock()
			delete(h.act.who, h.partition)
			h.act.mu.Unlock()
		}()
	}
	if len(msgs) == 0 || len(msgs) > r.maxBatch {
		r.problem("partition %d: batch of %d records (max %d)", h.partition, len(msgs), r.maxBatch)
	}
	for i, m := range msgs {
		if m.Topic != h.topic || m.Partition != h.partition {
			r.problem("handler of %s/%d got a record of %s/%d", h.topic, h.partition, m.Topic, m.Partition)
		}
		if want := fmt.Sprintf("p%d-", m.Partition); len(m.Value) < len(want) || string(m.Value[:len(want)]) != want {
			r.problem("partition %d offset %d: value %q", m.Partition, m.Offset, m.Value)
		}
		if i > 0 && m.Offset != msgs[i-1].Offset+1 {
			r.problem("partition %d: batch not contiguous: %d after %d", h.partition, m.Offset, msgs[i-1].Offset)
		}
	}
	// Within one handler (one assignment) offsets only go forward.
	if h.last >= 0 && len(msgs) > 0 && msgs[0].Offset != h.last+1 {
		r.problem("partition %d: batch starts at %d after %d", h.partition, msgs[0].Offset, h.last)
	}
	if r.before != nil {
		if err := r.before(msgs); err != nil {
			return err
		}
	}
	r.mu.Lock()
	for _, m := range msgs {
		r.offsets[h.partition] = append(r.offsets[h.partition], m.Offset)
	}
	r.batches++
	r.mu.Unlock()
	if len(msgs) > 0 {
		h.last = msgs[len(msgs)-1].Offset
	}
	r.total.Add(int64(len(msgs)))
	return nil
}

func (h *recHandler) Close() {
	h.r.mu.Lock()
	delete(h.r.owned, h.partition)
	h.r.mu.Unlock()
}

// Owned returns the partitions whose handlers are open.
func (r *recorder) Owned() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []int32
	for p := range r.owned {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

type consumerOpts struct {
	batch, inFlight int
	linger          time.Duration
	reg             *prometheus.Registry
	txnID           string // non-empty: exactly-once mode
	retry           *pipeline.RetryPolicy
	onCommitted     func(topic string, partition int32, next int64)
	commitEvery     time.Duration
	txnTimeout      time.Duration // exactly-once: the transactions' timeout
}

func newConsumer(t *testing.T, b *kafkatest.Broker, group, topic string, o consumerOpts) *kafka.Client {
	t.Helper()
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	c, err := kafka.New(kafka.Config{
		Client:             b.ClientConfig("driftline-test"),
		Group:              group,
		Topics:             []string{topic},
		SessionTimeout:     6 * time.Second,
		BatchSize:          o.batch,
		Linger:             o.linger,
		MaxInFlight:        o.inFlight,
		Registerer:         o.reg,
		TransactionalID:    o.txnID,
		TransactionTimeout: o.txnTimeout,
		Retry:              o.retry,
		CommitInterval:     o.commitEvery,
		OnCommitted:        o.onCommitted,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// running is a Client's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(c *kafka.Client, open func(string, int32) (pipeline.PartitionHandler, error)) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx, open) }()
	return r
}

// stop cancels Run and returns its error, failing the test if it hangs.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(waitFor):
		t.Fatalf("Run did not return within %s", waitFor)
		return nil
	}
}

// eventually polls cond until it holds, or fails the test with what.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitFor, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// committed returns the group's committed offset per partition of topic
// (absent partitions have none).
func committed(t *testing.T, b *kafkatest.Broker, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resps, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	if err := resps.Error(); err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	for p, r := range resps[topic] {
		out[p] = r.At
	}
	return out
}

func wantRange(t *testing.T, who string, p int32, got []int64, from, to int64) {
	t.Helper()
	if int64(len(got)) != to-from {
		t.Errorf("%s: partition %d: handled %d records, want %d (offsets %d..%d)", who, p, len(got), to-from, from, to-1)
		return
	}
	for i, o := range got {
		if o != from+int64(i) {
			t.Errorf("%s: partition %d: record %d has offset %d, want %d", who, p, i, o, from+int64(i))
			return
		}
	}
}

var errBoom = errors.New("boom")

// testOrderAndCommit consumes a multi-partition topic to the end and checks
// the order, the batch bound, the lag gauge and the committed offsets.
func testOrderAndCommit(t *testing.T, b *kafkatest.Broker) {
	const (
		topic      = "order"
		group      = "order-group"
		partitions = 3
		perPart    = 700
		batch      = 37
	)
	b.CreateTopic(t, topic, partitions)
	produceN(t, b, topic, partitions, perPart, 0)
	reg := prometheus.NewRegistry()
	c := newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: 2, linger: 2 * time.Millisecond, reg: reg})
	rec := newRecorder("consumer", batch)
	run := start(c, rec.open(nil))
	eventually(t, "every record handled", func() bool { return rec.total.Load() >= partitions*perPart })
	eventually(t, "lag gauge at zero on every partition", func() bool {
		lags := lagValues(t, reg)
		if len(lags) != partitions {
			return false
		}
		for _, v := range lags {
			if v != 0 {
				return false
			}
		}
		return true
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rec.Check(t)
	for p := range int32(partitions) {
		wantRange(t, "consumer", p, rec.Offsets(p), 0, perPart)
	}
	if rec.total.Load() != partitions*perPart {
		t.Errorf("handled %d records, want %d", rec.total.Load(), partitions*perPart)
	}
	if rec.batches < partitions*perPart/batch {
		t.Errorf("%d batches for %d records of batch size %d", rec.batches, partitions*perPart, batch)
	}
	got := committed(t, b, group, topic)
	for p := range int32(partitions) {
		if got[p] != perPart {
			t.Errorf("partition %d: committed offset %d, want %d", p, got[p], perPart)
		}
	}
}

// lagValues gathers driftline_kafka_consumer_lag_records by partition label,
// linting the registry first.
func lagValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "driftline_kafka_consumer_lag_records" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var part string
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					part = l.GetValue()
				}
			}
			v := m.GetGauge().GetValue()
			if v < 0 {
				t.Errorf("lag of partition %s is negative: %g", part, v)
			}
			out[part] = v
		}
	}
	return out
}

// testHandlerErrorRereads fails the batch holding a given offset: Run
// returns that error, the failed batch's offset is not committed, and a new
// member of the group reads the batch again.
func testHandlerErrorRereads(t *testing.T, b *kafkatest.Broker) {
	const (
		topic   = "fail"
		group   = "fail-group"
		perPart = 60
		batch   = 8
		poison  = 27
	)
	b.CreateTopic(t, topic, 1)
	produceN(t, b, topic, 1, perPart, 0)
	var failedFirst atomic.Int64
	failedFirst.Store(-1)
	rec := newRecorder("first", batch)
	rec.before = func(msgs []pipeline.Message) error {
		if msgs[0].Offset <= poison && poison <= msgs[len(msgs)-1].Offset {
			failedFirst.Store(msgs[0].Offset)
			return fmt.Errorf("handle offset %d: %w", poison, errBoom)
		}
		return nil
	}
	c := newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: 2})
	err := start(c, rec.open(nil)).wait(t)
	if !errors.Is(err, errBoom) {
		t.Fatalf("Run returned %v, want the handler's error", err)
	}
	rec.Check(t)
	first := failedFirst.Load()
	if first < 0 || first > poison {
		t.Fatalf("failed batch starts at %d", first)
	}
	wantRange(t, "first", 0, rec.Offsets(0), 0, first)
	if got := committed(t, b, group, topic); got[0] != first {
		t.Fatalf("committed offset %d after the failed batch starting at %d, want %d", got[0], first, first)
	}

	again := newRecorder("second", batch)
	c2 := newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: 2})
	run := start(c2, again.open(nil))
	eventually(t, "the rest re-read", func() bool { return again.total.Load() >= perPart-first })
	if err := run.stop(t); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	again.Check(t)
	wantRange(t, "second", 0, again.Offsets(0), first, perPart)
	if got := committed(t, b, group, topic); got[0] != perPart {
		t.Errorf("committed offset %d after the re-read, want %d", got[0], perPart)
	}
}
