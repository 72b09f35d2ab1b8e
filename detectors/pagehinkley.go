package detectors

import (
	"fmt"
	"math"
)

// PageHinkleyMode selects which direction of change Page-Hinkley watches.
type PageHinkleyMode int

const (
	// PageHinkleyBoth watches increases and decreases of the mean (River's "both").
	PageHinkleyBoth PageHinkleyMode = iota
	// PageHinkleyUp watches increases of the mean only (River's "up").
	PageHinkleyUp
	// PageHinkleyDown watches decreases of the mean only (River's "down").
	PageHinkleyDown
)

// PageHinkleyConfig holds Page-Hinkley's parameters. Start from
// DefaultPageHinkleyConfig.
type PageHinkleyConfig struct {
	// MinInstances is how many values must be seen before a drift can be
	// reported. Default 30.
	MinInstances int
	// Delta is the magnitude of change tolerated. Default 0.005.
	Delta float64
	// Threshold is the detection threshold λ. Default 50.
	Threshold float64
	// Alpha is the forgetting factor of the cumulative sums, in (0, 1].
	// Default 0.9999.
	Alpha float64
	// Mode is the direction watched. Default PageHinkleyBoth.
	Mode PageHinkleyMode
}

// DefaultPageHinkleyConfig returns River's defaults.
func DefaultPageHinkleyConfig() PageHinkleyConfig {
	return PageHinkleyConfig{MinInstances: 30, Delta: 0.005, Threshold: 50, Alpha: 1 - 0.0001, Mode: PageHinkleyBoth}
}

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c PageHinkleyConfig) Validate() error {
	switch {
	case c.MinInstances < 1:
		return fmt.Errorf("page-hinkley: min instances %d < 1: %w", c.MinInstances, ErrInvalidConfig)
	case !(c.Delta >= 0) || math.IsInf(c.Delta, 0):
		return fmt.Errorf("page-hinkley: delta %v must be finite and >= 0: %w", c.Delta, ErrInvalidConfig)
	case !(c.Threshold > 0) || math.IsInf(c.Threshold, 0):
		return fmt.Errorf("page-hinkley: threshold %v must be finite and > 0: %w", c.Threshold, ErrInvalidConfig)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return fmt.Errorf("page-hinkley: alpha %v not in (0, 1]: %w", c.Alpha, ErrInvalidConfig)
	case c.Mode < PageHinkleyBoth || c.Mode > PageHinkleyDown:
		return fmt.Errorf("page-hinkley: unknown mode %d: %w", c.Mode, ErrInvalidConfig)
	}
	return nil
}

// PageHinkley is the Page-Hinkley test, a CUSUM-type detector of a change in
// the mean. It keeps faded cumulative sums of the deviations from the running
// mean, and reports a drift when a sum departs from its extreme by more than
// Threshold. It has no warning zone.
//
// It matches River's PageHinkley (min_instances=30, delta=0.005, threshold=50,
// alpha=0.9999, mode="both"). Statistic is the larger of the two test values
// (increase and decrease) at the last update.
//
// Reference: E. S. Page. "Continuous Inspection Schemes." Biometrika 41(1/2),
// 1954, pp. 100-115.
type PageHinkley struct {
	cfg         PageHinkleyConfig
	n           int
	mean        float64
	sumIncrease float64
	sumDecrease float64
	minIncrease float64
	maxDecrease float64
	statistic   float64
	drift       bool
	rejected    uint64
}

// NewPageHinkley validates cfg and returns a detector.
func NewPageHinkley(cfg PageHinkleyConfig) (*PageHinkley, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &PageHinkley{cfg: cfg}
	d.reset()
	return d, nil
}

// Name returns "PageHinkley".
func (d *PageHinkley) Name() string { return "PageHinkley" }

// DriftDetected reports whether the last Update detected a drift.
func (d *PageHinkley) DriftDetected() bool { return d.drift }

// WarningDetected is always false: Page-Hinkley has no warning zone.
func (d *PageHinkley) WarningDetected() bool { return false }

// Rejected is the number of non-finite values rejected.
func (d *PageHinkley) Rejected() uint64 { return d.rejected }

// Statistic is the larger of the increase and decrease test values.
func (d *PageHinkley) Statistic() float64 { return d.statistic }

// Reset returns the detector to its initial state.
func (d *PageHinkley) Reset() {
	d.reset()
	d.rejected = 0
}

func (d *PageHinkley) reset() {
	d.n = 0
	d.mean = 0
	d.sumIncrease, d.sumDecrease = 0, 0
	d.minIncrease = math.Inf(1)
	d.maxDecrease = -1 // River's initial value
	d.statistic = 0
	d.drift = false
}

// Update feeds one value.
func (d *PageHinkley) Update(x float64) {
	if d.drift {
		d.reset()
	}
	if !isFinite(x) {
		d.rejected++
		return
	}
	d.n++
	d.mean += (x - d.mean) / float64(d.n)
	dev := x - d.mean
	d.sumIncrease = d.cfg.Alpha*d.sumIncrease + dev - d.cfg.Delta
	d.sumDecrease = d.cfg.Alpha*d.sumDecrease + dev + d.cfg.Delta
	d.minIncrease = math.Min(d.minIncrease, d.sumIncrease)
	d.maxDecrease = math.Max(d.maxDecrease, d.sumDecrease)
	if d.n < d.cfg.MinInstances {
		return
	}
	up := d.sumIncrease - d.minIncrease
	down := d.maxDecrease - d.sumDecrease
	switch d.cfg.Mode {
	case PageHinkleyUp:
		d.statistic = up
	case PageHinkleyDown:
		d.statistic = down
	default:
		d.statistic = math.Max(up, down)
	}
	d.drift = d.statistic > d.cfg.Threshold
}
