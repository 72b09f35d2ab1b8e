package models

import (
	"fmt"
	"math"
)

// RegressionLeafPrediction is how a regression tree's leaf predicts.
type RegressionLeafPrediction uint8

const (
	// RegressionLeafAdaptive predicts with the target mean or the leaf's
	// linear model, whichever has the smaller decayed squared error;
	// River's "adaptive" (the default).
	RegressionLeafAdaptive RegressionLeafPrediction = iota
	// RegressionLeafMean predicts the leaf's target mean; River's "mean".
	RegressionLeafMean
	// RegressionLeafModel predicts with the leaf's linear model; River's
	// "model".
	RegressionLeafModel
)

// String names the leaf prediction as River does.
func (p RegressionLeafPrediction) String() string {
	switch p {
	case RegressionLeafAdaptive:
		return "adaptive"
	case RegressionLeafMean:
		return "mean"
	case RegressionLeafModel:
		return "model"
	}
	return "unknown"
}

// HoeffdingTreeRegressorConfig configures a HoeffdingTreeRegressor (and the
// trees of an ARFRegressor). A zero field takes the default stated on it,
// which is River 0.26.1's HoeffdingTreeRegressor default.
type HoeffdingTreeRegressorConfig struct {
	// NumDense and NumHashed are the dense values and hashed indices per
	// row, each in [0, MaxTreeInputs].
	NumDense, NumHashed int
	// HashBits sets the valid hashed indices [0, 2^HashBits), in [0, 28].
	// Default 18 when NumHashed > 0, else 0.
	HashBits int
	// GracePeriod is the weight a leaf sees between split attempts.
	// Default 200.
	GracePeriod int
	// MaxDepth is the depth at which leaves stop growing. Default 0:
	// unlimited.
	MaxDepth int
	// Delta is the significance of the Hoeffding bound, in (0, 1).
	// Default 1e-7.
	Delta float64
	// Tau is the tie threshold. Default 0.05.
	Tau float64
	// LeafPrediction selects the leaves' predictor. Default
	// RegressionLeafAdaptive.
	LeafPrediction RegressionLeafPrediction
	// ModelSelectorDecay is the decay of the adaptive leaves' squared
	// errors, in (0, 1]. Default 0.95.
	ModelSelectorDecay float64
	// MinSamplesSplit is the weight each side of a candidate split must
	// hold. Default 5.
	MinSamplesSplit int
	// BinarySplit forbids multiway splits; the attributes driftline has
	// always split two ways, so it changes nothing.
	BinarySplit bool
	// MaxSizeMiB bounds the tree's memory as HoeffdingTreeConfig's does.
	// Default 500.
	MaxSizeMiB float64
	// MemoryEstimatePeriod is the weight between two memory estimates.
	// Default 1,000,000.
	MemoryEstimatePeriod int
	// StopMemManagement, RemovePoorAttrs and NoMeritPreprune are as in
	// HoeffdingTreeConfig.
	StopMemManagement, RemovePoorAttrs, NoMeritPreprune bool
	// LeafLearningRate is the SGD rate of the leaves' linear models, for
	// the weights and the intercept (River's LinearRegression default).
	// Default 0.01.
	LeafLearningRate float64
	// SplitterDigits is the number of decimals the numeric splitters round
	// values to (River's TEBSTSplitter digits), in [1, 15]. Default 1.
	SplitterDigits int
}

// River's HoeffdingTreeRegressor defaults.
const (
	DefaultRegressorMaxSizeMiB   = 500
	DefaultModelSelectorDecay    = 0.95
	DefaultMinSamplesSplit       = 5
	DefaultLeafLearningRate      = 0.01
	DefaultSplitterDigits        = 1
	maxSplitterDigits            = 15
	defaultRegressorMemoryPeriod = DefaultTreeMemoryPeriod
)

var htrDefaults = treeDefaults{DefaultTreeGracePeriod, DefaultTreeDelta, DefaultRegressorMaxSizeMiB, defaultRegressorMemoryPeriod}

// Validate reports whether the configuration, with its defaults applied,
// is usable by NewHoeffdingTreeRegressor.
func (c HoeffdingTreeRegressorConfig) Validate() error {
	_, err := c.resolve(htrDefaults)
	return err
}

func (c HoeffdingTreeRegressorConfig) resolve(d treeDefaults) (HoeffdingTreeRegressorConfig, error) {
	if c.GracePeriod == 0 {
		c.GracePeriod = d.grace
	}
	if c.MemoryEstimatePeriod == 0 {
		c.MemoryEstimatePeriod = d.memoryPeriod
	}
	if c.MinSamplesSplit == 0 {
		c.MinSamplesSplit = DefaultMinSamplesSplit
	}
	if c.SplitterDigits == 0 {
		c.SplitterDigits = DefaultSplitterDigits
	}
	orDefault(&c.Delta, d.delta)
	orDefault(&c.Tau, DefaultTreeTau)
	orDefault(&c.ModelSelectorDecay, DefaultModelSelectorDecay)
	orDefault(&c.MaxSizeMiB, d.maxSizeMiB)
	orDefault(&c.LeafLearningRate, DefaultLeafLearningRate)
	if err := checkShape(c.NumDense, c.NumHashed, &c.HashBits); err != nil {
		return c, err
	}
	switch {
	case c.GracePeriod < 1:
		return c, fmt.Errorf("models: grace period %d < 1", c.GracePeriod)
	case c.MaxDepth < 0:
		return c, fmt.Errorf("models: max depth %d < 0", c.MaxDepth)
	case !(c.Delta > 0 && c.Delta < 1):
		return c, fmt.Errorf("models: delta %v outside (0, 1)", c.Delta)
	case !(c.Tau > 0) || math.IsInf(c.Tau, 0):
		return c, fmt.Errorf("models: tau %v is not a finite positive number", c.Tau)
	case c.LeafPrediction > RegressionLeafModel:
		return c, fmt.Errorf("models: unknown leaf prediction %d", c.LeafPrediction)
	case !(c.ModelSelectorDecay > 0 && c.ModelSelectorDecay <= 1):
		return c, fmt.Errorf("models: model selector decay %v outside (0, 1]", c.ModelSelectorDecay)
	case c.MinSamplesSplit < 1:
		return c, fmt.Errorf("models: min samples split %d < 1", c.MinSamplesSplit)
	case !(c.MaxSizeMiB > 0) || c.MaxSizeMiB > 1<<20:
		return c, fmt.Errorf("models: max size %v MiB outside (0, 2^20]", c.MaxSizeMiB)
	case c.MemoryEstimatePeriod < 1:
		return c, fmt.Errorf("models: memory estimate period %d < 1", c.MemoryEstimatePeriod)
	case !(c.LeafLearningRate > 0) || math.IsInf(c.LeafLearningRate, 0):
		return c, fmt.Errorf("models: leaf learning rate %v is not a finite positive number", c.LeafLearningRate)
	case c.SplitterDigits < 1 || c.SplitterDigits > maxSplitterDigits:
		return c, fmt.Errorf("models: splitter digits %d outside [1, %d]", c.SplitterDigits, maxSplitterDigits)
	}
	return c, nil
}

func newRegParams(c HoeffdingTreeRegressorConfig) regParams {
	depth := c.MaxDepth
	if depth == 0 {
		depth = math.MaxInt
	}
	return regParams{
		nd: c.NumDense, nh: c.NumHashed, bits: c.HashBits, grace: float64(c.GracePeriod), maxDepth: depth,
		delta: c.Delta, tau: c.Tau, leafPred: c.LeafPrediction, decay: c.ModelSelectorDecay,
		minSamples: float64(c.MinSamplesSplit), binarySplit: c.BinarySplit, maxBytes: c.MaxSizeMiB * (1 << 20),
		memPeriod: float64(c.MemoryEstimatePeriod), stopMem: c.StopMemManagement, removePoor: c.RemovePoorAttrs,
		meritPreprune: !c.NoMeritPreprune, rate: c.LeafLearningRate, digits: c.SplitterDigits,
	}
}

// HoeffdingTreeRegressor is the Hoeffding tree for regression of
// Ikonomovska et al. (FIMT), as River 0.26.1's tree.HoeffdingTreeRegressor
// implements it, step for step: a leaf splits when the ratio of its second
// best to its best variance reduction falls below 1 − ε (the Hoeffding
// bound) or ε falls below Tau; numeric attributes are watched by truncated
// extended binary search trees (values rounded to SplitterDigits decimals)
// pruned of bad split points after each failed attempt (FIMT-DD), and the
// leaves predict the target mean, a linear model (River's LinearRegression
// on the raw values, which a new leaf inherits from its parent), or the
// better of the two (adaptive, the default).
//
// Attributes and missing values are as HoeffdingTreeClassifier documents; a
// split on a hash bucket is "this value against the rest of the leaf", as
// River's nominal regression splitter does (buckets a leaf never saw
// present offer no split). Outputs are the prediction, clamped to the
// finite float32 range; a leaf model that has diverged to a non-finite
// value gives way to the target mean (River would return it). Labels are
// any finite value. It implements ShapedLearner; Learner states the
// contract.
//
// Reference: E. Ikonomovska, J. Gama and S. Džeroski, "Learning model trees
// from evolving data streams", Data Mining and Knowledge Discovery 23(1),
// 2011. A. Osojnik, "Structured output prediction on data streams", PhD
// thesis, 2017.
type HoeffdingTreeRegressor struct {
	cfg HoeffdingTreeRegressorConfig // resolved
	p   regParams
	t   *rtree
}

var _ ShapedLearner = (*HoeffdingTreeRegressor)(nil)

// NewHoeffdingTreeRegressor returns an empty tree for cfg, after applying
// its defaults and validating it.
func NewHoeffdingTreeRegressor(cfg HoeffdingTreeRegressorConfig) (*HoeffdingTreeRegressor, error) {
	rc, err := cfg.resolve(htrDefaults)
	if err != nil {
		return nil, err
	}
	h := &HoeffdingTreeRegressor{cfg: rc, p: newRegParams(rc)}
	h.t = newRTree(&h.p, newRegScratch(&h.p))
	return h, nil
}

// newRegScratch is the working memory of regression trees.
func newRegScratch(p *regParams) *treeScratch {
	return &treeScratch{row: treeRow{scratch: make([]int32, 0, p.nh)}, dist: make([]float64, 1), dist2s: make([]float64, 1)}
}

// Config returns the configuration with its defaults applied.
func (h *HoeffdingTreeRegressor) Config() HoeffdingTreeRegressorConfig { return h.cfg }

// Classes is 1.
func (h *HoeffdingTreeRegressor) Classes() int { return 1 }

// Link is LinkIdentity.
func (h *HoeffdingTreeRegressor) Link() Link { return LinkIdentity }

// Shape is the layout of the rows the tree takes.
func (h *HoeffdingTreeRegressor) Shape() Shape {
	return Shape{NumDense: h.p.nd, NumHashed: h.p.nh, HashBits: h.p.bits}
}

// Predict writes one prediction per row into dst; see Learner.
func (h *HoeffdingTreeRegressor) Predict(dst []float32, rows *Rows) error {
	return predictValues(h, dst, rows, h.t.sc, h.t.predictOne)
}

// Learn updates the tree with rows and targets y; see Learner.
func (h *HoeffdingTreeRegressor) Learn(rows *Rows, y []float32) error {
	return learnValues(h, rows, y, h.t.sc, func(r *treeRow, v float64) { h.t.learnOne(r, v, 1) })
}

// Clone returns an independent deep copy.
func (h *HoeffdingTreeRegressor) Clone() Learner {
	c := &HoeffdingTreeRegressor{cfg: h.cfg, p: h.p}
	c.t = h.t.clone(&c.p, newRegScratch(&c.p), nil)
	return c
}

// predictValues runs predict on each row and writes the clamped values.
func predictValues(l ShapedLearner, dst []float32, rows *Rows, sc *treeScratch, predict func(*treeRow) float64) error {
	sh := l.Shape()
	if err := checkRowsFit(rows, sh); err != nil {
		return err
	}
	if len(dst) != rows.N {
		return fmt.Errorf("predict destination holds %d values, want %d: %w", len(dst), rows.N, ErrShape)
	}
	for i := range rows.N {
		sc.row.load(rows.DenseRow(i), rows.HashedRow(i), sh.HashBits)
		v := predict(&sc.row)
		if math.IsNaN(v) {
			v = 0
		}
		dst[i] = clampFloat32(v)
	}
	return nil
}

// learnValues runs learn on each row with a finite target and reports the
// rows it skipped.
func learnValues(l ShapedLearner, rows *Rows, y []float32, sc *treeScratch, learn func(*treeRow, float64)) error {
	sh := l.Shape()
	if err := checkRowsFit(rows, sh); err != nil {
		return err
	}
	if len(y) != rows.N {
		return fmt.Errorf("learn got %d labels for %d rows: %w", len(y), rows.N, ErrShape)
	}
	skipped, first := 0, -1
	for i := range rows.N {
		v := float64(y[i])
		if !isFinite(v) {
			if skipped == 0 {
				first = i
			}
			skipped++
			continue
		}
		sc.row.load(rows.DenseRow(i), rows.HashedRow(i), sh.HashBits)
		learn(&sc.row, v)
	}
	if skipped > 0 {
		return skippedLabels(skipped, rows.N, first, y[first], LinkIdentity)
	}
	return nil
}
