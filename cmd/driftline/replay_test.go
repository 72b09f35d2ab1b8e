package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestReplayTimeRangeExactlyOnceOnKfake(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	broker.CreateTopic(t, env.Spec.Topics.Input, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 1500, 1) // before the range
	from := replaytest.StampedMillis()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 4000, 2)
	to := replaytest.StampedMillis()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 1500, 3) // after it

	ranges := replaytest.TimeRangeOffsets(t, ctx, env.Brokers, env.Spec.Topics.Input, 3, from, to)
	want := replaytest.FreshScoring(t, ctx, env, ranges, "7")
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

	args := []string{"--spec", env.SpecPath, "--from-time", from.Format(time.RFC3339Nano), "--to-time", to.Format(time.RFC3339Nano),
		"--to-topic", "backfill", "--snapshot", env.Snapshot, "--model-version", "7", "--batch", "500", "--progress-interval", "10ms"}
	var stdout, stderr bytes.Buffer
	if code := runMain(ctx, append([]string{"replay"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("replay exited %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 3000))
	}
	t.Logf("first run: %s", stdout.String())
	// The summary accounts for every input offset.
	var offsets, preds, rejected, dups, control int64
	if _, err := fmt.Sscanf(stdout.String()[strings.Index(stdout.String(), "this run: "):], "this run: %d offsets = %d predictions to backfill + %d rejected + %d duplicates + %d control records",
		&offsets, &preds, &rejected, &dups, &control); err != nil || offsets == 0 || offsets != preds+rejected+dups+control {
		t.Errorf("summary %q does not add up (%v)", stdout.String(), err)
	}
	if !strings.Contains(stderr.String(), "ev/s eta") {
		t.Errorf("no progress lines on a non-terminal stderr:\n%s", tail(stderr.String(), 2000))
	}
	replaytest.CheckBackfill(t, env, replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill"), want)

	// A second run of the same command writes nothing.
	stdout.Reset()
	stderr.Reset()
	if code := runMain(ctx, append([]string{"replay"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("second replay exited %d: %s", code, tail(stderr.String(), 3000))
	}
	if !strings.Contains(stdout.String(), "this run: 0 offsets = 0 predictions") {
		t.Errorf("second run processed records: %s", stdout.String())
	}
	replaytest.CheckBackfill(t, env, replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill"), want)

	// Another run id into another topic gives byte-identical outputs.
	stdout.Reset()
	if code := runMain(ctx, append(append([]string{"replay"}, args...), "--run-id", "again", "--parallel", "1", "--to-topic", "backfill2"), &stdout, &stderr); code != 0 {
		t.Fatalf("third replay exited %d: %s", code, tail(stderr.String(), 3000))
	}
	replaytest.CheckBackfill(t, env, replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill2"), want)
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
		{[]string{"--spec", spec, "--from-time", "2026-01-01T00:00:00Z", "--to-time", "2026-01-02T00:00:00Z"}, "a target is required, one of: --to-topic TOPIC (a backfill topic), --to-lake DIR (a new lake), --backtest"},
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
		if _, err := app.ParsePartitionOffsets(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("app.ParsePartitionOffsets(%q) = %v, want %q", c.in, err, c.want)
		}
	}
	if m, err := app.ParsePartitionOffsets("0:10, 3:7"); err != nil || m[0] != 10 || m[3] != 7 || len(m) != 2 {
		t.Errorf("parsePartitionOffsets = %v, %v", m, err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"0:1,1:5", "0:3", "--to-offsets: no end for partition 1 of the start offsets"},
		{"0:4", "0:3", "--to-offsets: partition 0 ends at 3, before its start 4"},
		{"0:1", "0:3,2:9", "--from-offsets: no start for partition 2 of the end offsets"},
	} {
		if _, err := app.ParseOffsetRanges(c.from, c.to); err == nil || flagError(err).Error() != c.want {
			t.Errorf("ParseOffsetRanges(%q, %q) = %v, want %q", c.from, c.to, err, c.want)
		}
	}
	// The app's errors about an option name its flag.
	err := flagError(fmt.Errorf("run x: %w", &app.OptionError{Option: "to-topic", Value: "b", Err: errors.New("topic b not ready")}))
	if err.Error() != "run x: --to-topic b: topic b not ready" {
		t.Errorf("flagError = %q", err)
	}
}

// TestReplayPoisonPillToTheDLQ: a replay writes a rejected row's DLQ
// record as the live pipeline does. The issue 11 poison pill (an
// 800,000-byte malformed event), encrypted under the demo spec's
// dlq_payload: encrypt, is over 1 MB: its record is truncated to the DLQ
// topic's limit with the input's size and SHA-256, and its payload is not
// the plaintext. Before, the replay's runner had no record limit and wrote
// plaintext DLQ payloads.
func TestReplayPoisonPillToTheDLQ(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	if env.Spec.Stages.Anonymize.DLQPayload != "encrypt" {
		t.Fatalf("the demo spec's dlq_payload is %q, want encrypt", env.Spec.Stages.Anonymize.DLQPayload)
	}
	input := env.Spec.Topics.Input
	broker.CreateTopic(t, input, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	replaytest.ProduceEvents(t, ctx, env.Brokers, input, 100, 1)
	pill := append([]byte("{"), bytes.Repeat([]byte("y"), 799_999)...)
	cl := replaytest.Client(t, env.Brokers, kgo.ProducerBatchMaxBytes(2<<20))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: input, Value: pill}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	replaytest.ProduceEvents(t, ctx, env.Brokers, input, 100, 2)
	end := replaytest.EndOffsets(t, ctx, env.Brokers, input)[0]

	args := []string{"replay", "--spec", env.SpecPath, "--from-offsets", "0:0", "--to-offsets", fmt.Sprintf("0:%d", end),
		"--to-topic", "backfill", "--to-dlq", "backfill.dlq", "--snapshot", env.Snapshot, "--model-version", "7"}
	var stdout, stderr bytes.Buffer
	if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exited %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 3000))
	}
	var found bool
	err := kafka.ReadTopics(ctx, kafka.ClientConfig{Brokers: env.Brokers}, true, func(r *kafka.Record) error {
		h := map[string]string{}
		size := len(r.Key) + len(r.Value)
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
			size += len(kv.Key) + len(kv.Value)
		}
		if bytes.Contains(r.Value, []byte("yyyyyyyy")) {
			t.Errorf("a DLQ payload holds the plaintext input (%d bytes)", len(r.Value))
		}
		if h[pipeline.HeaderPayloadSize] != "800000" {
			return nil
		}
		found = true
		if limit := kafka.DefaultMaxMessageBytes; size > limit || h[pipeline.HeaderPayloadTruncated] != "true" || h[pipeline.HeaderPayloadSHA256] == "" {
			t.Errorf("the pill's DLQ record: %d bytes (limit %d), headers %v", size, limit, h)
		}
		return nil
	}, "backfill.dlq")
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("no DLQ record of the 800,000-byte pill; replay said: %s", stdout.String())
	}
}
