package governance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
)

func newTestGovernor(t *testing.T, reg *registry.Registry) *Governor {
	t.Helper()
	clock := time.Unix(1_700_000_000, 0)
	return &Governor{reg: reg, model: testModel, holder: "test-instance", championVersion: func() string { return "1" }, interval: time.Second, decision: models.Decision{Threshold: models.Threshold},
		gate: rollout.Gate{MinSamples: 200, MaxDelta: 0.01, BlockOnOpenDrift: true},
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:  func() time.Time { clock = clock.Add(time.Second); return clock }}
}

// feedRound feeds 300 outcomes of the champion (version "1") and 300 of
// candidate, right at the given rates, then ticks g.
func feedRound(t *testing.T, g *Governor, candidate string, champRight, candRight float64) {
	t.Helper()
	feed(g, "1", 300, champRight)
	feed(g, candidate, 300, candRight)
	mustTick(t, g)
}

// feed adds n outcomes of version v, the first right·n right, as the
// label join's outcome hook does for predictions that v served as the
// registry's aliases and traffic say now (servedSeries).
func feed(g *Governor, v string, n int, right float64) {
	series := servedSeries(g.reg, v)
	for i := range n {
		score := float32(0.9)
		if float64(i) >= right*float64(n) {
			score = 0.1
		}
		g.ObserveOutcome(series, float64(score), float64(1))
	}
}

// servedSeries is the outcome series of predictions of version v served
// now, as a data plane serves the registry's aliases: the champion's, the
// canary's at the registry's traffic share, else the shadow's.
func servedSeries(reg *registry.Registry, v string) string {
	set, err := reg.Aliases(context.Background(), testModel)
	if err != nil {
		return v
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	switch n {
	case set.Versions[registry.AliasChampion]:
		return OutcomeSeries(v, registry.AliasChampion, 0)
	case set.Versions[registry.AliasCanary]:
		return OutcomeSeries(v, registry.AliasCanary, set.CanaryPercent)
	case set.Versions[registry.AliasShadow]:
		return OutcomeSeries(v, registry.AliasShadow, 0)
	}
	return v
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
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: testModel, Alias: registry.AliasShadow, Version: v.Number, Expect: registry.AnyVersion, Who: "test"}); err != nil {
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
		feedRound(t, g, cv, 0.80, 0.95)
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
	if set.Versions[registry.AliasChampion] != cand || set.Versions[registry.AliasCanary] != 0 || set.Versions[registry.AliasShadow] != 0 {
		t.Fatalf("aliases %v, want champion %d only", set.Versions, cand)
	}
	want := []string{
		"rollout.advance", "alias.set:canary=" + cv, "traffic.set:5", "alias.delete:shadow=0",
		"rollout.advance", "traffic.set:25", "rollout.advance", "traffic.set:50",
		"rollout.promote", "alias.set:champion=" + cv, "alias.set:previous=1", "alias.set:baking=" + cv, "alias.delete:canary=0", "traffic.set:0",
		"rollout.stable", "alias.delete:baking=0",
	}
	if got := governorAudit(t, reg); !slices.Equal(got, want) {
		t.Fatalf("governor audit %q, want %q", got, want)
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
		feedRound(t, g, strconv.FormatInt(cand, 10), 0.90, 0.50)
	}
	if ph := g.ctrl.State().Phase; ph != rollout.PhaseRolledBack {
		t.Fatalf("phase %s, want rolled back", ph)
	}
	set, _ := reg.Aliases(ctx, testModel)
	if set.Versions[registry.AliasShadow] != 0 || set.Versions[registry.AliasCanary] != 0 || set.Versions[registry.AliasChampion] != 1 {
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
		feedRound(t, g, strconv.FormatInt(cand, 10), 0.80, 0.95)
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

// outcomePairs are (score, label) pairs for the metric tests: scores exact
// in float32, both sides of the 0.5 threshold and on it, and 0 and 1,
// which the log loss clips.
var outcomePairs = []struct{ score, label float64 }{
	{0.875, 1}, {0.25, 0}, {0.625, 0}, {0.375, 1}, {0.5, 1},
	{0, 0}, {1, 1}, {0.75, 1}, {0.125, 0}, {0, 1},
}

// directStats computes metric m over outcomePairs straight from the
// definitions: the mean of the per-outcome quantity and its sample
// standard deviation (two-pass), RMSE as the root of the mean squared
// error with the SD of the squared errors.
func directStats(m rollout.Metric) (value, sd float64) {
	var xs []float64
	correct := 0
	for _, p := range outcomePairs {
		if (p.score > 0.5) == (p.label == 1) { // a tie is class 0 (models.PredictedClass)
			correct++
		}
		switch m {
		case rollout.MetricLogLoss:
			q := math.Min(math.Max(p.score, 1e-15), 1-1e-15)
			if p.label == 1 {
				xs = append(xs, -math.Log(q))
			} else {
				xs = append(xs, -math.Log(1-q))
			}
		case rollout.MetricMAE:
			xs = append(xs, math.Abs(p.score-p.label))
		case rollout.MetricRMSE:
			xs = append(xs, (p.score-p.label)*(p.score-p.label))
		}
	}
	if m == rollout.MetricAccuracy {
		return float64(correct) / float64(len(outcomePairs)), 0
	}
	var mean float64
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd = math.Sqrt(ss / float64(len(xs)-1))
	if m == rollout.MetricRMSE {
		return math.Sqrt(mean), sd
	}
	return mean, sd
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestGovernorStatsOfOutcomeSums: for every gate metric, the Stats of the
// summed outcomeDeltas of known pairs — directly, and after the outcome
// hook and a flush through the registry — match a direct computation.
func TestGovernorStatsOfOutcomeSums(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	var sums registry.OutcomeSums
	for _, p := range outcomePairs {
		sums = sums.Add(outcomeDelta(p.score, p.label))
		g.ObserveOutcome("1", float64(float32(p.score)), float64(float32(p.label)))
	}
	if err := g.flush(ctx); err != nil {
		t.Fatal(err)
	}
	shared, err := reg.Outcomes(ctx, testModel, "1")
	if err != nil {
		t.Fatal(err)
	}
	if acc, _ := directStats(rollout.MetricAccuracy); acc != 0.6 {
		t.Fatalf("direct accuracy %v, want 6 of 10", acc) // the pairs' own check
	}
	for _, m := range []rollout.Metric{rollout.MetricAccuracy, rollout.MetricLogLoss, rollout.MetricMAE, rollout.MetricRMSE} {
		value, sd := directStats(m)
		for name, s := range map[string]registry.OutcomeSums{"summed": sums, "registry": shared} {
			st := statsOf(m, s)
			if st.N != int64(len(outcomePairs)) || st.Positives != 6 {
				t.Errorf("%s %s: n %d positives %d, want %d and 6", m, name, st.N, st.Positives, len(outcomePairs))
			}
			if !near(st.Value, value) || !near(st.SD, sd) {
				t.Errorf("%s %s: value %.12g sd %.12g, want %.12g and %.12g", m, name, st.Value, st.SD, value, sd)
			}
		}
	}
	// One outcome has no spread; none has no stats.
	if st := statsOf(rollout.MetricMAE, outcomeDelta(0.25, 1)); st.N != 1 || st.Value != 0.75 || st.SD != 0 {
		t.Errorf("one outcome: %+v, want n 1, mae 0.75, sd 0", st)
	}
	if st := statsOf(rollout.MetricLogLoss, registry.OutcomeSums{}); st != (rollout.Stats{}) {
		t.Errorf("no outcomes: %+v, want zero stats", st)
	}
}

func mustTick(t *testing.T, g *Governor) {
	t.Helper()
	if err := g.tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// governorDecisions counts the governor's audited rollout decisions
// (advance, promote, stable, rollback, pause, resume; not holds).
func governorDecisions(t *testing.T, reg *registry.Registry) int {
	t.Helper()
	n := 0
	for _, w := range governorAudit(t, reg) {
		if strings.HasPrefix(w, "rollout.") {
			n++
		}
	}
	return n
}

// TestGovernorLeaseOneLeader: two instances govern the same model; only the
// lease holder decides, while the other's outcomes still reach the shared
// sums the holder measures. Once the holder stops renewing and its lease
// runs out (three intervals), the other takes over and finishes the
// rollout; the old holder, back, does nothing.
func TestGovernorLeaseOneLeader(t *testing.T) {
	ctx := context.Background()
	reg, mini := newTestRegistryMini(t)
	a, b := newTestGovernor(t, reg), newTestGovernor(t, reg)
	a.holder, b.holder = "instance-a", "instance-b"
	cand := registerShadow(t, reg)
	cv := strconv.FormatInt(cand, 10)
	lease := governorLease(testModel)
	holder := func() string {
		h, err := reg.LeaseHolder(ctx, lease)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	// a ticks first, takes the lease and starts the rollout on empty sums.
	mustTick(t, a)
	mustTick(t, b)
	if !a.leader || b.leader || b.ctrl != nil || holder() != "instance-a" {
		t.Fatalf("leaders a %v b %v (b ctrl %v), holder %q; want a only", a.leader, b.leader, b.ctrl != nil, holder())
	}
	// The candidate's outcomes arrive at b only, the champion's at a only.
	for round := 0; a.ctrl.State().Percent < 25; round++ {
		if round == 5 {
			t.Fatalf("a stuck at %+v", a.ctrl.State())
		}
		feed(b, cv, 300, 0.95)
		feed(a, "1", 300, 0.80)
		before := governorDecisions(t, reg)
		mustTick(t, b)
		mustTick(t, a)
		if b.leader || b.ctrl != nil {
			t.Fatalf("round %d: b acts while a holds the lease", round)
		}
		if n := governorDecisions(t, reg) - before; n > 1 {
			t.Fatalf("round %d: %d decisions in one tick of both", round, n)
		}
	}
	evs, err := reg.ReadAudit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.What == "rollout.advance" {
			if e.Details["candidate_n"] != "300" || e.Details["champion_n"] != "300" {
				t.Fatalf("first advance measured candidate %s, champion %s; want 300 each (b's outcomes counted)", e.Details["candidate_n"], e.Details["champion_n"])
			}
			break
		}
	}
	wantA := []string{"rollout.advance", "alias.set:canary=" + cv, "traffic.set:5", "alias.delete:shadow=0", "rollout.advance", "traffic.set:25"}
	if got := governorAudit(t, reg); !slices.Equal(got, wantA) {
		t.Fatalf("audit while a leads %q, want %q", got, wantA)
	}

	// a stops. Within three intervals of its last renewal b cannot take over.
	mini.Mini.FastForward(2 * time.Second)
	mustTick(t, b)
	if b.leader || holder() != "instance-a" {
		t.Fatalf("b took the lease %v before it ran out (holder %q)", b.leader, holder())
	}
	mini.Mini.FastForward(2 * time.Second)
	mustTick(t, b)
	if !b.leader || holder() != "instance-b" || b.candidate != cand || b.ctrl.State().Phase != rollout.PhaseShadow {
		t.Fatalf("after a's lease ran out: b leader %v, holder %q, candidate %d", b.leader, holder(), b.candidate)
	}
	for round := 0; b.ctrl.State().Phase != rollout.PhaseStable; round++ {
		if round == 20 {
			t.Fatalf("b stuck at %+v", b.ctrl.State())
		}
		feed(b, cv, 300, 0.95)
		feed(b, "1", 300, 0.80)
		before := governorDecisions(t, reg)
		mustTick(t, b)
		if n := governorDecisions(t, reg) - before; n > 1 {
			t.Fatalf("b round %d: %d decisions in one tick", round, n)
		}
	}
	set, err := reg.Aliases(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasChampion] != cand || set.Versions[registry.AliasCanary] != 0 || set.Versions[registry.AliasShadow] != 0 || set.CanaryPercent != 0 {
		t.Fatalf("aliases %v at %d%%, want champion %d only", set.Versions, set.CanaryPercent, cand)
	}
	got := governorAudit(t, reg)
	if tail := got[len(got)-8:]; !slices.Equal(tail, []string{"rollout.promote", "alias.set:champion=" + cv, "alias.set:previous=1", "alias.set:baking=" + cv,
		"alias.delete:canary=0", "traffic.set:0", "rollout.stable", "alias.delete:baking=0"}) {
		t.Fatalf("b's audit ends %q, want promote … stable", tail)
	}
	// a comes back: b holds the lease, so a drops its rollout and does nothing.
	mustTick(t, a)
	if a.leader || a.ctrl != nil || len(governorAudit(t, reg)) != len(got) {
		t.Fatalf("a acted without the lease: leader %v, audit %q", a.leader, governorAudit(t, reg))
	}
}

// TestGovernorPauseFlag: while the operator's pause flag is set a good
// candidate holds in shadow, with one audited rollout.pause; clearing the
// flag audits rollout.resume and the rollout advances in the same tick.
func TestGovernorPauseFlag(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	paused := true
	g.paused = func(context.Context) (bool, error) { return paused, nil }
	cand := registerShadow(t, reg)
	cv := strconv.FormatInt(cand, 10)
	for range 4 {
		feedRound(t, g, cv, 0.80, 0.95)
	}
	if st := g.ctrl.State(); st.Phase != rollout.PhaseShadow || !st.Paused {
		t.Fatalf("state %+v while paused, want paused in shadow", st)
	}
	set, err := reg.Aliases(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasCanary] != 0 || set.CanaryPercent != 0 || set.Versions[registry.AliasShadow] != cand {
		t.Fatalf("aliases %v at %d%% while paused, want shadow %d only", set.Versions, set.CanaryPercent, cand)
	}
	if got := governorAudit(t, reg); !slices.Equal(got, []string{"rollout.pause"}) {
		t.Fatalf("audit while paused %q, want one rollout.pause", got)
	}
	evs, err := reg.ReadAudit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.What == "rollout.pause" && (e.Version != cand || e.Why != "operator pause flag set" || e.Details["candidate_version"] != cv) {
			t.Fatalf("pause event %+v", e)
		}
	}
	paused = false
	feedRound(t, g, cv, 0.80, 0.95)
	if st := g.ctrl.State(); st.Phase != rollout.PhaseCanary || st.Percent != 5 || st.Paused {
		t.Fatalf("state %+v after the flag cleared, want canary at 5%%", st)
	}
	want := []string{"rollout.pause", "rollout.resume", "rollout.advance", "alias.set:canary=" + cv, "traffic.set:5", "alias.delete:shadow=0"}
	if got := governorAudit(t, reg); !slices.Equal(got, want) {
		t.Fatalf("audit %q, want %q", got, want)
	}
}

// TestGovernorAdminPolicySteps: an admin's policy gate replaces the spec's
// when the rollout starts: its steps (50, 100) are the canary shares.
func TestGovernorAdminPolicySteps(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	g.policy = func(context.Context) (rollout.Gate, bool, error) {
		return rollout.Gate{MinSamples: 200, MaxDelta: 0.01, Steps: []int{50, 100}, BlockOnOpenDrift: true}, true, nil
	}
	cand := registerShadow(t, reg)
	cv := strconv.FormatInt(cand, 10)
	var percents []int
	for round := 0; g.ctrl == nil || g.ctrl.State().Phase != rollout.PhaseStable; round++ {
		if round == 20 {
			t.Fatalf("stuck at %+v", g.ctrl.State())
		}
		feedRound(t, g, cv, 0.80, 0.95)
		set, err := reg.Aliases(ctx, testModel)
		if err != nil {
			t.Fatal(err)
		}
		if len(percents) == 0 || percents[len(percents)-1] != set.CanaryPercent {
			percents = append(percents, set.CanaryPercent)
		}
	}
	if steps := g.ctrl.Gate().Steps; !slices.Equal(steps, []int{50, 100}) {
		t.Fatalf("controller steps %v, want the policy's 50, 100", steps)
	}
	if !slices.Equal(percents, []int{0, 50, 0}) {
		t.Fatalf("canary shares %v, want 0 50 0 (promoted)", percents)
	}
	want := []string{
		"rollout.advance", "alias.set:canary=" + cv, "traffic.set:50", "alias.delete:shadow=0",
		"rollout.promote", "alias.set:champion=" + cv, "alias.set:previous=1", "alias.set:baking=" + cv, "alias.delete:canary=0", "traffic.set:0",
		"rollout.stable", "alias.delete:baking=0",
	}
	if got := governorAudit(t, reg); !slices.Equal(got, want) {
		t.Fatalf("audit %q, want %q", got, want)
	}
}

func shadowVersion(t *testing.T, reg *registry.Registry) int64 {
	t.Helper()
	set, err := reg.Aliases(context.Background(), testModel)
	if err != nil {
		t.Fatal(err)
	}
	return set.Versions[registry.AliasShadow]
}

// TestGovernorRetrainsOnSchedule: with every set, the first tick starts the
// schedule and a retrain runs each time it comes due, not before.
func TestGovernorRetrainsOnSchedule(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	start := time.Unix(1_700_000_000, 0)
	now := start
	g.now = func() time.Time { return now }
	w := NewWindow("events", 2000, 2, 0)
	fillWindow(t, w, 1000, 3)
	g.retrain = &RetrainJob{reg: reg, model: testModel, newLearner: newTestLearner, rows: w, signature: testSignature, minRows: 200, holdout: 0.2}
	g.every = time.Hour
	for _, step := range []struct {
		at     time.Duration
		shadow int64
	}{{0, 0}, {59 * time.Minute, 0}, {time.Hour, 2}, {time.Hour + time.Minute, 2}, {119 * time.Minute, 2}, {2 * time.Hour, 3}} {
		now = start.Add(step.at)
		mustTick(t, g)
		if v := shadowVersion(t, reg); v != step.shadow {
			t.Fatalf("at +%v shadow is version %d, want %d", step.at, v, step.shadow)
		}
	}
	evs, err := reg.ReadAudit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Who == whoRetrain && e.What == registry.WhatAliasSet {
			n++
			if e.Details["trigger"] != "schedule" || e.Why != "every 1h0m0s" {
				t.Fatalf("retrain shadow move %+v, want trigger schedule", e)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d scheduled retrains, want 2", n)
	}
}

// TestGovernorRetrainSinceDrift: with sinceDrift, an error-drift alert's
// retrain waits until the window holds min_rows rows learned after the
// alert was taken, then trains on exactly those rows, once.
func TestGovernorRetrainSinceDrift(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	g.now = func() time.Time { return now }
	w := NewWindow("events", 5000, 2, 0)
	fillWindowAt(w, 1500, 1, t0.Add(-time.Hour)) // before the alert: never trained on
	g.retrain = &RetrainJob{reg: reg, model: testModel, newLearner: newTestLearner, rows: w, signature: testSignature, minRows: 300, holdout: 0.2}
	g.sinceDrift = true
	var inbox AlertInbox
	g.source = &retrainSource{model: testModel, onDrift: true, alerts: inbox.Drain}
	if err := inbox.Receive(ctx, alert.Alert{Detector: "adwin", Subject: alert.SubjectError, ModelVersion: testModel + "@1",
		State: alert.StateDrift, DedupeKey: "err-1"}); err != nil {
		t.Fatal(err)
	}
	mustTick(t, g) // takes the alert at t0
	if v := shadowVersion(t, reg); v != 0 {
		t.Fatalf("retrained (shadow %d) with no rows after the alert", v)
	}
	checkQueuedGauge(t, g, 1)
	now = t0.Add(time.Second)
	fillWindowAt(w, 200, 2, now)
	mustTick(t, g)
	if v := shadowVersion(t, reg); v != 0 {
		t.Fatalf("retrained (shadow %d) on 200 of 300 rows", v)
	}
	now = t0.Add(2 * time.Second)
	fillWindowAt(w, 100, 3, now)
	mustTick(t, g)
	if v := shadowVersion(t, reg); v != 2 {
		t.Fatalf("shadow %d after 300 rows since the alert, want version 2", v)
	}
	checkQueuedGauge(t, g, 1) // queued when the tick looked, then run
	v, err := reg.Version(ctx, testModel, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage.Metrics["trainRows"] != 300 || !v.Lineage.Source.From.Equal(t0.Add(time.Second)) || !v.Lineage.Source.To.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("lineage %+v, want the 300 rows learned after the alert", v.Lineage)
	}
	now = t0.Add(3 * time.Second)
	fillWindowAt(w, 400, 4, now)
	mustTick(t, g)
	if vs, err := reg.Versions(ctx, testModel); err != nil || len(vs) != 2 {
		t.Fatalf("%d versions (%v) after another tick, want the alert retrained once", len(vs), err)
	}
	checkQueuedGauge(t, g, 0)
}

// checkQueuedGauge checks g's driftline_rollout_retrains_queued.
func checkQueuedGauge(t *testing.T, g *Governor, want int) {
	t.Helper()
	text := fmt.Sprintf(`# HELP driftline_rollout_retrains_queued Retrain triggers (drift alerts, retrain requests) queued and not yet run, at the governor lease holder's last look.
# TYPE driftline_rollout_retrains_queued gauge
driftline_rollout_retrains_queued{model=%q} %d
`, testModel, want)
	if err := testutil.CollectAndCompare(g.Collector(), strings.NewReader(text), "driftline_rollout_retrains_queued"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGovernorObserveOutcome is the governor's share of the label
// path: one joined label's outcome added to the unflushed sums.
func BenchmarkGovernorObserveOutcome(b *testing.B) {
	g := &Governor{}
	b.ReportAllocs()
	for b.Loop() {
		g.ObserveOutcome("7", 0.8, 1)
	}
}

// BenchmarkGovernorObservePairedOutcome is a shadow's share of the label
// path: its outcome of one label, paired with the champion's.
func BenchmarkGovernorObservePairedOutcome(b *testing.B) {
	g := &Governor{}
	b.ReportAllocs()
	for b.Loop() {
		g.ObservePairedOutcome("7/shadow", 0.8, 0.3, 1)
	}
}

// TestGovernorTakeoverFinishesBake: the lease holder promotes a candidate
// and stops before its bake ends; the instance that takes over resumes the
// bake (audited rollout.bake.resume), measuring the new champion from then
// on against the previous one. A good champion ends stable, its "baking"
// mark removed; one that regresses is rolled back to the previous champion.
func TestGovernorTakeoverFinishesBake(t *testing.T) {
	for _, tc := range []struct {
		name    string
		right   float64 // the new champion's hit rate after the takeover
		want    rollout.Phase
		champOf func(cand int64) int64
	}{
		{"good", 0.95, rollout.PhaseStable, func(cand int64) int64 { return cand }},
		{"regresses", 0.50, rollout.PhaseRolledBack, func(int64) int64 { return 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg, mini := newTestRegistryMini(t)
			a, b := newTestGovernor(t, reg), newTestGovernor(t, reg)
			a.holder, b.holder = "instance-a", "instance-b"
			a.gate.BakeSamples = 5000
			cand := registerShadow(t, reg)
			cv := strconv.FormatInt(cand, 10)
			for round := 0; a.ctrl == nil || a.ctrl.State().Phase != rollout.PhasePromoted; round++ {
				if round == 20 {
					t.Fatalf("a never promoted: %+v", a.ctrl.State())
				}
				feedRound(t, a, cv, 0.80, 0.95)
			}
			set, err := reg.Aliases(ctx, testModel)
			if err != nil {
				t.Fatal(err)
			}
			if set.Versions[registry.AliasBaking] != cand || set.Versions[registry.AliasPrevious] != 1 {
				t.Fatalf("aliases %v after promotion, want baking %d and previous 1", set.Versions, cand)
			}
			// a stops; b takes over once the lease runs out.
			mini.Mini.FastForward(4 * time.Second)
			b.championVersion = func() string { return cv }
			mustTick(t, b)
			if !b.leader || b.ctrl == nil || b.candidate != cand || b.ctrl.State().Phase != rollout.PhasePromoted {
				t.Fatalf("b after takeover: leader %v candidate %d state %+v, want the bake of %d resumed", b.leader, b.candidate, b.ctrl, cand)
			}
			for round := 0; b.ctrl.State().Phase == rollout.PhasePromoted; round++ {
				if round == 20 {
					t.Fatalf("b stuck at %+v", b.ctrl.State())
				}
				feed(b, cv, 300, tc.right)
				mustTick(t, b)
			}
			if ph := b.ctrl.State().Phase; ph != tc.want {
				t.Fatalf("phase %s, want %s", ph, tc.want)
			}
			if set, err = reg.Aliases(ctx, testModel); err != nil {
				t.Fatal(err)
			}
			if set.Versions[registry.AliasBaking] != 0 || set.Versions[registry.AliasChampion] != tc.champOf(cand) {
				t.Fatalf("aliases %v at the end, want champion %d and no baking mark", set.Versions, tc.champOf(cand))
			}
			got := governorAudit(t, reg)
			if !slices.Contains(got, "rollout.bake.resume") {
				t.Fatalf("audit %q lacks the resumed bake", got)
			}
		})
	}
}

// TestGovernorBadOutcomesNeverWedgeFlush: the wedge. A label of
// -5 for a binary model (or any regression label above 1) made the
// outcome's log loss negative, the registry refused the pending sums, and
// every later flush re-sent them with the new outcomes and failed again,
// so promotion and rollback saw no data until a restart. Now a
// non-binary label adds no log loss, a non-finite outcome is skipped, and
// sums the registry refuses as invalid are dropped without holding back
// the other versions'.
func TestGovernorBadOutcomesNeverWedgeFlush(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	g.ObserveOutcome("1", 0.7, -5)
	g.ObserveOutcome("1", 0.7, 7)
	g.ObserveOutcome("1", 0.7, 1e38)
	g.ObserveOutcome("1", 0.7, math.NaN())
	g.ObserveOutcome("1", math.Inf(1), 1)
	if err := g.flush(ctx); err != nil {
		t.Fatalf("flush after bad labels: %v", err)
	}
	feed(g, "1", 100, 1)
	if err := g.flush(ctx); err != nil {
		t.Fatalf("flush of good outcomes: %v", err)
	}
	got, err := reg.Outcomes(ctx, testModel, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 103 || got.Correct != 100 || got.Positives != 100 {
		t.Errorf("sums %+v, want n 103 (3 finite bad labels, 100 good), correct 100, positives 100", got)
	}
	if got.LogLoss < 0 || math.IsInf(got.AbsErr, 0) {
		t.Errorf("sums %+v: log loss negative or error infinite", got)
	}
	if d := g.OutcomesDropped(); d != 2 {
		t.Errorf("dropped %d outcomes, want the 2 non-finite ones", d)
	}
	// A version the registry refuses does not hold back another's.
	g.ObserveOutcome(strings.Repeat("v", registry.MaxOutcomeVersionLen+1), 0.9, 1)
	feed(g, "1", 10, 1)
	if err := g.flush(ctx); err == nil {
		t.Error("flush with an invalid version label: no error")
	}
	if err := g.flush(ctx); err != nil {
		t.Errorf("the next flush: %v (the invalid sums must not stay pending)", err)
	}
	if got, err = reg.Outcomes(ctx, testModel, "1"); err != nil || got.N != 113 {
		t.Errorf("version 1 has %d outcomes (%v), want 113", got.N, err)
	}
}

// feedSeries adds n outcomes of series, the first right·n right.
func feedSeries(g *Governor, series string, n int, right float64) {
	for i := range n {
		score := 0.9
		if float64(i) >= right*float64(n) {
			score = 0.1
		}
		g.ObserveOutcome(series, score, 1)
	}
}

// TestGovernorCanaryStepWaitsForItsOwnOutcomes: a canary step advances on
// the outcomes of the predictions it served, not on outcomes of the same
// version served under another step. Labels come late: after the advance
// to the 5% canary, the shadow's outcomes of the candidate keep coming (its
// predictions were made before the advance), and so do outcomes the canary
// served at another share. Before issue 11 the governor counted every
// outcome of the candidate's version, so such late outcomes made a step
// pass without any sample of its own (a 50% canary lasted 19 ms in a demo).
func TestGovernorCanaryStepWaitsForItsOwnOutcomes(t *testing.T) {
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	cand := registerShadow(t, reg)
	cv := strconv.FormatInt(cand, 10)
	for range 5 { // shadow: measured from the rollout's start
		if feedRound(t, g, cv, 0.80, 0.95); g.ctrl.State().Phase != rollout.PhaseShadow {
			break
		}
	}
	if st := g.ctrl.State(); st.Phase != rollout.PhaseCanary || st.Percent != 5 {
		t.Fatalf("state %+v after a good shadow round, want the 5%% canary", st)
	}
	for range 3 {
		feedSeries(g, "1", 300, 0.80)
		feedSeries(g, OutcomeSeries(cv, registry.AliasShadow, 0), 1000, 0.95)   // late labels of shadow predictions
		feedSeries(g, OutcomeSeries(cv, registry.AliasCanary, 25), 1000, 0.95)  // another step's
		feedSeries(g, OutcomeSeries(cv, registry.AliasChampion, 0), 1000, 0.95) // served as champion, elsewhere
		mustTick(t, g)
		if st := g.ctrl.State(); st.Phase != rollout.PhaseCanary || st.Percent != 5 {
			t.Fatalf("state %+v on outcomes served under other steps; want the 5%% canary to wait for its own", st)
		}
	}
	feedSeries(g, "1", 300, 0.80)
	feedSeries(g, OutcomeSeries(cv, registry.AliasCanary, 5), 199, 0.95)
	mustTick(t, g)
	if st := g.ctrl.State(); st.Percent != 5 {
		t.Fatalf("state %+v with 199 of its own outcomes (min 200)", st)
	}
	feedSeries(g, OutcomeSeries(cv, registry.AliasCanary, 5), 1, 1)
	mustTick(t, g)
	if st := g.ctrl.State(); st.Phase != rollout.PhaseCanary || st.Percent != 25 {
		t.Fatalf("state %+v with 200 outcomes of its own, want the 25%% canary", st)
	}
	// The earlier step's outcomes count no more at the next step.
	feedSeries(g, "1", 300, 0.80)
	feedSeries(g, OutcomeSeries(cv, registry.AliasCanary, 5), 1000, 0.95)
	mustTick(t, g)
	if st := g.ctrl.State(); st.Percent != 25 {
		t.Fatalf("state %+v on the 5%% step's late outcomes, want the 25%% canary to wait", st)
	}
}

// TestGovernorChampionWindowOpensWithTheCandidates: the champion's outcomes
// joined after the rollout began but before the candidate had any (a
// shadow not yet loaded by the data plane, during a drift's dip) are not
// compared with the candidate's. A candidate worse than the champion over
// the same labels rolls back, though the champion's sums since the begin
// hold enough bad outcomes to make it look better; and one better than
// the champion over the same labels advances, though the champion's good
// outcomes from before it scored would make it look worse.
func TestGovernorChampionWindowOpensWithTheCandidates(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		champBefore          float64 // accuracy of the champion's outcomes before the candidate's first
		champAfter, candRate float64
		want                 rollout.Phase
	}{
		{"a dip before the candidate scores", 0.2, 0.95, 0.80, rollout.PhaseRolledBack},
		{"a good stretch before the candidate scores", 1.0, 0.80, 0.90, rollout.PhaseCanary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, _ := newTestRegistry(t)
			g := newTestGovernor(t, reg)
			cv := strconv.FormatInt(registerShadow(t, reg), 10)
			mustTick(t, g) // the rollout begins
			if g.ctrl == nil || g.ctrl.State().Phase != rollout.PhaseShadow {
				t.Fatalf("no rollout in shadow after the first tick")
			}
			for range 3 { // the champion's labels, before the shadow scores any
				feedSeries(g, "1", 3000, tc.champBefore)
				mustTick(t, g)
			}
			for range 5 {
				feedSeries(g, "1", 300, tc.champAfter)
				feedSeries(g, OutcomeSeries(cv, registry.AliasShadow, 0), 300, tc.candRate)
				mustTick(t, g)
				if g.ctrl.State().Phase != rollout.PhaseShadow {
					break
				}
			}
			if ph := g.ctrl.State().Phase; ph != tc.want {
				t.Fatalf("phase %s, want %s: the champion was measured on outcomes the candidate had no share of", ph, tc.want)
			}
		})
	}
}

// A multi-class model's served score is its predicted class: an outcome
// counts right when the class is the label, and adds no log loss or error
// (a class index has neither).
func TestOutcomeDeltaMultiClass(t *testing.T) {
	multi := models.Decision{Threshold: models.Threshold, Classes: 3}
	for _, c := range []struct {
		score, label float64
		correct      int64
	}{{2, 2, 1}, {1, 2, 0}, {0, 0, 1}} {
		d, ok := outcomeDeltaAt(c.score, c.label, multi)
		if !ok || d.N != 1 || d.Correct != c.correct || d.LogLoss != 0 || d.AbsErr != 0 || d.Positives != 0 {
			t.Errorf("outcome (%v, %v): %+v, %v; want n 1, correct %v and nothing else", c.score, c.label, d, ok, c.correct)
		}
	}
	// The same score under the binary rule is a probability.
	if d, _ := outcomeDeltaAt(1, 1, models.Decision{Threshold: models.Threshold}); d.Correct != 1 || d.Positives != 1 {
		t.Errorf("binary outcome: %+v", d)
	}
}

// TestGovernorShadowComparesLabelByLabel: in shadow, the candidate's and the
// champion's outcomes of the same labels are compared as pairs. A candidate
// that differs from the champion on few labels is measured tightly: paired,
// it advances (or, worse beyond the bound, rolls back) on evidence that,
// read as two independent samples, stays inconclusive.
func TestGovernorShadowComparesLabelByLabel(t *testing.T) {
	for _, tc := range []struct {
		name string
		// Of each round's 300 labels, the champion is right on the first
		// 270; the candidate too, except on the first flips of them.
		flips  int
		paired bool
		want   rollout.Phase
	}{
		{"paired, one label worse in 300", 1, true, rollout.PhaseCanary},
		{"unpaired, one label worse in 300", 1, false, rollout.PhaseShadow},
		{"paired, 3% worse", 9, true, rollout.PhaseRolledBack},
		{"unpaired, 3% worse", 9, false, rollout.PhaseShadow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, _ := newTestRegistry(t)
			g := newTestGovernor(t, reg)
			g.gate.FailureLimit = 0
			cv := strconv.FormatInt(registerShadow(t, reg), 10)
			champSeries, shadowSeries := OutcomeSeries("1", registry.AliasChampion, 0), OutcomeSeries(cv, registry.AliasShadow, 0)
			mustTick(t, g) // the rollout begins
			for round := 0; round < 4 && g.ctrl.State().Phase == rollout.PhaseShadow; round++ {
				for i := range 300 {
					champRight := i < 270
					candRight := champRight && i >= tc.flips
					champScore, candScore := scoreFor(champRight), scoreFor(candRight)
					g.ObserveOutcome(champSeries, champScore, 1)
					if tc.paired {
						g.ObservePairedOutcome(shadowSeries, candScore, champScore, 1)
					} else {
						g.ObserveOutcome(shadowSeries, candScore, 1)
					}
				}
				mustTick(t, g)
			}
			if ph := g.ctrl.State().Phase; ph != tc.want {
				t.Fatalf("phase %s after 4 rounds, want %s (last evidence %+v)", ph, tc.want, g.Status().Evidence)
			}
			if tc.paired {
				evs, err := reg.ReadAudit(context.Background(), "", 1000)
				if err != nil {
					t.Fatal(err)
				}
				last := evs[len(evs)-1]
				for _, e := range evs {
					if strings.HasPrefix(e.What, "rollout.") && e.What != "rollout.hold" {
						last = e
					}
				}
				if last.Details["paired_n"] == "" || last.Details["paired_n"] != last.Details["candidate_n"] {
					t.Fatalf("decision %s details %v: want paired_n equal to candidate_n", last.What, last.Details)
				}
			}
		})
	}
}

// scoreFor is a positive label's score that is right (0.9) or wrong (0.1).
func scoreFor(right bool) float64 {
	if right {
		return 0.9
	}
	return 0.1
}

// TestPairedAccuracyIsAgrestiMinAdjusted: the paired accuracy evidence is
// Agresti and Min's adjusted difference and standard error, which stay
// informative when the two versions never disagree.
func TestPairedAccuracyIsAgrestiMinAdjusted(t *testing.T) {
	for _, c := range []struct {
		n, b, c  int64 // pairs; only the candidate right; only the champion right
		mean, se float64
	}{
		{1000, 0, 0, 0, 1.0 / 1002},
		{1000, 30, 10, 20.0 / 1002, math.Sqrt(41-400.0/1002) / 1002},
		{300, 0, 1, -1.0 / 302, math.Sqrt(2-1.0/302) / 302},
	} {
		p := pairedOf(rollout.MetricAccuracy, registry.PairedSums{N: c.n, CorrectDiff: c.b - c.c, CorrectDiffSq: c.b + c.c})
		if se := p.SD / math.Sqrt(float64(p.N)); p.N != c.n || math.Abs(p.Mean-c.mean) > 1e-12 || math.Abs(se-c.se) > 1e-12 {
			t.Errorf("n %d, b %d, c %d: mean %v, se %v; want %v, %v", c.n, c.b, c.c, p.Mean, se, c.mean, c.se)
		}
	}
	if p := pairedOf(rollout.MetricAccuracy, registry.PairedSums{N: 1, CorrectDiffSq: 1, CorrectDiff: 1}); p != nil {
		t.Errorf("one pair gave %+v, want none", p)
	}
}
