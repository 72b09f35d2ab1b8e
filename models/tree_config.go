package models

import (
	"fmt"
	"math"
)

// LeafPrediction is how a classification tree's leaf predicts.
type LeafPrediction uint8

const (
	// LeafNaiveBayesAdaptive predicts with naive Bayes or the majority
	// class, whichever has been right more often at that leaf; River's
	// "nba" (the default).
	LeafNaiveBayesAdaptive LeafPrediction = iota
	// LeafNaiveBayes predicts with naive Bayes over the leaf's attribute
	// observers once the leaf has seen NBThreshold weight; River's "nb".
	LeafNaiveBayes
	// LeafMajorityClass predicts the leaf's class distribution; River's
	// "mc".
	LeafMajorityClass
)

// String names the leaf prediction as River does.
func (p LeafPrediction) String() string {
	switch p {
	case LeafNaiveBayesAdaptive:
		return "nba"
	case LeafNaiveBayes:
		return "nb"
	case LeafMajorityClass:
		return "mc"
	}
	return "unknown"
}

// Limits of every tree configuration, which keep an accepted configuration
// from asking for absurd memory up front.
const (
	MaxTreeClasses = 1 << 10
	MaxTreeInputs  = 1 << 16
)

// HoeffdingTreeConfig configures a HoeffdingTreeClassifier, and the trees
// of a HoeffdingAdaptiveTreeClassifier and an ARFClassifier. A zero field
// takes the default stated on it, which is River 0.26.1's
// HoeffdingTreeClassifier default (ARFConfig states its own for a few).
type HoeffdingTreeConfig struct {
	// Classes is K, in [2, MaxTreeClasses]. Default 2: binary, LinkSigmoid,
	// one output P(y=1); K > 2 gives LinkSoftmax and K outputs.
	Classes int
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
	// SplitCriterion scores split candidates. Default CriterionInfoGain.
	SplitCriterion SplitCriterion
	// Delta is the significance of the Hoeffding bound, in (0, 1).
	// Default 1e-7.
	Delta float64
	// Tau is the tie threshold: a leaf splits once the Hoeffding bound is
	// below it, whatever the two best candidates' merits. Default 0.05.
	Tau float64
	// LeafPrediction selects the leaves' predictor. Default
	// LeafNaiveBayesAdaptive.
	LeafPrediction LeafPrediction
	// NBThreshold is the weight a LeafNaiveBayes leaf must see before it
	// uses naive Bayes. Default 0.
	NBThreshold int
	// BinarySplit forbids multiway splits. A hashed bucket's split is
	// two-way either way (present or absent), so it changes nothing for
	// the attributes driftline has.
	BinarySplit bool
	// MinBranchFraction is the share of the weight that at least two
	// branches of a candidate must each exceed, in [0, 0.5). Default 0.01.
	MinBranchFraction float64
	// MaxShareToSplit: a leaf whose majority class holds more than this
	// share does not split (River pre-prunes it), in (0, 1]. Default 0.99.
	MaxShareToSplit float64
	// MaxSizeMiB bounds the tree's memory, in MiB of its Go heap estimate:
	// every MemoryEstimatePeriod rows, when the tree is over it, the least
	// promising leaves are deactivated (they drop their attribute
	// observers and stop growing), as in River and MOA (Kirkby 2007).
	// Default 100.
	MaxSizeMiB float64
	// MemoryEstimatePeriod is the weight between two memory estimates.
	// Default 1,000,000.
	MemoryEstimatePeriod int
	// StopMemManagement stops all growth once the memory bound is hit.
	StopMemManagement bool
	// RemovePoorAttrs drops the observers of attributes that cannot win a
	// split (only at majority-class leaves, as in River).
	RemovePoorAttrs bool
	// NoMeritPreprune disables merit pre-pruning (River's
	// merit_preprune=False): without it, "no split" is a candidate too.
	NoMeritPreprune bool
}

// River's HoeffdingTreeClassifier defaults.
const (
	DefaultTreeGracePeriod       = 200
	DefaultTreeDelta             = 1e-7
	DefaultTreeTau               = 0.05
	DefaultTreeMinBranchFraction = 0.01
	DefaultTreeMaxShareToSplit   = 0.99
	DefaultTreeMaxSizeMiB        = 100
	DefaultTreeMemoryPeriod      = 1_000_000
)

// treeDefaults are the defaults a family applies to its zero fields.
type treeDefaults struct {
	grace        int
	delta        float64
	maxSizeMiB   float64
	memoryPeriod int
}

var htDefaults = treeDefaults{DefaultTreeGracePeriod, DefaultTreeDelta, DefaultTreeMaxSizeMiB, DefaultTreeMemoryPeriod}

// Validate reports whether the configuration, with its defaults applied,
// is usable by NewHoeffdingTreeClassifier.
func (c HoeffdingTreeConfig) Validate() error {
	_, err := c.resolve(htDefaults)
	return err
}

// resolve applies the defaults and checks the result.
func (c HoeffdingTreeConfig) resolve(d treeDefaults) (HoeffdingTreeConfig, error) {
	if c.Classes == 0 {
		c.Classes = 2
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = d.grace
	}
	if c.MemoryEstimatePeriod == 0 {
		c.MemoryEstimatePeriod = d.memoryPeriod
	}
	orDefault(&c.Delta, d.delta)
	orDefault(&c.Tau, DefaultTreeTau)
	orDefault(&c.MinBranchFraction, DefaultTreeMinBranchFraction)
	orDefault(&c.MaxShareToSplit, DefaultTreeMaxShareToSplit)
	orDefault(&c.MaxSizeMiB, d.maxSizeMiB)
	if err := checkShape(c.NumDense, c.NumHashed, &c.HashBits); err != nil {
		return c, err
	}
	switch {
	case c.Classes < 2 || c.Classes > MaxTreeClasses:
		return c, fmt.Errorf("models: classes %d outside [2, %d]", c.Classes, MaxTreeClasses)
	case c.GracePeriod < 1:
		return c, fmt.Errorf("models: grace period %d < 1", c.GracePeriod)
	case c.MaxDepth < 0:
		return c, fmt.Errorf("models: max depth %d < 0", c.MaxDepth)
	case c.SplitCriterion > CriterionGini:
		return c, fmt.Errorf("models: unknown split criterion %d", c.SplitCriterion)
	case !(c.Delta > 0 && c.Delta < 1):
		return c, fmt.Errorf("models: delta %v outside (0, 1)", c.Delta)
	case !(c.Tau > 0) || math.IsInf(c.Tau, 0):
		return c, fmt.Errorf("models: tau %v is not a finite positive number", c.Tau)
	case c.LeafPrediction > LeafMajorityClass:
		return c, fmt.Errorf("models: unknown leaf prediction %d", c.LeafPrediction)
	case c.NBThreshold < 0:
		return c, fmt.Errorf("models: nb threshold %d < 0", c.NBThreshold)
	case !(c.MinBranchFraction > 0 && c.MinBranchFraction < 0.5):
		return c, fmt.Errorf("models: min branch fraction %v outside (0, 0.5)", c.MinBranchFraction)
	case !(c.MaxShareToSplit > 0 && c.MaxShareToSplit <= 1):
		return c, fmt.Errorf("models: max share to split %v outside (0, 1]", c.MaxShareToSplit)
	case !(c.MaxSizeMiB > 0) || c.MaxSizeMiB > 1<<20:
		return c, fmt.Errorf("models: max size %v MiB outside (0, 2^20]", c.MaxSizeMiB)
	case c.MemoryEstimatePeriod < 1:
		return c, fmt.Errorf("models: memory estimate period %d < 1", c.MemoryEstimatePeriod)
	}
	return c, nil
}

// checkShape validates a tree's row shape and defaults its hash bits.
func checkShape(numDense, numHashed int, hashBits *int) error {
	if numDense < 0 || numHashed < 0 || numDense > MaxTreeInputs || numHashed > MaxTreeInputs {
		return fmt.Errorf("models: feature counts (dense %d, hashed %d) outside [0, %d]", numDense, numHashed, MaxTreeInputs)
	}
	if *hashBits == 0 && numHashed > 0 {
		*hashBits = DefaultHashBits
	}
	if *hashBits < 0 || *hashBits > MaxHashBits {
		return fmt.Errorf("models: hash bits %d outside [0, %d]", *hashBits, MaxHashBits)
	}
	return nil
}

// treeParams is a resolved HoeffdingTreeConfig in the form the tree code
// reads.
type treeParams struct {
	k, nd, nh, bits int
	grace           float64
	maxDepth        int
	criterion       SplitCriterion
	delta, tau      float64
	leafPred        LeafPrediction
	nbThreshold     float64
	binarySplit     bool
	minBranchFrac   float64
	maxShare        float64
	maxBytes        float64
	memPeriod       float64
	stopMem         bool
	removePoor      bool
	meritPreprune   bool
}

func newTreeParams(c HoeffdingTreeConfig) treeParams {
	depth := c.MaxDepth
	if depth == 0 {
		depth = math.MaxInt
	}
	return treeParams{
		k: c.Classes, nd: c.NumDense, nh: c.NumHashed, bits: c.HashBits,
		grace: float64(c.GracePeriod), maxDepth: depth, criterion: c.SplitCriterion,
		delta: c.Delta, tau: c.Tau, leafPred: c.LeafPrediction, nbThreshold: float64(c.NBThreshold),
		binarySplit: c.BinarySplit, minBranchFrac: c.MinBranchFraction, maxShare: c.MaxShareToSplit,
		maxBytes: c.MaxSizeMiB * (1 << 20), memPeriod: float64(c.MemoryEstimatePeriod),
		stopMem: c.StopMemManagement, removePoor: c.RemovePoorAttrs, meritPreprune: !c.NoMeritPreprune,
	}
}
