package detectors

import (
	"fmt"
	"math"
)

// HDDMAConfig holds HDDM_A's parameters. Start from DefaultHDDMAConfig.
type HDDMAConfig struct {
	// DriftConfidence is the significance of the drift test, in (0, 1).
	// Default 0.001.
	DriftConfidence float64
	// WarningConfidence is the significance of the warning test, in
	// [DriftConfidence, 1). Default 0.005.
	WarningConfidence float64
	// TwoSided also watches decreases of the error rate. Default false.
	TwoSided bool
}

// DefaultHDDMAConfig returns River's defaults.
func DefaultHDDMAConfig() HDDMAConfig {
	return HDDMAConfig{DriftConfidence: 0.001, WarningConfidence: 0.005}
}

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c HDDMAConfig) Validate() error {
	return validateConfidences("hddm_a", c.DriftConfidence, c.WarningConfidence)
}

func validateConfidences(name string, drift, warning float64) error {
	switch {
	case !(drift > 0 && drift < 1):
		return fmt.Errorf("%s: drift confidence %v not in (0, 1): %w", name, drift, ErrInvalidConfig)
	case !(warning >= drift && warning < 1):
		return fmt.Errorf("%s: warning confidence %v not in [drift confidence, 1): %w", name, warning, ErrInvalidConfig)
	}
	return nil
}

// runningMean is River's stats.Mean: a count and an incremental mean.
type runningMean struct {
	n    float64
	mean float64
}

func (m *runningMean) update(x float64) {
	m.n++
	m.mean += (x - m.mean) / m.n
}

// HDDMA is HDDM_A, the drift detection method based on Hoeffding's bounds with
// the moving-average test, on a 0/1 error stream. It keeps the global mean
// and the mean up to the cut point where mean+bound was smallest, and reports
// a drift (or warning) when the global mean exceeds the cut mean by more than
// Hoeffding's bound at DriftConfidence (or WarningConfidence).
//
// It matches River's drift.binary.HDDM_A (drift_confidence=0.001,
// warning_confidence=0.005, two_sided_test=False), itself based on MOA.
// Statistic is the global error rate since the last reset.
//
// Reference: Isvani Frías-Blanco, José del Campo-Ávila, Gonzalo Ramos-Jiménez,
// et al. "Online and non-parametric drift detection methods based on
// Hoeffding's bounds." IEEE TKDE 27(3), 2015, pp. 810-823.
type HDDMA struct {
	cfg      HDDMAConfig
	logs     hddmLogs
	z        runningMean // global
	xMin     runningMean // cut point for increases
	xMax     runningMean // cut point for decreases
	drift    bool
	warning  bool
	rejected uint64
}

// NewHDDMA validates cfg and returns a detector.
func NewHDDMA(cfg HDDMAConfig) (*HDDMA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &HDDMA{cfg: cfg, logs: newHDDMLogs(cfg.DriftConfidence, cfg.WarningConfidence)}, nil
}

// hddmLogs caches the logarithms of the confidences, constant per detector.
type hddmLogs struct {
	invDrift   float64 // ln(1/drift confidence)
	invWarning float64 // ln(1/warning confidence)
	twoDrift   float64 // ln(2/drift confidence)
	twoWarning float64 // ln(2/warning confidence)
}

func newHDDMLogs(drift, warning float64) hddmLogs {
	return hddmLogs{
		invDrift: math.Log(1 / drift), invWarning: math.Log(1 / warning),
		twoDrift: math.Log(2 / drift), twoWarning: math.Log(2 / warning),
	}
}

// Name returns "HDDM_A".
func (d *HDDMA) Name() string { return "HDDM_A" }

// DriftDetected reports whether the last Update detected a drift.
func (d *HDDMA) DriftDetected() bool { return d.drift }

// WarningDetected reports whether the detector is in its warning zone.
func (d *HDDMA) WarningDetected() bool { return d.warning }

// Rejected is the number of values rejected (anything but 0 and 1).
func (d *HDDMA) Rejected() uint64 { return d.rejected }

// Statistic is the global error rate since the last reset.
func (d *HDDMA) Statistic() float64 { return d.z.mean }

// Reset returns the detector to its initial state.
func (d *HDDMA) Reset() { *d = HDDMA{cfg: d.cfg, logs: d.logs} }

func (d *HDDMA) bound(n float64) float64 {
	return math.Sqrt(1 / (2 * n) * d.logs.invDrift)
}

// Update feeds one outcome: 1 for an error, 0 for a correct prediction.
func (d *HDDMA) Update(x float64) {
	if d.drift {
		*d = HDDMA{cfg: d.cfg, logs: d.logs, rejected: d.rejected}
	}
	if !isBinary(x) {
		d.rejected++
		return
	}
	d.z.update(x)
	if d.xMin.n == 0 {
		d.xMin = d.z
	}
	if d.xMax.n == 0 {
		d.xMax = d.z
	}
	epsZ := d.bound(d.z.n)
	if d.xMin.mean+d.bound(d.xMin.n) >= d.z.mean+epsZ {
		d.xMin = d.z
	}
	if d.xMax.mean-d.bound(d.xMax.n) <= d.z.mean-epsZ {
		d.xMax = d.z
	}
	switch {
	case d.meanIncreased(d.logs.twoDrift):
		d.drift, d.warning = true, false
	case d.meanIncreased(d.logs.twoWarning):
		d.drift, d.warning = false, true
	default:
		d.drift, d.warning = false, false
	}
	if d.cfg.TwoSided {
		if d.meanDecreased(d.logs.twoDrift) {
			d.drift = true
		} else if d.meanDecreased(d.logs.twoWarning) {
			d.warning = true
		}
	}
}

// cutBound is the bound for the cut point cut, given ln(2/confidence).
func (d *HDDMA) cutBound(cut runningMean, logTwoOverConfidence float64) float64 {
	m := (d.z.n - cut.n) / cut.n * (1 / d.z.n)
	return math.Sqrt(m / 2 * logTwoOverConfidence)
}

func (d *HDDMA) meanIncreased(logTwoOverConfidence float64) bool {
	if d.xMin.n == d.z.n {
		return false
	}
	return d.z.mean-d.xMin.mean >= d.cutBound(d.xMin, logTwoOverConfidence)
}

func (d *HDDMA) meanDecreased(logTwoOverConfidence float64) bool {
	if d.xMax.n == d.z.n {
		return false
	}
	return d.xMax.mean-d.z.mean >= d.cutBound(d.xMax, logTwoOverConfidence)
}

// HDDMWConfig holds HDDM_W's parameters. Start from DefaultHDDMWConfig.
type HDDMWConfig struct {
	// DriftConfidence is the significance of the drift test, in (0, 1).
	// Default 0.001.
	DriftConfidence float64
	// WarningConfidence is the significance of the warning test, in
	// [DriftConfidence, 1). Default 0.005.
	WarningConfidence float64
	// Lambda is the weight of the newest value in the EWMA, in (0, 1).
	// Default 0.05.
	Lambda float64
	// TwoSided also watches decreases of the error rate. Default false.
	TwoSided bool
}

// DefaultHDDMWConfig returns River's defaults.
func DefaultHDDMWConfig() HDDMWConfig {
	return HDDMWConfig{DriftConfidence: 0.001, WarningConfidence: 0.005, Lambda: 0.05}
}

// Validate reports the first invalid parameter, wrapping ErrInvalidConfig.
func (c HDDMWConfig) Validate() error {
	if err := validateConfidences("hddm_w", c.DriftConfidence, c.WarningConfidence); err != nil {
		return err
	}
	if !(c.Lambda > 0 && c.Lambda < 1) {
		return fmt.Errorf("hddm_w: lambda %v not in (0, 1): %w", c.Lambda, ErrInvalidConfig)
	}
	return nil
}

// ewmaSample is River's HDDM_W SampleInfo: an EWMA and its independent bound
// condition.
type ewmaSample struct {
	ewma   float64
	ibc    float64
	isInit bool
}

func newEWMASample() ewmaSample { return ewmaSample{ibc: 1} }

// update follows River's stats.EWMean: the first value sets the mean.
func (s *ewmaSample) update(x, lambda float64) {
	if !s.isInit {
		s.ewma = x
	} else {
		s.ewma = lambda*x + (1-lambda)*s.ewma
	}
	s.isInit = true
	s.ibc = lambda*lambda + (1-lambda)*(1-lambda)*s.ibc
}

// HDDMW is HDDM_W, the drift detection method based on McDiarmid's bounds with
// the exponentially weighted moving-average test, on a 0/1 error stream.
//
// It matches River's drift.binary.HDDM_W (drift_confidence=0.001,
// warning_confidence=0.005, lambda_val=0.05, two_sided_test=False), itself
// based on MOA. Statistic is the EWMA of the whole stream since the last
// reset.
//
// Reference: Isvani Frías-Blanco, José del Campo-Ávila, Gonzalo Ramos-Jiménez,
// et al. "Online and non-parametric drift detection methods based on
// Hoeffding's bounds." IEEE TKDE 27(3), 2015, pp. 810-823.
type HDDMW struct {
	cfg          HDDMWConfig
	logs         hddmLogs
	total        ewmaSample
	s1Incr       ewmaSample
	s2Incr       ewmaSample
	s1Decr       ewmaSample
	s2Decr       ewmaSample
	incrCutpoint float64
	decrCutpoint float64
	drift        bool
	warning      bool
	rejected     uint64
}

// NewHDDMW validates cfg and returns a detector.
func NewHDDMW(cfg HDDMWConfig) (*HDDMW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &HDDMW{cfg: cfg}
	d.reset()
	return d, nil
}

// Name returns "HDDM_W".
func (d *HDDMW) Name() string { return "HDDM_W" }

// DriftDetected reports whether the last Update detected a drift.
func (d *HDDMW) DriftDetected() bool { return d.drift }

// WarningDetected reports whether the detector is in its warning zone.
func (d *HDDMW) WarningDetected() bool { return d.warning }

// Rejected is the number of values rejected (anything but 0 and 1).
func (d *HDDMW) Rejected() uint64 { return d.rejected }

// Statistic is the EWMA of the stream since the last reset.
func (d *HDDMW) Statistic() float64 { return d.total.ewma }

// Reset returns the detector to its initial state.
func (d *HDDMW) Reset() {
	d.reset()
	d.rejected = 0
}

func (d *HDDMW) reset() {
	*d = HDDMW{
		cfg: d.cfg, logs: newHDDMLogs(d.cfg.DriftConfidence, d.cfg.WarningConfidence), rejected: d.rejected,
		total: newEWMASample(), s1Incr: newEWMASample(), s2Incr: newEWMASample(),
		s1Decr: newEWMASample(), s2Decr: newEWMASample(),
		incrCutpoint: math.Inf(1), decrCutpoint: math.Inf(-1),
	}
}

// mcDiarmidBound is McDiarmid's bound, given ln(1/confidence).
func mcDiarmidBound(ibc, logInvConfidence float64) float64 {
	return math.Sqrt(ibc * logInvConfidence / 2)
}

// meanChanged reports whether s2's EWMA exceeds s1's by more than the bound.
func meanChanged(s1, s2 *ewmaSample, logInvConfidence float64) bool {
	if !s1.isInit || !s2.isInit {
		return false
	}
	return s2.ewma-s1.ewma > mcDiarmidBound(s1.ibc+s2.ibc, logInvConfidence)
}

// Update feeds one outcome: 1 for an error, 0 for a correct prediction.
func (d *HDDMW) Update(x float64) {
	if d.drift {
		d.reset()
	}
	if !isBinary(x) {
		d.rejected++
		return
	}
	lambda := d.cfg.Lambda
	d.total.update(x, lambda)

	eps := mcDiarmidBound(d.total.ibc, d.logs.invDrift)
	if d.total.ewma+eps < d.incrCutpoint {
		d.incrCutpoint = d.total.ewma + eps
		d.s1Incr = d.total
		d.s2Incr = newEWMASample()
	} else {
		d.s2Incr.update(x, lambda)
	}
	switch {
	case meanChanged(&d.s1Incr, &d.s2Incr, d.logs.invDrift):
		d.drift, d.warning = true, false
	case meanChanged(&d.s1Incr, &d.s2Incr, d.logs.invWarning):
		d.drift, d.warning = false, true
	default:
		d.drift, d.warning = false, false
	}

	eps = mcDiarmidBound(d.total.ibc, d.logs.invDrift)
	if d.total.ewma-eps > d.decrCutpoint {
		d.decrCutpoint = d.total.ewma - eps
		d.s1Decr = d.total
		d.s2Decr = newEWMASample()
	} else {
		d.s2Decr.update(x, lambda)
	}
	if d.cfg.TwoSided {
		if meanChanged(&d.s2Decr, &d.s1Decr, d.logs.invDrift) {
			d.drift = true
		} else if meanChanged(&d.s2Decr, &d.s1Decr, d.logs.invWarning) {
			d.warning = true
		}
	}
}
