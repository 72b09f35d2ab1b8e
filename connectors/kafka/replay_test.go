package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/testkit/kafkatest"
)

// The replay side of the connector: Admin, Reader (replay.Input),
// ReadTopics/ReadRanges and the ReplayCommitter (replay.Committer). Each
// check runs on kfake here and on a real broker in the integration tests.

func clientConfig(b *kafkatest.Broker) kafka.ClientConfig {
	return kafka.ClientConfig{Brokers: []string{b.Addr}, ClientID: "replay-test"}
}

func newAdmin(t *testing.T, b *kafkatest.Broker) *kafka.Admin {
	t.Helper()
	adm, err := kafka.NewAdmin(clientConfig(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return adm
}

// produceAt writes one record per timestamp to partition p of topic and
// returns their offsets.
func produceAt(t *testing.T, b *kafkatest.Broker, topic string, p int32, stamps ...time.Time) []int64 {
	t.Helper()
	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	var recs []*kgo.Record
	for i, ts := range stamps {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Timestamp: ts, Value: fmt.Appendf(nil, "p%d-%d", p, i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var out []int64
	for _, r := range res {
		out = append(out, r.Record.Offset)
	}
	return out
}

// produceTxn writes values to partition 0 of topic in one transaction and
// commits or aborts it.
func produceTxn(t *testing.T, b *kafkatest.Broker, topic, txnID string, commit bool, values ...string) {
	t.Helper()
	cl := b.Client(t, kgo.TransactionalID(txnID), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

func testAdmin(t *testing.T, b *kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	adm := newAdmin(t, b)

	// EnsureTopic creates a topic (compacted on request) and leaves an
	// existing one as it is.
	if err := adm.EnsureTopic(ctx, "ckpt", 1, true); err != nil {
		t.Fatal(err)
	}
	if err := adm.EnsureTopic(ctx, "ckpt", 3, false); err != nil {
		t.Fatalf("an existing topic: %v", err)
	}
	if n, err := adm.Partitions(ctx, "ckpt"); err != nil || n != 1 {
		t.Errorf("partitions of ckpt: %d, %v; want 1", n, err)
	}
	cfgs, err := kadm.NewClient(b.Client(t)).DescribeTopicConfigs(ctx, "ckpt")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On("ckpt", nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	if policy != "compact" {
		t.Errorf("cleanup.policy of ckpt = %q, want compact", policy)
	}
	if _, err := adm.Partitions(ctx, "no-such-topic"); err == nil || !strings.Contains(err.Error(), "topic no-such-topic does not exist") {
		t.Errorf("partitions of a missing topic: %v", err)
	}

	// TimeRanges maps timestamps onto offsets per partition.
	b.CreateTopic(t, "events", 2)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	produceAt(t, b, "events", 0, at(0), at(1), at(2), at(3), at(4))
	produceAt(t, b, "events", 1, at(0), at(10), at(20))
	got, err := adm.TimeRanges(ctx, "events", at(1), at(4))
	if err != nil {
		t.Fatal(err)
	}
	want := []replay.Range{{Partition: 0, Start: 1, End: 4}, {Partition: 1, Start: 1, End: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("TimeRanges [1s, 4s) = %+v, want %+v", got, want)
	}
	if got, err = adm.TimeRanges(ctx, "events", at(3), at(100)); err != nil || !slices.Equal(got, []replay.Range{{Partition: 0, Start: 3, End: 5}, {Partition: 1, Start: 1, End: 3}}) {
		t.Errorf("TimeRanges [3s, 100s) = %+v, %v; want the rest of each partition", got, err)
	}
	if _, err := adm.TimeRanges(ctx, "no-such-topic", at(0), at(1)); err == nil || !strings.Contains(err.Error(), "topic no-such-topic does not exist") {
		t.Errorf("TimeRanges of a missing topic: %v", err)
	}

	// CheckRanges: within the log, or an error naming the end at fault.
	if err := adm.CheckRanges(ctx, "events", []replay.Range{{Partition: 0, Start: 0, End: 5}, {Partition: 1, Start: 2, End: 3}}); err != nil {
		t.Errorf("ranges within the log: %v", err)
	}
	dr := kadm.Offsets{}
	dr.Add(kadm.Offset{Topic: "events", Partition: 0, At: 2})
	if _, err := kadm.NewClient(b.Client(t)).DeleteRecords(ctx, dr); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r     replay.Range
		bound kafka.Bound
		msg   string
	}{
		{replay.Range{Partition: 0, Start: 1, End: 3}, kafka.BoundStart, "partition 0 starts at 1, before the log start 2"},
		{replay.Range{Partition: 1, Start: 0, End: 4}, kafka.BoundEnd, "partition 1 ends at 4, after the log end 3"},
		{replay.Range{Partition: 7, Start: 0, End: 1}, kafka.BoundStart, "topic events has no partition 7"},
	} {
		err := adm.CheckRanges(ctx, "events", []replay.Range{c.r})
		var re *kafka.RangeError
		if !errors.As(err, &re) || re.Bound != c.bound || err.Error() != c.msg {
			t.Errorf("CheckRanges(%+v) = %v, want a RangeError at bound %d: %q", c.r, err, c.bound, c.msg)
		}
	}
}

// fetchAll reads [from, to) of partition 0 of topic through a Reader.
func fetchAll(t *testing.T, b *kafkatest.Broker, topic string, from, to int64) []replay.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := kafka.NewReader(clientConfig(b))
	if err != nil {
		t.Fatal(err)
	}
	rr, err := r.OpenRange(ctx, topic, 0, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	var out []replay.Record
	for len(out) == 0 || out[len(out)-1].Offset+1 < to {
		if out, err = rr.Fetch(ctx, out); err != nil {
			t.Fatalf("fetch: %v (read %d)", err, len(out))
		}
	}
	return out
}

func testReader(t *testing.T, b *kafkatest.Broker) {
	b.CreateTopic(t, "txns", 1)
	produceTxn(t, b, "txns", "writer-a", true, "a0", "a1")
	produceTxn(t, b, "txns", "writer-b", false, "b0", "b1", "b2")
	produceAt(t, b, "txns", 0, time.Now(), time.Now())
	produceTxn(t, b, "txns", "writer-a", true, "a2")
	// The log as a read-uncommitted reader with control records sees it:
	// a0 a1, a marker, b0 b1 b2, a marker, two plain records, a2, a
	// marker (at offsets the broker chooses).
	var wantControls []int64
	var end int64
	for _, r := range readOutputsAll(t, b, "txns") {
		if r.Attrs.IsControl() && r.Offset >= 1 {
			wantControls = append(wantControls, r.Offset)
		}
		end = r.Offset + 1
	}
	recs := fetchAll(t, b, "txns", 1, end)
	var data []string
	var controls []int64
	last := int64(0)
	for _, r := range recs {
		if r.Offset <= last && last > 0 {
			t.Fatalf("offset %d after %d: not in order", r.Offset, last)
		}
		last = r.Offset
		if r.Control {
			controls = append(controls, r.Offset)
			continue
		}
		if r.Topic != "txns" || r.Partition != 0 {
			t.Errorf("record %+v: wrong topic or partition", r)
		}
		data = append(data, string(r.Value))
	}
	if got := strings.Join(data, " "); got != "a1 p0-0 p0-1 a2" {
		t.Errorf("data records read committed from offset 1: %q, want a1 p0-0 p0-1 a2 (nothing aborted)", got)
	}
	if len(wantControls) != 3 || !slices.Equal(controls, wantControls) {
		t.Errorf("control records at %v, want the three transaction markers at %v", controls, wantControls)
	}
	if recs[0].Offset != 1 {
		t.Errorf("first record at %d, want the range's start 1", recs[0].Offset)
	}
}

// readOutputsAll reads every record of partition 0 of topic, control
// records included, read uncommitted.
func readOutputsAll(t *testing.T, b *kafkatest.Broker, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ends, err := kadm.NewClient(b.Client(t)).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := ends.Lookup(topic, 0)
	cl := b.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())
	var out []*kgo.Record
	for len(out) == 0 || out[len(out)-1].Offset+1 < e.Offset {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %v", topic, ctx.Err())
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func testReadTopics(t *testing.T, b *kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cc := clientConfig(b)
	b.CreateTopic(t, "mixed", 1)
	b.CreateTopic(t, "plain", 2)
	b.CreateTopic(t, "empty", 1)
	produceTxn(t, b, "mixed", "w1", true, "c0", "c1")
	produceTxn(t, b, "mixed", "w2", false, "x0")
	produceAt(t, b, "plain", 0, time.Now())
	produceAt(t, b, "plain", 1, time.Now(), time.Now())
	read := func(committed bool, topics ...string) ([]string, error) {
		var out []string
		err := kafka.ReadTopics(ctx, cc, committed, func(r *kafka.Record) error {
			out = append(out, fmt.Sprintf("%s/%d/%d:%s", r.Topic, r.Partition, r.Offset, r.Value))
			return nil
		}, topics...)
		slices.Sort(out)
		return out, err
	}
	got, err := read(true, "mixed", "plain", "empty")
	want := []string{"mixed/0/0:c0", "mixed/0/1:c1", "plain/0/0:p0-0", "plain/1/0:p1-0", "plain/1/1:p1-1"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("read committed: %v, %v; want %v", got, err, want)
	}
	got, err = read(false, "mixed")
	// x0's offset is 2 or 3: the broker writes the first transaction's
	// commit marker after EndTransaction returns (transaction.version 2),
	// so the second producer's record may come before it.
	if err != nil || len(got) != 3 || !slices.Equal(got[:2], []string{"mixed/0/0:c0", "mixed/0/1:c1"}) ||
		(got[2] != "mixed/0/2:x0" && got[2] != "mixed/0/3:x0") {
		t.Errorf("read uncommitted: %v, %v; want the aborted x0 as well", got, err)
	}
	if _, err := read(true, "plain", "no-such-topic"); err == nil || !strings.Contains(err.Error(), "topic no-such-topic does not exist") {
		t.Errorf("a missing topic: %v", err)
	}
	stop := errors.New("enough")
	n := 0
	err = kafka.ReadTopics(ctx, cc, false, func(*kafka.Record) error { n++; return stop }, "plain")
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: %v after %d records, want it returned after the first", err, n)
	}

	// ReadRanges reads the given ranges only.
	var vals []string
	err = kafka.ReadRanges(ctx, cc, "plain", []replay.Range{{Partition: 1, Start: 1, End: 2}, {Partition: 0, Start: 0, End: 0}}, true, func(r *kafka.Record) error {
		vals = append(vals, string(r.Value))
		return nil
	})
	if err != nil || !slices.Equal(vals, []string{"p1-1"}) {
		t.Errorf("ReadRanges: %v, %v; want p1-1", vals, err)
	}
}

func out(topic, key, value string) pipeline.OutRecord {
	return pipeline.OutRecord{Topic: topic, Key: []byte(key), Value: []byte(value), Headers: []pipeline.Header{{Key: "h", Value: []byte(key)}}}
}

func newCommitter(t *testing.T, b *kafkatest.Broker, txnID string) *kafka.ReplayCommitter {
	t.Helper()
	c, err := kafka.NewReplayCommitter(kafka.ReplayCommitterConfig{Client: clientConfig(b), TransactionalID: txnID, CheckpointTopic: "replay-ckpt", TransactionTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// restarted is a new committer of the run, fenced in: what a restarted
// replay process does first. Its Fence also waits for the transactions
// the earlier committers ended to be complete (their markers written), so
// that checkpoints and outputs read after it are current.
func restarted(t *testing.T, ctx context.Context, b *kafkatest.Broker) *kafka.ReplayCommitter {
	t.Helper()
	c := newCommitter(t, b, "driftline-replay-r1")
	if err := c.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func testReplayCommitter(t *testing.T, b *kafkatest.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	adm := newAdmin(t, b)
	if err := adm.EnsureTopic(ctx, "replay-ckpt", 1, true); err != nil {
		t.Fatal(err)
	}
	b.CreateTopic(t, "backfill", 2)
	c1 := restarted(t, ctx, b)
	if got, err := c1.Checkpoints(ctx, "r1", "in"); err != nil || len(got) != 0 {
		t.Fatalf("checkpoints of a new run: %v, %v", got, err)
	}
	ck := func(p int32, next int64) replay.Checkpoint {
		return replay.Checkpoint{Run: "r1", Topic: "in", Partition: p, Next: next, End: 100}
	}
	err := c1.Commit(ctx, [][]pipeline.OutRecord{{out("backfill", "e1", "v1"), out("backfill", "e2", "v2")}, {out("backfill", "e3", "v3")}},
		[]replay.Checkpoint{ck(0, 10), ck(1, 20)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Commit(ctx, nil, []replay.Checkpoint{ck(0, 15)}); err != nil {
		t.Fatal(err)
	}
	c2 := restarted(t, ctx, b)
	got, err := c2.Checkpoints(ctx, "r1", "in")
	if err != nil || got[0] != ck(0, 15) || got[1] != ck(1, 20) || len(got) != 2 {
		t.Errorf("checkpoints: %+v, %v; want partition 0 at 15 (the later one), 1 at 20", got, err)
	}
	if other, err := c2.Checkpoints(ctx, "r2", "in"); err != nil || len(other) != 0 {
		t.Errorf("checkpoints of another run: %+v, %v", other, err)
	}
	recs := readOutputs(t, b, true, "backfill", "replay-ckpt")
	var keys []string
	for _, r := range recs["backfill"] {
		if len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, r.Key) {
			t.Errorf("record %s: headers %v", r.Key, r.Headers)
		}
		keys = append(keys, string(r.Key)+"="+string(r.Value))
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"e1=v1", "e2=v2", "e3=v3"}) {
		t.Errorf("committed outputs %v", keys)
	}
	if n := len(recs["replay-ckpt"]); n != 3 || string(recs["replay-ckpt"][0].Key) != "r1/in/0" {
		t.Errorf("%d checkpoint records, first key %q; want 3, r1/in/0", n, recs["replay-ckpt"][0].Key)
	}

	// A failed record aborts the whole commit: neither the outputs nor the
	// checkpoint become visible.
	huge := out("backfill", "big", strings.Repeat("x", 5<<20))
	if err := c2.Commit(ctx, [][]pipeline.OutRecord{{out("backfill", "e4", "v4"), huge}}, []replay.Checkpoint{ck(0, 30)}); err == nil || !strings.Contains(err.Error(), "produce") {
		t.Errorf("commit with a record over the batch limit: %v, want a produce error", err)
	}
	c3 := restarted(t, ctx, b)
	if got, _ := c3.Checkpoints(ctx, "r1", "in"); got[0].Next != 15 {
		t.Errorf("after an aborted commit partition 0 is at %d, want 15", got[0].Next)
	}
	if n := len(readOutputs(t, b, true, "backfill")["backfill"]); n != 3 {
		t.Errorf("%d committed outputs after an aborted commit, want 3", n)
	}

	// A new committer of the run fences the old one.
	c4 := restarted(t, ctx, b)
	if err := c3.Commit(ctx, [][]pipeline.OutRecord{{out("backfill", "e5", "v5")}}, []replay.Checkpoint{ck(0, 40)}); err == nil {
		t.Error("the fenced committer committed")
	}
	if err := c4.Commit(ctx, [][]pipeline.OutRecord{{out("backfill", "e6", "v6")}}, []replay.Checkpoint{ck(0, 50)}); err != nil {
		t.Fatalf("the new committer: %v", err)
	}
	if got, _ := restarted(t, ctx, b).Checkpoints(ctx, "r1", "in"); got[0].Next != 50 {
		t.Errorf("partition 0 at %d, want the new committer's 50", got[0].Next)
	}
}

func TestReplayAdmin(t *testing.T)            { testAdmin(t, kafkatest.StartKfake(t)) }
func TestReplayReader(t *testing.T)           { testReader(t, kafkatest.StartKfake(t)) }
func TestReplayReadTopics(t *testing.T)       { testReadTopics(t, kafkatest.StartKfake(t)) }
func TestReplayCommitterOnKfake(t *testing.T) { testReplayCommitter(t, kafkatest.StartKfake(t)) }

func TestReplayCommitterConfig(t *testing.T) {
	cc := kafka.ClientConfig{Brokers: []string{"127.0.0.1:1"}}
	for _, c := range []struct {
		cfg  kafka.ReplayCommitterConfig
		want string
	}{
		{kafka.ReplayCommitterConfig{Client: cc, CheckpointTopic: "c"}, "no transactional id"},
		{kafka.ReplayCommitterConfig{Client: cc, TransactionalID: "t"}, "no checkpoint topic"},
		{kafka.ReplayCommitterConfig{Client: cc, TransactionalID: "t", CheckpointTopic: "c", TransactionTimeout: -1}, "must not be negative"},
		{kafka.ReplayCommitterConfig{TransactionalID: "t", CheckpointTopic: "c"}, "no brokers"},
	} {
		if _, err := kafka.NewReplayCommitter(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
