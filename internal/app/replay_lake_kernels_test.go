package app

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
	"github.com/driftline/driftline/testkit/streams"
)

// TestLakeReplayMatchesTheLiveStages replays a seeded lake (4 source
// partitions, events over three hours) with DirectReplay, whose lake path
// featurizes a column at a time with in-process entity aggregates, scores
// without prediction JSON and writes on a goroutine of its own, and the
// same lake through the live stages as lake replay ran them before:
// stages.Featurize with its aggregates in Redis under a fresh replay
// prefix, stages.Score building the predictions, and the target written
// in line. The two lakes hold the same files byte for byte, and the
// counts are the same.
func TestLakeReplayMatchesTheLiveStages(t *testing.T) {
	env := loadReplayEnv(t, "127.0.0.1:1", redistest.StartMiniredis(t))
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	evs := replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 33, Step: 1500 * time.Millisecond}, 7000)
	replaytest.WriteLiveLake(t, env.Spec, env.Redis, src, stages.NewServedModel(env.Spec.Model.Name, "1", stages.ArmChampion, replaytest.FreshLearner(t, env.Spec, env.Redis)), evs, 4)
	const batch = 300

	fast := filepath.Join(dir, "fast")
	res, err := DirectReplay(ctx, ReplayOptions{Spec: env.Spec, LakeDir: src, ToLake: fast, Snapshot: env.Snapshot, ModelVersion: "7", BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}

	// The reference: the live featurize and score stages, in line.
	ref := filepath.Join(dir, "ref")
	model, _, err := loadReplayModel(ctx, env.Spec, env.Redis, "7", env.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	s := replayStateSpec(env.Spec, "reference")
	fz, err := stages.NewFeaturize(s, env.Redis)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := stages.LoadKeys(&s.Stages.Anonymize)
	if err != nil {
		t.Fatal(err)
	}
	score := stages.NewScore(s, model, keys.AESKeyID)
	source, err := lake.NewReplaySource(src, time.Time{}, time.Time{}, schemaFields(env.Spec))
	if err != nil {
		t.Fatal(err)
	}
	target, err := lake.OpenReplayTarget(ref, "reference", env.Spec.Schema.TimeField)
	if err != nil {
		t.Fatal(err)
	}
	var inputs, outputs, predictions int64
	err = source.Batches(ctx, batch, func(b *pipeline.Batch) error {
		for _, st := range []pipeline.Stage{fz, score} {
			if err := st.Process(ctx, b); err != nil {
				return err
			}
		}
		inputs += int64(b.Len())
		outputs += int64(len(b.Features.Row))
		predictions += int64(len(b.Outputs))
		return target.WriteBatch(b, model.Version)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Publish(lake.ReplayMarker{Run: "reference"}); err != nil {
		t.Fatal(err)
	}

	if inputs != 7000 || outputs == 0 || predictions != outputs {
		t.Fatalf("reference replay: %d inputs, %d scored rows, %d predictions; want 7000 inputs and a prediction per scored row", inputs, outputs, predictions)
	}
	if res.Inputs != inputs || res.Outputs != outputs || res.Rejected != 0 || res.Duplicates != 0 {
		t.Errorf("DirectReplay counts %+v, the live stages %d inputs and %d outputs", res, inputs, outputs)
	}
	want, got := replaytest.LakeDigests(t, ref), replaytest.LakeDigests(t, fast)
	if len(want) < 3 {
		t.Fatalf("the reference lake has %d files, want one per hour of the three", len(want))
	}
	if !slices.Equal(got, want) {
		t.Errorf("DirectReplay's lake differs from the live stages' lake:\n got %q\nwant %q", got, want)
	}
	gotScores, _ := replaytest.LakeRows(t, fast)
	wantScores, _ := replaytest.LakeRows(t, ref)
	for id, w := range wantScores {
		if g, ok := gotScores[id]; !ok || g != w {
			t.Fatalf("event %s: DirectReplay scores %v (present %v), the live stages %v", id, g, ok, w)
		}
	}
}

// TestLakeWriterReturnsTheFirstWriteError hands the write-behind a batch
// the target refuses: later writes, and finish, return that error.
func TestLakeWriterReturnsTheFirstWriteError(t *testing.T) {
	target, err := lake.OpenReplayTarget(filepath.Join(t.TempDir(), "out"), "x", "ts")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	w := newLakeWriter(target, "v")
	var b pipeline.Batch
	b.Reset([]pipeline.Message{{Topic: "t"}})
	b.Features.Row, b.Scores = []int{0}, []float32{1} // no record: WriteBatch refuses it
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		err = w.write(context.Background(), &b)
	}
	if err == nil || !strings.Contains(err.Error(), "no record") {
		t.Fatalf("writes after a refused batch: %v, want its error", err)
	}
	if ferr := w.finish(); ferr != err {
		t.Errorf("finish: %v, want the first write error %v", ferr, err)
	}
}
