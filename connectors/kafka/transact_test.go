package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// The exactly-once mode's tests, shared by kfake (here) and the real broker
// (integration_test.go).

// echoStage turns each row into one output on out, "<partition>/<offset>",
// except rows whose offset is 3 mod 7, which it rejects (to the DLQ).
type echoStage struct{ out string }

func (echoStage) Name() string { return "echo" }

func (e echoStage) Process(_ context.Context, b *pipeline.Batch) error {
	for i := range b.Len() {
		m := &b.Messages[i]
		if m.Offset%7 == 3 {
			b.Reject(i, "echo", "test.reject", "")
			continue
		}
		b.Outputs = append(b.Outputs, pipeline.OutRecord{Topic: e.out, Key: m.Key, Value: fmt.Appendf(nil, "%d/%d", m.Partition, m.Offset)})
	}
	return nil
}

func isRejected(offset int64) bool { return offset%7 == 3 }

// eosPipe opens a pipeline.Runner per partition that writes through the
// Client (predictions on out, rejects on dlq), and records what it handled.
type eosPipe struct {
	out, dlq string
	metrics  *pipeline.Metrics
	// after, if set, runs once a batch's outputs are written; an error
	// fails the batch.
	after func(msgs []pipeline.Message) error

	mu       sync.Mutex
	handled  map[int32][]int64
	problems []string
	total    atomic.Int64
}

func newEOSPipe(t *testing.T, out, dlq string) *eosPipe {
	t.Helper()
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &eosPipe{out: out, dlq: dlq, metrics: m, handled: map[int32][]int64{}}
}

func (e *eosPipe) open(c *kafka.Client) func(string, int32) (pipeline.PartitionHandler, error) {
	return func(_ string, p int32) (pipeline.PartitionHandler, error) {
		r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: []pipeline.Stage{echoStage{out: e.out}}, Sink: c, DLQTopic: e.dlq, Metrics: e.metrics})
		if err != nil {
			return nil, err
		}
		return &eosHandler{e: e, r: r, partition: p}, nil
	}
}

// First returns the first offset handled on partition p, or -1.
func (e *eosPipe) First(p int32) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.handled[p]) == 0 {
		return -1
	}
	return e.handled[p][0]
}

// Handled returns the offsets handled on partition p, in order.
func (e *eosPipe) Handled(p int32) []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.handled[p])
}

func (e *eosPipe) Check(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.problems {
		t.Error(p)
	}
}

// eosHandler is an AsyncPartitionHandler, so the test sees the Client use
// Handle, never HandleAsync, in exactly-once mode.
type eosHandler struct {
	e         *eosPipe
	r         *pipeline.Runner
	partition int32
}

func (h *eosHandler) Handle(ctx context.Context, msgs []pipeline.Message) error {
	e := h.e
	e.mu.Lock()
	for i, m := range msgs {
		if m.Partition != h.partition || (i > 0 && m.Offset != msgs[i-1].Offset+1) {
			e.problems = append(e.problems, fmt.Sprintf("partition %d handler: batch %d/%d after %d/%d", h.partition, m.Partition, m.Offset, msgs[max(0, i-1)].Partition, msgs[max(0, i-1)].Offset))
		}
		e.handled[h.partition] = append(e.handled[h.partition], m.Offset)
	}
	e.mu.Unlock()
	if err := h.r.Handle(ctx, msgs); err != nil {
		return err
	}
	e.total.Add(int64(len(msgs)))
	if e.after != nil {
		return e.after(msgs)
	}
	return nil
}

func (h *eosHandler) HandleAsync(context.Context, []pipeline.Message, func(error)) error {
	h.e.mu.Lock()
	h.e.problems = append(h.e.problems, "HandleAsync called in exactly-once mode")
	h.e.mu.Unlock()
	return errors.New("HandleAsync in exactly-once mode")
}

func (h *eosHandler) Close() { h.r.Close() }

func newEOSConsumer(t *testing.T, b *kafkatest.Broker, group, topic, txnID string, o consumerOpts) *kafka.Client {
	t.Helper()
	o.txnID = txnID
	return newConsumer(t, b, group, topic, o)
}

// readOutputs reads topics from the start to their current end — the last
// stable offset with committed, the high watermark without — and returns
// the data records (control records skipped), per topic.
func readOutputs(t *testing.T, b *kafkatest.Broker, committed bool, topics ...string) map[string][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	adm := kadm.NewClient(b.Client(t))
	var ends kadm.ListedOffsets
	var err error
	if committed {
		ends, err = adm.ListCommittedOffsets(ctx, topics...)
	} else {
		ends, err = adm.ListEndOffsets(ctx, topics...)
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	remaining := map[string]map[int32]int64{}
	offsets := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return
		}
		if remaining[o.Topic] == nil {
			remaining[o.Topic], offsets[o.Topic] = map[int32]int64{}, map[int32]kgo.Offset{}
		}
		remaining[o.Topic][o.Partition] = o.Offset
		offsets[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
	})
	out := map[string][]*kgo.Record{}
	if len(offsets) == 0 {
		return out
	}
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := b.Client(t, kgo.ConsumePartitions(offsets), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %v: timed out with %v unfinished", topics, remaining)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("read back %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				out[r.Topic] = append(out[r.Topic], r)
			}
			if r.Offset+1 >= end {
				delete(remaining[r.Topic], r.Partition)
				if len(remaining[r.Topic]) == 0 {
					delete(remaining, r.Topic)
				}
			}
		})
	}
	return out
}

// stableCommitted is committed for a transactional group: it asks the
// broker to resolve pending transactional offset commits first (KIP-447),
// and retries while one is still pending (UNSTABLE_OFFSET_COMMIT).
func stableCommitted(t *testing.T, b *kafkatest.Broker, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		resps, err := adm.FetchOffsets(kadm.RequireStable(ctx), group)
		if err == nil {
			err = resps.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			for p, r := range resps[topic] {
				out[p] = r.At
			}
			return out
		}
		if ctx.Err() != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type position struct {
	partition int32
	offset    int64
}

// outputsBySource counts the outputs of each input position: predictions
// name it in their value, DLQ records in their source headers. A
// prediction of a rejected offset or a DLQ record of an accepted one is a
// problem.
func outputsBySource(t *testing.T, recs map[string][]*kgo.Record, out, dlq string) map[position]int {
	t.Helper()
	got := map[position]int{}
	for _, r := range recs[out] {
		var pos position
		if _, err := fmt.Sscanf(string(r.Value), "%d/%d", &pos.partition, &pos.offset); err != nil {
			t.Fatalf("output %q: %v", r.Value, err)
		}
		if isRejected(pos.offset) {
			t.Errorf("a prediction for rejected offset %d/%d", pos.partition, pos.offset)
		}
		got[pos]++
	}
	for _, r := range recs[dlq] {
		var pos position
		for _, h := range r.Headers {
			switch h.Key {
			case pipeline.HeaderSourcePart:
				p, _ := strconv.Atoi(string(h.Value))
				pos.partition = int32(p)
			case pipeline.HeaderSourceOffset:
				pos.offset, _ = strconv.ParseInt(string(h.Value), 10, 64)
			}
		}
		if !isRejected(pos.offset) {
			t.Errorf("a DLQ record for accepted offset %d/%d", pos.partition, pos.offset)
		}
		got[pos]++
	}
	return got
}

// exactlyUpTo reports whether got holds every position below upTo[p]
// exactly once and nothing else; the first mismatch is in why.
func exactlyUpTo(got map[position]int, upTo map[int32]int64) (ok bool, why string) {
	want := 0
	for p, end := range upTo {
		want += int(end)
		for o := range end {
			if n := got[position{p, o}]; n != 1 {
				return false, fmt.Sprintf("partition %d offset %d has %d outputs, want 1 (committed offset %d)", p, o, n, end)
			}
		}
	}
	if len(got) != want {
		for pos := range got {
			if pos.offset >= upTo[pos.partition] {
				return false, fmt.Sprintf("output of %d/%d, beyond the committed offset %d", pos.partition, pos.offset, upTo[pos.partition])
			}
		}
	}
	return true, ""
}

// committedExactly checks that the read-committed outputs hold every input
// position below upTo exactly once and nothing else, retrying for a while:
// a real broker writes transaction markers just after EndTxn returns.
func committedExactly(t *testing.T, b *kafkatest.Broker, out, dlq string, upTo map[int32]int64, format string, fatal bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, why := exactlyUpTo(outputsBySource(t, readOutputs(t, b, true, out, dlq), out, dlq), upTo)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if fatal {
				t.Fatalf(format, why)
			}
			t.Errorf(format, why)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testExactlyOnceCommitsTogether stops the pipeline inside a round and
// checks that a read-committed reader sees exactly the outputs of the
// offsets the group committed, each once; then it lets the run finish and
// checks the whole input.
func testExactlyOnceCommitsTogether(t *testing.T, b *kafkatest.Broker) {
	const (
		in, out, dlq, group = "eos-in", "eos-out", "eos-dlq", "eos-group"
		partitions          = 3
		perPart             = 400
		hold                = 200 // partition 1's offset whose batch waits
	)
	b.CreateTopic(t, in, partitions)
	b.CreateTopic(t, out, partitions)
	b.CreateTopic(t, dlq, 1)
	produceN(t, b, in, partitions, perPart, 0)
	reg := prometheus.NewRegistry()
	c := newEOSConsumer(t, b, group, in, "eos-together", consumerOpts{batch: 16, inFlight: 2, linger: 2 * time.Millisecond, reg: reg})
	pipe := newEOSPipe(t, out, dlq)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	pipe.after = func(msgs []pipeline.Message) error {
		if msgs[0].Partition == 1 && msgs[0].Offset <= hold && hold <= msgs[len(msgs)-1].Offset {
			once.Do(func() {
				if err := c.Kgo().Flush(context.Background()); err != nil {
					t.Error(err)
				}
				close(entered)
				<-release
			})
		}
		return nil
	}
	run := start(c, pipe.open(c))
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("the held batch was never handled")
	}
	// Mid-round: what a read-committed reader sees is what the group
	// committed, no more, no less (markers may take a moment to land).
	var why string
	var upTo map[int32]int64
	deadline := time.Now().Add(waitFor)
	for {
		upTo = stableCommitted(t, b, group, in)
		var ok bool
		if ok, why = exactlyUpTo(outputsBySource(t, readOutputs(t, b, true, out, dlq), out, dlq), upTo); ok {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("mid-round, committed outputs do not match committed offsets %v: %s", upTo, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if upTo[1] > hold {
		t.Errorf("partition 1 committed %d while its batch holding %d is still in its round", upTo[1], hold)
	}
	// The held round wrote outputs that no read-committed reader sees yet.
	if n, m := len(readOutputs(t, b, false, out)[out]), len(readOutputs(t, b, true, out)[out]); n <= m {
		t.Errorf("the open round wrote nothing visible to read-uncommitted (%d records, %d committed)", n, m)
	}
	close(release)
	eventually(t, "every offset committed", func() bool {
		got := stableCommitted(t, b, group, in)
		for p := range int32(partitions) {
			if got[p] != perPart {
				return false
			}
		}
		return true
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	pipe.Check(t)
	all := map[int32]int64{0: perPart, 1: perPart, 2: perPart}
	committedExactly(t, b, out, dlq, all, "after the run: %s", false)
	if n, _ := c.Transactions(); n < 2 {
		t.Errorf("%d committed transactions", n)
	}
	if lags := lagValues(t, reg); len(lags) != 0 {
		t.Errorf("lag series after Run returned: %v", lags)
	}
}

// testExactlyOnceHandlerErrorAborts fails a batch after its outputs were
// written: Run returns the error, the round is aborted (its outputs were
// written but no read-committed reader sees them, its offsets are not
// committed), and the next consumer processes the records again, so that
// in the end every input has exactly one committed output.
func testExactlyOnceHandlerErrorAborts(t *testing.T, b *kafkatest.Broker) {
	const (
		in, out, dlq, group = "abort-in", "abort-out", "abort-dlq", "abort-group"
		partitions          = 2
		perPart             = 150
		poison              = 90 // on partition 0
	)
	b.CreateTopic(t, in, partitions)
	b.CreateTopic(t, out, partitions)
	b.CreateTopic(t, dlq, 1)
	produceN(t, b, in, partitions, perPart, 0)
	first := newEOSPipe(t, out, dlq)
	c := newEOSConsumer(t, b, group, in, "eos-abort", consumerOpts{batch: 8, inFlight: 2})
	first.after = func(msgs []pipeline.Message) error {
		if msgs[0].Partition == 0 && msgs[0].Offset <= poison && poison <= msgs[len(msgs)-1].Offset {
			// Send the batch's outputs (Write only buffers them in the
			// transaction), so that the abort has written records to hide.
			if err := c.Kgo().Flush(context.Background()); err != nil {
				return err
			}
			return fmt.Errorf("offset %d: %w", poison, errBoom)
		}
		return nil
	}
	if err := start(c, first.open(c)).wait(t); !errors.Is(err, errBoom) {
		t.Fatalf("Run returned %v, want the handler's error", err)
	}
	first.Check(t)
	upTo := stableCommitted(t, b, group, in)
	if upTo[0] > poison {
		t.Fatalf("partition 0 committed %d past the failed batch holding %d", upTo[0], poison)
	}
	committedExactly(t, b, out, dlq, upTo, "after the aborted round: %s", true)
	// The aborted round's outputs were written, just never committed.
	written := outputsBySource(t, readOutputs(t, b, false, out, dlq), out, dlq)
	if written[position{0, poison}] == 0 {
		t.Fatalf("the failed batch's outputs were never written; the test proves nothing")
	}
	if _, n := c.Transactions(); n != 1 {
		t.Errorf("%d aborted transactions, want 1", n)
	}

	again := newEOSPipe(t, out, dlq)
	c2 := newEOSConsumer(t, b, group, in, "eos-abort", consumerOpts{batch: 8, inFlight: 2})
	run := start(c2, again.open(c2))
	eventually(t, "the rest processed", func() bool {
		got := stableCommitted(t, b, group, in)
		return got[0] == perPart && got[1] == perPart
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	again.Check(t)
	for p := range int32(partitions) {
		if got, want := again.First(p), upTo[p]; want < perPart && got != want {
			t.Errorf("partition %d: the second run started at %d, want the committed offset %d", p, got, want)
		}
	}
	committedExactly(t, b, out, dlq, map[int32]int64{0: perPart, 1: perPart}, "after the re-read: %s", false)
}

// testExactlyOnceRestart stops a run gracefully mid-stream and starts
// another, which resumes at the committed offsets; it is stuck inside a
// round (its outputs written) when a successor with the same transactional
// id starts, which fences it: its round is aborted and the successor
// handles it again. The read-committed outputs hold every input exactly
// once.
func testExactlyOnceRestart(t *testing.T, b *kafkatest.Broker) {
	const (
		in, out, dlq, group, txnID = "restart-in", "restart-out", "restart-dlq", "restart-group", "eos-restart"
		partitions                 = 2
		perPart                    = 300
	)
	b.CreateTopic(t, in, partitions)
	b.CreateTopic(t, out, partitions)
	b.CreateTopic(t, dlq, 1)
	produceN(t, b, in, partitions, perPart, 0)
	opts := consumerOpts{batch: 10, inFlight: 2}

	// 1: graceful stop mid-stream.
	// Once it has handled a third, run 1's rounds wait for the stop, so
	// that run 2 has rounds left to get stuck in however fast run 1 is.
	p1 := newEOSPipe(t, out, dlq)
	stopping := make(chan struct{})
	p1.after = func([]pipeline.Message) error {
		if p1.total.Load() >= partitions*perPart/3 {
			<-stopping
		}
		return nil
	}
	c1 := newEOSConsumer(t, b, group, in, txnID, opts)
	run1 := start(c1, p1.open(c1))
	eventually(t, "run 1 handles a third", func() bool { return p1.total.Load() >= partitions*perPart/3 })
	run1.cancel()
	close(stopping)
	if err := run1.wait(t); err != nil {
		t.Fatalf("run 1: %v", err)
	}
	p1.Check(t)
	after1 := stableCommitted(t, b, group, in)
	committedExactly(t, b, out, dlq, after1, "after run 1: %s", true)

	// 2: resumes at the committed offsets; stuck inside a round.
	p2 := newEOSPipe(t, out, dlq)
	stuck, release := make(chan struct{}), make(chan struct{})
	var stuckOnce sync.Once
	var batches atomic.Int32
	var stuckAt position // the stuck batch's first record
	p2.after = func(msgs []pipeline.Message) error {
		if batches.Add(1) == 5 {
			stuckOnce.Do(func() {
				stuckAt = position{msgs[0].Partition, msgs[0].Offset}
				close(stuck)
				<-release
			})
		}
		return nil
	}
	c2 := newEOSConsumer(t, b, group, in, txnID, opts)
	run2 := start(c2, p2.open(c2))
	select {
	case <-stuck:
	case <-time.After(waitFor):
		t.Fatal("run 2 never got stuck")
	}
	for p := range int32(partitions) {
		if got, want := p2.First(p), after1[p]; got >= 0 && got != want {
			t.Errorf("partition %d: run 2 started at %d, want the committed offset %d", p, got, want)
		}
	}

	// 3: same transactional id; starting fences run 2.
	p3 := newEOSPipe(t, out, dlq)
	c3 := newEOSConsumer(t, b, group, in, txnID, opts)
	run3 := start(c3, p3.open(c3))
	time.Sleep(500 * time.Millisecond) // let run 3 initialize its producer id
	close(release)
	if err := run2.wait(t); err == nil {
		t.Fatal("run 2 ended cleanly after being fenced")
	} else {
		t.Logf("run 2 (fenced): %v", err)
	}
	p2.Check(t)
	eventually(t, "run 3 finishes the input", func() bool {
		got := stableCommitted(t, b, group, in)
		return got[0] == perPart && got[1] == perPart
	})
	if err := run3.stop(t); err != nil {
		t.Fatalf("run 3: %v", err)
	}
	p3.Check(t)
	// The fenced round was not committed: run 3 handled its batch again.
	if !slices.Contains(p3.Handled(stuckAt.partition), stuckAt.offset) {
		t.Errorf("run 3 did not handle %d/%d, in the fenced round, again", stuckAt.partition, stuckAt.offset)
	}
	committedExactly(t, b, out, dlq, map[int32]int64{0: perPart, 1: perPart}, "after the restarts: %s", false)
}

func TestExactlyOnceCommitsOutputsWithOffsets(t *testing.T) {
	testExactlyOnceCommitsTogether(t, kafkatest.StartKfake(t))
}

func TestExactlyOnceHandlerErrorAbortsRound(t *testing.T) {
	testExactlyOnceHandlerErrorAborts(t, kafkatest.StartKfake(t))
}

func TestExactlyOnceRestartResumesWithoutDuplicates(t *testing.T) {
	testExactlyOnceRestart(t, kafkatest.StartKfake(t))
}

// Two exactly-once members (ids of their own) split the partitions, one
// leaves, and rounds the rebalances abort are read again: every input has
// exactly one committed output.
func TestExactlyOnceRebalance(t *testing.T) {
	const (
		in, out, dlq, group = "eos-rb-in", "eos-rb-out", "eos-rb-dlq", "eos-rb-group"
		partitions          = 4
	)
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, in, partitions)
	b.CreateTopic(t, out, partitions)
	b.CreateTopic(t, dlq, 1)
	slow := func([]pipeline.Message) error { time.Sleep(time.Millisecond); return nil }
	opts := consumerOpts{batch: 10, inFlight: 2, linger: time.Millisecond}
	produced := 0
	produce := func(n int) { produceN(t, b, in, partitions, n, produced); produced += n }
	done := func() bool {
		got := stableCommitted(t, b, group, in)
		for p := range int32(partitions) {
			if got[p] != int64(produced) {
				return false
			}
		}
		return true
	}

	produce(200)
	pa := newEOSPipe(t, out, dlq)
	pa.after = slow
	ca := newEOSConsumer(t, b, group, in, "eos-rb-a", opts)
	runA := start(ca, pa.open(ca))
	eventually(t, "a handles some records", func() bool { return pa.total.Load() >= 100 })
	pb := newEOSPipe(t, out, dlq)
	pb.after = slow
	cb := newEOSConsumer(t, b, group, in, "eos-rb-b", opts)
	runB := start(cb, pb.open(cb))
	eventually(t, "b handles some records", func() bool { return pb.total.Load() > 0 })
	produce(200)
	eventually(t, "all committed with two members", done)
	if err := runB.stop(t); err != nil {
		t.Fatalf("b: %v", err)
	}
	produce(100)
	eventually(t, "all committed after b left", done)
	if err := runA.stop(t); err != nil {
		t.Fatalf("a: %v", err)
	}
	pa.Check(t)
	pb.Check(t)
	all := map[int32]int64{}
	for p := range int32(partitions) {
		all[p] = int64(produced)
	}
	committedExactly(t, b, out, dlq, all, "%s", false)
	handled := pa.total.Load() + pb.total.Load()
	t.Logf("%d inputs, %d handled (%d read again after aborted rounds)", partitions*produced, handled, handled-int64(partitions*produced))
}

func TestExactlyOnceConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := kafka.Config{Client: kafka.ClientConfig{Brokers: []string{"127.0.0.1:1"}}, TransactionalID: "x"}
	if err := c.Validate(); err == nil {
		t.Error("a transactional id without a group was accepted")
	}
	c = kafka.Config{Client: kafka.ClientConfig{Brokers: []string{"127.0.0.1:1"}}, Group: "g", Topics: []string{"t"}, BatchSize: 1, MaxInFlight: 1, Registerer: reg, TransactionalID: "x", TransactionTimeout: -time.Second}
	if err := c.Validate(); err == nil {
		t.Error("a negative transaction timeout was accepted")
	}
	c.TransactionTimeout = 0
	k, err := kafka.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if k.TransactionalID() != "x" {
		t.Errorf("TransactionalID() = %q", k.TransactionalID())
	}
	if n, m := k.Transactions(); n != 0 || m != 0 {
		t.Errorf("Transactions() = %d, %d before any round", n, m)
	}
	if err := k.Write(context.Background(), []pipeline.OutRecord{{Topic: "t", Value: []byte("v")}}); err == nil {
		t.Error("an exactly-once Write outside a round returned nil")
	}
}

// A record that fails inside a round (its topic does not exist) aborts the
// round: Run returns the produce error, no offset is committed and nothing
// is visible.
func TestExactlyOnceProduceErrorAbortsRound(t *testing.T) {
	const in, dlq, group = "perr-in", "perr-dlq", "perr-group"
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, in, 1)
	b.CreateTopic(t, dlq, 1)
	produceN(t, b, in, 1, 20, 0)
	pipe := newEOSPipe(t, "no-such-topic", dlq)
	c := newEOSConsumer(t, b, group, in, "eos-perr", consumerOpts{batch: 8, inFlight: 1})
	err := start(c, pipe.open(c)).wait(t)
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("Run returned %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	if got := stableCommitted(t, b, group, in); got[0] != 0 {
		t.Errorf("committed %d after a failed round", got[0])
	}
	if recs := readOutputs(t, b, true, dlq); len(recs[dlq]) != 0 {
		t.Errorf("%d DLQ records of the aborted round are visible", len(recs[dlq]))
	}
	if n, m := c.Transactions(); n != 0 || m != 1 {
		t.Errorf("Transactions() = %d committed, %d aborted; want 0, 1", n, m)
	}
}

// testExactlyOnceBrokerAbortsTheTransaction stalls a round past the
// transaction timeout, so the broker aborts its transaction and bumps the
// producer's epoch, as it does when the cluster was away for longer than
// the timeout. With commitOnly, the stalled batch is the round's last, so
// its End is the first to meet the new epoch; without, the round produces
// after the stall. Either way Run must go on: the round is read again, and
// the read-committed outputs hold every input once.
func testExactlyOnceBrokerAbortsTheTransaction(t *testing.T, b *kafkatest.Broker, commitOnly bool) {
	const txnTimeout = time.Second
	name := "txn-timeout"
	if commitOnly {
		name += "-commit"
	}
	in, out, dlq, group := name+"-in", name+"-out", name+"-dlq", name+"-group"
	const batch = 8
	perPart := 20 * batch
	if commitOnly {
		perPart = batch // the first round is one batch
	}
	b.CreateTopic(t, in, 1)
	b.CreateTopic(t, out, 1)
	b.CreateTopic(t, dlq, 1)
	produceN(t, b, in, 1, perPart, 0)
	// Past the timeout and the broker's sweep for timed-out transactions:
	// kfake aborts a transaction when its timeout fires; Kafka looks for
	// them every 10 s (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	stall := txnTimeout + 3*time.Second
	if b.Fake == nil {
		stall = txnTimeout + 12*time.Second
	}
	pipe := newEOSPipe(t, out, dlq)
	c := newEOSConsumer(t, b, group, in, "eos-"+name, consumerOpts{batch: batch, inFlight: 1, txnTimeout: txnTimeout})
	var stalled atomic.Bool
	pipe.after = func(msgs []pipeline.Message) error {
		if msgs[0].Offset == 0 && !stalled.Swap(true) {
			// Send the batch's outputs, so that the transaction holds the
			// output partition when the broker aborts it.
			if err := c.Kgo().Flush(context.Background()); err != nil {
				return err
			}
			time.Sleep(stall)
		}
		return nil
	}
	run := start(c, pipe.open(c))
	if commitOnly {
		eventually(t, "the stalled round ended", func() bool { return stalled.Load() })
		produceN(t, b, in, 1, 3*batch, perPart)
		perPart += 3 * batch
	}
	eventually(t, "every input committed", func() bool {
		select {
		case err := <-run.done:
			t.Fatalf("Run returned %v after the broker aborted its transaction; want it to go on", err)
		default:
		}
		return stableCommitted(t, b, group, in)[0] == int64(perPart)
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	pipe.Check(t)
	if !stalled.Load() {
		t.Fatal("no batch stalled; the test proves nothing")
	}
	if _, aborted := c.Transactions(); aborted == 0 && c.SessionResets() == 0 {
		t.Errorf("no round was aborted and no session reset: the broker never aborted the stalled transaction, so the test proves nothing")
	}
	committedExactly(t, b, out, dlq, map[int32]int64{0: int64(perPart)}, "after the broker's abort: %s", false)
}

func TestExactlyOnceBrokerAbortedTransactionIsReadAgain(t *testing.T) {
	for _, commitOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit_only=%v", commitOnly), func(t *testing.T) {
			testExactlyOnceBrokerAbortsTheTransaction(t, kafkatest.StartKfake(t), commitOnly)
		})
	}
}
