package kafka_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
)

func TestConfigValidate(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok := kafka.Config{Client: kafka.ClientConfig{Brokers: []string{"127.0.0.1:1"}}, Group: "g", Topics: []string{"t"}, BatchSize: 1, MaxInFlight: 1, Registerer: reg}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*kafka.Config){
		"no brokers":    func(c *kafka.Config) { c.Client.Brokers = nil },
		"group only":    func(c *kafka.Config) { c.Topics = nil },
		"topics only":   func(c *kafka.Config) { c.Group = "" },
		"batch size 0":  func(c *kafka.Config) { c.BatchSize = 0 },
		"in flight 0":   func(c *kafka.Config) { c.MaxInFlight = 0 },
		"no registerer": func(c *kafka.Config) { c.Registerer = nil },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
		if _, err := kafka.New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	producer := kafka.Config{Client: kafka.ClientConfig{Brokers: []string{"127.0.0.1:1"}}}
	if err := producer.Validate(); err != nil {
		t.Errorf("produce-only config: %v", err)
	}
}

func TestOrderBatchesLagAndCommit(t *testing.T) {
	testOrderAndCommit(t, kafkatest.StartKfake(t))
}

func TestHandlerErrorStopsRunAndIsReRead(t *testing.T) {
	testHandlerErrorRereads(t, kafkatest.StartKfake(t))
}

func TestRunWithoutGroupFails(t *testing.T) {
	b := kafkatest.StartKfake(t)
	c, err := kafka.New(kafka.Config{Client: kafka.ClientConfig{Brokers: []string{b.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Run(context.Background(), nil); err == nil {
		t.Fatal("Run on a produce-only client returned nil")
	}
}

// Two members of a group split the partitions; a member joining and then
// leaving moves partitions without losing a record, and duplicates at most
// what was in flight when a partition moved.
func TestRebalanceSplitsWithoutLoss(t *testing.T) {
	const (
		topic      = "rebalance"
		group      = "rebalance-group"
		partitions = 4
		batch      = 10
		inFlight   = 2
	)
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, partitions)
	act := &active{who: map[int32]string{}}
	slow := func([]pipeline.Message) error { time.Sleep(2 * time.Millisecond); return nil }
	a := newRecorder("a", batch)
	a.before = slow
	bb := newRecorder("b", batch)
	bb.before = slow

	produced := 0
	produce := func(n int) { produceN(t, b, topic, partitions, n, produced); produced += n }
	seen := func() bool {
		for p := range int32(partitions) {
			got := map[int64]bool{}
			for _, o := range a.Offsets(p) {
				got[o] = true
			}
			for _, o := range bb.Offsets(p) {
				got[o] = true
			}
			if len(got) < produced {
				return false
			}
		}
		return true
	}

	// split reports whether a and b own disjoint, non-empty sets that
	// together cover the topic.
	split := func() bool {
		ao, bo := a.Owned(), bb.Owned()
		if len(ao) == 0 || len(bo) == 0 || len(ao)+len(bo) != partitions {
			return false
		}
		for _, p := range ao {
			if slices.Contains(bo, p) {
				return false
			}
		}
		return true
	}

	produce(150)
	runA := start(newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: inFlight}), a.open(act))
	eventually(t, "a handles some records", func() bool { return a.total.Load() >= 100 })

	runB := start(newConsumer(t, b, group, topic, consumerOpts{batch: batch, inFlight: inFlight}), bb.open(act))
	eventually(t, "a and b split the partitions", split)
	bOwned := bb.Owned()
	aBefore, bBefore := map[int32]int{}, map[int32]int{}
	for p := range int32(partitions) {
		aBefore[p], bBefore[p] = len(a.Offsets(p)), len(bb.Offsets(p))
	}
	produce(150)
	eventually(t, "every record handled with two members", seen)
	if !split() {
		t.Fatalf("assignment changed while both members ran: a owns %v, b owns %v", a.Owned(), bb.Owned())
	}
	// New records went to the partition's owner only.
	for p := range int32(partitions) {
		aNew, bNew := len(a.Offsets(p)) > aBefore[p], len(bb.Offsets(p)) > bBefore[p]
		if slices.Contains(bOwned, p) != bNew || aNew == bNew {
			t.Errorf("partition %d (b owns %v): new records reached a: %v, b: %v", p, bOwned, aNew, bNew)
		}
	}

	if err := runB.stop(t); err != nil {
		t.Fatalf("b's Run: %v", err)
	}
	eventually(t, "a owns every partition again", func() bool { return len(a.Owned()) == partitions })
	produce(100)
	eventually(t, "a handles b's partitions", seen)
	if err := runA.stop(t); err != nil {
		t.Fatalf("a's Run: %v", err)
	}
	a.Check(t)
	bb.Check(t)

	for p := range int32(partitions) {
		count := map[int64]int{}
		for _, o := range append(a.Offsets(p), bb.Offsets(p)...) {
			count[o]++
		}
		dups := 0
		for o := range int64(produced) {
			switch n := count[o]; {
			case n == 0:
				t.Errorf("partition %d: offset %d never handled", p, o)
			case n > 1:
				dups += n - 1
			}
		}
		// Two partition moves (b joins, b leaves), each redelivering at most
		// the batches that were in flight.
		if limit := 2 * batch * inFlight; dups > limit {
			t.Errorf("partition %d: %d duplicates, want at most %d", p, dups, limit)
		}
		if len(count) != produced {
			t.Errorf("partition %d: %d distinct offsets handled, want %d", p, len(count), produced)
		}
	}
	got := committed(t, b, group, topic)
	for p := range int32(partitions) {
		if got[p] != int64(produced) {
			t.Errorf("partition %d: committed %d, want %d", p, got[p], produced)
		}
	}
}

// Cancelling Run's context lets the in-flight Handle finish, and commits it,
// before Run returns.
func TestCancelDrainsInFlightBatch(t *testing.T) {
	const topic, group = "drain", "drain-group"
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, 1)
	produceN(t, b, topic, 1, 20, 0)

	entered := make(chan []pipeline.Message, 1)
	release := make(chan struct{})
	var finished atomic.Bool
	var calls atomic.Int32
	rec := newRecorder("drain", 5)
	rec.before = func(msgs []pipeline.Message) error {
		if calls.Add(1) == 1 {
			entered <- msgs
			<-release
			time.Sleep(50 * time.Millisecond)
			finished.Store(true)
		}
		return nil
	}
	run := start(newConsumer(t, b, group, topic, consumerOpts{batch: 5, inFlight: 1}), rec.open(nil))
	var batch []pipeline.Message
	select {
	case batch = <-entered:
	case <-time.After(waitFor):
		t.Fatal("no batch handled")
	}
	run.cancel()
	select {
	case err := <-run.done:
		t.Fatalf("Run returned (%v) while a Handle was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := run.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !finished.Load() {
		t.Fatal("Run returned before the in-flight Handle finished")
	}
	rec.Check(t)
	if calls.Load() != 1 {
		t.Errorf("Handle called %d times after cancel; want only the in-flight batch", calls.Load())
	}
	end := batch[len(batch)-1].Offset + 1
	if got := committed(t, b, group, topic); got[0] != end {
		t.Errorf("committed %d after draining a batch ending at %d, want %d", got[0], end-1, end)
	}
}

func TestWrite(t *testing.T) {
	b := kafkatest.StartKfake(t) // kfake does not auto-create topics
	b.CreateTopic(t, "out", 2)
	c, err := kafka.New(kafka.Config{Client: kafka.ClientConfig{Brokers: []string{b.Addr}, ClientID: "writer"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	if err := c.Write(ctx, nil); err != nil {
		t.Fatalf("empty write: %v", err)
	}
	recs := []pipeline.OutRecord{
		{Topic: "out", Key: []byte("k1"), Value: []byte("v1"), Headers: []pipeline.Header{{Key: pipeline.HeaderReason, Value: []byte("r")}}},
		{Topic: "out", Key: []byte("k2"), Value: []byte("v2")},
	}
	if err := c.Write(ctx, recs); err != nil {
		t.Fatalf("write: %v", err)
	}
	// Acknowledged means readable.
	rd := b.Client(t, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]*kgo.Record{}
	for len(got) < 2 {
		fs := rd.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read back: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Key)] = r })
	}
	if r := got["k1"]; string(r.Value) != "v1" || len(r.Headers) != 1 || r.Headers[0].Key != pipeline.HeaderReason || string(r.Headers[0].Value) != "r" {
		t.Errorf("k1 read back as %q with headers %v", r.Value, r.Headers)
	}
	if r := got["k2"]; string(r.Value) != "v2" || len(r.Headers) != 0 {
		t.Errorf("k2 read back as %q with headers %v", r.Value, r.Headers)
	}

	err = c.Write(ctx, []pipeline.OutRecord{{Topic: "out", Value: []byte("ok")}, {Topic: "no-such-topic", Value: []byte("x")}})
	if err == nil {
		t.Fatal("write to an unknown topic returned nil")
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("write to an unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	if !strings.HasPrefix(err.Error(), "kafka: produce: ") {
		t.Errorf("error %q is not wrapped by the connector", err)
	}
}

func TestLagGaugeLints(t *testing.T) {
	const topic, group = "lag", "lag-group"
	b := kafkatest.StartKfake(t)
	b.CreateTopic(t, topic, 2)
	produceN(t, b, topic, 2, 50, 0)
	reg := prometheus.NewRegistry()
	// Two clients on one registry share the gauge.
	newConsumer(t, b, "other", topic, consumerOpts{batch: 8, inFlight: 1, reg: reg})
	c := newConsumer(t, b, group, topic, consumerOpts{batch: 8, inFlight: 1, reg: reg})
	hold := make(chan struct{})
	rec := newRecorder("lag", 8)
	rec.before = func([]pipeline.Message) error { <-hold; return nil }
	run := start(c, rec.open(nil))
	// Each assigned partition gets a lag series as soon as its loop starts.
	eventually(t, "lag reported on both partitions", func() bool {
		lags := lagValues(t, reg)
		return len(lags) == 2
	})
	close(hold)
	eventually(t, "all handled", func() bool { return rec.total.Load() == 100 })
	eventually(t, "lag at zero", func() bool {
		lags := lagValues(t, reg)
		return len(lags) == 2 && lags["0"] == 0 && lags["1"] == 0
	})
	problems, err := testutil.CollectAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(reg, "driftline_kafka_consumer_lag_records"); n != 2 {
		t.Errorf("%d lag series, want 2", n)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "driftline_kafka_consumer_lag_records"); n != 0 {
		t.Errorf("%d lag series after Run returned, want 0 (revoked partitions drop theirs)", n)
	}
}
