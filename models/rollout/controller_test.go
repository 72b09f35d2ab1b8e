package rollout_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/models/rollout"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func acc(n int64, v float64) rollout.Stats { return rollout.Stats{N: n, Value: v} }

// step is one Evaluate call, or an operator command when cmd is set, and what it must
// return.
type step struct {
	cand, champ rollout.Stats
	drift       bool
	cmd         string // "pause", "resume", "promote", "rollback"
	cmdErr      error

	action  rollout.Action
	phase   rollout.Phase
	percent int
	reason  string // substring of Decision.Reason
}

// small is a gate with few samples and three steps.
var small = rollout.Gate{MinSamples: 100, MaxDelta: 0.01, Confidence: 0.95, Steps: []int{5, 50, 100}, BakeSamples: 100, BlockOnOpenDrift: true}

func TestControllerScenarios(t *testing.T) {
	good, champ := 0.90, 0.80
	with := func(f func(*rollout.Gate)) rollout.Gate { g := small; f(&g); return g }
	for _, tc := range []struct {
		name  string
		gate  rollout.Gate
		steps []step
	}{
		{"good candidate goes all the way", small, []step{
			{cand: acc(50, good), champ: acc(50, champ), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "waiting for samples"},
			{cand: acc(100, good), champ: acc(100, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: acc(150, good), champ: acc(150, champ), action: rollout.ActionHold, phase: rollout.PhaseCanary, percent: 5, reason: "at this step: 50 of 100"},
			{cand: acc(200, good), champ: acc(200, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 50},
			{cand: acc(300, good), champ: acc(300, champ), action: rollout.ActionPromote, phase: rollout.PhasePromoted, percent: 100},
			{cand: acc(350, good), champ: acc(350, champ), action: rollout.ActionHold, phase: rollout.PhasePromoted, percent: 100, reason: "baking: 50 of 100"},
			{cand: acc(400, good), champ: acc(400, champ), action: rollout.ActionHold, phase: rollout.PhaseStable, percent: 100, reason: "no regression"},
			{cand: acc(500, 0.1), champ: acc(500, champ), action: rollout.ActionHold, phase: rollout.PhaseStable, percent: 100, reason: "rollout is stable"},
			{cmd: "rollback", cmdErr: rollout.ErrFinished},
		}},
		{"canary regression rolls back at once", small, []step{
			{cand: acc(100, good), champ: acc(100, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: acc(400, 0.60), champ: acc(400, champ), action: rollout.ActionRollback, phase: rollout.PhaseRolledBack, reason: "accuracy regressed"},
			{cand: acc(900, good), champ: acc(900, champ), action: rollout.ActionHold, phase: rollout.PhaseRolledBack, reason: "rollout is rolled-back"},
			{cmd: "pause", cmdErr: rollout.ErrFinished},
		}},
		{"failure limit tolerates two failures", with(func(g *rollout.Gate) { g.FailureLimit = 2 }), []step{
			{cand: acc(400, 0.60), champ: acc(400, champ), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "failed measurement 1 of limit 2"},
			{cand: acc(450, 0.60), champ: acc(450, champ), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "failed measurement 2 of limit 2"},
			{cand: acc(500, good), champ: acc(500, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: acc(900, 0.60), champ: acc(900, champ), action: rollout.ActionRollback, phase: rollout.PhaseRolledBack, reason: "failure 3 of limit 2"},
		}},
		{"consecutive errors", with(func(g *rollout.Gate) { g.ConsecutiveErrorLimit = 2 }), []step{
			{cand: acc(100, math.NaN()), champ: acc(100, champ), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "measurement error 1 of limit 2: candidate"},
			{cand: acc(100, good), champ: acc(100, 1.5), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "measurement error 2 of limit 2: champion"},
			{cand: acc(100, good), champ: acc(100, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5}, // resets
			{cand: acc(150, math.Inf(1)), champ: acc(150, champ), action: rollout.ActionHold, phase: rollout.PhaseCanary, percent: 5, reason: "error 1 of"},
			{cand: acc(-1, good), champ: acc(150, champ), action: rollout.ActionHold, phase: rollout.PhaseCanary, percent: 5, reason: "error 2 of"},
			{cand: acc(150, math.NaN()), champ: acc(150, champ), action: rollout.ActionRollback, phase: rollout.PhaseRolledBack, reason: "3 consecutive measurement errors, limit 2"},
		}},
		{"open drift blocks promotion but not rollback", small, []step{
			{cand: acc(100, good), champ: acc(100, champ), drift: true, action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "drift alert open"},
			{cand: acc(200, good), champ: acc(200, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: acc(300, good), champ: acc(300, champ), drift: true, action: rollout.ActionHold, phase: rollout.PhaseCanary, percent: 5, reason: "drift alert open"},
			{cand: acc(600, 0.5), champ: acc(600, champ), drift: true, action: rollout.ActionRollback, phase: rollout.PhaseRolledBack},
		}},
		{"drift ignored when not blocking", with(func(g *rollout.Gate) { g.BlockOnOpenDrift = false }), []step{
			{cand: acc(100, good), champ: acc(100, champ), drift: true, action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
		}},
		{"pause holds advancement, not rollback", small, []step{
			{cmd: "pause", action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "operator says wait"},
			{cand: acc(100, good), champ: acc(100, champ), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "paused"},
			{cmd: "resume", action: rollout.ActionHold, phase: rollout.PhaseShadow},
			{cand: acc(200, good), champ: acc(200, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cmd: "pause", action: rollout.ActionHold, phase: rollout.PhaseCanary, percent: 5},
			{cand: acc(600, 0.5), champ: acc(600, champ), action: rollout.ActionRollback, phase: rollout.PhaseRolledBack},
		}},
		{"equal arms are inconclusive without an allowance", with(func(g *rollout.Gate) { g.MaxDelta = 0 }), []step{
			{cand: acc(5000, 0.8), champ: acc(5000, 0.8), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "inconclusive"},
		}},
		{"equal arms pass with an allowance and enough samples", with(func(g *rollout.Gate) { g.MaxDelta = 0.03 }), []step{
			{cand: acc(100, 0.8), champ: acc(100, 0.8), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "inconclusive"},
			{cand: acc(5000, 0.8), champ: acc(5000, 0.8), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
		}},
		{"newly promoted champion regresses", small, []step{
			{cand: acc(50, good), champ: acc(50, champ), action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "waiting for samples"},
			{cmd: "promote", action: rollout.ActionPromote, phase: rollout.PhasePromoted, percent: 100, reason: "hotfix"},
			{cmd: "promote", cmdErr: rollout.ErrInvalid},
			{cand: acc(100, 0.79), champ: acc(100, champ), action: rollout.ActionHold, phase: rollout.PhasePromoted, percent: 100, reason: "baking: 50 of 100"},
			{cand: acc(1000, 0.70), champ: acc(1000, champ), action: rollout.ActionRollback, phase: rollout.PhaseRolledBack},
		}},
		{"operator rollback in canary", small, []step{
			{cand: acc(100, good), champ: acc(100, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cmd: "rollback", action: rollout.ActionRollback, phase: rollout.PhaseRolledBack, reason: "hotfix"},
		}},
		{"counter reset counts from zero", small, []step{
			{cand: acc(1000, good), champ: acc(1000, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: acc(100, good), champ: acc(1000, champ), action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 50},
		}},
		{"logloss lower is better", with(func(g *rollout.Gate) { g.Metric = rollout.MetricLogLoss; g.MaxDelta = 0.02 }), []step{
			{cand: rollout.Stats{N: 1000, Value: 0.30, SD: 0.4}, champ: rollout.Stats{N: 1000, Value: 0.35, SD: 0.4},
				action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: rollout.Stats{N: 3000, Value: 0.50, SD: 0.4}, champ: rollout.Stats{N: 3000, Value: 0.35, SD: 0.4},
				action: rollout.ActionRollback, phase: rollout.PhaseRolledBack, reason: "logloss regressed"},
		}},
		{"rmse", with(func(g *rollout.Gate) { g.Metric = rollout.MetricRMSE; g.MaxDelta = 0.1 }), []step{
			{cand: rollout.Stats{N: 1000, Value: 1.0, SD: 1}, champ: rollout.Stats{N: 1000, Value: 1.0, SD: 1},
				action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: rollout.Stats{N: 2000, Value: 2.0, SD: 4}, champ: rollout.Stats{N: 2000, Value: 1.0, SD: 1},
				action: rollout.ActionRollback, phase: rollout.PhaseRolledBack},
		}},
		{"mae", with(func(g *rollout.Gate) { g.Metric = rollout.MetricMAE; g.MaxDelta = 0.05 }), []step{
			{cand: rollout.Stats{N: 1000, Value: 0.9, SD: 0.5}, champ: rollout.Stats{N: 1000, Value: 1.0, SD: 0.5},
				action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
		}},
		{"unusable stats hold, then count", with(func(g *rollout.Gate) { g.ConsecutiveErrorLimit = 1 }), []step{
			{cand: rollout.Stats{N: 1000, Value: math.NaN()}, champ: rollout.Stats{N: 1000, Value: 0.8},
				action: rollout.ActionHold, phase: rollout.PhaseShadow, reason: "unusable"},
			{cand: rollout.Stats{N: 1000, Value: 0.9}, champ: rollout.Stats{N: 1000, Value: 0.8},
				action: rollout.ActionAdvance, phase: rollout.PhaseCanary, percent: 5},
			{cand: rollout.Stats{N: 2000, Value: 0.6}, champ: rollout.Stats{N: 2000, Value: 0.8},
				action: rollout.ActionRollback, phase: rollout.PhaseRolledBack, reason: "accuracy regressed"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rollout.NewController(tc.gate, "rollout-controller")
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				now := t0.Add(time.Duration(i) * time.Minute)
				var d rollout.Decision
				who := "rollout-controller"
				if s.cmd != "" {
					who = "alice"
					cmds := map[string]func(string, string, time.Time) (rollout.Decision, error){
						"pause": c.Pause, "resume": c.Resume, "promote": c.Promote, "rollback": c.Rollback,
					}
					why := "hotfix"
					if s.cmd == "pause" {
						why = "operator says wait"
					}
					d, err = cmds[s.cmd](who, why, now)
					if !errors.Is(err, s.cmdErr) {
						t.Fatalf("step %d %s: error %v; want %v", i, s.cmd, err, s.cmdErr)
					}
					if err != nil {
						continue
					}
				} else {
					d = c.Evaluate(s.cand, s.champ, s.drift, now)
				}
				if d.Action != s.action || d.Phase != s.phase || d.Percent != s.percent || !strings.Contains(d.Reason, s.reason) {
					t.Fatalf("step %d: got %s → %s at %d%% (%q); want %s → %s at %d%% (reason containing %q)",
						i, d.Action, d.Phase, d.Percent, d.Reason, s.action, s.phase, s.percent, s.reason)
				}
				if d.Who != who || !d.When.Equal(now) || !strings.HasPrefix(d.What, "rollout.") || d.Reason == "" {
					t.Fatalf("step %d: audit fields who=%q what=%q when=%v reason=%q", i, d.Who, d.What, d.When, d.Reason)
				}
				st := c.State()
				if st.Phase != d.Phase || st.Percent != d.Percent || st.Step != d.Step || st.Failures != d.Failures {
					t.Fatalf("step %d: State %+v disagrees with decision %+v", i, st, d)
				}
			}
		})
	}
}

func TestDecisionAuditRecord(t *testing.T) {
	c, err := rollout.NewController(small, "rollout-controller")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Evaluate(acc(100, 0.9), acc(120, 0.8), false, t0)
	if d.What != "rollout.advance" || d.From != rollout.PhaseShadow || d.Step != 0 || d.Measurement == nil {
		t.Fatalf("decision %+v", d)
	}
	m := d.Measurement
	if m.Improvement <= 0 || !(m.Lower < m.Improvement && m.Improvement < m.Upper) || m.Lower <= -small.MaxDelta {
		t.Fatalf("measurement %+v does not justify advancing", m)
	}
	got := d.Details()
	for k, want := range map[string]string{
		"action": "advance", "from": "shadow", "phase": "canary", "step": "0", "percent": "5",
		"metric": "accuracy", "candidate": "0.9", "champion": "0.8", "candidate_n": "100", "champion_n": "120",
		"failures": "0", "consecutive_errors": "0",
	} {
		if got[k] != want {
			t.Errorf("Details()[%q] = %q; want %q", k, got[k], want)
		}
	}
	for _, k := range []string{"improvement", "lower", "upper"} {
		if got[k] == "" {
			t.Errorf("Details() lacks %q", k)
		}
	}
	o, err := c.Rollback("bob", "bad dashboard", t0)
	if err != nil || o.What != "rollout.override.rollback" || o.Who != "bob" || o.Reason != "bad dashboard" || o.From != rollout.PhaseCanary {
		t.Fatalf("override %+v, %v", o, err)
	}
	if _, err := c.Pause("", "x", t0); !errors.Is(err, rollout.ErrInvalid) {
		t.Fatalf("command without who: %v; want ErrInvalid", err)
	}
}
