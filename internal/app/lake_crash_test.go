package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// lakeCrashSpec is the demo spec on the given broker and Redis, with a
// lake at dir and a short session timeout (a killed member's partitions
// move on quickly), its topics, group and key prefix suffixed with name.
func lakeCrashSpec(t *testing.T, brokerAddr, redisAddr, dir, name string) *pipeline.Spec {
	t.Helper()
	text := strings.Replace(string(DemoSpec), "name: demo\n", "name: demo\nredis:\n  addr: \""+redisAddr+"\"\n  timeout: 300ms\n", 1)
	text = strings.Replace(text, "  session_timeout: 6s\n", "  session_timeout: 2s\n", 1)
	text += "lake:\n  dir: " + dir + "\n  roll:\n    max_age: 200ms\n"
	spec, err := pipeline.ParseSpec("lake-crash.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	spec.Kafka.Brokers = []string{brokerAddr}
	for _, topic := range []*string{&spec.Topics.Input, &spec.Topics.Predictions, &spec.Topics.DLQ, &spec.Topics.Labels,
		&spec.Topics.Alerts, &spec.Topics.Audit, &spec.Rollout.ShadowTopic} {
		*topic += "." + name
	}
	spec.Kafka.Group += "-" + name
	spec.Redis.KeyPrefix += name + ":"
	return spec
}

// TestLakeAfterKill runs the pipeline with a lake in a child process,
// kills it (SIGKILL) mid-stream, right after a lake commit or right after
// an offset commit, and finishes the stream in this process on the same
// lake and group. At the kill no committed offset is past the lake's
// committed files; at the end the lake holds every event that has a
// prediction exactly once: no duplicate of the rows the killed process
// committed to the lake but not to Kafka, and no gap.
func TestLakeAfterKill(t *testing.T) {
	if env := os.Getenv("DRIFTLINE_LAKE_CHILD"); env != "" {
		runLakeChild(t, env)
		return
	}
	broker := kafkatest.StartKfake(t, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(t)
	for _, at := range []killAt{killAfterLakeCommit, killAfterOffsetCommit} {
		t.Run(string(at), func(t *testing.T) { checkLakeAfterKill(t, broker, mr.Addr, "TestLakeAfterKill", at) })
	}
}

// killAt says when the child is killed.
type killAt string

const (
	killAfterLakeCommit   killAt = "after-a-lake-commit"
	killAfterOffsetCommit killAt = "after-an-offset-commit"
)

// checkLakeAfterKill is TestLakeAfterKill on broker and the Redis at
// redisAddr; test names the test the child process runs.
func checkLakeAfterKill(t *testing.T, broker *kafkatest.Broker, redisAddr, test string, killAt killAt) {
	dir := t.TempDir()
	name := fmt.Sprintf("lake%d", time.Now().UnixNano())
	spec := lakeCrashSpec(t, broker.Addr, redisAddr, dir, name)
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	for _, topic := range []string{spec.Topics.Input, spec.Topics.Predictions, spec.Topics.DLQ, spec.Topics.Labels, spec.Topics.Alerts,
		spec.Topics.Alerts + ".poison", spec.Topics.Audit, spec.Rollout.ShadowTopic} {
		broker.CreateTopic(t, topic, 2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prod, err := kafka.NewProducer(kafka.ProducerConfig{Client: broker.ClientConfig("feed")})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var stats feed.Stats
	load := feed.Config{Topic: spec.Topics.Input, Events: 8000, Rate: 2000, MalformedRate: 0.01, DuplicateRate: 0.01,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 41}}
	release := holdUntilKill(t, ctx, broker, spec, &load)
	fed := make(chan error, 1)
	go func() { fed <- feed.Produce(ctx, prod, load, &stats) }()

	child := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	child.Env = append(os.Environ(), "DRIFTLINE_LAKE_CHILD="+broker.Addr+","+redisAddr+","+dir+","+name)
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the lake has committed some groups and rows are in
	// flight.
	deadline := time.Now().Add(30 * time.Second)
	for {
		es, _ := lake.ReadManifest(dir)
		if len(es) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("the child committed %d lake files in 30s:\n%s", len(es), childOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	switch killAt {
	case killAfterLakeCommit:
		// Right after a lake commit, before the consumer's next offset
		// commit (every second): the lake then holds rows whose offsets
		// Kafka does not.
		n := len(mustReadManifest(t, dir))
		untilKillPoint(t, child, &childOut, "the next lake commit", func() bool { return len(mustReadManifest(t, dir)) != n })
	case killAfterOffsetCommit:
		// Right after the group's committed offsets advance: without the
		// commit gate they would cover rows still in open lake files.
		committed := func() (sum int64) {
			c, err := kadm.NewClient(broker.Client(t)).FetchOffsets(ctx, spec.Kafka.Group)
			if err == nil {
				c.Each(func(o kadm.OffsetResponse) { sum += o.At })
			}
			return sum
		}
		n := committed()
		untilKillPoint(t, child, &childOut, "the next offset commit", func() bool { return committed() != n })
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	release()
	before, _ := lake.ReadManifest(dir)
	if err := <-fed; err != nil {
		t.Fatal(err)
	}

	// The invariant at the kill: every predicted event at an offset the
	// group committed is in a committed lake file.
	atKill := map[[2]int64]bool{}
	for _, r := range readLake(t, dir, spec.Schema.IDField) {
		atKill[[2]int64{int64(r.partition), r.offset}] = true
	}
	c, err := kadm.NewClient(broker.Client(t)).FetchOffsets(ctx, spec.Kafka.Group)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for k := range readPredictedOffsets(t, ctx, broker, spec.Topics.Predictions) {
		if o, ok := c.Lookup(spec.Topics.Input, int32(k[0])); ok && k[1] < o.At && !atKill[k] {
			missing++
		}
	}
	c.Each(func(o kadm.OffsetResponse) { t.Logf("at the kill: partition %d committed up to %d", o.Partition, o.At) })
	t.Logf("at the kill: the lake's committed files end at %v", lake.LastOffsets(before))
	if missing > 0 {
		t.Errorf("at the kill, %d predicted events at committed offsets are not in the lake", missing)
	}

	// Finish the stream here.
	a, err := Open(ctx, spec, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(runCtx) }()
	adm := kadm.NewClient(broker.Client(t))
	ends, err := adm.ListEndOffsets(ctx, spec.Topics.Input)
	if err != nil {
		t.Fatal(err)
	}
	// Processed to the end: every partition's marks reach its end offset
	// (a lake commit every 200ms releases them, the autocommit follows).
	waitFor(t, runErr, time.Minute, "the group committed the whole input", func() bool {
		c, err := adm.FetchOffsets(ctx, spec.Kafka.Group)
		if err != nil {
			return false
		}
		all := true
		ends.Each(func(e kadm.ListedOffset) {
			o, ok := c.Lookup(e.Topic, e.Partition)
			all = all && ok && o.At >= e.Offset
		})
		return all
	})
	stop()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}

	inLake := map[[2]int64]int{}
	for _, r := range readLake(t, dir, spec.Schema.IDField) {
		inLake[[2]int64{int64(r.partition), r.offset}]++
	}
	predicted := readPredictedOffsets(t, ctx, broker, spec.Topics.Predictions)
	for k, n := range inLake {
		if n != 1 {
			t.Errorf("partition %d offset %d is in the lake %d times", k[0], k[1], n)
		}
		if !predicted[k] {
			t.Errorf("partition %d offset %d is in the lake without a prediction", k[0], k[1])
		}
	}
	for k := range predicted {
		if inLake[k] == 0 {
			t.Errorf("partition %d offset %d has a prediction but is not in the lake", k[0], k[1])
		}
	}
	t.Logf("%d lake files before the kill; %d events in the lake, %d predicted offsets, %d rows skipped after the restart",
		len(before), len(inLake), len(predicted), a.lake.Skipped())
}

// lakeKillBacklog is how many rows a crash test's load may be ahead of the
// child's outputs before the kill: half a second at its 2,000 rows a
// second.
const lakeKillBacklog = 1000

// holdUntilKill holds load (set to write to spec's input) at most
// lakeKillBacklog rows ahead of the outputs (predictions and DLQ records)
// that the child has written, until release is called, and returns
// release. The kill points wait for the child's next commit, which comes
// only while rows come: unheld, a child slow to start and join the group
// (the stream lasts 4 s) could find the whole stream written, take it as
// a backlog, commit it and then nothing more, and the wait for the kill
// point would never end (it had no bound). Held, rows are still to come
// at every kill point, as the tests mean.
func holdUntilKill(t *testing.T, ctx context.Context, broker *kafkatest.Broker, spec *pipeline.Spec, load *feed.Config) (release func()) {
	var released atomic.Bool
	adm := kadm.NewClient(broker.Client(t))
	load.MaxBacklog = lakeKillBacklog
	load.Taken = func() (rows, labels int64) {
		if released.Load() {
			return math.MaxInt64 / 2, math.MaxInt64 / 2
		}
		ends, err := adm.ListEndOffsets(ctx, spec.Topics.Predictions, spec.Topics.DLQ)
		if err != nil {
			return 0, math.MaxInt64 / 2 // asked again in a few ms
		}
		// Duplicates (1% of the rows) have no output: the bound leaves
		// room for them.
		ends.Each(func(o kadm.ListedOffset) { rows += o.Offset })
		return rows, math.MaxInt64 / 2 // labels follow their events
	}
	return func() { released.Store(true) }
}

// untilKillPoint polls cond every 2 ms until it holds, killing the child
// and failing t when it does not within 30 s.
func untilKillPoint(t *testing.T, child *exec.Cmd, childOut *strings.Builder, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("no kill point: %s did not come within 30s:\n%s", what, childOut.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustReadManifest(t *testing.T, dir string) []lake.ManifestEntry {
	t.Helper()
	es, err := lake.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// readPredictedOffsets reads the predictions topic to its end: the
// distinct (partition, offset) of the inputs predicted (an input processed
// twice, before and after the kill, has two predictions).
func readPredictedOffsets(t *testing.T, ctx context.Context, broker *kafkatest.Broker, topic string) map[[2]int64]bool {
	t.Helper()
	adm := kadm.NewClient(broker.Client(t))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	ends.Each(func(e kadm.ListedOffset) { want += e.Offset })
	cl := broker.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	out := map[[2]int64]bool{}
	var n int64
	for n < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d predictions", n, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var p struct {
				Partition int64 `json:"partition"`
				Offset    int64 `json:"offset"`
			}
			if err := json.Unmarshal(r.Value, &p); err != nil {
				t.Fatalf("prediction %s: %v", r.Value, err)
			}
			out[[2]int64{p.Partition, p.Offset}] = true
		})
	}
	return out
}

// runLakeChild is the child process: it runs the pipeline until killed.
func runLakeChild(t *testing.T, env string) {
	parts := strings.Split(env, ",")
	spec := lakeCrashSpec(t, parts[0], parts[1], parts[2], parts[3])
	a, err := Open(context.Background(), spec, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = a.Run(context.Background())
	fmt.Fprintln(os.Stderr, "run returned:", err)
	os.Exit(1)
}
