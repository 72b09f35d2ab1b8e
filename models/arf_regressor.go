package models

import (
	"fmt"
	"math"
	"slices"

	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/models/internal/pyrand"
)

// ARFRegressorConfig configures an ARFRegressor. The embedded tree
// configuration applies to every member tree; its zero fields take River
// 0.26.1's ARFRegressor defaults, which differ from a single tree's in
// three places: GracePeriod 50, Delta 0.01 and MemoryEstimatePeriod
// 2,000,000. A zero forest field takes the default stated on it.
type ARFRegressorConfig struct {
	HoeffdingTreeRegressorConfig
	// Models is the number of trees, in [1, 1000]. Default 10.
	Models int
	// MaxFeatures is each leaf's random subspace, as in ARFConfig. Default
	// "sqrt".
	MaxFeatures string
	// Aggregation combines the trees' predictions: "median" (the default)
	// or "mean".
	Aggregation string
	// Lambda is the rate of the Poisson weights of online bagging. Default 6.
	Lambda float64
	// WeightedVote makes a mean aggregation a weighted one, each tree's
	// weight falling with its prequential squared error (River's
	// disable_weighted_vote=False, without River's second division by the
	// number of trees); off by default, as in River.
	WeightedVote bool
	// WarningDelta and DriftDelta are the deltas of each tree's ADWIN
	// warning and drift detectors, on its normalized errors. Defaults 0.01
	// and 0.001. NoWarning and NoDrift disable them.
	WarningDelta, DriftDelta float64
	NoWarning, NoDrift       bool
	// Seed seeds the forest's random numbers. Default 0.
	Seed uint64
}

var arfRegDefaults = treeDefaults{DefaultARFGracePeriod, DefaultARFDelta, DefaultRegressorMaxSizeMiB, DefaultARFMemoryPeriod}

// Validate reports whether the configuration, with its defaults applied,
// is usable by NewARFRegressor.
func (c ARFRegressorConfig) Validate() error {
	_, err := c.resolve()
	return err
}

func (c ARFRegressorConfig) resolve() (ARFRegressorConfig, error) {
	tc, err := c.HoeffdingTreeRegressorConfig.resolve(arfRegDefaults)
	if err != nil {
		return c, err
	}
	c.HoeffdingTreeRegressorConfig = tc
	if c.Aggregation == "" {
		c.Aggregation = "median"
	}
	if c.Aggregation != "median" && c.Aggregation != "mean" {
		return c, fmt.Errorf("models: aggregation %q is not median or mean", c.Aggregation)
	}
	if err := resolveForest(&c.Models, &c.MaxFeatures, &c.Lambda, &c.WarningDelta, &c.DriftDelta); err != nil {
		return c, err
	}
	if _, err := subspaceSize(c.MaxFeatures, c.NumDense+c.NumHashed); err != nil {
		return c, err
	}
	return c, nil
}

// ARFRegressor is the Adaptive Random Forest for regression of Gomes et
// al. (2018), as River 0.26.1's forest.ARFRegressor implements it, step for
// step and with River's random numbers: Models HoeffdingTreeRegressors
// (leaves on random subspaces) trained by online bagging with
// Poisson(Lambda) weights, each with ADWIN warning and drift detectors on
// its errors normalized to [0, 1] (River assumes them normal and maps
// mean ± 3σ onto [0, 1]); a warning starts a background tree, a drift
// replaces the tree. The prediction is the median of the trees' (or their
// mean, optionally weighted by their errors). Attributes, missing values
// and outputs are as HoeffdingTreeRegressor documents. It implements
// ShapedLearner; Learner states the contract.
//
// Reference: H. M. Gomes, J. P. Barddal, L. E. B. Ferreira and A. Bifet,
// "Adaptive random forests for data stream regression", ESANN 2018.
type ARFRegressor struct {
	cfg ARFRegressorConfig // resolved
	p   regParams
	f   *regForest
}

var _ ShapedLearner = (*ARFRegressor)(nil)

// regForest is the state of an ARFRegressor.
type regForest struct {
	trees, background []*rtree
	warn, drift       []*detectors.ADWIN
	mse               []runningMean // each tree's prequential squared error
	norm              []runningVar  // each tree's errors, for the detectors' normalization
	warnings, drifts  []int
	started           bool
	maxFeatures       int
	rng               *pyrand.Source
	sc                *treeScratch
	preds             []float64

	warnTemplate, driftTemplate *detectors.ADWIN
}

// NewARFRegressor returns an empty forest for cfg, after applying its
// defaults and validating it.
func NewARFRegressor(cfg ARFRegressorConfig) (*ARFRegressor, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	a := &ARFRegressor{cfg: rc, p: newRegParams(rc.HoeffdingTreeRegressorConfig)}
	m, _ := subspaceSize(rc.MaxFeatures, rc.NumDense+rc.NumHashed)
	n := rc.Models
	f := &regForest{
		trees: make([]*rtree, n), background: make([]*rtree, n),
		warn: make([]*detectors.ADWIN, n), drift: make([]*detectors.ADWIN, n),
		mse: make([]runningMean, n), norm: make([]runningVar, n), warnings: make([]int, n), drifts: make([]int, n),
		maxFeatures: m, rng: pyrand.New(rc.Seed), sc: newRegScratch(&a.p), preds: make([]float64, n),
	}
	if f.warnTemplate, err = newADWINWithDelta(rc.WarningDelta); err != nil {
		return nil, err
	}
	if f.driftTemplate, err = newADWINWithDelta(rc.DriftDelta); err != nil {
		return nil, err
	}
	for i := range n {
		f.warn[i], f.drift[i] = f.warnTemplate.Clone(), f.driftTemplate.Clone()
	}
	a.f = f
	return a, nil
}

func (a *ARFRegressor) newMember() *rtree {
	t := newRTree(&a.p, a.f.sc)
	t.rng = a.f.rng
	t.randomSubspace = true
	t.maxFeatures = a.f.maxFeatures
	return t
}

// Config returns the configuration with its defaults applied.
func (a *ARFRegressor) Config() ARFRegressorConfig { return a.cfg }

// Classes is 1.
func (a *ARFRegressor) Classes() int { return 1 }

// Link is LinkIdentity.
func (a *ARFRegressor) Link() Link { return LinkIdentity }

// Shape is the layout of the rows the forest takes.
func (a *ARFRegressor) Shape() Shape {
	return Shape{NumDense: a.p.nd, NumHashed: a.p.nh, HashBits: a.p.bits}
}

// Predict writes one prediction per row into dst; see Learner.
func (a *ARFRegressor) Predict(dst []float32, rows *Rows) error {
	return predictValues(a, dst, rows, a.f.sc, a.predictOne)
}

// Learn updates the forest with rows and targets y; see Learner.
func (a *ARFRegressor) Learn(rows *Rows, y []float32) error {
	return learnValues(a, rows, y, a.f.sc, a.learnOne)
}

// driftInput is River's ARFRegressor._drift_detector_input: tree i's error,
// min-max normalized over mean ± 3σ of its errors so far.
func (f *regForest) driftInput(i int, y, pred float64) float64 {
	e := y - pred
	f.norm[i].update(e, 1)
	if f.norm[i].n == 1 {
		return 0.5
	}
	sd := math.Sqrt(f.norm[i].variance())
	if sd > 0 {
		return (e + 3*sd) / (6 * sd)
	}
	return 0.5
}

// learnOne is River's BaseForest.learn_one for a regressor.
func (a *ARFRegressor) learnOne(r *treeRow, y float64) {
	f := a.f
	if !f.started {
		for i := range f.trees {
			f.trees[i] = a.newMember()
		}
		f.started = true
	}
	for i, t := range f.trees {
		pred := t.predictOne(r)
		d := y - pred
		f.mse[i].update(d*d, 1)
		k := f.rng.Poisson(a.cfg.Lambda)
		if k <= 0 {
			continue
		}
		w := float64(k)
		if !a.cfg.NoWarning && f.background[i] != nil {
			f.background[i].learnOne(r, y, w)
		}
		t.learnOne(r, y, w)
		in, computed := 0.0, false
		if !a.cfg.NoWarning {
			in, computed = f.driftInput(i, y, pred), true
			f.warn[i].Update(in)
			if f.warn[i].DriftDetected() {
				f.background[i] = a.newMember()
				f.warn[i] = f.warnTemplate.Clone()
				f.warnings[i]++
			}
		}
		if !a.cfg.NoDrift {
			if !computed {
				in = f.driftInput(i, y, pred)
			}
			f.drift[i].Update(in)
			if f.drift[i].DriftDetected() {
				if !a.cfg.NoWarning && f.background[i] != nil {
					f.trees[i] = f.background[i]
					f.background[i] = nil
					f.warn[i] = f.warnTemplate.Clone()
				} else {
					f.trees[i] = a.newMember()
				}
				f.drift[i] = f.driftTemplate.Clone()
				f.mse[i] = runningMean{}
				f.drifts[i]++
			}
		}
	}
}

// predictOne is River's ARFRegressor.predict_one (0 before the first row).
func (a *ARFRegressor) predictOne(r *treeRow) float64 {
	f := a.f
	if !f.started {
		return 0
	}
	preds := f.preds
	for i, t := range f.trees {
		preds[i] = t.predictOne(r)
	}
	if a.cfg.Aggregation == "median" {
		slices.Sort(preds)
		n := len(preds)
		if n%2 == 1 {
			return preds[n/2]
		}
		return (preds[n/2-1] + preds[n/2]) / 2
	}
	if a.cfg.WeightedVote {
		sum := 0.0
		for i := range preds {
			sum += f.mse[i].mean
		}
		if sum != 0 {
			// The higher the error, the lower the weight. River multiplies
			// by these weights, which sum to 1, and then takes the mean,
			// dividing by the number of trees a second time; driftline
			// returns the weighted sum.
			norm := 0.0
			for i := range preds {
				norm += sum - f.mse[i].mean
			}
			total := 0.0
			for i, v := range preds {
				total += v * ((sum - f.mse[i].mean) / norm)
			}
			return total
		}
	}
	total := 0.0
	for _, v := range preds {
		total += v
	}
	return total / float64(len(preds))
}

// Clone returns an independent deep copy.
func (a *ARFRegressor) Clone() Learner {
	c := &ARFRegressor{cfg: a.cfg, p: a.p}
	f := *a.f
	rng := *a.f.rng
	f.rng = &rng
	f.sc = newRegScratch(&c.p)
	f.preds = make([]float64, len(a.f.preds))
	n := len(a.f.trees)
	f.trees, f.background = make([]*rtree, n), make([]*rtree, n)
	f.warn, f.drift = make([]*detectors.ADWIN, n), make([]*detectors.ADWIN, n)
	for i := range n {
		for _, p := range []struct{ dst, src **rtree }{{&f.trees[i], &a.f.trees[i]}, {&f.background[i], &a.f.background[i]}} {
			if *p.src != nil {
				*p.dst = (*p.src).clone(&c.p, f.sc, f.rng)
			}
		}
		f.warn[i], f.drift[i] = a.f.warn[i].Clone(), a.f.drift[i].Clone()
	}
	f.mse, f.norm = slices.Clone(a.f.mse), slices.Clone(a.f.norm)
	f.warnings, f.drifts = slices.Clone(a.f.warnings), slices.Clone(a.f.drifts)
	c.f = &f
	return c
}

// Snapshot kind and version of an ARFRegressor.
const (
	arfRegMagic   = "DLAR"
	arfRegVersion = 1
)

func encodeARFRegConfig(e *encoder, c *ARFRegressorConfig) {
	encodeRegConfig(e, &c.HoeffdingTreeRegressorConfig)
	e.int(c.Models)
	e.blob([]byte(c.MaxFeatures))
	e.blob([]byte(c.Aggregation))
	for _, v := range []float64{c.Lambda, c.WarningDelta, c.DriftDelta} {
		e.f64(v)
	}
	for _, v := range []bool{c.WeightedVote, c.NoWarning, c.NoDrift} {
		e.bool(v)
	}
	e.u64(c.Seed)
}

func decodeARFRegConfig(d *decoder) ARFRegressorConfig {
	c := ARFRegressorConfig{HoeffdingTreeRegressorConfig: decodeRegConfig(d)}
	c.Models = d.int()
	c.MaxFeatures = string(d.blob())
	c.Aggregation = string(d.blob())
	for _, p := range []*float64{&c.Lambda, &c.WarningDelta, &c.DriftDelta} {
		*p = d.f64()
	}
	for _, p := range []*bool{&c.WeightedVote, &c.NoWarning, &c.NoDrift} {
		*p = d.bool()
	}
	c.Seed = d.u64()
	return c
}

// MarshalBinary snapshots the forest, its random source included; see
// Learner.
func (a *ARFRegressor) MarshalBinary() ([]byte, error) {
	e := &encoder{}
	encodeARFRegConfig(e, &a.cfg)
	f := a.f
	e.b = f.rng.AppendState(e.b)
	e.bool(f.started)
	for i := range f.trees {
		e.f64(f.mse[i].n)
		e.f64(f.mse[i].mean)
		encodeVar(e, f.norm[i])
		e.int(f.warnings[i])
		e.int(f.drifts[i])
		encodeDetector(e, f.warn[i])
		encodeDetector(e, f.drift[i])
		for _, t := range []*rtree{f.trees[i], f.background[i]} {
			e.bool(t != nil)
			if t != nil {
				t.encode(e)
			}
		}
	}
	return appendFrame(arfRegMagic, arfRegVersion, e.b), nil
}

// UnmarshalBinary replaces the forest with a snapshot; see Learner.
func (a *ARFRegressor) UnmarshalBinary(data []byte) error {
	r, err := unmarshalARFRegressor(data)
	if err != nil {
		return err
	}
	*a = *r
	for _, t := range append(append([]*rtree(nil), a.f.trees...), a.f.background...) {
		if t != nil {
			t.p = &a.p
		}
	}
	return nil
}

func unmarshalARFRegressor(data []byte) (*ARFRegressor, error) {
	body, err := openFrame(data, arfRegMagic, arfRegVersion)
	if err != nil {
		return nil, err
	}
	d := &decoder{snapshotReader{buf: body}}
	cfg := decodeARFRegConfig(d)
	if d.err != nil {
		return nil, d.err
	}
	a, err := NewARFRegressor(cfg)
	if err != nil {
		return nil, snapshotConfigError(err)
	}
	if a.cfg != cfg {
		return nil, snapshotConfigError(nil)
	}
	f := a.f
	if err := f.rng.SetState(d.take(pyrand.StateSize)); err != nil && d.err == nil {
		d.fail("bad random state")
	}
	f.started = d.bool()
	for i := range f.trees {
		f.mse[i] = runningMean{n: d.f64(), mean: d.f64()}
		f.norm[i] = decodeVar(d)
		f.warnings[i], f.drifts[i] = d.int(), d.int()
		f.warn[i], f.drift[i] = decodeDetector(d), decodeDetector(d)
		for _, slot := range []**rtree{&f.trees[i], &f.background[i]} {
			if d.bool() {
				t := a.newMember()
				t.decode(d)
				*slot = t
			}
		}
		if d.err == nil && f.started != (f.trees[i] != nil) {
			d.fail("tree %d does not match the forest's state", i)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return a, nil
}
