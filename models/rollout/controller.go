package rollout

import (
	"fmt"
	"strconv"
	"time"
)

// Phase is where a rollout stands.
type Phase string

// Phases. A rollout starts in shadow and ends stable or rolled back.
const (
	PhaseShadow     Phase = "shadow"      // candidate scores every event, serves none
	PhaseCanary     Phase = "canary"      // candidate serves Steps[Step] percent of keys
	PhasePromoted   Phase = "promoted"    // candidate is champion, watched for BakeSamples
	PhaseStable     Phase = "stable"      // promotion is final
	PhaseRolledBack Phase = "rolled-back" // candidate is out; the previous champion serves
)

func (p Phase) finished() bool { return p == PhaseStable || p == PhaseRolledBack }

// Action is what a Decision asks the caller to do.
type Action string

// Actions.
const (
	ActionHold     Action = "hold"     // change nothing
	ActionAdvance  Action = "advance"  // route Decision.Percent of keys to the candidate
	ActionPromote  Action = "promote"  // make the candidate champion
	ActionRollback Action = "rollback" // withdraw the candidate; restore the previous champion
)

// Measurement is the evidence behind a Decision.
type Measurement struct {
	Metric    Metric `json:"metric"`
	Candidate Stats  `json:"candidate"`
	Champion  Stats  `json:"champion"`
	// Improvement is how much better the candidate is (negative: worse), in the
	// metric's units; Lower and Upper are its one-sided bounds at the gate's confidence.
	Improvement float64 `json:"improvement"`
	Lower       float64 `json:"lower"`
	Upper       float64 `json:"upper"`
}

// Decision is the outcome of one Evaluate or operator command, ready for the audit log.
type Decision struct {
	Action Action `json:"action"`
	// From is the phase before the decision, Phase the phase after it.
	From  Phase `json:"from"`
	Phase Phase `json:"phase"`
	// Step is the canary step index after the decision, -1 outside the canary phase.
	Step int `json:"step"`
	// Percent is the share of keys the candidate serves after the decision.
	Percent int `json:"percent"`
	// Who, What and Reason (the why) are the audit record; When is the time given.
	Who    string    `json:"who"`
	What   string    `json:"what"`
	Reason string    `json:"reason"`
	When   time.Time `json:"when"`
	// Measurement is set when the decision rests on a comparison of the two arms.
	Measurement *Measurement `json:"measurement,omitempty"`
	// Failures and ConsecutiveErrors are the counts after the decision.
	Failures          int `json:"failures"`
	ConsecutiveErrors int `json:"consecutive_errors"`
}

// Details flattens d for an audit event's details: phases, step, percent, counts and,
// when measured, the metric, both arms' values and sample counts, and the bounds (with
// paired_n, the labels both arms predicted, when the bounds are a paired test's).
func (d Decision) Details() map[string]string {
	out := map[string]string{
		"action": string(d.Action), "from": string(d.From), "phase": string(d.Phase),
		"step": strconv.Itoa(d.Step), "percent": strconv.Itoa(d.Percent),
		"failures": strconv.Itoa(d.Failures), "consecutive_errors": strconv.Itoa(d.ConsecutiveErrors),
	}
	if m := d.Measurement; m != nil {
		f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
		out["metric"] = string(m.Metric)
		out["candidate"], out["champion"] = f(m.Candidate.Value), f(m.Champion.Value)
		out["candidate_n"], out["champion_n"] = strconv.FormatInt(m.Candidate.N, 10), strconv.FormatInt(m.Champion.N, 10)
		out["improvement"], out["lower"], out["upper"] = f(m.Improvement), f(m.Lower), f(m.Upper)
		if p := m.Candidate.Paired; p.usable(m.Metric) {
			out["paired_n"] = strconv.FormatInt(p.N, 10)
		}
	}
	return out
}

// State is a Controller's state, for display.
type State struct {
	Phase             Phase `json:"phase"`
	Step              int   `json:"step"`
	Percent           int   `json:"percent"`
	Paused            bool  `json:"paused"`
	Failures          int   `json:"failures"`
	ConsecutiveErrors int   `json:"consecutive_errors"`
}

// Controller runs one candidate's rollout through a Gate: shadow, then each canary
// step, then promoted, then stable, unless it is rolled back on the way. It does no
// I/O and is not safe for concurrent use: one owner calls it, for example on each
// metrics tick of the control plane, and acts on the Decisions.
type Controller struct {
	gate      Gate
	who       string
	z         float64
	phase     Phase
	step      int
	paused    bool
	failures  int
	errors    int
	stepStart int64 // candidate N when the current step (or bake) began
	lastN     int64 // candidate N at the last usable measurement
}

// NewController returns a Controller in shadow. who names it in Decisions from
// Evaluate, e.g. "rollout-controller".
func NewController(gate Gate, who string) (*Controller, error) {
	if err := gate.Validate(); err != nil {
		return nil, err
	}
	if who == "" {
		return nil, fmt.Errorf("%w: controller without a name", ErrInvalid)
	}
	g := gate.WithDefaults()
	return &Controller{gate: g, who: who, z: quantile(g.Confidence), phase: PhaseShadow, step: -1}, nil
}

// Gate returns the gate the controller applies, with defaults filled in.
func (c *Controller) Gate() Gate {
	g := c.gate
	g.Steps = append([]int(nil), g.Steps...)
	return g
}

// State returns the current state.
func (c *Controller) State() State {
	return State{Phase: c.phase, Step: c.step, Percent: c.percent(), Paused: c.paused,
		Failures: c.failures, ConsecutiveErrors: c.errors}
}

func (c *Controller) percent() int {
	switch c.phase {
	case PhaseCanary:
		return c.gate.Steps[c.step]
	case PhasePromoted, PhaseStable:
		return 100
	}
	return 0
}

// decide moves to phase (and step) and returns the decision.
func (c *Controller) decide(who, what string, a Action, to Phase, step int, now time.Time, m *Measurement, why string, args ...any) Decision {
	from := c.phase
	c.phase, c.step = to, step
	return Decision{Action: a, From: from, Phase: to, Step: step, Percent: c.percent(),
		Who: who, What: what, Reason: fmt.Sprintf(why, args...), When: now, Measurement: m,
		Failures: c.failures, ConsecutiveErrors: c.errors}
}

func (c *Controller) hold(now time.Time, m *Measurement, why string, args ...any) Decision {
	return c.decide(c.who, "rollout.hold", ActionHold, c.phase, c.step, now, m, why, args...)
}

// Evaluate takes one measurement and decides. candidate and champion are the arms'
// cumulative stats (in the promoted phase, champion is the previous champion, still
// scored in shadow or frozen at promotion); openDrift tells whether a drift alert is
// open on the candidate's inputs. Each call is one measurement for FailureLimit and
// ConsecutiveErrorLimit, so call it at a steady pace.
//
// Rules, in order: a finished rollout holds. Unusable stats are an error measurement;
// more than ConsecutiveErrorLimit in a row roll back. Until both arms have MinSamples
// outcomes, hold. A measurement fails when the candidate is worse than the champion by
// more than MaxDelta at Confidence (upper bound of the improvement < -MaxDelta); more
// than FailureLimit failures roll back, in any phase before stable. Otherwise, in shadow
// and canary, the rollout advances one step (into the last step, 100%, it promotes) once the step has
// MinSamples new candidate outcomes and the candidate is worse by less than MaxDelta at
// Confidence (lower bound > -MaxDelta), unless paused or, with BlockOnOpenDrift, a drift
// alert is open. In the promoted phase it becomes stable after BakeSamples outcomes.
func (c *Controller) Evaluate(candidate, champion Stats, openDrift bool, now time.Time) Decision {
	g := &c.gate
	if c.phase.finished() {
		return c.hold(now, nil, "rollout is %s", c.phase)
	}
	if err := candidate.check(g.Metric); err != nil {
		return c.measurementError(now, "candidate: %v", err)
	}
	if err := champion.check(g.Metric); err != nil {
		return c.measurementError(now, "champion: %v", err)
	}
	c.errors = 0
	if candidate.N < c.stepStart {
		c.stepStart = 0
	}
	c.lastN = candidate.N
	if candidate.N < int64(g.MinSamples) || champion.N < int64(g.MinSamples) {
		return c.hold(now, nil, "waiting for samples: candidate %d, champion %d of %d", candidate.N, champion.N, g.MinSamples)
	}
	diff, lo, hi := compare(g.Metric, candidate, champion, c.z)
	m := &Measurement{Metric: g.Metric, Candidate: candidate, Champion: champion, Improvement: diff, Lower: lo, Upper: hi}
	if hi < -g.MaxDelta {
		c.failures++
		if c.failures > g.FailureLimit {
			return c.decide(c.who, "rollout.rollback", ActionRollback, PhaseRolledBack, -1, now, m,
				"%s regressed: candidate %.4g vs champion %.4g, worse by more than %g at %g confidence; failure %d of limit %d",
				g.Metric, candidate.Value, champion.Value, g.MaxDelta, g.Confidence, c.failures, g.FailureLimit)
		}
		return c.hold(now, m, "failed measurement %d of limit %d: %s worse by more than %g", c.failures, g.FailureLimit, g.Metric, g.MaxDelta)
	}
	fresh := candidate.N - c.stepStart
	if c.phase == PhasePromoted {
		if fresh < int64(g.BakeSamples) {
			return c.hold(now, m, "baking: %d of %d outcomes as champion", fresh, g.BakeSamples)
		}
		return c.decide(c.who, "rollout.stable", ActionHold, PhaseStable, -1, now, m, "no regression in %d outcomes as champion", fresh)
	}
	switch {
	case c.paused:
		return c.hold(now, m, "paused")
	case g.BlockOnOpenDrift && openDrift:
		return c.hold(now, m, "drift alert open on the candidate's inputs")
	case fresh < int64(g.MinSamples):
		return c.hold(now, m, "waiting for samples at this step: %d of %d", fresh, g.MinSamples)
	case lo <= -g.MaxDelta:
		return c.hold(now, m, "inconclusive: %s improvement %.4g, bounds [%.4g, %.4g], allowed regression %g",
			g.Metric, diff, lo, hi, g.MaxDelta)
	}
	c.stepStart = candidate.N
	why := "%s within bound: improvement %.4g, lower bound %.4g > %g at %g confidence"
	if next := c.step + 1; next < len(g.Steps)-1 {
		return c.decide(c.who, "rollout.advance", ActionAdvance, PhaseCanary, next, now, m, why, g.Metric, diff, lo, -g.MaxDelta, g.Confidence)
	}
	return c.decide(c.who, "rollout.promote", ActionPromote, PhasePromoted, -1, now, m, why, g.Metric, diff, lo, -g.MaxDelta, g.Confidence)
}

func (c *Controller) measurementError(now time.Time, why string, args ...any) Decision {
	c.errors++
	reason := fmt.Sprintf(why, args...)
	if c.errors > c.gate.ConsecutiveErrorLimit {
		return c.decide(c.who, "rollout.rollback", ActionRollback, PhaseRolledBack, -1, now, nil,
			"%d consecutive measurement errors, limit %d: %s", c.errors, c.gate.ConsecutiveErrorLimit, reason)
	}
	return c.hold(now, nil, "measurement error %d of limit %d: %s", c.errors, c.gate.ConsecutiveErrorLimit, reason)
}

// Pause stops advancement and promotion until Resume; automatic rollback stays on.
// Pausing a paused rollout is allowed. It fails with ErrFinished on a finished rollout.
func (c *Controller) Pause(who, why string, now time.Time) (Decision, error) {
	return c.command(who, why, now, "rollout.pause", func() Decision {
		c.paused = true
		return c.decide(who, "rollout.pause", ActionHold, c.phase, c.step, now, nil, "%s", why)
	})
}

// Resume undoes Pause. It fails with ErrFinished on a finished rollout.
func (c *Controller) Resume(who, why string, now time.Time) (Decision, error) {
	return c.command(who, why, now, "rollout.resume", func() Decision {
		c.paused = false
		return c.decide(who, "rollout.resume", ActionHold, c.phase, c.step, now, nil, "%s", why)
	})
}

// Promote is an operator override: it makes the candidate champion now, skipping the
// remaining steps; the promoted phase and its automatic rollback follow as usual, with
// BakeSamples counted from the last measurement.
// It fails with ErrInvalid once promoted and ErrFinished on a finished rollout.
func (c *Controller) Promote(who, why string, now time.Time) (Decision, error) {
	return c.command(who, why, now, "rollout.override.promote", func() Decision {
		if c.phase == PhasePromoted {
			return Decision{}
		}
		c.stepStart = c.lastN
		return c.decide(who, "rollout.override.promote", ActionPromote, PhasePromoted, -1, now, nil, "%s", why)
	})
}

// Rollback is an operator override: it withdraws the candidate now, in any phase before
// stable. It fails with ErrFinished on a finished rollout.
func (c *Controller) Rollback(who, why string, now time.Time) (Decision, error) {
	return c.command(who, why, now, "rollout.override.rollback", func() Decision {
		return c.decide(who, "rollout.override.rollback", ActionRollback, PhaseRolledBack, -1, now, nil, "%s", why)
	})
}

// command checks the common preconditions of operator commands and runs do; a zero
// Decision from do means the command does not apply in this phase.
func (c *Controller) command(who, why string, now time.Time, what string, do func() Decision) (Decision, error) {
	if who == "" || why == "" {
		return Decision{}, fmt.Errorf("%w: %s needs who and why", ErrInvalid, what)
	}
	if c.phase.finished() {
		return Decision{}, fmt.Errorf("%w: %s: rollout is %s", ErrFinished, what, c.phase)
	}
	d := do()
	if d.Action == "" {
		return Decision{}, fmt.Errorf("%w: %s: rollout is %s", ErrInvalid, what, c.phase)
	}
	return d, nil
}
