package detectors

import (
	"fmt"
	"math"
)

// EDDMConfig holds EDDM's parameters. Start from DefaultEDDMConfig.
type EDDMConfig struct {
	// WarmStart is how many values, and how many errors, must be seen
	// before a warning or drift can be reported. Default 30.
	WarmStart int
	// Alpha is the warning level, in (0, 1]. Default 0.95.
	Alpha float64
	// Beta is the drift level, in (0, Alpha]. Default 0.9.
	Beta float64
}

// DefaultEDDMConfig returns River's defaults.
func DefaultEDDMConfig() EDDMConfig { return EDDMConfig{WarmStart: 30, Alpha: 0.95, Beta: 0.9} }

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c EDDMConfig) Validate() error {
	switch {
	case c.WarmStart < 0:
		return fmt.Errorf("eddm: warm start %d < 0: %w", c.WarmStart, ErrInvalidConfig)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return fmt.Errorf("eddm: alpha %v not in (0, 1]: %w", c.Alpha, ErrInvalidConfig)
	case !(c.Beta > 0 && c.Beta <= c.Alpha):
		return fmt.Errorf("eddm: beta %v not in (0, alpha]: %w", c.Beta, ErrInvalidConfig)
	}
	return nil
}

// EDDM is the Early Drift Detection Method of Baena-García et al. on a 0/1
// error stream. It tracks the mean p' and standard deviation s' of the
// distance between consecutive errors, remembers the maximum of p'+2s', and
// reports a warning when (p'+2s')/max < Alpha and a drift when it is < Beta.
//
// It matches River's drift.binary.EDDM (warm_start=30, alpha=0.95, beta=0.9).
// Statistic is the last level (p'+2s')/max, or 1 before any level exists.
//
// Reference: Manuel Baena-García, José del Campo-Ávila, Raúl Fidalgo, Albert
// Bifet, Ricard Gavaldà, Rafael Morales-Bueno. "Early Drift Detection Method."
// Fourth International Workshop on Knowledge Discovery from Data Streams, 2006.
type EDDM struct {
	cfg       EDDMConfig
	n         int
	lastError int
	nErrors   int
	distMean  float64
	distM2    float64 // sum of squared deviations of the distances
	p2sMax    float64
	level     float64
	drift     bool
	warning   bool
	rejected  uint64
}

// NewEDDM validates cfg and returns a detector.
func NewEDDM(cfg EDDMConfig) (*EDDM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &EDDM{cfg: cfg}
	d.reset()
	return d, nil
}

// Name returns "EDDM".
func (d *EDDM) Name() string { return "EDDM" }

// DriftDetected reports whether the last Update detected a drift.
func (d *EDDM) DriftDetected() bool { return d.drift }

// WarningDetected reports whether the detector is in its warning zone.
func (d *EDDM) WarningDetected() bool { return d.warning }

// Rejected is the number of values rejected (anything but 0 and 1).
func (d *EDDM) Rejected() uint64 { return d.rejected }

// Statistic is the last level (p'+2s')/max(p'+2s').
func (d *EDDM) Statistic() float64 { return d.level }

// Reset returns the detector to its initial state.
func (d *EDDM) Reset() {
	d.reset()
	d.rejected = 0
}

func (d *EDDM) reset() {
	*d = EDDM{cfg: d.cfg, rejected: d.rejected, p2sMax: -1, level: 1}
}

// Update feeds one outcome: 1 for an error, 0 for a correct prediction.
func (d *EDDM) Update(x float64) {
	if d.drift {
		d.reset()
	}
	if !isBinary(x) {
		d.rejected++
		return
	}
	d.n++
	if x != 1 {
		return
	}
	d.nErrors++
	dist := float64(d.n - d.lastError)
	oldMean := d.distMean
	d.distMean += (dist - oldMean) / float64(d.nErrors)
	d.distM2 += (dist - oldMean) * (dist - d.distMean)
	d.lastError = d.n
	if d.n <= d.cfg.WarmStart {
		return
	}
	variance := 0.0
	if d.nErrors > 1 {
		variance = d.distM2 / float64(d.nErrors-1)
	}
	p2s := d.distMean + 2*math.Sqrt(variance)
	if p2s > d.p2sMax {
		d.p2sMax = p2s
		return
	}
	if d.nErrors <= d.cfg.WarmStart {
		return
	}
	d.level = p2s / d.p2sMax
	switch {
	case d.level < d.cfg.Beta:
		d.drift = true
	case d.level < d.cfg.Alpha:
		d.warning = true
	default:
		d.warning = false
	}
}
