package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/stages"
)

func newTestGovernor(t *testing.T, reg *registry.Registry) *governor {
	t.Helper()
	l, err := newTestLearner()
	if err != nil {
		t.Fatal(err)
	}
	arms := stages.NewArms(stages.NewServedModel(testModel, "1", stages.ArmChampion, l))
	clock := time.Unix(1_700_000_000, 0)
	return &governor{reg: reg, model: testModel, holder: "test-instance", arms: arms, interval: time.Second,
		gate: rollout.Gate{MinSamples: 200, MaxDelta: 0.01, BlockOnOpenDrift: true},
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:  func() time.Time { clock = clock.Add(time.Second); return clock }}
}

// feed adds n outcomes of version v, the first right·n right, as the
// label join's outcome hook does.
func feed(g *governor, v string, n int, right float64) {
	for i := range n {
		score := float32(0.9)
		if float64(i) >= right*float64(n) {
			score = 0.1
		}
		g.observeOutcome(stages.Outcome{Version: v, Score: score, Label: 1})
	}
}

func registerShadow(t *testing.T, reg *registry.Registry) int64 {
	t.Helper()
	ctx := context.Background()
	l, _ := newTestLearner()
	snap, _ := l.MarshalBinary()
	v, err := reg.Register(ctx, registry.Registration{Model: testModel, Signature: testSignature, Snapshot: snap, Who: "test", Lineage: registry.Lineage{Parent: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: testModel, Alias: aliasShadow, Version: v.Number, Expect: registry.AnyVersion, Who: "test"}); err != nil {
		t.Fatal(err)
	}
	return v.Number
}

// governorAudit lists the governor's audit events but holds, alias moves
// with their alias and target.
func governorAudit(t *testing.T, reg *registry.Registry) (whats []string) {
	t.Helper()
	evs, err := reg.ReadAudit(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Who != whoGovernor || e.What == "rollout.hold" {
			continue
		}
		w := e.What
		if e.What == registry.WhatAliasSet || e.What == registry.WhatAliasDelete {
			w += ":" + e.Details["alias"] + "=" + e.Details["to"]
		}
		if e.What == registry.WhatTrafficSet {
			w += ":" + e.Details["to"]
		}
		whats = append(whats, w)
	}
	return whats
}

// TestGovernorPromotesGoodCandidate: a candidate better than the champion
// goes shadow → 5 → 25 → 50% canary → champion → stable, and the audit log
// shows each step in order.
func TestGovernorPromotesGoodCandidate(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	cand := registerShadow(t, reg)
	cv := strconv.FormatInt(cand, 10)
	var percents []int
	for range 20 {
		feed(g, "1", 300, 0.80)
		feed(g, cv, 300, 0.95)
		if err := g.tick(ctx); err != nil {
			t.Fatal(err)
		}
		set, err := reg.Aliases(ctx, testModel)
		if err != nil {
			t.Fatal(err)
		}
		if p := set.CanaryPercent; len(percents) == 0 || percents[len(percents)-1] != p {
			percents = append(percents, p)
		}
		if g.ctrl.State().Phase == rollout.PhaseStable {
			break
		}
	}
	if ph := g.ctrl.State().Phase; ph != rollout.PhaseStable {
		t.Fatalf("phase %s, want stable", ph)
	}
	set, err := reg.Aliases(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasChampion] != cand || set.Versions[aliasCanary] != 0 || set.Versions[aliasShadow] != 0 {
		t.Fatalf("aliases %v, want champion %d only", set.Versions, cand)
	}
	want := []string{
		"rollout.advance", "alias.set:canary=" + cv, "traffic.set:5", "alias.delete:shadow=0",
		"rollout.advance", "traffic.set:25", "rollout.advance", "traffic.set:50",
		"rollout.promote", "alias.set:champion=" + cv, "alias.delete:canary=0", "traffic.set:0",
		"rollout.stable",
	}
	got := governorAudit(t, reg)
	if len(got) != len(want) {
		t.Fatalf("governor audit %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("governor audit %q, want %q", got, want)
		}
	}
	if len(percents) < 4 || percents[1] != 5 || percents[2] != 25 || percents[3] != 50 {
		t.Fatalf("canary percents %v, want 0 5 25 50 …", percents)
	}
}

// TestGovernorRollsBackBadCandidate: a candidate much worse than the
// champion loses its alias, and the rollback is audited with its reason.
func TestGovernorRollsBackBadCandidate(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	cand := registerShadow(t, reg)
	for range 5 {
		feed(g, "1", 300, 0.90)
		feed(g, strconv.FormatInt(cand, 10), 300, 0.50)
		if err := g.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ph := g.ctrl.State().Phase; ph != rollout.PhaseRolledBack {
		t.Fatalf("phase %s, want rolled back", ph)
	}
	set, _ := reg.Aliases(ctx, testModel)
	if set.Versions[aliasShadow] != 0 || set.Versions[aliasCanary] != 0 || set.Versions[registry.AliasChampion] != 1 {
		t.Fatalf("aliases %v, want champion 1 only", set.Versions)
	}
	got := governorAudit(t, reg)
	if len(got) != 3 || got[0] != "rollout.rollback" || got[1] != "alias.delete:shadow=0" || got[2] != "traffic.set:0" {
		t.Fatalf("governor audit %q, want rollback, shadow removed, traffic 0", got)
	}
}

// TestGovernorHoldsOnOpenDrift: an open feature-drift alert holds a good
// candidate in shadow until it resolves.
func TestGovernorHoldsOnOpenDrift(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	cand := registerShadow(t, reg)
	g.trackDrift(alertsOf("x0", "drift"))
	for range 3 {
		feed(g, "1", 300, 0.80)
		feed(g, strconv.FormatInt(cand, 10), 300, 0.95)
		if err := g.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ph := g.ctrl.State().Phase; ph != rollout.PhaseShadow {
		t.Fatalf("phase %s with drift open, want shadow", ph)
	}
	g.trackDrift(alertsOf("x0", "resolved"))
	if err := g.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if ph := g.ctrl.State().Phase; ph != rollout.PhaseCanary {
		t.Fatalf("phase %s after drift resolved, want canary", ph)
	}
}

func alertsOf(subject, state string) []alert.Alert {
	return []alert.Alert{{Subject: subject, State: alert.State(state), DedupeKey: subject + "-key"}}
}
