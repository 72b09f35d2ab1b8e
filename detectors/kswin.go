package detectors

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/driftline/driftline/detectors/internal/stat"
)

// KSWINConfig holds KSWIN's parameters. Start from DefaultKSWINConfig.
type KSWINConfig struct {
	// Alpha is the significance of the KS test, in (0, 1). Default 0.005.
	Alpha float64
	// WindowSize is the length of the sliding window, at most
	// MaxKSWINWindowSize. Default 100.
	WindowSize int
	// StatSize is the length of the most recent part of the window that is
	// tested, and of the sample drawn from the older part. Default 30.
	StatSize int
	// Seed seeds the sampling of the older part. River draws a random seed
	// when none is given; driftline defaults to 1 so that runs repeat.
	Seed uint64
}

// DefaultKSWINConfig returns River's defaults, with Seed 1.
func DefaultKSWINConfig() KSWINConfig {
	return KSWINConfig{Alpha: 0.005, WindowSize: 100, StatSize: 30, Seed: 1}
}

// MaxKSWINWindowSize bounds KSWINConfig.WindowSize (the window and its
// sampling permutation take 16 bytes per value).
const MaxKSWINWindowSize = 1 << 20

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c KSWINConfig) Validate() error {
	switch {
	case !(c.Alpha > 0 && c.Alpha < 1):
		return fmt.Errorf("kswin: alpha %v not in (0, 1): %w", c.Alpha, ErrInvalidConfig)
	case c.StatSize < 1:
		return fmt.Errorf("kswin: stat size %d < 1: %w", c.StatSize, ErrInvalidConfig)
	case c.WindowSize < 2*c.StatSize || c.WindowSize > MaxKSWINWindowSize:
		return fmt.Errorf("kswin: window size %d not in [2 × stat size %d, %d]: %w", c.WindowSize, c.StatSize, MaxKSWINWindowSize, ErrInvalidConfig)
	}
	return nil
}

// KSWIN is the Kolmogorov-Smirnov WINdowing detector of Raab et al. It keeps a
// sliding window of WindowSize values. Once the window is full, every update
// draws StatSize values without replacement from the older WindowSize-StatSize
// values and runs a two-sample KS test against the StatSize most recent
// values; a drift is reported when the exact p-value is <= Alpha and the
// statistic is > 0.1. It has no warning zone.
//
// It matches River's KSWIN (alpha=0.005, window_size=100, stat_size=30), with
// scipy's exact KS p-value, except for the random sample: River uses Python's
// random module, driftline uses math/rand/v2 PCG seeded with Seed (and
// reseeded on every reset, as River reseeds). Statistic is the last p-value
// (1 before the window is full).
//
// Reference: Christoph Raab, Moritz Heusinger, Frank-Michael Schleif.
// "Reactive Soft Prototype Computing for Concept Drift Streams."
// Neurocomputing 416, 2020, pp. 340-351.
type KSWIN struct {
	cfg      KSWINConfig
	window   []float64 // ring buffer
	start    int       // index of the oldest value
	count    int
	perm     []int // permutation of older indices, for sampling
	sample   []float64
	recent   []float64
	pcg      rand.PCG
	rng      *rand.Rand
	pValue   float64
	drift    bool
	rejected uint64
}

// NewKSWIN validates cfg and returns a detector.
func NewKSWIN(cfg KSWINConfig) (*KSWIN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &KSWIN{
		cfg:    cfg,
		window: make([]float64, cfg.WindowSize),
		perm:   make([]int, cfg.WindowSize-cfg.StatSize),
		sample: make([]float64, cfg.StatSize),
		recent: make([]float64, cfg.StatSize),
	}
	d.rng = rand.New(&d.pcg)
	d.reset()
	return d, nil
}

// Name returns "KSWIN".
func (d *KSWIN) Name() string { return "KSWIN" }

// DriftDetected reports whether the last Update detected a drift.
func (d *KSWIN) DriftDetected() bool { return d.drift }

// WarningDetected is always false: KSWIN has no warning zone.
func (d *KSWIN) WarningDetected() bool { return false }

// Rejected is the number of non-finite values rejected.
func (d *KSWIN) Rejected() uint64 { return d.rejected }

// Statistic is the p-value of the last KS test, 1 before the window is full.
func (d *KSWIN) Statistic() float64 { return d.pValue }

// Reset returns the detector to its initial state, reseeding its sampler.
func (d *KSWIN) Reset() {
	d.reset()
	d.rejected = 0
}

func (d *KSWIN) reset() {
	d.start, d.count = 0, 0
	for i := range d.perm {
		d.perm[i] = i
	}
	d.pcg.Seed(d.cfg.Seed, d.cfg.Seed)
	d.pValue = 1
	d.drift = false
}

// Update adds x to the window and tests once the window is full.
func (d *KSWIN) Update(x float64) {
	if d.drift {
		d.reset()
	}
	if !isFinite(x) {
		d.rejected++
		return
	}
	size := d.cfg.WindowSize
	if d.count < size {
		d.window[(d.start+d.count)%size] = x
		d.count++
	} else {
		d.window[d.start] = x
		d.start = (d.start + 1) % size
	}
	if d.count < size {
		return
	}
	older := size - d.cfg.StatSize
	// Partial Fisher-Yates on a persistent permutation draws a uniform
	// subset without replacement and without allocating.
	for i := range d.sample {
		j := i + d.rng.IntN(older-i)
		d.perm[i], d.perm[j] = d.perm[j], d.perm[i]
		d.sample[i] = d.window[(d.start+d.perm[i])%size]
	}
	for i := range d.recent {
		d.recent[i] = d.window[(d.start+older+i)%size]
	}
	slices.Sort(d.sample)
	slices.Sort(d.recent)
	st := stat.KSStatistic(d.sample, d.recent)
	d.pValue = stat.KSExactPValueEqual(st, d.cfg.StatSize)
	d.drift = d.pValue <= d.cfg.Alpha && st > 0.1
}
