package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
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

// The drivers on kfake through connectors/kafka, with a stage whose
// outputs depend on its state: each output carries the running count of
// the rows its chain has seen, so a resumed run gives the outputs of an
// uninterrupted one only if fast-forward rebuilt the state exactly.

// countStage numbers the OK rows it sees, per chain, and rejects rows
// whose value starts with "bad". When stopAt is set, it calls stop once
// its count reaches stopAt.
type countStage struct {
	out    string
	n      int
	stopAt int
	stop   func()
}

func (s *countStage) Name() string { return "count" }

func (s *countStage) Process(_ context.Context, b *pipeline.Batch) error {
	for i := range b.Messages {
		m := &b.Messages[i]
		if bytes.HasPrefix(m.Value, []byte("bad")) {
			b.Reject(i, "count", "count.bad", "")
			continue
		}
		s.n++
		if s.n == s.stopAt {
			s.stop()
		}
		b.Outputs = append(b.Outputs, pipeline.OutRecord{Topic: s.out, Key: fmt.Appendf(nil, "%d/%d", m.Partition, m.Offset), Value: fmt.Appendf(nil, "%d:%s", s.n, m.Value)})
	}
	return nil
}

const (
	perPartition = 2000
	badEvery     = 50
)

// history fills topic in (2 partitions): perPartition records each, one in
// badEvery bad, and a committed transaction of 10 records in partition 0,
// so that the log holds control records. It returns the ranges of all of
// it and the data and bad records in them.
func history(t *testing.T, b *kafkatest.Broker) (ranges []replay.Range, data, bad int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.CreateTopic(t, "in", 2)
	cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond))
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range perPartition {
			v := fmt.Sprintf("v%d", i)
			if i%badEvery == 7 {
				v, bad = "bad"+v, bad+1
			}
			recs = append(recs, &kgo.Record{Topic: "in", Partition: p, Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(ctx, recs[:perPartition/2]...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn := b.Client(t, kgo.TransactionalID("history"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "in", Partition: 0, Value: fmt.Appendf(nil, "t%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs[perPartition/2:]...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(b.Client(t)).ListEndOffsets(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		e, _ := ends.Lookup("in", p)
		ranges = append(ranges, replay.Range{Partition: p, End: e.Offset})
	}
	return ranges, 2*perPartition + 10, bad
}

// runConfig is a run of the count stage; stop, when set, is called once a
// partition's chain has counted a third of its rows.
func runConfig(t *testing.T, b *kafkatest.Broker, ranges []replay.Range, run, out string, stop func()) replay.Config {
	t.Helper()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr}}
	in, err := kafka.NewReader(cc)
	if err != nil {
		t.Fatal(err)
	}
	com, err := kafka.NewReplayCommitter(kafka.ReplayCommitterConfig{Client: cc, TransactionalID: "replay-" + run, CheckpointTopic: "ckpt"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(com.Close)
	return replay.Config{Topic: "in", Ranges: ranges, RunID: run,
		NewStages: func() ([]pipeline.Stage, error) {
			st := &countStage{out: out}
			if stop != nil {
				st.stopAt, st.stop = perPartition/3, stop
			}
			return []pipeline.Stage{st}, nil
		},
		Stateful: true, OutputTopic: out, DLQTopic: out + ".dlq", BatchSize: 64, Parallel: 2,
		Input: in, Committer: com, Progress: replay.NewProgress(io.Discard, false, time.Hour)}
}

// committedOutputs reads topic with read-committed isolation: key →
// values.
func committedOutputs(t *testing.T, b *kafkatest.Broker, topics ...string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string][]string{}
	err := kafka.ReadTopics(ctx, kafka.ClientConfig{Brokers: []string{b.Addr}}, true, func(r *kafka.Record) error {
		out[r.Topic+" "+string(r.Key)] = append(out[r.Topic+" "+string(r.Key)], string(r.Value))
		return nil
	}, topics...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRunResumesWithTheStateOfAnUninterruptedRun(t *testing.T) {
	b := kafkatest.StartKfake(t)
	ranges, data, bad := history(t, b)
	for _, topic := range []string{"ckpt", "a", "a.dlq", "b", "b.dlq"} {
		b.CreateTopic(t, topic, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	full, err := replay.Run(ctx, runConfig(t, b, ranges, "a", "a", nil))
	if err != nil {
		t.Fatal(err)
	}
	if full.Total != full.Inputs || full.Resumed != 0 || full.Outputs != data-bad || full.Rejected != bad || full.Txns == 0 {
		t.Fatalf("uninterrupted run: %+v; want %d offsets, %d outputs, %d rejected", full, full.Total, data-bad, bad)
	}
	want := committedOutputs(t, b, "a")
	if int64(len(want)) != data-bad {
		t.Fatalf("%d outputs of the uninterrupted run, want %d", len(want), data-bad)
	}
	if n := len(committedOutputs(t, b, "a.dlq")["a.dlq "]); int64(n) != bad {
		t.Errorf("%d DLQ records, want %d", n, bad)
	}

	// The first run is stopped once a chain has counted a third of its
	// partition: it cannot have committed the rest, and it committed
	// earlier chunks (a worker waits for all but its last three).
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	first, err := replay.Run(runCtx, runConfig(t, b, ranges, "b", "b", stop))
	if err == nil || first.Inputs == 0 || first.Inputs >= first.Total {
		t.Fatalf("first run: %+v, %v; want it stopped part way", first, err)
	}
	second, err := replay.Run(ctx, runConfig(t, b, ranges, "b", "b", nil))
	if err != nil {
		t.Fatal(err)
	}
	if second.Resumed != first.Inputs || second.Resumed+second.Inputs != second.Total {
		t.Fatalf("second run %+v after %+v: want it to resume where the first committed", second, first)
	}
	got := committedOutputs(t, b, "b")
	if len(got) != len(want) {
		t.Fatalf("%d outputs after the resumed run, want %d", len(got), len(want))
	}
	for k, vs := range want {
		if g := got[strings.Replace(k, "a ", "b ", 1)]; len(g) != 1 || g[0] != vs[0] {
			t.Fatalf("output %s: %q after the resumed run, %q uninterrupted", k, g, vs[0])
		}
	}
	// A third run finds the run done.
	third, err := replay.Run(ctx, runConfig(t, b, ranges, "b", "b", nil))
	if err != nil || third.Inputs != 0 || third.Resumed != third.Total {
		t.Errorf("third run: %+v, %v; want nothing left to do", third, err)
	}
}

func TestDirectReplaysInOrder(t *testing.T) {
	b := kafkatest.StartKfake(t)
	ranges, data, bad := history(t, b)
	in, err := kafka.NewReader(kafka.ClientConfig{Brokers: []string{b.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	prog := replay.NewProgress(io.Discard, false, time.Hour)
	d, err := replay.NewDirect(replay.DirectConfig{Stages: []pipeline.Stage{&countStage{out: "x"}}, BatchSize: 100, Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	var outputs int64
	last := map[int32]int64{0: -1, 1: -1}
	err = d.ReplayRanges(context.Background(), in, "in", ranges, func(b *pipeline.Batch) error {
		if b.Len() == 0 || b.Len() > 100 {
			return fmt.Errorf("batch of %d rows", b.Len())
		}
		for _, m := range b.Messages {
			if m.Partition != b.Partition || m.Offset <= last[m.Partition] || (m.Partition == 1 && last[0] < 0) {
				return fmt.Errorf("message %d/%d after %v: not partition after partition in offset order", m.Partition, m.Offset, last)
			}
			last[m.Partition] = m.Offset
		}
		outputs += int64(len(b.Outputs))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Inputs() != data || d.Rejected() != bad || outputs != data-bad {
		t.Errorf("%d inputs, %d rejected, %d outputs; want %d, %d, %d", d.Inputs(), d.Rejected(), outputs, data, bad, data-bad)
	}
	if s := prog.Snapshot(); s.Done != data || s.Total != ranges[0].End+ranges[1].End {
		t.Errorf("progress %d of %d, want %d of the ranges' offsets", s.Done, s.Total, data)
	}
}

// sliceSource is a BatchSource of ready batches.
type sliceSource [][]pipeline.Message

func (s sliceSource) Rows() (int64, error) {
	var n int64
	for _, m := range s {
		n += int64(len(m))
	}
	return n, nil
}

func (s sliceSource) Batches(_ context.Context, maxRows int, fn func(*pipeline.Batch) error) error {
	var b pipeline.Batch
	for _, msgs := range s {
		for i := 0; i < len(msgs); i += maxRows {
			b.Reset(msgs[i:min(i+maxRows, len(msgs))])
			if err := fn(&b); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestDirectReplaysBatches(t *testing.T) {
	src := sliceSource{{{Value: []byte("a")}, {Value: []byte("bad")}, {Value: []byte("b")}}, {{Partition: 1, Value: []byte("c")}}}
	prog := replay.NewProgress(io.Discard, false, time.Hour)
	st := &countStage{out: "x"}
	d, err := replay.NewDirect(replay.DirectConfig{Stages: []pipeline.Stage{st}, BatchSize: 2, Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	if err := d.ReplayBatches(context.Background(), src, func(b *pipeline.Batch) error { sizes = append(sizes, b.Len()); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[2 1 1]" || d.Inputs() != 4 || d.Rejected() != 1 || st.n != 3 || prog.Snapshot().Total != 4 {
		t.Errorf("batches %v, %d inputs, %d rejected, %d counted, total %d", sizes, d.Inputs(), d.Rejected(), st.n, prog.Snapshot().Total)
	}
	if _, err := replay.NewDirect(replay.DirectConfig{}); err == nil {
		t.Error("a direct replay without stages")
	}
}

func TestConfigValidate(t *testing.T) {
	good := replay.Config{Topic: "in", OutputTopic: "out", RunID: "r", BatchSize: 1, Parallel: 1,
		NewStages: func() ([]pipeline.Stage, error) { return nil, nil }, Input: &kafka.Reader{}, Committer: &kafka.ReplayCommitter{}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*replay.Config)
		want string
	}{
		{func(c *replay.Config) { c.Topic = "" }, "no input topic"},
		{func(c *replay.Config) { c.OutputTopic = "" }, "no output topic"},
		{func(c *replay.Config) { c.RunID = "" }, "no run id"},
		{func(c *replay.Config) { c.NewStages = nil }, "no stage constructor"},
		{func(c *replay.Config) { c.BatchSize = 0 }, "batch size must be at least 1"},
		{func(c *replay.Config) { c.Parallel = 0 }, "parallel must be at least 1"},
		{func(c *replay.Config) { c.Input = nil }, "no input"},
		{func(c *replay.Config) { c.Committer = nil }, "no committer"},
		{func(c *replay.Config) { c.Ranges = []replay.Range{{Partition: 3, Start: 5, End: 4}} }, "partition 3 ends at 4, before its start 5"},
	} {
		cfg := good
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want %q", err, c.want)
		}
		if _, err := replay.Run(context.Background(), cfg); err == nil {
			t.Errorf("Run with %q: no error", c.want)
		}
	}
}

func TestCheckpointKeyAndParse(t *testing.T) {
	c := replay.Checkpoint{Run: "r1", Topic: "in", Partition: 3, Next: 42, End: 50}
	if string(c.Key()) != "r1/in/3" {
		t.Errorf("key %q", c.Key())
	}
	v := []byte(`{"run":"r1","topic":"in","partition":3,"next":42,"end":50}`)
	if got, ok := replay.ParseCheckpoint(c.Key(), v, "r1", "in"); !ok || got != c {
		t.Errorf("parse: %+v, %v", got, ok)
	}
	for _, k := range []struct{ key, run, topic string }{{"r1/in/3", "r2", "in"}, {"r1/in/3", "r1", "other"}, {"r1/in/", "r1", "in"}, {"r10/in/3", "r1", "in"}} {
		if _, ok := replay.ParseCheckpoint([]byte(k.key), v, k.run, k.topic); ok {
			t.Errorf("key %s parsed as a checkpoint of run %s topic %s", k.key, k.run, k.topic)
		}
	}
}
