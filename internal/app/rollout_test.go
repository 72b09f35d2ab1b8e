package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

type recordSink struct {
	mu   sync.Mutex
	recs []pipeline.OutRecord
}

func (s *recordSink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		r.Value = append([]byte(nil), r.Value...)
		s.recs = append(s.recs, r)
	}
	return nil
}

// TestRolloutHotSwap registers two versions, moves the aliases, and checks
// that the data plane serves each move within the stated bound
// (rollout.watch_interval + 2s margin for one poll, the artifact load and
// a loaded CI machine), without a restart: predictions switch arm and
// version, the canary serves ≈ canary_percent of users, sticky by user, then
// the registry's traffic share, and the shadow scores every event to the
// shadow topic only.
func TestRolloutHotSwap(t *testing.T) {
	const interval = 50 * time.Millisecond
	const bound = interval + 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := strings.Replace(demoSpecWithoutRollout(t), "model:\n",
		"rollout: {canary_percent: 20, shadow_topic: preds-shadow, watch_interval: 50ms}\nmodel:\n", 1)
	spec, err := pipeline.ParseSpec("rollout.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	spec.Kafka.Brokers = []string{"127.0.0.1:1"}
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	rdb := redistest.StartMiniredis(t).Client(t)
	dp, err := Open(ctx, spec, Options{Redis: rdb, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	if dp.arms == nil || dp.rollout == nil {
		t.Fatal("no arms for a spec with rollout")
	}
	reg := dp.models
	snap, err := dp.champion.Snapshot().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sig := registry.Signature{Inputs: []registry.Tensor{{Name: "features", DType: "float32", Shape: []int64{-1, 16}}},
		Outputs: []registry.Tensor{{Name: "probability", DType: "float32", Shape: []int64{-1, 1}}}}
	for range 2 {
		if _, err := reg.Register(ctx, registry.Registration{Model: spec.Model.Name, Signature: sig, Snapshot: snap, Who: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	move := func(alias string, v int64) {
		t.Helper()
		if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: spec.Model.Name, Alias: alias, Version: v, Expect: registry.AnyVersion, Who: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	waitArms := func(champion, canary, shadow string) {
		t.Helper()
		start := time.Now()
		for {
			v := dp.arms.Load()
			got := func(m *stages.ServedModel) string {
				if m == nil {
					return ""
				}
				return m.Version
			}
			if got(v.Champion) == champion && got(v.Canary) == canary && got(v.Shadow) == shadow {
				t.Logf("arms converged in %s", time.Since(start))
				return
			}
			if time.Since(start) > bound {
				t.Fatalf("arms %s/%s/%s after %s, want %s/%s/%s", got(v.Champion), got(v.Canary), got(v.Shadow), bound, champion, canary, shadow)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { dp.rollout.Run(watchCtx); close(done) }()
	defer func() { stopWatch(); <-done }()

	prep, err := stages.PreparationChain(spec, rdb, dp.keys)
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordSink{}
	runner, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: append(prep, dp.armsScore()), Sink: sink, DLQTopic: spec.Topics.DLQ, Metrics: dp.metrics})
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: 5, Users: 3000})
	if err != nil {
		t.Fatal(err)
	}
	var offset int64
	userOf := map[string]string{}
	batch := func(n int) []pipeline.OutRecord {
		t.Helper()
		msgs := make([]pipeline.Message, n)
		for i := range msgs {
			var e streams.Event
			gen.Next(&e)
			userOf[e.ID] = e.UserID
			msgs[i] = pipeline.Message{Topic: spec.Topics.Input, Offset: offset, Value: streams.AppendJSON(nil, &e), Timestamp: e.Time}
			offset++
		}
		sink.mu.Lock()
		sink.recs = nil
		sink.mu.Unlock()
		if err := runner.Handle(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		return sink.recs
	}
	type pred struct{ EventID, Arm, Version string }
	decode := func(r pipeline.OutRecord) pred {
		var p pred
		if err := json.Unmarshal(r.Value, &p); err != nil {
			t.Fatal(err)
		}
		p.EventID = string(r.Key)
		return p
	}

	move(registry.AliasChampion, 1)
	move("canary", 2)
	move("shadow", 2)
	waitArms("1", "2", "2")
	armOfUser := map[string]string{}
	canary, served, shadow := 0, 0, 0
	for range 4 {
		for _, r := range batch(1000) {
			p := decode(r)
			switch r.Topic {
			case "preds-shadow":
				shadow++
				if p.Arm != stages.ArmShadow || p.Version != "2" {
					t.Fatalf("shadow record %+v", p)
				}
				continue
			case spec.Topics.Predictions:
			default:
				continue
			}
			served++
			if (p.Arm == stages.ArmCanary) != (p.Version == "2") || (p.Arm != stages.ArmCanary && p.Arm != stages.ArmChampion) {
				t.Fatalf("prediction %+v", p)
			}
			if p.Arm == stages.ArmCanary {
				canary++
			}
			u := userOf[p.EventID]
			if a, ok := armOfUser[u]; ok && a != p.Arm {
				t.Fatalf("user %s served by %s and %s: not sticky", u, a, p.Arm)
			}
			armOfUser[u] = p.Arm
		}
	}
	if served < 3500 || shadow != served {
		t.Fatalf("%d predictions, %d shadow predictions", served, shadow)
	}
	if share := float64(canary) / float64(served); share < 0.15 || share > 0.25 {
		t.Fatalf("canary share %.3f, want ≈ 0.20", share)
	}

	// The canary's traffic share moves through the registry too (the
	// governor's canary steps), within the same bound.
	if _, err := reg.SetTraffic(ctx, registry.TrafficMove{Model: spec.Model.Name, Percent: 50, Who: "test"}); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); dp.arms.Load().CanaryPercent != 50; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > bound {
			t.Fatalf("canary share %d%% after %s, want 50%%", dp.arms.Load().CanaryPercent, bound)
		}
	}
	canary, served = 0, 0
	for _, r := range batch(2000) {
		if r.Topic == spec.Topics.Predictions {
			served++
			if decode(r).Arm == stages.ArmCanary {
				canary++
			}
		}
	}
	if share := float64(canary) / float64(served); share < 0.42 || share > 0.58 {
		t.Fatalf("canary share %.3f after the registry's traffic move, want ≈ 0.50", share)
	}

	// Promote 2, withdraw canary and shadow: the next batches serve 2 alone.
	move(registry.AliasChampion, 2)
	move("canary", 0)
	move("shadow", 0)
	waitArms("2", "", "")
	for _, r := range batch(500) {
		if r.Topic == "preds-shadow" {
			t.Fatal("shadow record after the shadow alias was removed")
		}
		if r.Topic != spec.Topics.Predictions {
			continue
		}
		if p := decode(r); p.Arm != stages.ArmChampion || p.Version != "2" {
			t.Fatalf("after promotion: %+v", p)
		}
	}
}

// TestRolloutSpecErrorsNameLine: a bad rollout block is refused with the
// file, line and field of each problem.
func TestRolloutSpecErrorsNameLine(t *testing.T) {
	text := strings.Replace(demoSpecWithoutRollout(t), "model:\n",
		"rollout:\n  canary_percent: 150\n  shadow_topic: predictions\n  watch_interval: 2h\nmodel:\n", 1)
	_, err := pipeline.ParseSpec("rollout.yaml", []byte(text))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"canary_percent: 150", "shadow_topic: predictions", "watch_interval: 2h"} {
		line := 1 + strings.Count(text[:strings.Index(text, want)], "\n")
		field := "rollout." + want[:strings.Index(want, ":")]
		if prefix := "rollout.yaml:" + strconv.Itoa(line) + ":"; !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s at %s", err, field, prefix)
		}
	}
}

// TestServedChampionConcurrentStartRegistersOneVersion: instances starting
// together on a model without a champion register one version between
// them, and all serve it; none leaves an unaliased version behind, and the
// bootstrap lease is free afterwards.
func TestServedChampionConcurrentStartRegistersOneVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec, err := pipeline.ParseSpec("rollout.yaml", []byte(strings.Replace(demoSpecWithoutRollout(t), "model:\n", "rollout: {}\nmodel:\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.StartMiniredis(t).Client(t)
	reg, err := registry.New(rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := stages.NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	sig := LearnerSignature(fz)
	const instances = 6
	served := make([]string, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			_, served[i], errs[i] = servedChampion(ctx, reg, spec, fresh, sig, "instance-"+strconv.Itoa(i), slog.New(slog.DiscardHandler))
		})
	}
	wg.Wait()
	for i := range instances {
		if errs[i] != nil || served[i] != served[0] {
			t.Fatalf("instance %d serves %q (%v), instance 0 %q: want one version for all", i, served[i], errs[i], served[0])
		}
	}
	versions, err := reg.Versions(ctx, spec.Model.Name)
	var numbers []int64
	for _, v := range versions {
		numbers = append(numbers, v.Number)
	}
	if err != nil || len(numbers) != 1 || strconv.FormatInt(numbers[0], 10) != served[0] {
		t.Fatalf("registered versions %v (%v), want only the served %s", numbers, err, served[0])
	}
	if holder, err := reg.LeaseHolder(ctx, bootstrapLease(spec.Model.Name)); err != nil || holder != "" {
		t.Errorf("bootstrap lease held by %q (%v) after the start, want free", holder, err)
	}
}
