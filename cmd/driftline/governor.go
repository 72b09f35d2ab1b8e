package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/stages"
)

// whoGovernor names the governor in the registry's audit log.
const whoGovernor = "governor"

// armCounts are one version's labelled outcomes: how many, how many right.
type armCounts struct{ n, correct int64 }

// governor is the control loop of issue 5. Every interval it
//   - turns new error-drift alerts and retrain requests into retrain jobs
//     (retrainSource, retrainJob), which put a candidate in shadow;
//   - measures the candidate (the canary alias, else the shadow alias)
//     against the champion and asks a rollout.Controller what to do;
//   - applies the Decision to the registry's aliases (advance: canary alias
//     and Arms.SetCanaryPercent; promote: champion alias; rollback: the
//     candidate's aliases removed, the previous champion restored) and
//     appends it to the audit log with who "governor" and why its Reason.
//
// Stats are accuracy counts, cumulative since the candidate's rollout
// began: a candidate's outcomes are its canary outcomes (the label join's
// outcome hook) plus, while it is only shadowed, its score on each labelled
// row the champion learns (recordingLearner.observe), since shadow
// predictions are not cached for the label join. The champion's are its
// outcomes since the rollout began. The gate's metric must therefore be
// accuracy. openDrift is true while a feature-drift alert (a subject other
// than "error" and "prediction") is open: the features are every version's
// inputs. Canary percentages are set on this instance's Arms only.
//
// Holds are audited only when their What or failure counts change, so a
// steady wait does not flood the log. One instance should run the governor
// per model: two would both act (the alias moves are CAS-checked, so a
// stale one fails and is logged, but decisions may be audited twice).
type governor struct {
	reg      *registry.Registry
	model    string
	arms     *stages.Arms
	gate     rollout.Gate
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time
	retrain  *retrainJob    // nil: no retraining
	source   *retrainSource // nil: no triggers

	mu     sync.Mutex
	counts map[string]armCounts // version → outcomes

	ctrl          *rollout.Controller
	candidate     int64     // registry version under rollout, 0 for none
	prevChampion  int64     // champion alias when the rollout began (0: unset)
	champVersion  string    // served champion version when the rollout began
	champBase     armCounts // its counts then
	openFeatures  map[string]bool
	lastHoldAudit string
}

// observeOutcome counts one joined label (a dataPlane outcome hook).
func (g *governor) observeOutcome(o stages.Outcome) {
	g.count(o.Version, float32(boolTo01(o.Score >= 0.5)) == o.Label)
}

// observeShadow scores the shadow arm on rows the champion learned, as the
// shadow's outcomes (recordingLearner.observe).
func (g *governor) observeShadow(rows *models.Rows, y []float32) {
	sh := g.arms.Load().Shadow
	if sh == nil || rows.N == 0 {
		return
	}
	k := 1
	dst := make([]float32, rows.N*k)
	if err := sh.Predict(dst, rows); err != nil {
		return // a shadow of another layout or classes: not measured
	}
	for i := range rows.N {
		g.count(sh.Version, predictedClass(dst[i:i+1]) == y[i])
	}
}

func (g *governor) count(version string, correct bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.counts == nil {
		g.counts = map[string]armCounts{}
	}
	c := g.counts[version]
	c.n++
	if correct {
		c.correct++
	}
	g.counts[version] = c
}

func (g *governor) countsOf(version string) armCounts {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[version]
}

func boolTo01(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c armCounts) stats() rollout.Stats {
	if c.n == 0 {
		return rollout.Stats{}
	}
	return rollout.Stats{N: c.n, Value: float64(c.correct) / float64(c.n)}
}

// Run ticks every interval until ctx ends.
func (g *governor) Run(ctx context.Context) {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := g.tick(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("governor", "model", g.model, "err", err)
			}
		}
	}
}

// tick runs the retrain triggers, then one rollout evaluation.
func (g *governor) tick(ctx context.Context) error {
	if g.source != nil {
		triggers, seen := g.source.alertTriggers()
		g.trackDrift(seen)
		reqs, err := g.source.requestTriggers(ctx)
		if err != nil {
			g.log.Warn("governor: retrain requests", "err", err)
		}
		for _, tr := range append(triggers, reqs...) {
			if g.retrain == nil {
				break
			}
			v, err := g.retrain.run(ctx, tr)
			if err != nil {
				g.log.Warn("governor: retrain", "trigger", tr.Kind, "key", tr.Key, "err", err)
				continue
			}
			g.log.Info("governor: retrained", "model", g.model, "version", v.Number, "parent", v.Lineage.Parent, "trigger", tr.Kind)
		}
	}
	return g.evaluate(ctx)
}

// trackDrift keeps the set of open feature-drift episodes.
func (g *governor) trackDrift(seen []alert.Alert) {
	if g.openFeatures == nil {
		g.openFeatures = map[string]bool{}
	}
	for _, a := range seen {
		if a.Subject == stages.SubjectError || a.Subject == stages.SubjectPrediction {
			continue
		}
		if a.State == alert.StateResolved {
			delete(g.openFeatures, a.DedupeKey)
		} else if a.State == alert.StateDrift {
			g.openFeatures[a.DedupeKey] = true
		}
	}
}

// evaluate picks the candidate, measures it and applies the decision.
func (g *governor) evaluate(ctx context.Context) error {
	set, err := g.reg.Aliases(ctx, g.model)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cand := set.Versions[aliasCanary]
	if cand == 0 {
		cand = set.Versions[aliasShadow]
	}
	if g.ctrl != nil {
		st := g.ctrl.State().Phase
		active := st != rollout.PhaseStable && st != rollout.PhaseRolledBack
		stillThere := set.Versions[aliasCanary] == g.candidate || set.Versions[aliasShadow] == g.candidate ||
			set.Versions[registry.AliasChampion] == g.candidate
		if active && stillThere {
			cand = g.candidate // an active rollout finishes before the next starts
		}
	}
	if cand == 0 {
		return nil
	}
	if cand != g.candidate {
		if cand == set.Versions[registry.AliasChampion] {
			return nil // already champion: nothing to roll out
		}
		ctrl, err := rollout.NewController(g.gate, whoGovernor)
		if err != nil {
			return err
		}
		g.ctrl, g.candidate, g.lastHoldAudit = ctrl, cand, ""
		g.prevChampion = set.Versions[registry.AliasChampion]
		g.champVersion = g.arms.Champion().Version
		g.champBase = g.countsOf(g.champVersion)
	}
	c := g.countsOf(g.champVersion)
	champ := armCounts{n: c.n - g.champBase.n, correct: c.correct - g.champBase.correct}
	candStats := g.countsOf(strconv.FormatInt(g.candidate, 10)).stats()
	d := g.ctrl.Evaluate(candStats, champ.stats(), len(g.openFeatures) > 0, g.now())
	return g.apply(ctx, d, set)
}

// apply carries out d on the registry and the arms, and audits it.
func (g *governor) apply(ctx context.Context, d rollout.Decision, set registry.AliasSet) error {
	details := d.Details()
	details["candidate"] = strconv.FormatInt(g.candidate, 10)
	details["championVersion"] = g.champVersion
	if d.Action == rollout.ActionHold {
		key := fmt.Sprintf("%s|%s|%d|%d", d.What, d.Phase, d.Failures, d.ConsecutiveErrors)
		if key == g.lastHoldAudit {
			return nil
		}
		g.lastHoldAudit = key
	}
	if _, err := g.reg.AppendAudit(ctx, registry.Event{Who: whoGovernor, What: d.What, Model: g.model,
		Version: g.candidate, Why: d.Reason, When: d.When, Details: details}); err != nil {
		return err
	}
	move := func(alias string, to, expect int64) error {
		_, err := g.reg.MoveAlias(ctx, registry.AliasMove{Model: g.model, Alias: alias, Version: to, Expect: expect,
			Who: whoGovernor, Why: d.Reason, Details: map[string]string{"decision": d.What}})
		return err
	}
	drop := func(alias string) error { // remove alias when it names the candidate
		if set.Versions[alias] != g.candidate {
			return nil
		}
		return move(alias, 0, g.candidate)
	}
	switch d.Action {
	case rollout.ActionAdvance:
		if set.Versions[aliasCanary] != g.candidate {
			if err := move(aliasCanary, g.candidate, set.Versions[aliasCanary]); err != nil {
				return err
			}
		}
		g.arms.SetCanaryPercent(d.Percent)
		return drop(aliasShadow)
	case rollout.ActionPromote:
		if err := move(registry.AliasChampion, g.candidate, set.Versions[registry.AliasChampion]); err != nil {
			return err
		}
		if err := drop(aliasCanary); err != nil {
			return err
		}
		return drop(aliasShadow)
	case rollout.ActionRollback:
		g.arms.SetCanaryPercent(0)
		if err := drop(aliasCanary); err != nil {
			return err
		}
		if err := drop(aliasShadow); err != nil {
			return err
		}
		if cur := set.Versions[registry.AliasChampion]; cur == g.candidate && g.prevChampion != 0 {
			return move(registry.AliasChampion, g.prevChampion, cur)
		}
	}
	return nil
}

// governorInterval is how often the governor ticks.
const governorInterval = time.Second

// newGovernor builds the data plane's governor (a spec with a rollout
// block): the default rollout gate on accuracy, retraining on the window
// that rec (the spec champion's recording learner) fills, triggered by the
// alert publisher's error-drift alerts and by the admin API's retrain
// requests. It adds its outcome hook to dp.
func newGovernor(dp *dataPlane, fz *stages.Featurize, rec *recordingLearner) *governor {
	spec := dp.spec
	g := &governor{reg: dp.rollout.reg, model: spec.Model.Name, arms: dp.arms, gate: rollout.DefaultGate(),
		interval: governorInterval, log: dp.log, now: time.Now,
		source: &retrainSource{model: spec.Model.Name, rdb: dp.rdb, stream: defaultAdminKeyPrefix + ":retrain-requests"}}
	if dp.alerts != nil {
		g.source.raised = dp.alerts.Raised
	}
	rec.observe = g.observeShadow
	g.retrain = &retrainJob{reg: g.reg, model: spec.Model.Name, window: rec.window, topic: spec.Topics.Input,
		newLearner: func() (models.Learner, error) { return stages.NewLearner(spec, fz) },
		signature: registry.Signature{
			Inputs: []registry.Tensor{{Name: "dense", DType: "float32", Shape: []int64{-1, int64(fz.NumDense())}},
				{Name: "hashed", DType: "int32", Shape: []int64{-1, int64(fz.NumHashed())}}},
			Outputs: []registry.Tensor{{Name: "score", DType: "float32", Shape: []int64{-1, 1}}}}}
	dp.outcomeHooks = append(dp.outcomeHooks, g.observeOutcome)
	return g
}
