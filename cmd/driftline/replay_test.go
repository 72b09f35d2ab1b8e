package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// produceEvents writes n seeded events (1% malformed, 1% duplicates).
func produceEvents(t testing.TB, ctx context.Context, brokers []string, topic string, n int64, seed uint64) {
	t.Helper()
	cl := newTestProducer(t, brokers[0], time.Millisecond)
	cfg := producerConfig{Topic: topic, Events: n, MalformedRate: 0.01, DuplicateRate: 0.01,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: seed}}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	var stats producerStats
	if err := produce(ctx, cl, cfg, &stats); err != nil {
		t.Fatal(err)
	}
}

// timeRangeOffsets is the [start, end) offsets of each partition of topic
// whose records have timestamps in [from, to), found by reading the topic
// (not with the broker's time index, which the replay uses).
func timeRangeOffsets(t testing.TB, ctx context.Context, brokers []string, topic string, parts int32, from, to time.Time) map[int32][2]int64 {
	t.Helper()
	adm := kadm.NewClient(mustClient(t, brokers))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32][2]int64{}
	for p := range parts {
		e, _ := ends.Lookup(topic, p)
		lo, hi := int64(-1), int64(-1)
		for _, r := range readRange(t, ctx, brokers, topic, p, 0, e.Offset) {
			ms := r.Timestamp.UnixMilli()
			if ms >= from.UnixMilli() && ms < to.UnixMilli() {
				if lo < 0 {
					lo = r.Offset
				}
				hi = r.Offset + 1
			}
		}
		if lo >= 0 {
			out[p] = [2]int64{lo, hi}
		}
	}
	return out
}

// stampedMillis waits so that timestamps before and after the returned
// time fall in different milliseconds.
func stampedMillis() time.Time {
	time.Sleep(5 * time.Millisecond)
	now := time.Now().Truncate(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	return now
}

func TestReplayTimeRangeExactlyOnceOnKfake(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	rds := redistest.StartMiniredis(t)
	env := loadReplayEnv(t, broker.Addr, rds.Addr)
	broker.CreateTopic(t, env.spec.Topics.Input, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	produceEvents(t, ctx, env.brokers, env.spec.Topics.Input, 1500, 1) // before the range
	from := stampedMillis()
	produceEvents(t, ctx, env.brokers, env.spec.Topics.Input, 4000, 2)
	to := stampedMillis()
	produceEvents(t, ctx, env.brokers, env.spec.Topics.Input, 1500, 3) // after it

	ranges := timeRangeOffsets(t, ctx, env.brokers, env.spec.Topics.Input, 3, from, to)
	want := freshScoring(t, ctx, env, ranges, "7")
	if len(want) < 3800 {
		t.Fatalf("fresh scoring gave %d predictions for 4000 events", len(want))
	}
	distinct := map[string]bool{}
	for _, v := range want {
		distinct[string(v[bytes.Index(v, []byte(`"score"`)):bytes.Index(v, []byte(`,"class"`))])] = true
	}
	if len(distinct) < 100 {
		t.Fatalf("only %d distinct scores: the model is too trivial for this test", len(distinct))
	}

	args := []string{"--spec", env.specPath, "--from-time", from.Format(time.RFC3339Nano), "--to-time", to.Format(time.RFC3339Nano),
		"--to-topic", "backfill", "--snapshot", env.snapshot, "--model-version", "7", "--batch", "500", "--progress-interval", "10ms"}
	var stdout, stderr bytes.Buffer
	if code := runMain(ctx, append([]string{"replay"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("replay exited %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 3000))
	}
	t.Logf("first run: %s", stdout.String())
	if !strings.Contains(stderr.String(), "ev/s eta") {
		t.Errorf("no progress lines on a non-terminal stderr:\n%s", tail(stderr.String(), 2000))
	}
	checkBackfill(t, env, readCommitted(t, ctx, env.brokers, "backfill"), want)

	// A second run of the same command writes nothing.
	stdout.Reset()
	stderr.Reset()
	if code := runMain(ctx, append([]string{"replay"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("second replay exited %d: %s", code, tail(stderr.String(), 3000))
	}
	if !strings.Contains(stdout.String(), " 0 records processed") {
		t.Errorf("second run processed records: %s", stdout.String())
	}
	checkBackfill(t, env, readCommitted(t, ctx, env.brokers, "backfill"), want)

	// Another run id into another topic gives byte-identical outputs.
	stdout.Reset()
	if code := runMain(ctx, append(append([]string{"replay"}, args...), "--run-id", "again", "--parallel", "1", "--to-topic", "backfill2"), &stdout, &stderr); code != 0 {
		t.Fatalf("third replay exited %d: %s", code, tail(stderr.String(), 3000))
	}
	checkBackfill(t, env, readCommitted(t, ctx, env.brokers, "backfill2"), want)
}

// TestReplayResumesAfterCancel stops a replay mid-way (its open transaction
// is left behind) and runs it again: every event is written exactly once.
func TestReplayResumesAfterCancel(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	rds := redistest.StartMiniredis(t)
	env := loadReplayEnv(t, broker.Addr, rds.Addr)
	broker.CreateTopic(t, env.spec.Topics.Input, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	produceEvents(t, ctx, env.brokers, env.spec.Topics.Input, 6000, 4)
	adm := kadm.NewClient(mustClient(t, env.brokers))
	ends, err := adm.ListEndOffsets(ctx, env.spec.Topics.Input)
	if err != nil {
		t.Fatal(err)
	}
	var rr []replayRange
	ranges := map[int32][2]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		rr = append(rr, replayRange{Partition: o.Partition, Start: 0, End: o.Offset})
		ranges[o.Partition] = [2]int64{0, o.Offset}
	})
	want := freshScoring(t, ctx, env, ranges, env.spec.Model.Version)

	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	newCfg := func(prog *replayProgress) replayConfig {
		model := stages.NewServedModel(env.spec.Model.Name, env.spec.Model.Version, stages.ArmShadow, env.learner.Clone())
		return replayConfig{Spec: env.spec, Ranges: rr, ToTopic: "backfill", CheckpointTopic: "ckpt", RunID: "resume-test",
			Model: model, BatchSize: 200, Parallel: 2, Rdb: rdb, Progress: prog}
	}
	prog := newReplayProgress(io.Discard, time.Hour)
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		for prog.done.Load() < 2000 && runCtx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		stop()
	}()
	res1, err := runReplay(runCtx, newCfg(prog), env.brokers)
	if err == nil {
		t.Fatalf("first run was not stopped (it finished: %+v); the test proves nothing", res1)
	}
	t.Logf("first run stopped after %d inputs: %v", res1.Inputs, err)

	res2, err := runReplay(ctx, newCfg(newReplayProgress(io.Discard, time.Hour)), env.brokers)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Resumed == 0 || res2.Resumed != res1.Inputs || res2.Resumed+res2.Inputs != res2.Total {
		t.Fatalf("second run: %+v after a first run of %+v; want it to resume where the first committed", res2, res1)
	}
	checkBackfill(t, env, readCommitted(t, ctx, env.brokers, "backfill"), want)
}

func TestReplayFlagErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	spec := dir + "/spec.yaml"
	writeFile(t, spec, replaySpecText(t, "127.0.0.1:1", "127.0.0.1:1"))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--to-topic", "b", "--from-time", "2026-01-01T00:00:00Z", "--to-time", "2026-01-02T00:00:00Z"}, "--spec is required"},
		{[]string{"--spec", spec, "--from-time", "2026-01-01T00:00:00Z", "--to-time", "2026-01-02T00:00:00Z"}, "--to-topic is required"},
		{[]string{"--spec", spec, "--to-topic", "b"}, "a source is required"},
		{[]string{"--spec", spec, "--to-topic", "b", "--from-time", "2026-01-01T00:00:00Z"}, "--from-time and --to-time go together"},
		{[]string{"--spec", spec, "--to-topic", "b", "--from-offsets", "0:1", "--to-offsets", "0:2", "--from-time", "x", "--to-time", "y"}, "exclude each other"},
		{[]string{"--spec", spec, "--to-topic", "b", "--from-offsets", "0:1", "--to-offsets", "0:2", "--parallel", "0"}, "--parallel must be at least 1"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), append([]string{"replay"}, c.args...), &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", c.args, c.want, tail(stderr.String(), 500))
		}
	}
	for _, c := range []struct{ in, want string }{
		{"0:1,x", `"x" is not PARTITION:OFFSET`},
		{"a:1", "bad partition"},
		{"0:-4", "bad offset"},
		{"0:1,0:2", "partition 0 given twice"},
	} {
		if _, err := parsePartitionOffsets(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parsePartitionOffsets(%q) = %v, want %q", c.in, err, c.want)
		}
	}
	if m, err := parsePartitionOffsets("0:10, 3:7"); err != nil || m[0] != 10 || m[3] != 7 || len(m) != 2 {
		t.Errorf("parsePartitionOffsets = %v, %v", m, err)
	}
}

func TestReplayProgressRendering(t *testing.T) {
	s := progressSnapshot{Done: 45_000, Total: 100_000, Rate: 12_000, ETA: 4583 * time.Millisecond}
	if got, want := renderReplayLine(s), "replay 45000/100000 (45.0%) 12000 ev/s eta 4.6s"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	if got, want := renderReplayBar(s, 20), "[=========>          ]  45.0%  45000/100000  12000 ev/s  ETA 4.6s"; got != want {
		t.Errorf("bar = %q, want %q", got, want)
	}
	done := progressSnapshot{Done: 10, Total: 10, Rate: 5, ETA: 0}
	if got, want := renderReplayBar(done, 4), "[====] 100.0%  10/10  5 ev/s  ETA 0s"; got != want {
		t.Errorf("bar = %q, want %q", got, want)
	}
	if got := renderReplayLine(progressSnapshot{Total: 5, ETA: -1}); got != "replay 0/5 (0.0%) 0 ev/s eta -" {
		t.Errorf("line before any progress = %q", got)
	}

	// The non-terminal writer prints plain lines; a terminal one redraws.
	var buf bytes.Buffer
	p := newReplayProgress(&buf, time.Second)
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	p.begin(1000, 200)
	clock = clock.Add(2 * time.Second)
	p.add(400)
	p.print()
	p.terminal = true
	p.print()
	p.finish()
	want := "replay 600/1000 (60.0%) 200 ev/s eta 2s\n" +
		"\r\033[K[==================>           ]  60.0%  600/1000  200 ev/s  ETA 2s" +
		"\r\033[K[==================>           ]  60.0%  600/1000  200 ev/s  ETA 2s\n"
	if buf.String() != want {
		t.Errorf("progress output = %q\nwant %q", buf.String(), want)
	}
}

// The replay must use the snapshot's parameters, not a fresh learner.
func TestReplayModelFromSnapshot(t *testing.T) {
	rds := redistest.StartMiniredis(t)
	env := loadReplayEnv(t, "127.0.0.1:1", rds.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	m, digest, err := loadReplayModel(context.Background(), env.spec, rdb, "", env.snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if m.Arm != stages.ArmShadow || m.Version != env.spec.Model.Version || digest == "fresh" {
		t.Fatalf("model %s/%s arm %s digest %s", m.Name, m.Version, m.Arm, digest)
	}
	got, want := m.Snapshot().(models.LinearModel).Params(), env.learner.(models.LinearModel).Params()
	if !paramsEqual(got, want) {
		t.Fatal("the loaded model's parameters differ from the snapshot's")
	}
	if _, _, err := loadReplayModel(context.Background(), env.spec, rdb, "", env.snapshot+".missing"); err == nil || !strings.Contains(err.Error(), "--snapshot") {
		t.Errorf("missing snapshot: %v, want an error naming --snapshot", err)
	}
	if _, _, err := loadReplayModel(context.Background(), env.spec, rdb, "champion", ""); err == nil || !strings.Contains(err.Error(), "--model-version champion") {
		t.Errorf("unknown alias: %v, want an error naming --model-version", err)
	}
}

func paramsEqual(a, b models.LinearParams) bool {
	return len(a.W) > 0 && slices.Equal(a.W, b.W) && slices.Equal(a.B, b.B) && slices.Equal(a.Mean, b.Mean) && slices.Equal(a.Std, b.Std)
}
