package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
	"github.com/driftline/driftline/testkit/streams"
)

// TestReplayDedupeWindowIsTheRecordsTime: a replay's dedupe window follows
// the records' timestamps, not Redis's clock (the demo spec's window is
// 5 s). Five records: e0, e1, e0 again 2 ms after the first, e2, and e2
// again 20 s after the first. Whether Redis's clock jumps 15 s before
// every dedupe call (a stall between each event and the next: a broker
// restart, a Redis outage) or stands still (the replay reads 20 s of
// history at once), e0's repeat is dropped and e2's is kept: four
// predictions, one duplicate. On Redis's clock the stalls let e0's repeat
// through, and without them e2's repeat was dropped.
func TestReplayDedupeWindowIsTheRecordsTime(t *testing.T) {
	for _, stall := range []time.Duration{15 * time.Second, 0} {
		t.Run(fmt.Sprintf("redis_clock_jumps_%v", stall), func(t *testing.T) {
			broker := kafkatest.StartKfake(t)
			rds := redistest.StartMiniredis(t)
			env := loadReplayEnv(t, broker.Addr, rds)
			if ttl := env.Spec.Stages.Dedupe.TTL.D(); ttl != 5*time.Second {
				t.Fatalf("the demo spec's stages.dedupe.ttl is %v, not 5s: update this test's times", ttl)
			}
			broker.CreateTopic(t, env.Spec.Topics.Input, 1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			evs := replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 21}, 3)
			t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
			var recs []*kgo.Record
			for _, r := range []struct {
				ev    int
				after time.Duration
			}{{0, 0}, {1, time.Millisecond}, {0, 2 * time.Millisecond}, {2, 3 * time.Millisecond}, {2, 20 * time.Second}} {
				e := &evs[r.ev]
				recs = append(recs, &kgo.Record{Topic: env.Spec.Topics.Input, Partition: 0, Key: []byte(e.UserID), Value: streams.AppendJSON(nil, e), Timestamp: t0.Add(r.after)})
			}
			cl := replaytest.Client(t, env.Brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if stall > 0 {
				// The in-process filter off, so that Redis answers, as it
				// does after a real stall (longer than the filter's window).
				off := 0
				env.Spec.Stages.Dedupe.RecentIDs = &off
				env.Redis.AddHook(&stallBeforeDedupe{rds: rds, stall: stall, now: time.Now()})
			}
			rr, _ := allRanges(t, ctx, env)
			res, err := startReplay(ctx, t, env, rr, ReplayOptions{ToTopic: "backfill", CheckpointTopic: "ckpt", RunID: "window", BatchSize: 1, Parallel: 1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outputs != 4 || res.Duplicates != 1 {
				t.Fatalf("replay: %d predictions and %d duplicates, want 4 and 1 (%+v)", res.Outputs, res.Duplicates, res)
			}
			n := 0
			for _, vs := range replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill") {
				n += len(vs)
			}
			if n != 4 {
				t.Fatalf("backfill holds %d predictions, want 4", n)
			}
		})
	}
}

// stallBeforeDedupe moves miniredis's clock (TIME, from now, and the
// keys' TTLs) on by stall before every dedupe script call. The replay's
// calls come one at a time (one partition).
type stallBeforeDedupe struct {
	rds   *redistest.Redis
	stall time.Duration
	now   time.Time
}

func (*stallBeforeDedupe) DialHook(next redis.DialHook) redis.DialHook { return next }
func (*stallBeforeDedupe) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *stallBeforeDedupe) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); (cmd.Name() == "evalsha" || cmd.Name() == "eval") && len(args) > 3 && strings.Contains(fmt.Sprint(args[3]), "dedupe-bucket:") {
			h.now = h.now.Add(h.stall)
			h.rds.Mini.SetTime(h.now)
			h.rds.Mini.FastForward(h.stall)
		}
		return next(ctx, cmd)
	}
}
