package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
)

// loadReplayEnv is the demo spec on the broker at addr and rds, with a
// trained snapshot.
func loadReplayEnv(tb testing.TB, addr string, rds *redistest.Redis) *replaytest.Env {
	tb.Helper()
	return replaytest.LoadEnv(tb, DemoSpec, LoadSpec, addr, rds)
}

// startReplay is Replay's run of a shadow model of the env's learner over
// ranges into backfill, with the options' run id, batch and parallelism.
func startReplay(ctx context.Context, tb testing.TB, env *replaytest.Env, ranges []replay.Range, opts ReplayOptions) (replay.Result, error) {
	tb.Helper()
	cc, err := KafkaClient(env.Spec, "")
	if err != nil {
		tb.Fatal(err)
	}
	adm, err := kafka.NewAdmin(cc)
	if err != nil {
		tb.Fatal(err)
	}
	defer adm.Close()
	opts.Spec = env.Spec
	model := stages.NewServedModel(env.Spec.Model.Name, env.Spec.Model.Version, stages.ArmShadow, env.Learner.Clone())
	return runReplay(ctx, &opts, cc, adm, env.Redis, model, ranges, opts.RunID, slog.New(slog.DiscardHandler))
}

// allRanges is every offset of each partition of topic.
func allRanges(tb testing.TB, ctx context.Context, env *replaytest.Env) ([]replay.Range, map[int32][2]int64) {
	tb.Helper()
	var rr []replay.Range
	ranges := map[int32][2]int64{}
	for p, end := range replaytest.EndOffsets(tb, ctx, env.Brokers, env.Spec.Topics.Input) {
		rr = append(rr, replay.Range{Partition: p, Start: 0, End: end})
		ranges[p] = [2]int64{0, end}
	}
	slices.SortFunc(rr, func(a, b replay.Range) int { return int(a.Partition - b.Partition) })
	return rr, ranges
}

// TestReplayResumesAfterCancel stops a replay mid-way (its open transaction
// is left behind) and runs it again: every event is written exactly once.
func TestReplayResumesAfterCancel(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	broker.CreateTopic(t, env.Spec.Topics.Input, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 6000, 4)
	rr, ranges := allRanges(t, ctx, env)
	want := replaytest.FreshScoring(t, ctx, env, ranges, env.Spec.Model.Version)

	opts := func(prog *replay.Progress) ReplayOptions {
		return ReplayOptions{ToTopic: "backfill", CheckpointTopic: "ckpt", RunID: "resume-test", BatchSize: 200, Parallel: 2, Progress: prog}
	}
	prog := replay.NewProgress(io.Discard, false, time.Hour)
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		for prog.Snapshot().Done < 2000 && runCtx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		stop()
	}()
	res1, err := startReplay(runCtx, t, env, rr, opts(prog))
	if err == nil {
		t.Fatalf("first run was not stopped (it finished: %+v); the test proves nothing", res1)
	}
	t.Logf("first run stopped after %d inputs: %v", res1.Inputs, err)

	res2, err := startReplay(ctx, t, env, rr, opts(replay.NewProgress(io.Discard, false, time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Resumed == 0 || res2.Resumed != res1.Inputs || res2.Resumed+res2.Inputs != res2.Total {
		t.Fatalf("second run: %+v after a first run of %+v; want it to resume where the first committed", res2, res1)
	}
	replaytest.CheckBackfill(t, env, replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill"), want)
}

// The replay must use the snapshot's parameters, not a fresh learner.
func TestReplayModelFromSnapshot(t *testing.T) {
	env := loadReplayEnv(t, "127.0.0.1:1", redistest.StartMiniredis(t))
	m, digest, err := loadReplayModel(context.Background(), env.Spec, env.Redis, "", env.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if m.Arm != stages.ArmShadow || m.Version != env.Spec.Model.Version || digest == "fresh" {
		t.Fatalf("model %s/%s arm %s digest %s", m.Name, m.Version, m.Arm, digest)
	}
	got, want := m.Snapshot().(models.LinearModel).Params(), env.Learner.(models.LinearModel).Params()
	if !paramsEqual(got, want) {
		t.Fatal("the loaded model's parameters differ from the snapshot's")
	}
	if _, _, err := loadReplayModel(context.Background(), env.Spec, env.Redis, "", env.Snapshot+".missing"); !isOptionErr(err, "snapshot") {
		t.Errorf("missing snapshot: %v, want an error naming the snapshot option", err)
	}
	if _, _, err := loadReplayModel(context.Background(), env.Spec, env.Redis, "champion", ""); !isOptionErr(err, "model-version") || !strings.Contains(err.Error(), "model-version champion") {
		t.Errorf("unknown alias: %v, want an error naming the model-version option", err)
	}
}

func isOptionErr(err error, option string) bool {
	var oe *OptionError
	return errors.As(err, &oe) && oe.Option == option
}

func paramsEqual(a, b models.LinearParams) bool {
	return len(a.W) > 0 && slices.Equal(a.W, b.W) && slices.Equal(a.B, b.B) && slices.Equal(a.Mean, b.Mean) && slices.Equal(a.Std, b.Std)
}

// TestReplayRangeErrorsNameTheOption: explicit offsets outside the log are
// refused with an error naming the option of the range's end at fault.
func TestReplayRangeErrorsNameTheOption(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	broker.CreateTopic(t, env.Spec.Topics.Input, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 100, 9)
	ends := replaytest.EndOffsets(t, ctx, env.Brokers, env.Spec.Topics.Input)
	for _, c := range []struct {
		ranges []replay.Range
		option string
		msg    string
	}{
		{[]replay.Range{{Partition: 0, Start: 0, End: ends[0] + 1}}, "to-offsets", "after the log end"},
		{[]replay.Range{{Partition: 5, Start: 0, End: 1}}, "from-offsets", "has no partition 5"},
	} {
		_, err := Replay(ctx, ReplayOptions{Spec: env.Spec, Offsets: c.ranges, ToTopic: "backfill", CheckpointTopic: "ckpt", Snapshot: env.Snapshot})
		if !isOptionErr(err, c.option) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v, want an error of option %s saying %q", c.ranges, err, c.option, c.msg)
		}
	}
	_, err := Replay(ctx, ReplayOptions{Spec: env.Spec, FromTime: time.Now().Add(-time.Hour), ToTime: time.Now(), ToTopic: env.Spec.Topics.Predictions, CheckpointTopic: "ckpt"})
	if !isOptionErr(err, "to-topic") || !strings.Contains(err.Error(), "is a live topic") {
		t.Errorf("live topic as the target: %v", err)
	}
}
