package governance

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/models/rollout"
)

// The status and the rollout metrics follow the candidate through its
// canary step: phase, canary share, samples of both arms, the bounds and
// the step's progress; a finished rollout leaves no candidate series.
func TestGovernorStatusAndRolloutMetrics(t *testing.T) {
	reg, _ := newTestRegistry(t)
	g := newTestGovernor(t, reg)
	g.gate.Steps = []int{50, 100}
	preg := prometheus.NewRegistry()
	preg.MustRegister(g.Collector())
	if st := g.Status(); st.Leader || st.Candidate != 0 {
		t.Fatalf("before the first tick: %+v", st)
	}
	cand := registerShadow(t, reg)
	cv := strconv.FormatInt(cand, 10)
	feedRound(t, g, cv, 0.80, 0.95) // the rollout begins
	feedRound(t, g, cv, 0.80, 0.95) // the candidate's first outcomes: both windows open
	feedRound(t, g, cv, 0.80, 0.95) // both arms past 200 samples: advance to 50%
	st := g.Status()
	if !st.Leader || st.Candidate != cand || st.Phase != rollout.PhaseCanary || st.Percent != 50 || st.Step != 0 {
		t.Fatalf("status %+v, want leader, candidate %d in canary at 50%%", st, cand)
	}
	if st.Evidence == nil || st.Evidence.Metric != rollout.MetricAccuracy || st.Evidence.Candidate.N != 300 || st.Evidence.Lower >= st.Evidence.Upper {
		t.Fatalf("evidence %+v", st.Evidence)
	}
	if st.StepNeeded != 200 || st.StepDone != 0 || st.Gate == nil || len(st.Steps) != 2 {
		t.Fatalf("progress %d of %d, gate %v, steps %v", st.StepDone, st.StepNeeded, st.Gate, st.Steps)
	}
	if problems, err := testutil.CollectAndLint(g.Collector()); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	want := `
# HELP driftline_rollout_canary_percent Share of keys, in percent, that the candidate serves as canary (0 outside the canary phase).
# TYPE driftline_rollout_canary_percent gauge
driftline_rollout_canary_percent{model="fraud"} 50
# HELP driftline_rollout_gate_samples Labelled outcomes of each arm the rollout gate has measured.
# TYPE driftline_rollout_gate_samples gauge
driftline_rollout_gate_samples{arm="candidate",model="fraud",version="CV"} 300
driftline_rollout_gate_samples{arm="champion",model="fraud",version="1"} 300
# HELP driftline_rollout_phase Rollout phase of the candidate version: 1 for its phase, 0 for the others.
# TYPE driftline_rollout_phase gauge
driftline_rollout_phase{model="fraud",phase="canary",version="CV"} 1
driftline_rollout_phase{model="fraud",phase="promoted",version="CV"} 0
driftline_rollout_phase{model="fraud",phase="rolled-back",version="CV"} 0
driftline_rollout_phase{model="fraud",phase="shadow",version="CV"} 0
driftline_rollout_phase{model="fraud",phase="stable",version="CV"} 0
`
	want = strings.ReplaceAll(strings.ReplaceAll(want, "CV", cv), `"fraud"`, strconv.Quote(testModel))
	if err := testutil.GatherAndCompare(preg, strings.NewReader(want), "driftline_rollout_phase", "driftline_rollout_canary_percent", "driftline_rollout_gate_samples"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(g.Collector(), "driftline_rollout_gate_bound"); n != 2 {
		t.Fatalf("%d bound series, want lower and upper", n)
	}
	for range 20 {
		feedRound(t, g, cv, 0.80, 0.95)
		if g.ctrl.State().Phase == rollout.PhaseStable {
			break
		}
	}
	for decision, want := range map[string]float64{"advance": 1, "promote": 1, "stable": 1, "rollback": 0} {
		m, err := metricWith(preg, "driftline_rollout_decisions_total", "decision", decision)
		if err != nil || m != want {
			t.Errorf("decisions_total{decision=%q} = %v (%v), want %v", decision, m, err, want)
		}
	}
	mustTick(t, g) // the tick after stable finds no candidate
	if st := g.Status(); !st.Leader || st.Candidate != 0 {
		t.Fatalf("after the rollout: %+v, want a leader with no candidate", st)
	}
	if n := testutil.CollectAndCount(g.Collector(), "driftline_rollout_phase"); n != 0 {
		t.Fatalf("%d phase series after the rollout, want none", n)
	}
}

// metricWith reads the value of the series of name whose label has value.
func metricWith(reg *prometheus.Registry, name, label, value string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue(), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no %s{%s=%q}", name, label, value)
}
