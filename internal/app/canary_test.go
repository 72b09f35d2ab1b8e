package app

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// TestCanaryStepsWaitForTheirOwnOutcomes runs the whole pipeline with the
// governance loop (kfake, miniredis) on a stream whose labels come 1 s after
// their events, puts a candidate in shadow and lets the governor
// roll it out: shadow, a 50% canary, promotion. The canary step must last
// at least the label delay, since its evidence is the outcomes of
// predictions it served, whose labels cannot come sooner; and the outcomes
// it advanced on are its own series'. Before issue 11 the step counted the
// shadow's late outcomes of the same version and could pass in
// milliseconds.
func TestCanaryStepsWaitForTheirOwnOutcomes(t *testing.T) {
	const labelDelay, minSamples = time.Second, 100
	broker := kafkatest.StartKfake(t, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(t)
	// A loose max_delta, so that a candidate as good as the champion
	// passes on few samples; a gate interval in which more than
	// min_samples outcomes come (1500/s), so that a step measured on
	// another step's outcomes would pass at its first tick, in half the
	// label delay.
	spec := outageSpec(t, broker, mr.Addr, [2]string{"    min_samples: 1000\n    max_delta: 0.01\n", "    min_samples: 100\n    max_delta: 0.2\n"},
		[2]string{"    bake_samples: 1000\n", "    bake_samples: 100\n"}, [2]string{"    interval: 100ms\n", "    interval: 500ms\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startFedApp(t, ctx, spec, broker)
	defer a.Close()
	load := feed.Config{Topic: spec.Topics.Input, LabelsTopic: spec.Topics.Labels, Rate: 1500, LabelDelay: labelDelay,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 5}}
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	var stats feed.Stats
	go func() { _ = feed.Produce(feedCtx, a.feed, load, &stats) }()
	waitFor(t, a.runErr, 30*time.Second, "labels joined", func() bool { ls, _ := a.Labels(); return ls.Joined > 1000 })

	// The candidate: a snapshot of the champion as it is now, in shadow.
	reg := a.Registry()
	model := spec.Model.Name
	snap, err := a.arms.Champion().Snapshot().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Register(ctx, registry.Registration{Model: model, Signature: a.signature, Snapshot: snap, Who: "test", Why: "candidate"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: model, Alias: registry.AliasShadow, Version: v.Number, Expect: registry.AnyVersion, Who: "test"}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if !t.Failed() {
			return
		}
		// What the governor decided, for a failure seen only under load.
		evs, err := reg.ReadAudit(context.WithoutCancel(ctx), "", 100)
		for _, e := range evs {
			t.Logf("audit: %s %s version %v by %s %v", e.When.Format(time.RFC3339Nano), e.What, e.Version, e.Who, e.Details)
		}
		t.Logf("audit read: %v; labels %+v", err, func() LabelStats { ls, _ := a.Labels(); return ls }())
	}()
	waitFor(t, a.runErr, time.Minute, "the candidate promoted", func() bool {
		set, err := reg.Aliases(ctx, model)
		return err == nil && set.Versions[registry.AliasChampion] == v.Number
	})

	evs, err := reg.ReadAudit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var advanced, promoted time.Time
	var canaryN int64
	for _, e := range evs {
		if e.Who != "governor" || e.Version != v.Number {
			continue
		}
		switch e.What {
		case "rollout.advance":
			advanced = e.When
		case "rollout.promote":
			promoted = e.When
			canaryN, _ = strconv.ParseInt(e.Details["candidateN"], 10, 64)
		}
	}
	if advanced.IsZero() || promoted.IsZero() {
		t.Fatalf("no advance and promote decisions in the audit log")
	}
	step := promoted.Sub(advanced)
	t.Logf("50%% canary step lasted %s (labels come %s after their events); the candidate had %d outcomes at promotion", step.Round(time.Millisecond), labelDelay, canaryN)
	if step < labelDelay {
		t.Errorf("the canary step lasted %s, less than the label delay %s: it cannot have counted outcomes of its own predictions", step, labelDelay)
	}
	own, err := reg.Outcomes(ctx, model, governance.OutcomeSeries(strconv.FormatInt(v.Number, 10), stages.ArmCanary, 50))
	if err != nil {
		t.Fatal(err)
	}
	if own.N < minSamples {
		t.Errorf("the 50%% canary's own series holds %d outcomes, fewer than the %d the step needs", own.N, minSamples)
	}
	if stages.ArmCanary != registry.AliasCanary || stages.ArmShadow != registry.AliasShadow || stages.ArmChampion != registry.AliasChampion {
		t.Error("the data plane's arm names differ from the registry's alias names; OutcomeSeries takes one for the other")
	}
}
