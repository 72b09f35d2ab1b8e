package governance

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/models/rollout"
)

// statusBox holds the governor's last status; the Run goroutine writes it,
// readers copy it.
type statusBox struct {
	mu sync.Mutex
	st rollout.Status
	// decisions counts this instance's gate decisions but holds, by What
	// without its "rollout." prefix.
	decisions map[string]int64
	// queued is the retrain triggers queued at the holder's last look
	// (runRetrains); -1 before the first.
	queued int
}

// countedDecisions are the decisions whose counters exist from the start
// (at 0), so that increase() sees their first one.
var countedDecisions = []string{"advance", "promote", "stable", "rollback"}

// Status returns the governor's last recorded rollout status. It is safe
// for concurrent use with Run.
func (g *Governor) Status() rollout.Status {
	g.status.mu.Lock()
	defer g.status.mu.Unlock()
	st := g.status.st
	st.Model = g.model
	st.Steps = slices.Clone(st.Steps)
	return st
}

// setQueued records how many retrain triggers the holder found queued.
func (g *Governor) setQueued(n int) {
	g.status.mu.Lock()
	g.status.queued = n
	g.status.mu.Unlock()
}

func (g *Governor) setStatus(st rollout.Status) {
	st.Model, st.UpdatedAt = g.model, g.now()
	g.status.mu.Lock()
	g.status.st = st
	g.status.mu.Unlock()
}

// recordIdle records that this instance leads but no rollout is in
// progress (or that it does not lead, with leader false).
func (g *Governor) recordIdle(leader bool) {
	st := rollout.Status{Leader: leader, Step: -1}
	if leader {
		st.Holder = g.holder
	}
	g.setStatus(st)
}

// recordDecision records the rollout's state after decision d, on the
// measured stats of both arms.
func (g *Governor) recordDecision(d rollout.Decision, cand, champ rollout.Stats) {
	state := g.ctrl.State()
	gate := g.ctrl.Gate()
	done, needed := g.ctrl.Progress()
	st := rollout.Status{Leader: true, Holder: g.holder, Candidate: g.candidate, ChampionVersion: g.champVersion,
		Phase: state.Phase, Step: state.Step, Steps: gate.Steps, Percent: state.Percent, Paused: state.Paused,
		StepDone: done, StepNeeded: needed, Failures: state.Failures, ConsecutiveErrors: state.ConsecutiveErrors,
		Gate: &gate, CandidateN: cand.N, ChampionN: champ.N, LastWhat: d.What, LastReason: d.Reason}
	if d.What != "rollout.hold" {
		g.status.mu.Lock()
		if g.status.decisions == nil {
			g.status.decisions = map[string]int64{}
		}
		g.status.decisions[strings.TrimPrefix(d.What, "rollout.")]++
		g.status.mu.Unlock()
	}
	if d.Measurement != nil {
		m := *d.Measurement
		st.Evidence = &m
	} else if prev := g.Status(); prev.Candidate == g.candidate && prev.Evidence != nil {
		st.Evidence = prev.Evidence // a hold without a measurement keeps the last one
	}
	g.setStatus(st)
}

// Phases, in the order the rollout metrics list them.
var allPhases = []rollout.Phase{rollout.PhaseShadow, rollout.PhaseCanary, rollout.PhasePromoted, rollout.PhaseStable, rollout.PhaseRolledBack}

// Collector returns the governor's rollout metrics, read from Status at
// each scrape, so a finished or replaced candidate's series disappear with
// it rather than freezing:
//
//   - driftline_rollout_phase{model,version,phase}: 1 for the candidate's
//     phase, 0 for the others;
//   - driftline_rollout_canary_percent{model}: the share of keys the
//     candidate serves as canary (0 outside the canary phase);
//   - driftline_rollout_gate_samples{model,version,arm}: the outcomes of
//     each arm (candidate, champion) the gate has measured;
//   - driftline_rollout_gate_bound{model,version,side}: the lower and upper
//     bound of the candidate's improvement over the champion, in the gate
//     metric's units, once both arms have the minimum samples;
//   - driftline_rollout_step_progress_ratio{model,version}: the share of the
//     current step's (or bake's) samples that are in;
//   - driftline_rollout_retrains_queued{model}: the retrain triggers
//     queued and not yet run (waiting for rows after the alert, or for
//     the running job), at the lease holder's last look;
//   - driftline_rollout_decisions_total{model,decision}: the gate's
//     decisions but holds (advance, promote, stable, rollback, …) this
//     instance took as the lease holder; a counter, so that a rule sees a
//     rollback that the phase gauge shows for a second only.
//
// Only the governor lease holder reports the gauges; every instance
// reports its decision counters.
func (g *Governor) Collector() prometheus.Collector { return rolloutCollector{g} }

var (
	descPhase = prometheus.NewDesc("driftline_rollout_phase",
		"Rollout phase of the candidate version: 1 for its phase, 0 for the others.", []string{"model", "version", "phase"}, nil)
	descCanary = prometheus.NewDesc("driftline_rollout_canary_percent",
		"Share of keys, in percent, that the candidate serves as canary (0 outside the canary phase).", []string{"model"}, nil)
	descSamples = prometheus.NewDesc("driftline_rollout_gate_samples",
		"Labelled outcomes of each arm the rollout gate has measured.", []string{"model", "version", "arm"}, nil)
	descBound = prometheus.NewDesc("driftline_rollout_gate_bound",
		"Bound of the candidate's improvement over the champion, in the gate metric's units.", []string{"model", "version", "side"}, nil)
	descProgress = prometheus.NewDesc("driftline_rollout_step_progress_ratio",
		"Share of the current rollout step's (or bake's) samples that are in.", []string{"model", "version"}, nil)
	descQueued = prometheus.NewDesc("driftline_rollout_retrains_queued",
		"Retrain triggers (drift alerts, retrain requests) queued and not yet run, at the governor lease holder's last look.", []string{"model"}, nil)
	descDecisions = prometheus.NewDesc("driftline_rollout_decisions_total",
		"Rollout gate decisions but holds that this instance took as the governor lease holder.", []string{"model", "decision"}, nil)
)

type rolloutCollector struct{ g *Governor }

func (c rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPhase, descCanary, descSamples, descBound, descProgress, descQueued, descDecisions} {
		ch <- d
	}
}

func (c rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	c.g.status.mu.Lock()
	counts := map[string]int64{}
	for _, d := range countedDecisions {
		counts[d] = 0
	}
	for d, n := range c.g.status.decisions {
		counts[d] = n
	}
	queued := c.g.status.queued
	c.g.status.mu.Unlock()
	for d, n := range counts {
		ch <- prometheus.MustNewConstMetric(descDecisions, prometheus.CounterValue, float64(n), c.g.model, d)
	}
	st := c.g.Status()
	if !st.Leader {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	canary := 0
	if st.Phase == rollout.PhaseCanary {
		canary = st.Percent
	}
	gauge(descCanary, float64(canary), st.Model)
	if queued >= 0 && c.g.retrain != nil {
		gauge(descQueued, float64(queued), st.Model)
	}
	if st.Candidate == 0 {
		return
	}
	version := strconv.FormatInt(st.Candidate, 10)
	for _, p := range allPhases {
		v := 0.0
		if p == st.Phase {
			v = 1
		}
		gauge(descPhase, v, st.Model, version, string(p))
	}
	gauge(descSamples, float64(st.CandidateN), st.Model, version, "candidate")
	if st.ChampionVersion != "" {
		gauge(descSamples, float64(st.ChampionN), st.Model, st.ChampionVersion, "champion")
	}
	if e := st.Evidence; e != nil {
		gauge(descBound, e.Lower, st.Model, version, "lower")
		gauge(descBound, e.Upper, st.Model, version, "upper")
	}
	if st.StepNeeded > 0 {
		gauge(descProgress, min(1, float64(st.StepDone)/float64(st.StepNeeded)), st.Model, version)
	}
}
