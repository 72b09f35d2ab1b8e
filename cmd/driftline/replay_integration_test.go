//go:build integration

package main

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
)

// TestIntegrationReplayKilledAndRerunIsExactlyOnce replays a time range
// with `driftline replay` as a real process on a real broker and
// redis-server, kills it with SIGKILL mid-way, runs the same command again
// and reads the backfill topic with read-committed isolation: exactly one
// output per input event, each equal to a fresh scoring by the same model.
func TestIntegrationReplayKilledAndRerunIsExactlyOnce(t *testing.T) {
	const events = 60_000
	broker := kafkatest.StartKafka(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartRedis(t))
	broker.CreateTopic(t, env.Spec.Topics.Input, 4)
	broker.CreateTopic(t, "backfill", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 2000, 11) // before the range
	from := replaytest.StampedMillis()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, events, 12)
	to := replaytest.StampedMillis()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 2000, 13) // after it
	ranges := replaytest.TimeRangeOffsets(t, ctx, env.Brokers, env.Spec.Topics.Input, 4, from, to)
	want := replaytest.FreshScoring(t, ctx, env, ranges, "3")

	bin := buildDriftline(t)
	args := []string{"replay", "--spec", env.SpecPath, "--from-time", from.Format(time.RFC3339Nano), "--to-time", to.Format(time.RFC3339Nano),
		"--to-topic", "backfill", "--snapshot", env.Snapshot, "--model-version", "3", "--batch", "200", "--parallel", "2", "--progress-interval", "200ms"}
	adm := kadm.NewClient(replaytest.Client(t, env.Brokers))
	written := func() int64 { // records in the backfill topic, committed or not
		ends, err := adm.ListEndOffsets(ctx, "backfill")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}

	p1 := startProcess(t, bin, args, "replay1")
	waitFor(t, ctx, "30% of the outputs", func() bool { return written() >= int64(len(want))*3/10 })
	if err := p1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p1.Wait()
	killedAt := written()
	if killedAt >= int64(len(want)) {
		t.Fatalf("the first run wrote %d records before the kill, all of %d: the kill came too late to test anything", killedAt, len(want))
	}

	p2 := startProcess(t, bin, args, "replay2")
	if err := p2.Wait(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	log, _ := os.ReadFile(p2.Stdout.(*os.File).Name())
	t.Logf("killed after %d backfill records (of %d); second run: %s", killedAt, len(want), tail(string(log), 600))
	replaytest.CheckBackfill(t, env, replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill"), want)
}
