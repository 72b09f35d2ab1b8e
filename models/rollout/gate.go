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
	"slices"
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

// Metrics: the ones the governor can measure from outcome sums shared by every
// instance. Accuracy is better when higher; the others when lower. AUC is not among
// them: it needs every score, not sums.
const (
	MetricAccuracy Metric = "accuracy"
	MetricLogLoss  Metric = "logloss"
	MetricRMSE     Metric = "rmse"
	MetricMAE      Metric = "mae"
)

// Metrics lists every metric a Gate accepts.
func Metrics() []Metric { return []Metric{MetricAccuracy, MetricLogLoss, MetricMAE, MetricRMSE} }

func (m Metric) valid() bool { return slices.Contains(Metrics(), m) }

// Classification reports whether m measures a classifier (accuracy, logloss): it means
// nothing for a regression model.
func (m Metric) Classification() bool { return m == MetricAccuracy || m == MetricLogLoss }

func (m Metric) higherIsBetter() bool { return m == MetricAccuracy }

// Gate is a rollout rule. Fields marked "default" take that value when zero; the other
// zero values are meaningful. DefaultGate returns a complete, recommended Gate.
type Gate struct {
	// MinSamples is the number of labelled outcomes both arms need before any
	// measurement counts, and the number of new candidate outcomes each step needs
	// before it can advance. Default 1000.
	MinSamples int `json:"min_samples" yaml:"min_samples"`
	// Metric is compared between candidate and champion. Default "accuracy".
	Metric Metric `json:"metric" yaml:"metric"`
	// MaxDelta is the regression allowed against the champion, in the metric's units
	// (0.01 is one accuracy point). A step advances when the candidate is shown, at
	// Confidence, to be worse by less than MaxDelta; a measurement fails when it is
	// shown to be worse by more. 0 requires the candidate to be shown no worse at all.
	MaxDelta float64 `json:"max_delta" yaml:"max_delta"`
	// Confidence is the level of the one-sided bounds on the difference, in [0.5, 1).
	// Accuracy uses Newcombe's hybrid score interval from Wilson intervals, the mean
	// losses a normal approximation (RMSE by the delta method). Default 0.95.
	Confidence float64 `json:"confidence" yaml:"confidence"`
	// FailureLimit is the number of failed measurements tolerated; one more rolls back.
	FailureLimit int `json:"failure_limit" yaml:"failure_limit"`
	// ConsecutiveErrorLimit is the number of consecutive measurements with unusable
	// stats (non-finite, out of range) tolerated; one more rolls
	// back. A usable measurement resets the count.
	ConsecutiveErrorLimit int `json:"consecutive_error_limit" yaml:"consecutive_error_limit"`
	// Steps are the traffic percentages, strictly increasing, ending at 100. Passing
	// the shadow phase moves to the first; advancing to the last (100) is promotion.
	// Default 5, 25, 50, 100: shadow → 5% → 25% → 50% → champion.
	Steps []int `json:"steps" yaml:"steps"`
	// BakeSamples is the number of outcomes a newly promoted champion is watched for
	// regression (against the previous champion) before the rollout is stable.
	// Default MinSamples.
	BakeSamples int `json:"bake_samples" yaml:"bake_samples"`
	// BlockOnOpenDrift holds advancement and promotion while a drift alert is open on
	// the candidate's inputs. It never blocks a rollback.
	BlockOnOpenDrift bool `json:"block_on_open_drift" yaml:"block_on_open_drift"`
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

// Validate reports whether g, with defaults applied, is usable; GateSpec.Resolve
// states the rules.
func (g Gate) Validate() error {
	md, cel, block := g.MaxDelta, g.ConsecutiveErrorLimit, g.BlockOnOpenDrift
	_, _, err := GateSpec{MinSamples: g.MinSamples, Metric: g.Metric, MaxDelta: &md, Confidence: g.Confidence,
		FailureLimit: g.FailureLimit, ConsecutiveErrorLimit: &cel, Steps: g.Steps, BakeSamples: g.BakeSamples,
		BlockOnOpenDrift: &block}.Resolve(false)
	return err
}
