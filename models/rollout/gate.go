// Package rollout decides, as pure code without I/O, how a candidate model version moves
// from shadow through canary steps to champion, and when it is rolled back.
//
// A Gate states the rule as data, in the spirit of Argo Rollouts' AnalysisTemplate:
// minimum samples, a metric with the regression allowed against the champion and the
// confidence of the test, failure limits, the canary steps, and whether an open drift
// alert on the candidate's inputs blocks promotion. A Controller applies a Gate to the
// metrics it is given and returns Decisions, which carry who, what and why for the audit
// log. Moving aliases and routing traffic are left to the caller; InCanary gives the
// sticky per-key routing for a canary percentage.
package rollout

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Sentinel errors.
var (
	// ErrInvalid: a Gate or an argument failed validation.
	ErrInvalid = errors.New("rollout: invalid")
	// ErrFinished: the rollout is promoted for good (stable) or rolled back; it takes no
	// more commands.
	ErrFinished = errors.New("rollout: finished")
)

// Metric names the online metric a Gate compares.
type Metric string

// Metrics. Accuracy and AUC are better when higher; the others when lower.
const (
	MetricAccuracy Metric = "accuracy"
	MetricAUC      Metric = "auc"
	MetricLogLoss  Metric = "logloss"
	MetricRMSE     Metric = "rmse"
	MetricMAE      Metric = "mae"
)

func (m Metric) valid() bool {
	switch m {
	case MetricAccuracy, MetricAUC, MetricLogLoss, MetricRMSE, MetricMAE:
		return true
	}
	return false
}

func (m Metric) higherIsBetter() bool { return m == MetricAccuracy || m == MetricAUC }

// Gate is a rollout rule. Fields marked "default" take that value when zero; the other
// zero values are meaningful. DefaultGate returns a complete, recommended Gate.
type Gate struct {
	// MinSamples is the number of labelled outcomes both arms need before any
	// measurement counts, and the number of new candidate outcomes each step needs
	// before it can advance. Default 1000.
	MinSamples int `json:"minSamples" yaml:"minSamples"`
	// Metric is compared between candidate and champion. Default "accuracy".
	Metric Metric `json:"metric" yaml:"metric"`
	// MaxDelta is the regression allowed against the champion, in the metric's units
	// (0.01 is one accuracy point). A step advances when the candidate is shown, at
	// Confidence, to be worse by less than MaxDelta; a measurement fails when it is
	// shown to be worse by more. 0 requires the candidate to be shown no worse at all.
	MaxDelta float64 `json:"maxDelta" yaml:"maxDelta"`
	// Confidence is the level of the one-sided bounds on the difference, in [0.5, 1).
	// Accuracy uses Newcombe's hybrid score interval from Wilson intervals, AUC the
	// Hanley–McNeil standard error, the mean losses a normal approximation (RMSE by the
	// delta method). Default 0.95.
	Confidence float64 `json:"confidence" yaml:"confidence"`
	// FailureLimit is the number of failed measurements tolerated; one more rolls back.
	FailureLimit int `json:"failureLimit" yaml:"failureLimit"`
	// ConsecutiveErrorLimit is the number of consecutive measurements with unusable
	// stats (non-finite, out of range, AUC lacking a class) tolerated; one more rolls
	// back. A usable measurement resets the count.
	ConsecutiveErrorLimit int `json:"consecutiveErrorLimit" yaml:"consecutiveErrorLimit"`
	// Steps are the traffic percentages, strictly increasing, ending at 100. Passing
	// the shadow phase moves to the first; advancing to the last (100) is promotion.
	// Default 5, 25, 50, 100: shadow → 5% → 25% → 50% → champion.
	Steps []int `json:"steps" yaml:"steps"`
	// BakeSamples is the number of outcomes a newly promoted champion is watched for
	// regression (against the previous champion) before the rollout is stable.
	// Default MinSamples.
	BakeSamples int `json:"bakeSamples" yaml:"bakeSamples"`
	// BlockOnOpenDrift holds advancement and promotion while a drift alert is open on
	// the candidate's inputs. It never blocks a rollback.
	BlockOnOpenDrift bool `json:"blockOnOpenDrift" yaml:"blockOnOpenDrift"`
}

// DefaultInterval is how often a gate is evaluated by default.
const DefaultInterval = time.Second

// Defaults for zero Gate fields.
const (
	DefaultMinSamples = 1000
	DefaultMetric     = MetricAccuracy
	DefaultConfidence = 0.95
)

// DefaultSteps are the canary percentages used when Gate.Steps is empty.
func DefaultSteps() []int { return []int{5, 25, 50, 100} }

// DefaultGate returns the recommended gate: the defaults above, a regression allowance
// of 0.01, no failure tolerated, 4 consecutive errors tolerated (as Argo Rollouts), and
// promotion blocked by open drift alerts.
func DefaultGate() Gate {
	return Gate{MaxDelta: 0.01, ConsecutiveErrorLimit: 4, BlockOnOpenDrift: true}.WithDefaults()
}

// WithDefaults returns g with its zero defaulted fields filled in.
func (g Gate) WithDefaults() Gate {
	if g.MinSamples == 0 {
		g.MinSamples = DefaultMinSamples
	}
	if g.Metric == "" {
		g.Metric = DefaultMetric
	}
	if g.Confidence == 0 {
		g.Confidence = DefaultConfidence
	}
	if len(g.Steps) == 0 {
		g.Steps = DefaultSteps()
	}
	if g.BakeSamples == 0 {
		g.BakeSamples = g.MinSamples
	}
	return g
}

// Validate reports whether g, with defaults applied, is usable.
func (g Gate) Validate() error {
	g = g.WithDefaults()
	switch {
	case g.MinSamples < 1:
		return fmt.Errorf("%w: minSamples %d < 1", ErrInvalid, g.MinSamples)
	case !g.Metric.valid():
		return fmt.Errorf("%w: metric %q is not accuracy, auc, logloss, rmse or mae", ErrInvalid, g.Metric)
	case !(g.MaxDelta >= 0) || math.IsInf(g.MaxDelta, 0):
		return fmt.Errorf("%w: maxDelta %v is not a finite number ≥ 0", ErrInvalid, g.MaxDelta)
	case !(g.Confidence >= 0.5 && g.Confidence < 1):
		return fmt.Errorf("%w: confidence %v outside [0.5, 1)", ErrInvalid, g.Confidence)
	case g.FailureLimit < 0 || g.ConsecutiveErrorLimit < 0:
		return fmt.Errorf("%w: negative failureLimit %d or consecutiveErrorLimit %d", ErrInvalid, g.FailureLimit, g.ConsecutiveErrorLimit)
	case g.BakeSamples < 1:
		return fmt.Errorf("%w: bakeSamples %d < 1", ErrInvalid, g.BakeSamples)
	}
	prev := 0
	for _, p := range g.Steps {
		if p <= prev || p > 100 {
			return fmt.Errorf("%w: steps %v must increase strictly within 1..100", ErrInvalid, g.Steps)
		}
		prev = p
	}
	if prev != 100 {
		return fmt.Errorf("%w: steps %v must end at 100", ErrInvalid, g.Steps)
	}
	return nil
}
