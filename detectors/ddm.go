package detectors

import (
	"fmt"
	"math"
)

// DDMConfig holds DDM's parameters. Start from DefaultDDMConfig.
type DDMConfig struct {
	// WarmStart is how many values must be seen before a warning or drift
	// can be reported. Default 30.
	WarmStart int
	// WarningThreshold is the number of minimum standard deviations above
	// the minimum that opens the warning zone. Default 2.
	WarningThreshold float64
	// DriftThreshold is the same for a drift. Default 3.
	DriftThreshold float64
}

// DefaultDDMConfig returns River's defaults.
func DefaultDDMConfig() DDMConfig {
	return DDMConfig{WarmStart: 30, WarningThreshold: 2, DriftThreshold: 3}
}

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c DDMConfig) Validate() error {
	switch {
	case c.WarmStart < 0:
		return fmt.Errorf("ddm: warm start %d < 0: %w", c.WarmStart, ErrInvalidConfig)
	case !(c.WarningThreshold > 0) || math.IsInf(c.WarningThreshold, 0):
		return fmt.Errorf("ddm: warning threshold %v must be finite and > 0: %w", c.WarningThreshold, ErrInvalidConfig)
	case !(c.DriftThreshold >= c.WarningThreshold) || math.IsInf(c.DriftThreshold, 0):
		return fmt.Errorf("ddm: drift threshold %v must be finite and >= warning threshold: %w", c.DriftThreshold, ErrInvalidConfig)
	}
	return nil
}

// DDM is the Drift Detection Method of Gama et al. on a 0/1 error stream. It
// tracks the error rate p and its standard deviation s = sqrt(p(1-p)/n),
// remembers p_min and s_min where p+s was smallest, and reports a warning when
// p+s > p_min + WarningThreshold·s_min and a drift when
// p+s > p_min + DriftThreshold·s_min (the warning is cleared on a drift).
//
// It matches River's drift.binary.DDM (warm_start=30, warning_threshold=2,
// drift_threshold=3). Statistic is p+s at the last update.
//
// Reference: João Gama, Pedro Medas, Gladys Castillo, Pedro Rodrigues.
// "Learning with Drift Detection." SBIA 2004, pp. 286-295.
type DDM struct {
	cfg      DDMConfig
	n        int
	p        float64
	pMin     float64
	sMin     float64
	psMin    float64
	ps       float64
	drift    bool
	warning  bool
	rejected uint64
}

// NewDDM validates cfg and returns a detector.
func NewDDM(cfg DDMConfig) (*DDM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &DDM{cfg: cfg}
	d.reset()
	return d, nil
}

// Name returns "DDM".
func (d *DDM) Name() string { return "DDM" }

// DriftDetected reports whether the last Update detected a drift.
func (d *DDM) DriftDetected() bool { return d.drift }

// WarningDetected reports whether the detector is in its warning zone.
func (d *DDM) WarningDetected() bool { return d.warning }

// Rejected is the number of values rejected (anything but 0 and 1).
func (d *DDM) Rejected() uint64 { return d.rejected }

// Statistic is p+s, the error rate plus its standard deviation.
func (d *DDM) Statistic() float64 { return d.ps }

// Reset returns the detector to its initial state.
func (d *DDM) Reset() {
	d.reset()
	d.rejected = 0
}

func (d *DDM) reset() {
	d.n = 0
	d.p = 0
	d.pMin, d.sMin, d.psMin = math.Inf(1), math.Inf(1), math.Inf(1)
	d.ps = 0
	d.drift, d.warning = false, false
}

// Update feeds one outcome: 1 for an error, 0 for a correct prediction.
func (d *DDM) Update(x float64) {
	if d.drift {
		d.reset()
	}
	if !isBinary(x) {
		d.rejected++
		return
	}
	d.n++
	d.p += (x - d.p) / float64(d.n)
	s := math.Sqrt(d.p * (1 - d.p) / float64(d.n))
	d.ps = d.p + s
	if d.n <= d.cfg.WarmStart {
		return
	}
	if d.ps <= d.psMin {
		d.pMin, d.sMin = d.p, s
		d.psMin = d.pMin + d.sMin
	}
	d.warning = d.ps > d.pMin+d.cfg.WarningThreshold*d.sMin
	if d.ps > d.pMin+d.cfg.DriftThreshold*d.sMin {
		d.drift = true
		d.warning = false
	}
}
